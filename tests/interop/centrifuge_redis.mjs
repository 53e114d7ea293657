// SPDX-License-Identifier: MIT
// The Redis engine with the official `centrifuge` SDK in Node: three
// holdfast nodes (A, B, C) share one Redis.
//  - recovery across nodes under fire: subscribers connect through a proxy
//    that sends their connections to A and C alternately; 20,000 numbered
//    publications go in through node B (two publishers, idempotency keys,
//    retried on temporary errors); the proxy resets the subscribers'
//    connections four times and Redis itself is killed (SIGKILL) and
//    restarted once in the middle. Every subscriber must end with every
//    number exactly once and in order, and every resubscribe must report a
//    recovery;
//  - presence and join/leave between clients of different nodes; a user
//    disconnected through the API of node A loses its sessions on B and C.
// Started by test_centrifuge_redis.sh (A_*, B_*, C_*, REDIS_*, HF_SECRET,
// HF_API_KEY).
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { sleep, events, assert, hs256, nowS, caseRunner } from './serverlog.mjs';
import {
  configure, until, agent, api, proxy, cleanups, client, subscription, subscribedEvents, brief,
  subscribed, cleanupAll, checkExactlyOnce,
} from './sdkkit.mjs';

const SUITE = 'interop/centrifuge_redis';
const env = process.env;
const srv = (n) => ({ port: +env[`${n}_PORT`], log: env[`${n}_LOG`], pid: +env[`${n}_PID`] });
const A = srv('A');
const B = srv('B');
const C = srv('C');
const token = (sub) => hs256(env.HF_SECRET, { sub, exp: nowS() + 600 });
configure({ token, apiKey: env.HF_API_KEY });
const runCase = caseRunner(SUITE, { ms: 90000, after: cleanupAll });

// ---- Redis, killed and started again ---------------------------------------------

let redisPid = +readFileSync(`${env.REDIS_DIR}/pid`, 'utf8').trim();

async function restartRedis() {
  try { process.kill(redisPid, 'SIGKILL'); } catch { /* gone */ }
  await sleep(300); // the nodes notice; publications in flight fail
  const child = spawn('/bin/sh', ['-c', `exec ${env.REDIS_CMD}`], { stdio: 'ignore' });
  redisPid = child.pid;
  writeFileSync(`${env.REDIS_DIR}/pid`, String(redisPid));
  child.unref();
}

// ---- publishing that survives an outage -----------------------------------------------

// Publisher p sends numbers 0..count-1 into ch in batches of 20 through
// server(p), each with idempotency key "p-n"; a batch with failed items is
// sent again from its first failure (the keys make a retry of something
// Redis did apply a no-op), after a short pause. Returns the retries.
async function publishReliably(server, ch, count, p, actions) {
  const pad = 'y'.repeat(500);
  let retries = 0;
  let n = 0;
  while (n < count) {
    while (actions.length && n >= actions[0].at) await actions.shift().run();
    const batch = [];
    for (let k = n; k < Math.min(n + 20, count); k++)
      batch.push({ publish: { channel: ch, data: { p, n: k, pad }, idempotency_key: `${p}-${k}` } });
    let replies;
    try {
      replies = (await api(server(p), 'batch', { commands: batch })).replies;
    } catch (e) {
      replies = batch.map(() => ({ error: { code: 0, message: String(e) } }));
    }
    const bad = replies.findIndex((r) => r.error);
    if (bad < 0) {
      n += batch.length;
      continue;
    }
    const e = replies[bad].error;
    assert(e.code === 100 || e.code === 0, `publish failed for good: ${JSON.stringify(e)}`);
    // nothing after a failure may have been applied out of order
    assert(replies.slice(bad).every((r) => r.error), `a later publication succeeded after a failed one: ${JSON.stringify(replies)}`);
    n += bad;
    retries++;
    await sleep(50);
  }
  return retries;
}

// "p:first-last" ranges of numbers not received, for failure messages
function missing(data, total) {
  const out = [];
  for (const p of [0, 1]) {
    const got = new Set(data.filter((d) => d.p === p).map((d) => d.n));
    for (let n = 0; n < total; n++) {
      if (got.has(n)) continue;
      let m = n;
      while (m + 1 < total && !got.has(m + 1)) m++;
      out.push(`${p}:${n}-${m}`);
      n = m;
    }
  }
  return out.slice(0, 10).join(' ');
}

// offsets that do not follow the previous one
function offsetJumps(offs) {
  const out = [];
  for (let i = 1; i < offs.length; i++) if (offs[i] !== offs[i - 1] + 1) out.push(`${offs[i - 1]}->${offs[i]}`);
  return out.slice(0, 10).join(' ');
}

await runCase('recovery_across_nodes_redis_restart_under_fire', async () => {
  const ch = 'rec:cluster';
  let flip = 0;
  const px = await proxy(() => (flip++ % 2 ? C.port : A.port));
  cleanups.push(() => px.close());
  const subs = [];
  for (let i = 0; i < 4; i++) {
    const c = client(px.port, `sub${i}`, { maxReconnectDelay: 500 });
    const sub = subscription(c, ch);
    await subscribed(c, sub);
    subs.push({ c, sub });
  }
  const marks = [A, B, C].map((s) => events(s.log).length);
  const back = () => until(() => subs.every(({ sub }) => sub.state === 'subscribed') &&
    px.upstreamPorts().length >= subs.length, 15000,
  () => `subscribers did not come back: ${subs.map(({ sub }) => brief(sub.ev)).join(' | ')}`);
  const total = 10000;
  const actions = [[], []];
  for (const at of [1500, 3500, 6500, 8500]) actions[0].push({ at, run: async () => { await back(); px.cut(); } });
  actions[1].push({ at: 5000, run: async () => { await back(); await restartRedis(); } });
  const server = () => B;
  const retries = await Promise.all([0, 1].map((p) => publishReliably(server, ch, total, p, actions[p])));
  for (const { sub } of subs) {
    await until(() => sub.data.length >= 2 * total, 30000,
      () => `subscriber got ${sub.data.length} of ${2 * total} (missing ${missing(sub.data, total)}; offset jumps ${offsetJumps(sub.offsets)}); events: ${brief(sub.ev)}`);
    await sleep(100);
    checkExactlyOnce(sub.data, [total, total], sub.offsets);
    const again = subscribedEvents(sub).slice(1);
    assert(again.length >= 4, `${again.length} resubscribes for 4 cuts and a Redis restart: ${brief(sub.ev)}`);
    for (const r of again)
      assert(r.wasRecovering && r.recovered, `a resubscribe did not recover: ${JSON.stringify(r)}`);
  }
  // every node saw Redis go away, and said so
  [A, B, C].forEach((s, i) =>
    assert(events(s.log).slice(marks[i]).some((e) => e.event === 'engine_redis_down'), 'no engine_redis_down logged'));
  console.log(`  publish retries during the outage: ${retries.join(', ')}; ` +
    `told to recover (2500): ${subs.filter(({ sub }) => sub.ev.some((e) => e.n === 'subscribing' && e.ctx.code === 2500)).length}`);
}, 120000);

await runCase('presence_and_join_leave_across_nodes', async () => {
  const ch = 'pres:cluster';
  await until(async () => (await api(A, 'info', {})).result.nodes.length === 3, 10000, 'all nodes registered');
  const a = client(A.port, 'alice');
  const sa = subscription(a, ch, { joinLeave: true });
  await subscribed(a, sa);
  const b = client(B.port, 'bob');
  const sb = subscription(b, ch);
  await subscribed(b, sb);
  const bid = (await until(() => b.ev.find((e) => e.n === 'connected'), 3000, 'bob connected')).ctx.client;
  await until(() => sa.ev.find((e) => e.n === 'join' && e.ctx.info.client === bid), 5000,
    () => `no join of bob (node B) at alice (node A): ${brief(sa.ev)}`);
  const pres = await sa.presence();
  assert(Object.keys(pres.clients).length === 2 && pres.clients[bid].user === 'bob', JSON.stringify(pres));
  const st = await sb.presenceStats();
  assert(st.numClients === 2 && st.numUsers === 2, JSON.stringify(st));
  b.disconnect();
  await until(() => sa.ev.find((e) => e.n === 'leave' && e.ctx.info.client === bid), 5000,
    () => `no leave of bob: ${brief(sa.ev)}`);
  const st2 = await sa.presenceStats();
  assert(st2.numClients === 1, JSON.stringify(st2));
});

await runCase('api_disconnect_reaches_every_node', async () => {
  const sessions = [B, C, C].map((s) => client(s.port, 'mallory', { minReconnectDelay: 60000 }));
  for (const c of sessions) c.connect();
  await until(() => sessions.every((c) => c.state === 'connected'), 5000, 'sessions connected');
  const other = client(B.port, 'trudy');
  other.connect();
  await until(() => other.state === 'connected', 5000, 'other connected');
  await api(A, 'disconnect', { user: 'mallory' });
  await until(() => sessions.every((c) => c.ev.some((e) => e.n === 'disconnected' && e.ctx.code === 3503)), 5000,
    () => `not every session was disconnected: ${sessions.map((c) => brief(c.ev)).join(' | ')}`);
  await sleep(200);
  assert(other.state === 'connected', `another user was affected: ${brief(other.ev)}`);
});

agent.destroy();
process.exit(runCase.failed ? 1 : 0);
