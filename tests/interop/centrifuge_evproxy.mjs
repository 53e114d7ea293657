// SPDX-License-Identifier: MIT
// Interop: the `centrifuge` npm SDK (v5) in Node through holdfast's backend
// event proxy to evproxy_backend.py (a real HTTP server in its own process).
// The SDK connects with a Cookie header and no token, is subscribed
// server-side to the channel the backend names, subscribes where the
// subscribe proxy allows and gets 103 where it refuses, publishes through a
// publish proxy that rewrites the data, calls rpc(), keeps its session
// through the refresh proxy, and stops reconnecting after disconnect 4501.
// Faults: garbage answers, answers slower than the 500 ms timeout, and the
// backend process stopped: cookie clients get temporary errors and back off
// (attempts spaced out, not a storm), a token client keeps working, and
// after the backend returns (restarted on its port) they connect without a
// server restart. Started by test_centrifuge_evproxy.sh (MAIN_PORT, MAIN_LOG,
// BE_PORT, BE_PID, HF_SECRET). Prints PASS/FAIL lines.
import { spawn } from 'node:child_process';
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';
import { sleep, waitEvent, assert, hs256, nowS, caseRunner } from './serverlog.mjs';

const env = process.env;
const MAIN = { port: +env.MAIN_PORT, log: env.MAIN_LOG };
const BE_PORT = +env.BE_PORT;
const URL = `ws://127.0.0.1:${MAIN.port}/connection/websocket`;
const clients = new Set();
const run = caseRunner('interop/centrifuge_evproxy', {
  after: async () => {
    for (const c of clients) c.disconnect();
    clients.clear();
  },
});

function cookieWS(user) {
  return class CookieWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, { headers: { Cookie: `theme=dark; session=${user}` } });
    }
  };
}

function client(user, opts = {}) {
  const c = new Centrifuge(URL, {
    websocket: user ? cookieWS(user) : WebSocket,
    minReconnectDelay: 200,
    maxReconnectDelay: 2000,
    timeout: 3000,
    ...opts,
  });
  const evs = [];
  for (const n of ['connecting', 'connected', 'disconnected', 'error', 'subscribed'])
    c.on(n, (ctx) => evs.push({ n, ctx, t: Date.now() }));
  c.evs = evs;
  clients.add(c);
  return c;
}

async function until(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what} (waited ${ms} ms)`);
    await sleep(20);
  }
}

async function backend(path, body) {
  const r = await fetch(`http://127.0.0.1:${BE_PORT}${path}`,
    body ? { method: 'POST', body: JSON.stringify(body) } : {});
  return r.json();
}
const beLog = async (path) => (await backend('/_log')).filter((r) => r.path === path);
const mode = (m) => backend('/_mode', { mode: m });

const connected = (c) => new Promise((res) => c.once('connected', res));

await run('cookie-connect-server-side-channel', async () => {
  const c = client('alice');
  const sub = new Promise((res) => c.on('subscribed', (ctx) => ctx.channel === 'news:alice' && res(ctx)));
  const p = connected(c);
  c.connect();
  const ctx = await p;
  assert(JSON.stringify(ctx.data) === '{"hello":"alice"}', `connect data ${JSON.stringify(ctx.data)}`);
  await sub;
  const req = (await beLog('/connect')).at(-1);
  assert(req.headers.Cookie === 'theme=dark; session=alice', `cookie ${JSON.stringify(req.headers)}`);
  assert(req.body.client === ctx.client && req.body.transport === 'websocket', JSON.stringify(req.body));
});

await run('subscribe-allowed-refused-publish-rewritten-rpc', async () => {
  const c = client('bob');
  c.connect();
  await connected(c);
  const s = c.newSubscription('open:room');
  const subscribed = new Promise((res) => s.once('subscribed', res));
  const pub = new Promise((res) => s.once('publication', res));
  s.subscribe();
  const sctx = await subscribed;
  assert(sctx.data && sctx.data.welcome === 'open:room', `subscribe data ${JSON.stringify(sctx.data)}`);
  await s.publish({ text: 'hi' });
  const p = await pub;
  assert(JSON.stringify(p.data) === '{"rewritten":{"text":"hi"},"by":"bob"}', `publication ${JSON.stringify(p.data)}`);
  const refused = c.newSubscription('secret:vault');
  const unsub = new Promise((res) => refused.once('unsubscribed', res));
  refused.subscribe();
  const u = await unsub;
  assert(u.code === 103, `unsubscribed ${JSON.stringify(u)}`);
  const r = await c.rpc('echo', { q: 1 });
  assert(r.data.echo.q === 1 && r.data.user === 'bob', `rpc ${JSON.stringify(r)}`);
  let err;
  try { await c.rpc('fail', {}); } catch (e) { err = e; }
  assert(err && err.code === 1000, `rpc fail ${JSON.stringify(err)}`);
  assert(c.state === 'connected', 'still connected');
});

await run('session-kept-by-refresh-proxy', async () => {
  const c = client('refresher');
  c.connect();
  await connected(c);
  const before = (await beLog('/refresh')).length;
  // expire_at is 2 s ahead, close delay 2 s: only the refresh proxy keeps it
  await until(async () => (await beLog('/refresh')).length >= before + 2, 9000, 'two refresh calls');
  assert(c.state === 'connected', `state ${c.state}`);
  assert(!c.evs.some((e) => e.n === 'disconnected'), 'no disconnect');
  const r = await c.rpc('echo', 'alive');
  assert(r.data.echo === 'alive', JSON.stringify(r));
}, 15000);

await run('disconnect-4501-terminal', async () => {
  const c = client('banned');
  const d = new Promise((res) => c.once('disconnected', res));
  c.connect();
  const ctx = await d;
  assert(ctx.code === 4501, `disconnected ${JSON.stringify(ctx)}`);
  await sleep(1000);
  assert(c.state === 'disconnected', `state ${c.state} (the SDK must not reconnect)`);
  assert(!c.evs.some((e) => e.n === 'connecting' && e.t > c.evs.find((x) => x.n === 'disconnected').t),
    'no reconnect after a terminal code');
});

// A token client publishing and receiving while the backend is in trouble.
async function tokenClient() {
  const t = client(null, { token: hs256(env.HF_SECRET, { sub: 'tok', exp: nowS() + 600 }) });
  t.connect();
  await connected(t);
  const s = t.newSubscription('plain:t');
  s.subscribe();
  await new Promise((res) => s.once('subscribed', res));
  t.check = async (n) => {
    const got = new Promise((res) => s.once('publication', res));
    await s.publish({ n });
    const p = await got;
    assert(p.data.n === n, 'token client publication');
  };
  return t;
}

async function backsOffThenRecovers(fault, heal, user) {
  const t = await tokenClient();
  await fault();
  const c = client(user);
  c.connect();
  await until(() => c.evs.filter((e) => e.n === 'error').length >= 2, 10000, 'two connect errors');
  const errs = c.evs.filter((e) => e.n === 'error');
  const first = errs[0].ctx.error;
  assert(first.code === 100 || first.code === 111 || first.code === 1 || first.temporary,
    `temporary error ${JSON.stringify(first)}`);
  assert(c.state === 'connecting', `state ${c.state} (the SDK keeps trying)`);
  const attempts = c.evs.filter((e) => e.n === 'connecting').map((e) => e.t);
  assert(attempts.length < 15, `${attempts.length} attempts: no backoff`);
  await t.check(1);
  await heal();
  await until(() => c.state === 'connected', 12000, 'connected after the backend returned');
  await t.check(2);
  const seen = (await beLog('/connect')).filter((r) => r.headers.Cookie.endsWith(`=${user}`));
  assert(seen.length >= 1, 'the backend saw the connect that succeeded');
}

await run('garbage-answers-backoff-recovery', () => backsOffThenRecovers(
  () => mode('garbage'), () => mode('ok'), 'carol'), 25000);

await run('slow-answers-backoff-recovery', () => backsOffThenRecovers(
  () => mode('slow'), () => mode('ok'), 'dave'), 25000);

let restarted = null;
await run('backend-stopped-backoff-recovery', () => backsOffThenRecovers(
  async () => { process.kill(+env.BE_PID, 'SIGKILL'); await sleep(200); },
  async () => {
    restarted = spawn('python3', ['tests/integration/evproxy_backend.py', '--port', String(BE_PORT)],
      { stdio: ['ignore', 'pipe', 'ignore'] });
    await new Promise((res) => restarted.stdout.once('data', res));
  }, 'erin'), 30000);

await run('proxy-failures-logged', async () => {
  const f = await waitEvent(MAIN.log, 'proxy_failed', (e) => e.result === 'connect_error');
  assert(f.conn_id && f.endpoint.endsWith('/connect') && 'latency_ms' in f, JSON.stringify(f));
  await waitEvent(MAIN.log, 'proxy_failed', (e) => e.result === 'timeout');
  await waitEvent(MAIN.log, 'proxy_failed', (e) => e.result === 'bad_response');
});

for (const c of clients) c.disconnect();
if (restarted) restarted.kill('SIGKILL');
process.exit(run.failed ? 1 : 0);
