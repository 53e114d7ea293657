// SPDX-License-Identifier: MIT
// Connection flood: 1,000 WebSocket connections arrive at once (`holdfast
// bench -m idle`) at a server limited to 300 (client.connection_limit).
// The excess must be refused with a status and reason (not accepted and
// starved), logged and counted; connections already open are untouched;
// once the flood leaves, new clients connect again.
import { runBin, startServer, bystanders, steadyPublisher, checkBystanders, metrics, untilMetric, sdk } from './kit.mjs';

export default {
  name: 'connection_flood',
  what: '1,000 connections at once against client.connection_limit 300',
  ms: 60000,
  async run(d) {
    const srv = await startServer(d, ['--client.connection_limit=300'],
      { config: { channel: { without_namespace: { allow_subscribe_for_client: true } } } });
    const others = await bystanders(d, srv, 'news', 3);
    const pub = steadyPublisher(srv, 'news', 20);
    const m0 = await metrics(srv.port);
    const base = m0('holdfast_connections');
    d.did('holdfast bench -m idle: 1,000 WebSocket connections (up to 256 handshakes at once), held 2 s; client.connection_limit 300; 3 SDK subscribers connected before');
    const r = await runBin(['bench', '-m', 'idle', '-u', `ws://127.0.0.1:${srv.port}/echo`, '-c', '1000', '-C', '256', '-H', '2'], 40000);
    const fails = r.out.split('\n').filter((l) => / x /.test(l)).slice(0, 3);
    const rej = srv.events('upgrade_rejected');
    const m1 = await metrics(srv.port);
    const n = m1('holdfast_rejections_total', { reason: 'connection_limit' }) - m0('holdfast_rejections_total', { reason: 'connection_limit' });
    const accepted = (m1('holdfast_upgrades_total', { endpoint: 'echo' }) - m0('holdfast_upgrades_total', { endpoint: 'echo' }));
    d.saw('flood', `${accepted} accepted, ${n} refused; the bench reports: ${fails.join(' | ') || r.out.split('\n').slice(-3).join(' | ')}`);
    d.saw('server', `${rej.length} "upgrade_rejected" lines, e.g. status ${rej[0]?.status} reason "${rej[0]?.reason}" conn_id ${rej[0]?.conn_id}`);
    d.check('detected', accepted + base <= 300 + 1 && n >= 600, `the server held the limit: ${accepted} flood connections accepted beside ${base} open, ${n} refused`);
    d.check('explained', rej.length >= 600 && rej.every((e) => e.conn_id && e.status >= 400) && fails.some((l) => /\b(503|429)\b/.test(l) || /limit/i.test(l)),
      `each refused with HTTP ${rej[0]?.status} "${rej[0]?.reason}" (log line with conn_id); rejections_total{reason="connection_limit"} +${n}; the client side sees the status`);
    await untilMetric(srv.port, (m) => m('holdfast_connections') <= base, 10000, 'connections did not return to the baseline');
    const c = sdk.client(srv.port, 'after-flood');
    d.defer(() => c.disconnect());
    const t = Date.now();
    c.connect();
    const back = await d.until(() => c.state === 'connected', 5000, 'a new client could not connect after the flood', t);
    d.check('recovered', true, `the flood's connections are gone (connections back to ${base}) and a new SDK client connected in ${back} ms`);
    await pub.stop();
    await d.until(() => others.every((x) => x.s.data.length >= pub.sent.length), 5000, 'bystanders behind');
    checkBystanders(d, others, pub, 1000);
  },
};
