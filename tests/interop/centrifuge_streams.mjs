// SPDX-License-Identifier: MIT
// Streams with the official `centrifuge` SDK in Node (npm `ws`):
//  - recovery under fire: 20,000 numbered publications through the server
//    API while a small TCP proxy (in this file) resets the subscriber's
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
import net from 'node:net';
import http from 'node:http';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';
import { sleep, events, waitEvent, assert, hs256, nowS, caseRunner } from './serverlog.mjs';

const SUITE = 'interop/centrifuge_streams';
const env = process.env;
const srv = (n) => ({ port: +env[`${n}_PORT`], log: env[`${n}_LOG`], pid: +env[`${n}_PID`] });
const ONE = srv('ONE');
const TWO = srv('TWO');
const SECRET = env.HF_SECRET;
const API_KEY = env.HF_API_KEY;
const token = (sub) => hs256(SECRET, { sub, exp: nowS() + 600 });

async function until(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${typeof what === 'function' ? what() : what} (waited ${ms} ms)`);
    await sleep(10);
  }
}

// ---- the server API over kept-alive connections --------------------------------

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
function api(s, method, body) {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = http.request({
      host: '127.0.0.1', port: s.port, method: 'POST', path: `/api/${method}`, agent,
      headers: { 'Content-Type': 'application/json', 'Content-Length': data.length, 'X-API-Key': API_KEY },
      timeout: 10000,
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        try {
          const j = JSON.parse(text);
          if (res.statusCode !== 200 || j.error) reject(new Error(`/api/${method}: ${res.statusCode} ${text.slice(0, 200)}`));
          else resolve(j);
        } catch (e) { reject(new Error(`/api/${method}: ${res.statusCode} ${text.slice(0, 200)}`)); }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`/api/${method}: timeout`)));
    req.on('error', reject);
    req.end(data);
  });
}

// ---- a TCP proxy that fails on purpose ---------------------------------------------

// Forwards 127.0.0.1:<its port> to upstream; cut() resets every connection
// (RST, no close frame), stall()/unstall() stop/restart reading from the
// server (the client looks like a reader that stopped), refuse for a while.
async function proxy(upPort) {
  const pairs = new Set();
  const p = { stalled: false, refuseUntil: 0, cuts: 0 };
  const server = net.createServer((down) => {
    if (Date.now() < p.refuseUntil) { down.resetAndDestroy(); return; }
    const up = net.connect(upPort, '127.0.0.1');
    const pair = { down, up };
    pairs.add(pair);
    down.pipe(up);
    if (p.stallNext) {
      // forward until the first publication push, then stop reading: a
      // fresh connection whose receive window never grew
      p.stallNext = false;
      const watch = (chunk) => {
        down.write(chunk);
        if (chunk.includes('"pub":')) {
          up.removeListener('data', watch);
          up.pause();
          pair.stalled = true;
        }
      };
      up.on('data', watch);
      pair.watch = watch;
    } else if (!p.stalled) {
      up.pipe(down);
    } else {
      up.pause();
      pair.stalled = true;
    }
    const end = () => {
      pairs.delete(pair);
      up.destroy();
      down.destroy();
    };
    up.on('error', end);
    down.on('error', end);
    up.on('close', end);
    down.on('close', end);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  p.port = server.address().port;
  p.cut = () => {
    p.cuts++;
    for (const { down, up } of [...pairs]) {
      down.resetAndDestroy();
      up.destroy();
    }
  };
  p.stall = () => {
    p.stalled = true;
    for (const pair of pairs) {
      pair.up.unpipe(pair.down);
      pair.up.pause();
      pair.stalled = true;
    }
  };
  p.unstall = () => {
    p.stalled = false;
    for (const pair of pairs) {
      if (!pair.stalled) continue; /* piped already: piping twice doubles data */
      pair.stalled = false;
      pair.up.pipe(pair.down);
      pair.up.resume();
    }
  };
  p.close = () => { p.cut(); server.close(); };
  p.upstreamPorts = () => [...pairs].map(({ up }) => up.localPort);
  return p;
}

// ---- SDK clients -----------------------------------------------------------------

const clients = new Set();
const cleanups = [];

function tapClass(tap) {
  return class TapWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (e) => tap.in.push(String(e.data)));
    }
  };
}

function client(port, user, opts = {}) {
  const tap = { in: [] };
  const c = new Centrifuge(`ws://127.0.0.1:${port}/connection/websocket`, {
    websocket: tapClass(tap), token: token(user),
    minReconnectDelay: 50, maxReconnectDelay: 300, timeout: 5000, ...opts,
  });
  c.tap = tap;
  c.ev = [];
  for (const n of ['connecting', 'connected', 'disconnected', 'error'])
    c.on(n, (ctx) => c.ev.push({ n, ctx }));
  clients.add(c);
  return c;
}

function subscription(c, ch, opts = {}) {
  const s = c.newSubscription(ch, opts);
  s.ev = [];
  s.data = [];
  s.offsets = [];
  for (const n of ['subscribing', 'subscribed', 'unsubscribed', 'error', 'join', 'leave'])
    s.on(n, (ctx) => s.ev.push({ n, ctx }));
  s.on('publication', (ctx) => { s.data.push(ctx.data); s.offsets.push(ctx.offset); });
  return s;
}

const subscribedEvents = (s) => s.ev.filter((e) => e.n === 'subscribed').map((e) => e.ctx);
const brief = (evs) => evs.map((e) => `${e.n}${e.ctx && e.ctx.code !== undefined ? `(${e.ctx.code})` : ''}`).join(', ');

async function subscribed(c, s) {
  c.connect();
  s.subscribe();
  await until(() => subscribedEvents(s).length, 5000, () => `not subscribed: ${brief(s.ev)} / ${brief(c.ev)}`);
}

const runCase = caseRunner(SUITE, {
  ms: 60000,
  after: async () => {
    for (const c of clients) { try { c.disconnect(); } catch { /* gone */ } }
    clients.clear();
    for (const f of cleanups.splice(0)) { try { f(); } catch { /* best effort */ } }
    await sleep(50);
  },
});

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

// Publish TOTAL numbered publications into ch through the API in batches,
// from `publishers` concurrent publishers (data {p, n}); at the marks in
// `actions` (publication counts) run the action before continuing.
async function publishNumbered(s, ch, total, publishers, actions) {
  const pad = 'x'.repeat(2000);
  let next = 0;
  const todo = [...actions].sort((a, b) => a.at - b.at);
  async function one(p) {
    let n = 0;
    while (next < total) {
      while (todo.length && next >= todo[0].at) await todo.shift().run();
      const batch = [];
      for (let k = 0; k < 20 && next < total; k++, next++) batch.push({ publish: { channel: ch, data: { p, n: n++, pad } } });
      await api(s, 'batch', { commands: batch });
    }
    return n;
  }
  return Promise.all(Array.from({ length: publishers }, (_, p) => one(p)));
}

// Every publisher's numbers exactly once and in order.
function checkExactlyOnce(data, counts, offsets = []) {
  const seen = counts.map(() => []);
  const offs = counts.map(() => []);
  data.forEach((d, i) => { seen[d.p].push(d.n); offs[d.p].push(offsets[i]); });
  counts.forEach((count, p) => {
    const got = seen[p];
    const dup = got.length - new Set(got).size;
    let firstBad = -1;
    for (let i = 0; i < got.length; i++) if (got[i] !== i) { firstBad = i; break; }
    assert(got.length === count && dup === 0 && firstBad === -1,
      `publisher ${p}: got ${got.length} of ${count}, ${dup} duplicates, first out of place at index ${firstBad} (${got.slice(Math.max(0, firstBad - 2), firstBad + 3)}; offsets ${offs[p].slice(Math.max(0, firstBad - 2), firstBad + 3)})`);
  });
}

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
