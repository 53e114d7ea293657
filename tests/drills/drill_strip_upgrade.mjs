// SPDX-License-Identifier: MIT
// A misconfigured proxy strips Upgrade/Connection from the request: the
// server must refuse with a status and a reason that name the problem (426,
// missing Upgrade), log it and count it (rejections_total{reason=
// "missing_upgrade"}); the SDK keeps retrying with backoff and connects as
// soon as the proxy is fixed; direct clients are untouched.
import { startServer, startChaos, sdkSubscriber, bystanders, steadyPublisher, checkBystanders, metrics, sdk } from './kit.mjs';
import net from 'node:net';

export default {
  name: 'strip_upgrade',
  what: 'a proxy that strips Upgrade and Connection from the handshake',
  ms: 30000,
  async run(d) {
    const srv = await startServer(d, [], { config: { channel: { without_namespace: { allow_subscribe_for_client: true } } } });
    const chaos = await startChaos(d, srv.port, ['--strip-upgrade']);
    const others = await bystanders(d, srv, 'news', 2);
    const pub = steadyPublisher(srv, 'news', 10);
    const m0 = await metrics(srv.port);
    d.did('chaos --strip-upgrade in front of the server; an SDK client and a raw handshake through it');
    // a raw handshake: what exactly comes back
    const reply = await new Promise((resolve, reject) => {
      const s = net.connect(chaos.port, '127.0.0.1', () => s.write('GET /connection/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'));
      let text = '';
      s.on('data', (b) => { text += b; });
      s.on('end', () => resolve(text));
      s.on('error', reject);
      setTimeout(() => { s.destroy(); resolve(text); }, 5000);
    });
    const status = reply.split('\r\n')[0];
    const c = sdk.client(chaos.port, 'behind-proxy', { minReconnectDelay: 100, maxReconnectDelay: 400 });
    d.defer(() => c.disconnect());
    c.connect();
    await d.until(() => srv.events('upgrade_rejected').length >= 4, 10000, 'the SDK did not retry');
    const rej = await srv.waitEvent('upgrade_rejected', () => true, 3000);
    const errEv = c.ev.find((e) => e.n === 'error');
    d.saw('raw client', `"${status}", body "${reply.split('\r\n\r\n')[1]?.trim().slice(0, 120)}"`);
    d.saw('SDK', `never connected; ${srv.events('upgrade_rejected').length - 1} attempts refused so far, state ${c.state}, error: ${errEv ? JSON.stringify(errEv.ctx.error?.message || errEv.ctx.type || '') : 'none'}`);
    d.saw('server', `upgrade_rejected status ${rej.status} reason "${rej.reason}" conn_id ${rej.conn_id}`);
    d.check('detected', /^HTTP\/1\.1 4\d\d/.test(status) && c.state !== 'connected', `the handshake is refused (${status}) and the SDK does not connect`);
    const m1 = await metrics(srv.port);
    const n = m1('holdfast_rejections_total', { reason: 'missing_upgrade' }) - m0('holdfast_rejections_total', { reason: 'missing_upgrade' });
    const st = await chaos.stats();
    d.check('explained', /upgrade/i.test(rej.reason) && n >= 1 && /upgrade/i.test(reply),
      `the reply and the server's "upgrade_rejected" line (conn_id ${rej.conn_id}) both name the missing Upgrade; rejections_total{reason="missing_upgrade"} +${n}; chaos counted ${st.stripped} stripped requests`);
    await chaos.rules({});
    const t1 = Date.now();
    d.did('proxy fixed: chaos rules cleared');
    const s = sdk.subscription(c, 'news');
    s.subscribe();
    const back = await d.until(() => c.state === 'connected' && s.state === 'subscribed', 10000, 'the SDK did not connect after the fix', t1);
    d.time('SDK connected after the fix', back);
    d.check('recovered', back < 5000, `the SDK's own retries connected it ${(back / 1000).toFixed(2)} s after the proxy was fixed`);
    await pub.stop();
    await d.until(() => others.every((x) => x.s.data.length >= pub.sent.length), 5000, 'bystanders behind');
    checkBystanders(d, others, pub, 1000);
  },
};
