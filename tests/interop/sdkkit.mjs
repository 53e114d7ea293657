// SPDX-License-Identifier: MIT
// Shared by the Node SDK stream suites (centrifuge_streams.mjs,
// centrifuge_redis.mjs): bounded waits, the server API over kept-alive
// connections, a TCP proxy that fails on purpose, `centrifuge` SDK clients
// that record their events, numbered publishing and the exactly-once check.
// configure({ token, apiKey }) first.
import net from 'node:net';
import http from 'node:http';
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';
import { sleep, assert } from './serverlog.mjs';

const kit = { token: null, apiKey: null };
export function configure({ token, apiKey }) {
  kit.token = token;
  kit.apiKey = apiKey;
}

export async function until(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${typeof what === 'function' ? what() : what} (waited ${ms} ms)`);
    await sleep(10);
  }
}

// The server API over kept-alive connections: api(s, method, body)
// resolves with the reply or rejects on an HTTP error or an "error" member.
export const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
export function api(s, method, body) {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = http.request({
      host: '127.0.0.1', port: s.port, method: 'POST', path: `/api/${method}`, agent,
      headers: { 'Content-Type': 'application/json', 'Content-Length': data.length, 'X-API-Key': kit.apiKey },
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

// Forwards 127.0.0.1:<its port> to upstream (a port, or a function giving
// the port of each new connection); cut() resets every connection (RST, no
// close frame), stall()/unstall() stop/restart reading from the server (the
// client looks like a reader that stopped), refuse for a while.
export async function proxy(upstream) {
  const upPort = typeof upstream === 'function' ? upstream : () => upstream;
  const pairs = new Set();
  const p = { stalled: false, refuseUntil: 0, cuts: 0 };
  const server = net.createServer((down) => {
    if (Date.now() < p.refuseUntil) { down.resetAndDestroy(); return; }
    const up = net.connect(upPort(), '127.0.0.1');
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

export const clients = new Set();
export const cleanups = [];

function tapClass(tap) {
  return class TapWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (e) => tap.in.push(String(e.data)));
    }
  };
}

export function client(port, user, opts = {}) {
  const tap = { in: [] };
  const c = new Centrifuge(`ws://127.0.0.1:${port}/connection/websocket`, {
    websocket: tapClass(tap), token: kit.token(user),
    minReconnectDelay: 50, maxReconnectDelay: 300, timeout: 5000, ...opts,
  });
  c.tap = tap;
  c.ev = [];
  for (const n of ['connecting', 'connected', 'disconnected', 'error'])
    c.on(n, (ctx) => c.ev.push({ n, ctx }));
  clients.add(c);
  return c;
}

export function subscription(c, ch, opts = {}) {
  const s = c.newSubscription(ch, opts);
  s.ev = [];
  s.data = [];
  s.offsets = [];
  for (const n of ['subscribing', 'subscribed', 'unsubscribed', 'error', 'join', 'leave'])
    s.on(n, (ctx) => s.ev.push({ n, ctx }));
  s.on('publication', (ctx) => { s.data.push(ctx.data); s.offsets.push(ctx.offset); });
  return s;
}

export const subscribedEvents = (s) => s.ev.filter((e) => e.n === 'subscribed').map((e) => e.ctx);
export const brief = (evs) => evs.map((e) => `${e.n}${e.ctx && e.ctx.code !== undefined ? `(${e.ctx.code})` : ''}`).join(', ');

export async function subscribed(c, s) {
  c.connect();
  s.subscribe();
  await until(() => subscribedEvents(s).length, 5000, () => `not subscribed: ${brief(s.ev)} / ${brief(c.ev)}`);
}

// Disconnect every client and run the cleanups (a case's "after").
export async function cleanupAll() {
  for (const c of clients) { try { c.disconnect(); } catch { /* gone */ } }
  clients.clear();
  for (const f of cleanups.splice(0)) { try { f(); } catch { /* best effort */ } }
  await sleep(50);
}

// Publish TOTAL numbered publications into ch through the API in batches,
// from `publishers` concurrent publishers (data {p, n}); at the marks in
// `actions` (publication counts) run the action before continuing.
// target(p) picks the server of publisher p (default: s itself).
export async function publishNumbered(s, ch, total, publishers, actions, target = () => s) {
  const pad = 'x'.repeat(2000);
  let next = 0;
  const todo = [...actions].sort((a, b) => a.at - b.at);
  async function one(p) {
    let n = 0;
    while (next < total) {
      while (todo.length && next >= todo[0].at) await todo.shift().run();
      const batch = [];
      for (let k = 0; k < 20 && next < total; k++, next++) batch.push({ publish: { channel: ch, data: { p, n: n++, pad } } });
      await api(target(p), 'batch', { commands: batch });
    }
    return n;
  }
  return Promise.all(Array.from({ length: publishers }, (_, p) => one(p)));
}

// Every publisher's numbers exactly once and in order.
export function checkExactlyOnce(data, counts, offsets = []) {
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
