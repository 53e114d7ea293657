// SPDX-License-Identifier: MIT
// The official `centrifuge` SDK in Node when WebSocket is blocked: a fake
// middlebox refuses every WebSocket upgrade (403), so the SDK falls back to
// http_stream (and a transports list without websocket goes there at
// once); over http_stream + the emulation endpoint it subscribes, receives
// API and client publications, publishes, refreshes an expiring token and
// recovers the publications it missed while its stream was cut (TCP reset
// by a proxy). The server logs say which transport each session used.
// Started by test_centrifuge_transports.sh (MAIN_PORT/LOG/PID, HF_SECRET,
// HF_API_KEY).
import http from 'node:http';
import { Centrifuge } from 'centrifuge';
import { sleep, events, waitEvent, assert, hs256, nowS, caseRunner } from './serverlog.mjs';
import { configure, until, api, proxy, cleanups, brief, cleanupAll } from './sdkkit.mjs';

const SUITE = 'interop/centrifuge_transports';
const env = process.env;
const MAIN = { port: +env.MAIN_PORT, log: env.MAIN_LOG, pid: +env.MAIN_PID };
const token = (sub, ttl = 600) => hs256(env.HF_SECRET, { sub, exp: nowS() + ttl });
configure({ token, apiKey: env.HF_API_KEY });
const runCase = caseRunner(SUITE, { ms: 30000, after: cleanupAll });
const base = `http://127.0.0.1:${MAIN.port}`;

// A middlebox that refuses WebSocket: every upgrade gets 403.
async function wsBlocker() {
  const srv = http.createServer((req, res) => { res.writeHead(404); res.end(); });
  srv.on('upgrade', (req, sock) => { sock.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n'); });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => srv.close());
  return srv.address().port;
}

const all = new Set();
function sdk(transports, opts = {}) {
  const c = new Centrifuge(transports, {
    emulationEndpoint: `${base}/emulation`, minReconnectDelay: 50, maxReconnectDelay: 300,
    timeout: 5000, ...opts,
  });
  c.ev = [];
  for (const n of ['connecting', 'connected', 'disconnected', 'error'])
    c.on(n, (ctx) => c.ev.push({ n, ctx }));
  all.add(c);
  cleanups.push(() => { try { c.disconnect(); } catch { /* gone */ } });
  return c;
}
const connectedCtx = (c, nth = 1) => until(() => c.ev.filter((e) => e.n === 'connected')[nth - 1], 8000,
  () => `not connected (#${nth}): ${brief(c.ev)}`).then((e) => e.ctx);

function sub(c, ch, opts = {}) {
  const s = c.newSubscription(ch, opts);
  s.ev = [];
  s.data = [];
  for (const n of ['subscribing', 'subscribed', 'unsubscribed', 'error'])
    s.on(n, (ctx) => s.ev.push({ n, ctx }));
  s.on('publication', (ctx) => s.data.push(ctx.data));
  return s;
}
const subscribedN = (s, n = 1) => until(() => s.ev.filter((e) => e.n === 'subscribed')[n - 1], 8000,
  () => `not subscribed (#${n}): ${brief(s.ev)}`).then((e) => e.ctx);

await runCase('falls-back-when-upgrades-are-refused', async () => {
  const blocked = await wsBlocker();
  const c = sdk([
    { transport: 'websocket', endpoint: `ws://127.0.0.1:${blocked}/connection/websocket` },
    { transport: 'http_stream', endpoint: `${base}/connection/http_stream` },
  ], { token: token('fb-user') });
  c.connect();
  const ctx = await connectedCtx(c);
  assert(ctx.transport === 'http_stream', `connected over ${ctx.transport}`);
  const ev = await waitEvent(MAIN.log, 'client_connected', (e) => e.user === 'fb-user');
  assert(ev.transport === 'http_stream', `server says ${ev.transport}`);
});

await runCase('subscribe-receive-publish-over-http_stream', async () => {
  const c = sdk([{ transport: 'http_stream', endpoint: `${base}/connection/http_stream` }], { token: token('hs-user') });
  const s = sub(c, 'hs-chat');
  c.connect();
  s.subscribe();
  await subscribedN(s);
  await api(MAIN, 'publish', { channel: 'hs-chat', data: { from: 'api', n: 1 } });
  await s.publish({ from: 'client', n: 2 });
  for (let n = 3; n < 23; n++) await api(MAIN, 'publish', { channel: 'hs-chat', data: { from: 'api', n } });
  await until(() => s.data.length >= 22, 8000, () => `got ${s.data.length} publications`);
  const ns = s.data.map((d) => d.n);
  assert(JSON.stringify(ns) === JSON.stringify(Array.from({ length: 22 }, (_, i) => i + 1)), `order ${ns}`);
  assert(s.data[1].from === 'client', 'client publication missing');
  const r = await c.rpc('x', {}).catch((e) => e);
  assert(r && r.code, 'rpc without a backend must fail with an error reply');
});

await runCase('token-refresh-over-emulation', async () => {
  let calls = 0;
  const c = sdk([{ transport: 'http_stream', endpoint: `${base}/connection/http_stream` }], {
    token: token('rf-user', 3),
    getToken: async () => { calls++; return token('rf-user', 600); },
  });
  const s = sub(c, 'rf-chan');
  c.connect();
  s.subscribe();
  await subscribedN(s);
  await until(() => calls >= 1, 10000, 'getToken was never called');
  await sleep(3500); // past the first token's expiry: the refreshed session lives on
  await api(MAIN, 'publish', { channel: 'rf-chan', data: { after: 'refresh' } });
  await until(() => s.data.length === 1, 5000, 'no publication after the refresh');
  assert(c.ev.filter((e) => e.n === 'disconnected').length === 0, `disconnected: ${brief(c.ev)}`);
  assert(c.ev.filter((e) => e.n === 'connected').length === 1, `reconnected: ${brief(c.ev)}`);
});

await runCase('recovers-history-after-the-stream-is-cut', async () => {
  const px = await proxy(MAIN.port);
  cleanups.push(() => px.close());
  const c = sdk([{ transport: 'http_stream', endpoint: `http://127.0.0.1:${px.port}/connection/http_stream` }],
    { token: token('rc-user') });
  const s = sub(c, 'rc-chan');
  c.connect();
  s.subscribe();
  await subscribedN(s);
  for (let n = 0; n < 5; n++) await api(MAIN, 'publish', { channel: 'rc-chan', data: { n } });
  await until(() => s.data.length === 5, 5000, () => `got ${s.data.length} of 5`);
  px.refuseUntil = Date.now() + 400; // cut, and keep it cut while publishing
  px.cut();
  for (let n = 5; n < 15; n++) await api(MAIN, 'publish', { channel: 'rc-chan', data: { n } });
  const again = await subscribedN(s, 2);
  assert(again.wasRecovering && again.recovered, `not recovered: ${JSON.stringify(again)}`);
  await until(() => s.data.length >= 15, 8000, () => `got ${s.data.length} of 15`);
  const ns = s.data.map((d) => d.n);
  assert(JSON.stringify(ns) === JSON.stringify(Array.from({ length: 15 }, (_, i) => i)), `exactly once, in order: ${ns}`);
});

process.exit(runCase.failed ? 1 : 0);
