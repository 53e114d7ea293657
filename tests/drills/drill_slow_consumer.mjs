// SPDX-License-Identifier: MIT
// A slow consumer during fan-out: one subscriber's link carries 2 KB/s
// while the channel carries 3.2 MB/s. The server must bound what it holds
// for it (client.queue_max_size 64 KiB, grace 300 ms) and close it with
// 3008; the SDK reconnects once its link recovers; the fast subscribers
// get every publication with no added latency.
import { tsOf, startServer, startChaos, sdkSubscriber, connIdViaChaos, bystanders, steadyPublisher, checkBystanders, metrics, untilMetric } from './kit.mjs';

export default {
  name: 'slow_consumer',
  what: 'one subscriber on a 2 KB/s link during a 3.2 MB/s fan-out',
  ms: 40000,
  async run(d) {
    const srv = await startServer(d, ['--client.queue_max_size=65536', '--client.queue_grace=300ms', '--websocket.close_timeout=1s'],
      { config: { channel: { without_namespace: { allow_subscribe_for_client: true } } } });
    const chaos = await startChaos(d, srv.port);
    const others = await bystanders(d, srv, 'feed', 5);
    const slow = await sdkSubscriber(d, chaos.port, 'slow', 'feed', { minReconnectDelay: 200, maxReconnectDelay: 1000, maxServerPingDelay: 60000 });
    const conn = await connIdViaChaos(srv, chaos, 1);
    const m0 = await metrics(srv.port);
    await chaos.rules({ down: { bandwidth: 2000 } });
    const t0 = Date.now();
    const pub = steadyPublisher(srv, 'feed', 200, 16000);
    d.did('chaos: the slow subscriber\'s link limited to 2000 B/s (server to client); 200 publications/s of 16 KB into its channel; 5 other subscribers direct');
    const tDet = (await untilMetric(srv.port, (m) => m('holdfast_slow_consumers_total', { action: 'disconnect' }) > m0('holdfast_slow_consumers_total', { action: 'disconnect' }), 20000, 'no slow consumer counted')) - t0;
    const closed = await srv.waitEvent('closed', (e) => e.conn_id === conn, 10000);
    d.saw('server', `closed ${conn}: ${closed.code} "${closed.reason}" who=${closed.who}, ${closed.bytes_out} bytes written to it`);
    d.time('slow consumer detected after', tDet);
    d.check('detected', closed.code === 3008, `the server gave up on the slow subscriber with 3008 ${(tDet / 1000).toFixed(2)} s after the flood began (kernel buffers absorb several MB first)`);
    const m1 = await metrics(srv.port);
    const rss = m1('process_resident_memory_bytes');
    const sc = m1('holdfast_slow_consumers_total', { action: 'disconnect' }) - m0('holdfast_slow_consumers_total', { action: 'disconnect' });
    d.check('explained', closed.reason.startsWith('slow consumer') && sc >= 1,
      `server log "closed" conn_id ${conn} code 3008 "${closed.reason}"; slow_consumers_total{action="disconnect"} +${sc}; server RSS ${(rss / 1048576).toFixed(1)} MiB (bounded queue)`);
    await chaos.rules({});
    const t1 = Date.now();
    d.did('link restored (chaos rules cleared)');
    await d.until(() => slow.c.ev.some((e) => e.n === 'connecting' && e.ctx.t >= t0), 10000, 'the slow SDK client never saw its connection end');
    const cev = slow.c.ev.find((e) => e.n === 'connecting' && e.ctx.t >= t0).ctx;
    d.saw('slow client', `SDK connecting: code ${cev.code} "${cev.reason}"`);
    d.check('explained', cev.code === 3008 || cev.code === 1, `the slow client learned it with code ${cev.code} "${cev.reason}" once its link drained`);
    const back = await d.until(() => slow.c.ev.some((e) => e.n === 'connected' && e.ctx.t >= t1) && slow.s.state === 'subscribed', 10000, 'no reconnect', t1);
    d.time('slow client back after its link recovered', back);
    d.check('recovered', true, `policy "disconnect" (the default): it reconnected and resubscribed ${(back / 1000).toFixed(2)} s after its link recovered`);
    await pub.stop();
    await d.until(() => others.every((x) => x.s.data.length >= pub.sent.length), 10000, 'bystanders behind');
    checkBystanders(d, others, pub, 1000);
  },
};
