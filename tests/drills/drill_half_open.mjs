// SPDX-License-Identifier: MIT
// Half-open connection: the path between one client and the server starts
// dropping every byte without closing (chaos blackhole). Both heartbeats
// must notice: the server closes with 3012 "no pong", the SDK gives up with
// "no ping" and reconnects once the path works again; subscribers connected
// directly keep getting every publication on time.
import { tsOf, untilMetric, startServer, startChaos, sdkSubscriber, connIdViaChaos, bystanders, steadyPublisher, checkBystanders, metrics } from './kit.mjs';

export default {
  name: 'half_open',
  long: true,
  what: 'a blackholed path (bytes dropped, nothing closed) between one SDK client and the server',
  ms: 40000,
  async run(d) {
    const srv = await startServer(d, ['--client.ping_interval=1s', '--client.pong_timeout=500ms'],
      { config: { channel: { without_namespace: { allow_subscribe_for_client: true } } } });
    const chaos = await startChaos(d, srv.port);
    const others = await bystanders(d, srv, 'news', 3);
    const v = await sdkSubscriber(d, chaos.port, 'victim', 'news', { maxServerPingDelay: 1500, minReconnectDelay: 200, maxReconnectDelay: 1000 });
    const victimConn = await connIdViaChaos(srv, chaos, 1);
    const pub = steadyPublisher(srv, 'news', 20);
    await new Promise((r) => setTimeout(r, 1000));
    const m0 = await metrics(srv.port);

    const t0 = Date.now();
    await chaos.rules({ 'blackhole-after': '0s' });
    d.did('chaos: blackhole every connection through it (the victim\'s): bytes read and dropped both ways, no FIN, no RST');
    const hb0 = m0('holdfast_heartbeat_timeouts_total');
    const tServer = (await untilMetric(srv.port, (m) => m('holdfast_heartbeat_timeouts_total') > hb0, 10000, 'no heartbeat timeout counted')) - t0;
    const closed = await srv.waitEvent('closed', (e) => e.conn_id === victimConn, 10000);
    const tLog = tsOf(closed) - t0;
    await d.until(() => v.c.ev.find((e) => e.n === 'connecting' && e.ctx.code !== 0), 10000, 'the SDK did not notice');
    const cev = v.c.ev.find((e) => e.n === 'connecting' && e.ctx.code !== 0).ctx;
    const tClient = cev.t - t0;
    d.saw('server', `closed ${victimConn}: ${closed.code} "${closed.reason}" (who=${closed.who})`);
    d.saw('client', `SDK state connecting: code ${cev.code} "${cev.reason}"`);
    d.time('server detected after (heartbeat_timeouts_total rose)', tServer);
    d.time('server "closed" log line after (the close handshake waits websocket.close_timeout)', tLog);
    d.time('client detected after', tClient);
    d.check('detected', closed.code === 3012 && tServer < 6000, `server closed the half-open connection with ${closed.code} after ${(tServer / 1000).toFixed(2)} s (ping 1 s + pong timeout 0.5 s)`);
    d.check('detected', cev.code === 2 && tClient < 8000, `the SDK noticed by itself: code ${cev.code} "${cev.reason}" (2 = no ping) after ${(tClient / 1000).toFixed(2)} s`);

    const m1 = await metrics(srv.port);
    const hb = m1('holdfast_heartbeat_timeouts_total') - m0('holdfast_heartbeat_timeouts_total');
    const c3012 = m1('holdfast_closes_total', { code: '3012' }) - m0('holdfast_closes_total', { code: '3012' });
    d.check('explained', closed.reason.includes('pong') && hb >= 1 && c3012 >= 1,
      `server log "closed" with conn_id ${victimConn}, code 3012, reason "${closed.reason}"; metrics: heartbeat_timeouts_total +${hb}, closes_total{code="3012"} +${c3012}; chaos logged chaos_blackhole`);
    await chaos.waitEvent('chaos_blackhole', (e) => e.conn === 1, 2000);

    await chaos.rules({});
    const t1 = Date.now();
    d.did('chaos: rules cleared (new connections pass; the SDK\'s attempts in between were blackholed right after their upgrade)');
    const tBack = await d.until(() => v.c.ev.some((e) => e.n === 'connected' && e.ctx.t >= t1) && v.c.state === 'connected' && v.s.state === 'subscribed', 15000, 'the victim did not reconnect', t1);
    d.time('victim back after the path healed', tBack);
    const before = v.s.data.length;
    await d.until(() => v.s.data.length > before, 5000, 'no publication after the reconnect');
    d.check('recovered', true, `the SDK reconnected and resubscribed by itself ${(tBack / 1000).toFixed(2)} s after the path healed and receives again (no history on this channel: the gap is not recovered, by policy)`);

    await pub.stop();
    await d.until(() => others.every((b) => b.s.data.length >= pub.sent.length), 5000, 'bystanders behind');
    checkBystanders(d, others, pub, 1000);
  },
};
