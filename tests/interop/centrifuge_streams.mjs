// SPDX-License-Identifier: MIT
// Streams with the official `centrifuge` SDK in Node (npm `ws`):
//  - recovery under fire: 20,000 numbered publications through the server
//    API while a small TCP proxy (sdkkit.mjs) resets the subscriber's
//    connection five times without a close frame and once stalls it until
//    the server's slow-consumer policy ("recover") drops its queue; the
//    subscriber must end with every number exactly once and in order, and
//    the SDK must report each recovery (wasRecovering, recovered);
//  - the same with two workers, subscribers on both and publishers on both;
//  - history too small for a gap: the SDK is told recovery failed, and the
//    gap is exactly the publications it was told it missed;
//  - presence, presence stats, join and leave; history paging;
//  - fossil delta: 1,000 random mutations of a 10 KiB JSON document (ASCII
//    and multi-byte text), each reconstructed by the SDK exactly.
// Started by test_centrifuge_streams.sh, which runs ONE (1 worker) and TWO
// (2 workers) and passes their PORT/LOG/PID plus HF_SECRET and HF_API_KEY.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { sleep, events, waitEvent, assert, hs256, nowS, caseRunner } from './serverlog.mjs';
import {
  configure, until, agent, api, proxy, cleanups, client, subscription, subscribedEvents, brief,
  subscribed, cleanupAll, publishNumbered, checkExactlyOnce,
} from './sdkkit.mjs';

const SUITE = 'interop/centrifuge_streams';
const env = process.env;
const srv = (n) => ({ port: +env[`${n}_PORT`], log: env[`${n}_LOG`], pid: +env[`${n}_PID`] });
const ONE = srv('ONE');
const TWO = srv('TWO');
const SECRET = env.HF_SECRET;
const API_KEY = env.HF_API_KEY;
const token = (sub) => hs256(SECRET, { sub, exp: nowS() + 600 });
configure({ token, apiKey: API_KEY });

const runCase = caseRunner(SUITE, { ms: 60000, after: cleanupAll });

// Which worker (epoll instance) serves the server end of a client's TCP
// connection whose local port is clientPort (see centrifuge_node.mjs).
function workerOf(pid, port, clientPort) {
  const hex = (p) => p.toString(16).toUpperCase().padStart(4, '0');
  let inode = null;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 9 && f[1] === `0100007F:${hex(port)}` && f[2] === `0100007F:${hex(clientPort)}`) inode = f[9];
  }
  if (!inode) return null;
  let fd = null;
  const epolls = [];
  for (const n of readdirSync(`/proc/${pid}/fd`)) {
    let link;
    try { link = readlinkSync(`/proc/${pid}/fd/${n}`); } catch { continue; }
    if (link === `socket:[${inode}]`) fd = n;
    else if (link === 'anon_inode:[eventpoll]') epolls.push(n);
  }
  for (const ep of epolls) {
    let info;
    try { info = readFileSync(`/proc/${pid}/fdinfo/${ep}`, 'utf8'); } catch { continue; }
    for (const m of info.matchAll(/^tfd:\s*(\d+)/gm)) if (m[1] === fd) return ep;
  }
  return null;
}

// ---- recovery under fire -------------------------------------------------------------

async function underFire(s, nsubs, publishers, workers) {
  const ch = 'rec:fire';
  const px = await proxy(s.port);
  cleanups.push(() => px.close());
  const subs = [];
  const markLog = events(s.log).length;
  const placed = () => new Set(px.upstreamPorts().map((lp) => workerOf(s.pid, s.port, lp)).filter(Boolean));
  // nsubs subscribers, and more until they sit on every worker (the kernel
  // spreads connections over the workers' sockets)
  for (let i = 0; i < nsubs || (placed().size < workers && i < 16); i++) {
    const c = client(px.port, `sub${i}`);
    const sub = subscription(c, ch);
    await subscribed(c, sub);
    subs.push({ c, sub });
  }
  assert(placed().size === workers, `subscribers on ${placed().size} of ${workers} workers`);
  const slowSeen = () => events(s.log).slice(markLog).some((e) => e.event === 'slow_consumer_recover');
  const actions = [];
  // each cut breaks live connections: before cut k every subscriber must
  // have come back from the previous one (k subscribed events) and be
  // connected through the proxy again
  const back = (k) => until(() => subs.every(({ sub }) => subscribedEvents(sub).length >= k &&
    sub.state === 'subscribed') && px.upstreamPorts().length >= subs.length, 10000,
  () => `subscribers did not come back before cut ${k}: ${subs.map(({ sub }) => brief(sub.ev)).join(' | ')}`);
  for (let k = 1; k <= 5; k++) actions.push({ at: k * 1500, run: async () => { await back(k); px.cut(); } });
  // a sixth cut, and the new connection stalls after its first
  // publication: 24 MB follow, far more than its small window holds
  actions.push({ at: 8000, run: async () => { await back(6); px.stallNext = true; px.cut(); } });
  actions.push({
    at: 19000,
    run: async () => {
      // keep the stalled reader stalled until the server acted on it
      await until(() => slowSeen(), 15000, 'the server never applied the slow-consumer policy');
      px.unstall();
    },
  });
  const total = 20000;
  const counts = await publishNumbered(s, ch, total, publishers, actions);
  assert(counts.reduce((a, b) => a + b, 0) === total, `published ${counts}`);
  for (const { sub } of subs) {
    await until(() => sub.data.length >= total, 20000,
      () => `subscriber got ${sub.data.length} of ${total}; events: ${brief(sub.ev)}`);
    await sleep(100); // anything extra (a duplicate) would show up now
    checkExactlyOnce(sub.data, counts, sub.offsets);
    const subsd = subscribedEvents(sub);
    const recoveries = subsd.slice(1);
    assert(recoveries.length >= 6, `${recoveries.length} resubscribes for 6 cuts: ${brief(sub.ev)}`);
    for (const r of recoveries)
      assert(r.wasRecovering && r.recovered, `a resubscribe did not recover: ${JSON.stringify(r)}`);
  }
  // the stalled one was told to recover (unsubscribe 2500) and did; under
  // load (ASan) a reader that merely falls behind may be told too: that is
  // the policy, and it must not cost a publication either
  const told = subs.filter(({ sub }) => sub.ev.some((e) => e.n === 'subscribing' && e.ctx.code === 2500));
  const drops = events(s.log).slice(markLog).filter((e) => e.event === 'slow_consumer_recover').length;
  assert(told.length >= 1 && told.length <= drops, `subscribers told insufficient state: ${told.length}, slow-consumer drops logged: ${drops}`);
  assert(px.cuts === 6, `cuts ${px.cuts}`);
}

await runCase('recovery_under_fire_one_worker', async () => {
  await underFire(ONE, 1, 1, 1);
});

// subscribers on both workers, two concurrent publishers whose kept-alive
// API connections the kernel spreads over both
await runCase('recovery_under_fire_two_workers', async () => {
  await underFire(TWO, 2, 2, 2);
}, 90000);

await runCase('history_too_small_reports_the_gap', async () => {
  const ch = 'tiny:gap';
  const px = await proxy(ONE.port);
  cleanups.push(() => px.close());
  const c = client(px.port, 'gap');
  const sub = subscription(c, ch);
  await subscribed(c, sub);
  const pub = (n) => api(ONE, 'publish', { channel: ch, data: { p: 0, n } });
  for (let n = 0; n < 10; n++) await pub(n);
  await until(() => sub.data.length === 10, 5000, 'first 10');
  px.refuseUntil = Date.now() + 1500; // the client stays away while 200 are published
  px.cut();
  for (let n = 10; n < 210; n++) await pub(n);
  await until(() => subscribedEvents(sub).length === 2, 10000, () => `no resubscribe: ${brief(sub.ev)}`);
  const r = subscribedEvents(sub)[1];
  assert(r.wasRecovering === true && r.recovered === false,
    `the SDK must be told recovery failed: ${JSON.stringify(r)}`);
  for (let n = 210; n < 215; n++) await pub(n);
  await until(() => sub.data.length === 15, 5000, () => `got ${sub.data.map((d) => d.n)}`);
  const nums = sub.data.map((d) => d.n);
  assert(isDeepStrictEqual(nums, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 210, 211, 212, 213, 214]),
    `numbers ${nums}: the gap 10..209 must be the one reported, nothing delivered silently past it`);
  const ev = await waitEvent(ONE.log, 'recovery_failed', (e) => e.channel === ch);
  assert(/trimmed|expired/.test(ev.reason), `recovery_failed reason ${ev.reason}`);
});

// ---- presence, join/leave, history ----------------------------------------------------

await runCase('presence_join_leave', async () => {
  const ch = 'pres:room';
  const a = client(ONE.port, 'alice');
  const sa = subscription(a, ch, { joinLeave: true });
  await subscribed(a, sa);
  const b = client(ONE.port, 'bob');
  const sb = subscription(b, ch);
  await subscribed(b, sb);
  const bid = (await until(() => b.ev.find((e) => e.n === 'connected'), 3000, 'bob connected')).ctx.client;
  const join = await until(() => sa.ev.find((e) => e.n === 'join' && e.ctx.info.client === bid), 3000,
    () => `no join of bob: ${brief(sa.ev)}`);
  assert(join.ctx.info.user === 'bob', JSON.stringify(join.ctx));
  const pres = await sa.presence();
  assert(Object.keys(pres.clients).length === 2 && pres.clients[bid].user === 'bob', JSON.stringify(pres));
  const st = await sa.presenceStats();
  assert(st.numClients === 2 && st.numUsers === 2, JSON.stringify(st));
  b.disconnect();
  const leave = await until(() => sa.ev.find((e) => e.n === 'leave' && e.ctx.info.client === bid), 3000,
    () => `no leave of bob: ${brief(sa.ev)}`);
  assert(leave.ctx.info.user === 'bob', JSON.stringify(leave.ctx));
  const st2 = await sa.presenceStats();
  assert(st2.numClients === 1 && st2.numUsers === 1, JSON.stringify(st2));
});

await runCase('history_paging', async () => {
  const ch = 'hist:paging';
  for (let n = 0; n < 95; n += 19)
    await api(ONE, 'batch', { commands: Array.from({ length: 19 }, (_, k) => ({ publish: { channel: ch, data: { n: n + k } } })) });
  const c = client(ONE.port, 'reader');
  const s = subscription(c, ch);
  await subscribed(c, s);
  const got = [];
  let since;
  for (;;) {
    const page = await s.history({ limit: 10, since });
    for (const p of page.publications) got.push(p.data.n);
    if (page.publications.length < 10) break;
    const last = page.publications[page.publications.length - 1];
    since = { offset: last.offset, epoch: page.epoch };
  }
  assert(isDeepStrictEqual(got, Array.from({ length: 95 }, (_, i) => i)), `forward pages: ${got}`);
  const rev = await s.history({ limit: 5, reverse: true });
  assert(isDeepStrictEqual(rev.publications.map((p) => p.data.n), [94, 93, 92, 91, 90]) && rev.offset === 95,
    JSON.stringify(rev).slice(0, 300));
});

// ---- fossil delta -------------------------------------------------------------------------

function rng(seed) {
  let x = seed >>> 0;
  return () => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return (x >>> 0) / 4294967296; };
}

await runCase('delta_1000_mutations_of_10k_document', async () => {
  const ch = 'delta:doc';
  const r = rng(7);
  const words = ['alpha', 'beta', 'gamma', 'délta', 'ε', '€uro', 'emoji😀', 'zeta', '"quoted"', 'back\\slash'];
  const word = () => words[Math.floor(r() * words.length)];
  const doc = { items: [] };
  for (let i = 0; JSON.stringify(doc).length < 10240; i++) doc.items.push({ id: i, name: `${word()} ${word()}`, v: Math.floor(r() * 1e6) });
  const c = client(ONE.port, 'delta');
  const s = subscription(c, ch, { delta: 'fossil' });
  await subscribed(c, s);
  const sent = [];
  for (let m = 0; m < 1000; m++) {
    const it = doc.items[Math.floor(r() * doc.items.length)];
    const k = r();
    if (k < 0.4) it.v = Math.floor(r() * 1e6);
    else if (k < 0.8) it.name = `${word()} ${word()} ${m}`;
    else if (k < 0.9) doc.items.push({ id: doc.items.length, name: word(), v: m });
    else doc.items.splice(Math.floor(r() * doc.items.length), 1);
    sent.push(JSON.stringify(doc));
  }
  for (let m = 0; m < 1000; m += 50)
    await api(ONE, 'batch', { commands: sent.slice(m, m + 50).map((t) => ({ publish: { channel: ch, data: JSON.parse(t) } })) });
  await until(() => s.data.length >= 1000, 20000, () => `got ${s.data.length} of 1000`);
  for (let m = 0; m < 1000; m++)
    assert(JSON.stringify(s.data[m]) === sent[m], `publication ${m} reconstructed differently`);
  const deltas = c.tap.in.join('\n').split('"delta":true').length - 1;
  assert(deltas >= 900, `only ${deltas} of 1000 publications travelled as deltas`);
  const full = sent.reduce((a, t) => a + t.length, 0);
  const wire = c.tap.in.reduce((a, t) => a + t.length, 0);
  assert(wire * 4 < full, `deltas must be much smaller: ${wire} bytes on the wire for ${full} bytes of documents`);
});

agent.destroy();
process.exit(runCase.failed ? 1 : 0);
