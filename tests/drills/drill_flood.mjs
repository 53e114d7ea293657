// SPDX-License-Identifier: MIT
// Message flood from one client: `holdfast bench -m flood` sends 1 KB
// messages as fast as the socket takes them and never reads the echoes,
// while its observers keep measuring round trips and SDK subscribers
// receive a steady stream. The server must end the flooder (3008: its
// output queue), keep its memory bounded, and the others must not notice.
import { runBin, resultOf, startServer, bystanders, steadyPublisher, checkBystanders, metrics } from './kit.mjs';

export default {
  name: 'flood',
  long: true,
  what: 'one client floods 1 KB messages and never reads',
  ms: 60000,
  async run(d) {
    const srv = await startServer(d, ['--client.queue_max_size=262144', '--client.queue_grace=500ms'],
      { config: { channel: { without_namespace: { allow_subscribe_for_client: true } } } });
    const others = await bystanders(d, srv, 'news', 3);
    const pub = steadyPublisher(srv, 'news', 20);
    const m0 = await metrics(srv.port);
    d.did('holdfast bench -m flood: 5 echo observers (20 round trips/s each), then one client sends 1 KB messages as fast as it can for at most 12 s, never reading; 3 SDK subscribers on a 20/s channel');
    const r = await runBin(['bench', '-m', 'flood', '-u', `ws://127.0.0.1:${srv.port}/echo`, '-c', '5', '-w', '1', '-d', '12'], 40000);
    const res = resultOf(r.out);
    const closed = srv.events('closed').find((e) => e.code === 3008);
    d.saw('flooder', `${res.flood_msgs} messages, ${res.flood_MBps} MB/s; ended ${res.flooder_ended === '1' ? `after ${res.flooder_ended_after_s} s: ${res.flooder_fate}` : 'never'}`);
    d.saw('observers', `round trip p99 ${res.base_p99_us} us before, ${res.flood_p99_us} us during (max ${res.flood_max_us} us); failures ${res.observer_failures}`);
    d.saw('server', closed ? `closed ${closed.conn_id}: ${closed.code} "${closed.reason}" after ${closed.duration_ms} ms, ${closed.bytes_in} bytes in` : 'no 3008 close');
    d.check('detected', res.flooder_ended === '1' && closed, `the server ended the flooder (the bench saw: ${res.flooder_fate})`);
    const m1 = await metrics(srv.port);
    const n = m1('holdfast_closes_total', { code: '3008' }) - m0('holdfast_closes_total', { code: '3008' });
    const rss = m1('process_resident_memory_bytes');
    d.check('explained', closed && closed.reason.startsWith('slow consumer') && n >= 1,
      `server log "closed" conn_id ${closed?.conn_id} code 3008 "${closed?.reason}": it sent faster than it read its replies; closes_total{code="3008"} +${n}; RSS ${(rss / 1048576).toFixed(1)} MiB`);
    d.check('recovered', r.code === 0 && rss < 256 * 1048576, `the bench finished (exit ${r.code}); the server's memory stayed bounded (policy: the flooder is disconnected, nobody else)`);
    // the observers share the flooder's process (its loop is busy pushing),
    // so their round trips bound the server's delay from above; the SDK
    // subscribers below are measured from another process
    d.check('unhurt', res.observer_failures === '0' && Number(res.flood_p99_us) < 1000000,
      `echo observers: no failures, round trip p99 ${(Number(res.flood_p99_us) / 1000).toFixed(1)} ms during the flood (limit 1 s; measured in the flooder's own process)`);
    await pub.stop();
    await d.until(() => others.every((x) => x.s.data.length >= pub.sent.length), 5000, 'bystanders behind');
    checkBystanders(d, others, pub, 1000);
  },
};
