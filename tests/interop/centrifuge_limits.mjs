// SPDX-License-Identifier: MIT
// The `centrifuge` SDK against holdfast's containment: a publish over
// client.rate_limit.publish_rate is rejected with 111 (temporary) while the
// client stays connected, and goes through once the bucket refills; a client
// that keeps publishing past disconnect_after is closed with 3013 and the
// SDK reconnects (reconnect range); a second connection of a user over
// client.user_connection_limit gets 3504 and the SDK stops (terminal); a
// SIGHUP reload that removes a namespace ends its subscriptions with an
// unsubscribe push 2000, which the SDK reports as unsubscribed (no
// resubscribe) while the client stays connected.
// Started by test_centrifuge_limits.sh (LIM_PORT, LIM_LOG, LIM_PID,
// LIM_CONFIG, HF_SECRET).
import fs from 'node:fs';
import { sleep, waitEvent, assert, hs256, nowS, caseRunner } from './serverlog.mjs';
import { configure, until, agent, client, subscription, brief, cleanupAll } from './sdkkit.mjs';

const SUITE = 'interop/centrifuge_limits';
const env = process.env;
const LIM = { port: +env.LIM_PORT, log: env.LIM_LOG };
const token = (sub) => hs256(env.HF_SECRET, { sub, exp: nowS() + 600 });
configure({ token, apiKey: env.HF_API_KEY });
const runCase = caseRunner(SUITE, { ms: 30000, after: cleanupAll });

async function connected(c) {
  c.connect();
  await until(() => c.state === 'connected', 5000, () => `not connected: ${brief(c.ev)}`);
}

await runCase('publish_over_the_rate_gets_111_and_the_client_stays', async () => {
  const c = client(LIM.port, 'pub-111');
  await connected(c);
  const results = await Promise.allSettled([1, 2, 3].map((n) => c.publish('room', { n })));
  const ok = results.filter((r) => r.status === 'fulfilled').length;
  const refused = results.filter((r) => r.status === 'rejected');
  assert(ok >= 1 && refused.length >= 1, `expected some refused: ${JSON.stringify(results)}`);
  for (const r of refused)
    assert(r.reason.code === 111 && r.reason.temporary === true && r.reason.message === 'too many requests',
      `refusal: ${JSON.stringify(r.reason)}`);
  assert(c.state === 'connected' && !c.ev.some((e) => e.n === 'disconnected' || e.n === 'connecting' && e.ctx.code),
    `the client must stay connected: ${brief(c.ev)}`);
  await until(async () => {
    try { await c.publish('room', { n: 4 }); return true; } catch (e) {
      if (e.code !== 111) throw e;
      await sleep(600); /* few retries: 5 refusals in a burst would close it */
      return false;
    }
  }, 5000, 'publish never accepted after the bucket refilled');
  await waitEvent(LIM.log, 'rate_limited', (e) => e.user === 'pub-111' && e.limit === 'publish');
});

await runCase('sustained_abuse_gets_3013_and_the_sdk_reconnects', async () => {
  const c = client(LIM.port, 'abuser');
  const codes = [];
  c.on('connecting', (ctx) => codes.push(ctx.code));
  await connected(c);
  await Promise.allSettled(Array.from({ length: 20 }, (_, n) => c.publish('room', { n })));
  await until(() => codes.includes(3013), 5000, () => `no 3013: ${brief(c.ev)}`);
  await until(() => c.state === 'connected', 5000, () => `did not reconnect: ${brief(c.ev)}`);
  await waitEvent(LIM.log, 'rate_limit_disconnect', (e) => e.user === 'abuser' && e.limit === 'publish');
});

await runCase('user_connection_limit_gives_3504_terminal', async () => {
  const first = client(LIM.port, 'one-only');
  await connected(first);
  const second = client(LIM.port, 'one-only');
  second.connect();
  await until(() => second.ev.some((e) => e.n === 'disconnected'), 5000, () => `second not disconnected: ${brief(second.ev)}`);
  const d = second.ev.find((e) => e.n === 'disconnected');
  assert(d.ctx.code === 3504 && d.ctx.reason === 'connection limit', `disconnect: ${JSON.stringify(d.ctx)}`);
  assert(second.state === 'disconnected', `terminal: ${second.state}`);
  assert(first.state === 'connected', `the first stays: ${brief(first.ev)}`);
  await waitEvent(LIM.log, 'connect_rejected', (e) => e.user === 'one-only' && e.reason === 'user connection limit');
  // once the first goes, the user may connect again
  first.disconnect();
  const third = client(LIM.port, 'one-only');
  await until(async () => {
    if (third.state === 'connected') return true;
    if (third.state === 'disconnected') third.connect();
    await sleep(100);
    return false;
  }, 5000, () => `the slot was not freed: ${brief(third.ev)}`);
});

await runCase('namespace_removed_by_reload_gives_unsubscribed_2000', async () => {
  const c = client(LIM.port, 'ns-gone');
  await connected(c);
  const sub = subscription(c, 'gone:1');
  sub.subscribe();
  await until(() => sub.state === 'subscribed', 5000, () => `not subscribed: ${brief(sub.ev)}`);
  fs.writeFileSync(env.LIM_CONFIG, JSON.stringify({ channel: { namespaces: [] } }));
  process.kill(+env.LIM_PID, 'SIGHUP');
  await until(() => sub.ev.some((e) => e.n === 'unsubscribed'), 5000, () => `no unsubscribed: ${brief(sub.ev)}`);
  const u = sub.ev.find((e) => e.n === 'unsubscribed').ctx;
  assert(u.code === 2000 && u.reason === 'unknown channel', `unsubscribed: ${JSON.stringify(u)}`);
  await waitEvent(LIM.log, 'reload_recheck', (e) => e.subscriptions_removed === 1);
  // 2000 < 2500: the SDK does not resubscribe
  const after = sub.ev.slice(sub.ev.findIndex((e) => e.n === 'unsubscribed'));
  assert(sub.state === 'unsubscribed' && !after.some((e) => e.n === 'subscribing'), `resubscribed: ${brief(sub.ev)}`);
  assert(c.state === 'connected', `the client stays connected: ${brief(c.ev)}`);
});

agent.destroy();
process.exit(runCase.failed ? 1 : 0);
