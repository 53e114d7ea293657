// SPDX-License-Identifier: MIT
// Messages across reconnects: a subscriber's connection is cut (RST, no
// close frame) three times while publications flow into a channel with
// history and force_recovery. The SDK must reconnect, recover from its last
// offset and end with every publication exactly once and in order.
import { startServer, startChaos, sdkSubscriber, connIdViaChaos, bystanders, steadyPublisher, checkBystanders, deliveryOf, metrics, sleep } from './kit.mjs';

export default {
  name: 'reconnect_messages',
  what: 'three abrupt cuts of a subscriber while publications flow (history + recovery)',
  ms: 40000,
  async run(d) {
    const srv = await startServer(d, [], {
      config: { channel: { namespaces: [{ name: 'rec', history_size: 1000, history_ttl: '300s', force_recovery: true, allow_subscribe_for_client: true }] } },
    });
    const chaos = await startChaos(d, srv.port);
    const others = await bystanders(d, srv, 'rec:orders', 2);
    const v = await sdkSubscriber(d, chaos.port, 'mobile', 'rec:orders', { minReconnectDelay: 100, maxReconnectDelay: 500 });
    const conn1 = await connIdViaChaos(srv, chaos, 1);
    const m0 = await metrics(srv.port);
    const pub = steadyPublisher(srv, 'rec:orders', 50);
    d.did('50 publications/s into rec:orders (history 1000, force_recovery); the subscriber through chaos is cut with RST 3 times, 1 s apart');
    for (let i = 0; i < 3; i++) {
      await sleep(1000);
      const r = await chaos.call('POST', '/cut?mode=rst');
      if (r.status !== 200) throw new Error(`POST /cut: ${r.status}`);
    }
    await sleep(1000);
    await pub.stop();
    await d.until(() => v.s.data.length >= pub.sent.length, 10000, () => `the subscriber has ${v.s.data.length} of ${pub.sent.length}`);
    const closed = await srv.waitEvent('closed', (e) => e.conn_id === conn1, 5000);
    const drops = v.c.ev.filter((e) => e.n === 'connecting' && e.ctx.code !== 0);
    const subs = v.s.ev.filter((e) => e.n === 'subscribed').map((e) => e.ctx);
    d.saw('client', `${drops.length} drops (${[...new Set(drops.map((e) => `${e.ctx.code} "${e.ctx.reason}"`))].join(', ')}), ${subs.length} subscribes, recovered: ${subs.slice(1).map((s) => s.recovered).join(', ')}`);
    d.saw('server', `first connection ${conn1} closed ${closed.code} who=${closed.who}`);
    d.check('detected', drops.length === 3 && closed.who === 'abnormal', `the SDK saw each of the 3 cuts (transport closed) and the server logged abnormal closes`);
    const m1 = await metrics(srv.port);
    const rec = m1('holdfast_recoveries_total') - m0('holdfast_recoveries_total');
    const ab = m1('holdfast_closes_total', { side: 'abnormal' }) - m0('holdfast_closes_total', { side: 'abnormal' });
    d.check('explained', subs.length === 4 && subs.slice(1).every((s) => s.wasRecovering && s.recovered) && rec >= 3 && ab >= 3,
      `every resubscribe says wasRecovering and recovered; recoveries_total +${rec}, closes_total{side="abnormal"} +${ab}`);
    const r = deliveryOf([{ s: v.s, user: 'mobile' }], pub.sent);
    d.check('recovered', r.ok, `the subscriber has all ${pub.sent.length} publications exactly once and in order${r.ok ? '' : `: ${r.problems.join('; ')}`}`);
    await d.until(() => others.every((x) => x.s.data.length >= pub.sent.length), 5000, 'bystanders behind');
    checkBystanders(d, others, pub, 1000);
  },
};
