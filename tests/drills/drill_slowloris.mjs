// SPDX-License-Identifier: MIT
// Connection flood / slowloris: 300 TCP connections open at once and
// trickle an HTTP head one header line per second, never finishing it.
// The server must close each at websocket.handshake_timeout (2 s here),
// log and count it, return to its baseline of connections, and keep
// accepting and serving real clients throughout.
import net from 'node:net';
import { startServer, bystanders, steadyPublisher, checkBystanders, metrics, untilMetric, sdk, sleep } from './kit.mjs';

const N = 300;

export default {
  name: 'slowloris',
  what: `${N} connections trickling an HTTP head that never ends`,
  ms: 40000,
  async run(d) {
    const srv = await startServer(d, ['--websocket.handshake_timeout=2s'],
      { config: { channel: { without_namespace: { allow_subscribe_for_client: true } } } });
    const others = await bystanders(d, srv, 'news', 3);
    const pub = steadyPublisher(srv, 'news', 20);
    const m0 = await metrics(srv.port);
    const base = m0('holdfast_tcp_connections');
    const socks = [];
    const ended = [];
    const t0 = Date.now();
    for (let i = 0; i < N; i++) {
      const s = net.connect(srv.port, '127.0.0.1');
      s.on('connect', () => s.write('GET /connection/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n'));
      s.on('error', () => {});
      s.on('close', () => ended.push(Date.now() - t0));
      socks.push(s);
    }
    d.defer(() => { for (const s of socks) s.destroy(); });
    const trickle = setInterval(() => { for (const s of socks) if (!s.destroyed) s.write(`X-Slow-${Date.now() % 1000}: 1\r\n`); }, 1000);
    d.defer(() => clearInterval(trickle));
    d.did(`${N} raw TCP connections send a request line and then one header line per second, never the blank line; websocket.handshake_timeout 2 s`);
    // a real client arrives in the middle of it
    await sleep(1000);
    const c = sdk.client(srv.port, 'newcomer');
    d.defer(() => c.disconnect());
    const tc = Date.now();
    c.connect();
    const tNew = await d.until(() => c.state === 'connected', 5000, 'a new client could not connect during the flood', tc);
    await d.until(() => ended.length === N, 10000, () => `${ended.length} of ${N} slow connections closed`);
    ended.sort((a, b) => a - b);
    d.saw('attackers', `all ${N} closed by the server, from ${(ended[0] / 1000).toFixed(2)} s to ${(ended[N - 1] / 1000).toFixed(2)} s after they opened`);
    d.check('detected', ended[N - 1] < 5000, `every slow connection was closed within ${(ended[N - 1] / 1000).toFixed(2)} s (handshake timeout 2 s)`);
    const to = srv.events('handshake_timeout');
    const m1 = await metrics(srv.port);
    const n = m1('holdfast_handshake_timeouts_total') - m0('holdfast_handshake_timeouts_total');
    d.saw('server', `${to.length} "handshake_timeout" lines, e.g. conn_id ${to[0]?.conn_id} remote ${to[0]?.remote} timeout_ms ${to[0]?.timeout_ms}`);
    d.check('explained', to.length === N && n === N && to.every((e) => e.conn_id), `one "handshake_timeout" log line per connection with its conn_id and address; handshake_timeouts_total +${n}`);
    const tBase = await untilMetric(srv.port, (m) => m('holdfast_tcp_connections') <= base + 1, 5000, 'tcp_connections did not return to its baseline');
    d.check('recovered', true, `holdfast_tcp_connections back to its baseline (${base}, +1 for the newcomer) ${((tBase - t0) / 1000).toFixed(2)} s after the flood began`);
    d.check('unhurt', tNew < 1000, `a new SDK client connected in ${tNew} ms in the middle of the flood`);
    await pub.stop();
    await d.until(() => others.every((x) => x.s.data.length >= pub.sent.length), 5000, 'bystanders behind');
    checkBystanders(d, others, pub, 1000);
  },
};
