// SPDX-License-Identifier: MIT
// The official `centrifuge` SDK in headless Chromium with WebSocket blocked
// (the server's WebSocket endpoint is off: upgrades get 404). The page
// (http://127.0.0.1:PAGE_PORT, a cross origin for the server) lists
// websocket then http_stream: the SDK falls back to http_stream, subscribes,
// receives API publications, publishes, refreshes its expiring token over
// the emulation endpoint, and recovers the publications it missed after the
// server cut its stream (server API disconnect, code 3011: reconnect). With
// only SSE listed it does the same over EventSource. The server log names
// each session's transport.
//   node centrifuge_transports_chromium.mjs serve-page PORTFILE
//   node centrifuge_transports_chromium.mjs   (PAGE_PORT, NOWS_PORT, NOWS_LOG,
//                                              HF_SECRET, HF_API_KEY)
import { readFileSync } from 'node:fs';
import { waitEvent, assert, hs256, nowS, apiPost, caseRunner } from './serverlog.mjs';
import { servePageOrRun, htmlPage, withChromium } from './browser.mjs';

const SUITE = 'interop/centrifuge_transports_chromium';
const BUNDLE = new URL('./node_modules/centrifuge/dist/centrifuge.js', import.meta.url);

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>holdfast transports</title>
<script src="/centrifuge.js"></script></head><body>
<script>
window.hf = { events: [], pubs: [], client: null, sub: null, nextToken: null, tokenCalls: 0 };
function rec(kind, ctx) {
  var c = ctx || {};
  var e = { kind: kind };
  if (c.code !== undefined) e.code = c.code;
  if (c.transport !== undefined) e.transport = c.transport;
  if (c.client !== undefined) e.client = c.client;
  if (c.wasRecovering !== undefined) { e.wasRecovering = c.wasRecovering; e.recovered = c.recovered; }
  if (c.error) e.error = { code: c.error.code, message: c.error.message };
  hf.events.push(e);
}
function waitFor(pred, ms) {
  return new Promise(function (resolve) {
    var end = Date.now() + ms;
    (function poll() {
      var v = pred();
      if (v || Date.now() > end) return resolve(v || null);
      setTimeout(poll, 20);
    })();
  });
}
function count(kind) { return hf.events.filter(function (e) { return e.kind === kind; }).length; }
window.hfStart = function (transports, emulation, token, channel, opts) {
  var c = new Centrifuge(transports, Object.assign({
    token: token, emulationEndpoint: emulation, minReconnectDelay: 200, maxReconnectDelay: 1000,
    getToken: function () { hf.tokenCalls++; return Promise.resolve(hf.nextToken); },
  }, opts || {}));
  hf.client = c;
  ['connecting', 'connected', 'disconnected', 'error'].forEach(function (n) { c.on(n, function (x) { rec(n, x); }); });
  var s = c.newSubscription(channel);
  hf.sub = s;
  ['subscribed', 'unsubscribed', 'error'].forEach(function (n) { s.on(n, function (x) { rec('sub.' + n, x); }); });
  s.on('publication', function (x) { hf.pubs.push(x.data); });
  s.subscribe();
  c.connect();
  return waitFor(function () { return count('sub.subscribed') >= 1; }, 10000).then(function () { return hf.events; });
};
window.hfWaitPubs = function (n, ms) { return waitFor(function () { return hf.pubs.length >= n; }, ms).then(function () { return hf.pubs; }); };
window.hfWaitSubscribed = function (n, ms) { return waitFor(function () { return count('sub.subscribed') >= n; }, ms).then(function () { return hf.events; }); };
window.hfPublish = function (d) { return hf.sub.publish(d).then(function () { return true; }, function (e) { return JSON.stringify(e); }); };
window.hfStop = function () { hf.client.disconnect(); hf = { events: [], pubs: [], client: null, sub: null, nextToken: null, tokenCalls: 0 }; };
</script></body></html>`;

function bundle() {
  return { type: 'text/javascript; charset=utf-8', body: readFileSync(BUNDLE) };
}

await servePageOrRun({ '/': htmlPage(PAGE), '/centrifuge.js': bundle }, main);

async function main() {
  const env = process.env;
  const pageOrigin = `http://127.0.0.1:${+env.PAGE_PORT}`;
  const S = { port: +env.NOWS_PORT, log: env.NOWS_LOG };
  const base = `http://127.0.0.1:${S.port}`;
  const token = (sub, ttl = 600) => hs256(env.HF_SECRET, { sub, exp: nowS() + ttl });
  const api = async (method, body) => {
    const r = await apiPost(S.port, env.HF_API_KEY, method, body);
    assert(r.status === 200 && r.json && !r.json.error, `/api/${method}: ${r.status} ${r.body}`);
    return r.json;
  };
  const brief = (evs) => evs.map((e) => `${e.kind}${e.code !== undefined ? `(${e.code})` : ''}${e.transport ? `[${e.transport}]` : ''}`).join(', ');
  const runCase = caseRunner(SUITE, { clip: true, ms: 30000 });
  const CASES = ['http_stream_fallback', 'http_stream_publish_receive', 'http_stream_token_refresh',
    'http_stream_recovery_after_cut', 'sse_only'];
  const state = {};

  await withChromium(runCase, CASES, async (page) => {
    const resp = await page.goto(`${pageOrigin}/`, { timeout: 10000, waitUntil: 'load' });
    assert(resp && resp.status() === 200, 'page did not load');
  }, async (page) => {
    await runCase('http_stream_fallback', async () => {
      state.t0 = Date.now();
      await page.evaluate((t) => { window.hf.nextToken = t; }, token('br-user', 600));
      const evs = await page.evaluate(([tr, em, t]) => window.hfStart(tr, em, t, 'br-chan'), [[
        { transport: 'websocket', endpoint: `ws://127.0.0.1:${S.port}/connection/websocket` },
        { transport: 'http_stream', endpoint: `${base}/connection/http_stream` },
      ], `${base}/emulation`, token('br-user', 4)]);
      const conn = evs.find((e) => e.kind === 'connected');
      assert(conn && conn.transport === 'http_stream', `events: ${brief(evs)}`);
      assert(evs.some((e) => e.kind === 'sub.subscribed'), `not subscribed: ${brief(evs)}`);
      state.client = conn.client;
      const cc = await waitEvent(S.log, 'client_connected', (e) => e.conn_id === conn.client);
      assert(cc.transport === 'http_stream' && cc.user === 'br-user', JSON.stringify(cc));
      const rej = await waitEvent(S.log, 'upgrade_rejected', (e) => e.status === 404 && e.origin === pageOrigin);
      assert(rej.reason === 'not_found', JSON.stringify(rej));
    });

    await runCase('http_stream_publish_receive', async () => {
      assert(state.client, 'not connected');
      await api('publish', { channel: 'br-chan', data: { n: 1 } });
      assert(await page.evaluate(() => window.hfPublish({ n: 2 })) === true, 'page publish failed');
      const got = await page.evaluate(() => window.hfWaitPubs(2, 5000));
      assert(JSON.stringify(got) === '[{"n":1},{"n":2}]', `publications ${JSON.stringify(got)}`);
    });

    await runCase('http_stream_token_refresh', async () => {
      assert(state.client, 'not connected');
      // the first token expires 4 s after it was made: the SDK refreshes it
      await new Promise((r) => setTimeout(r, Math.max(0, state.t0 + 4500 - Date.now())));
      const r = await page.evaluate(() => ({ calls: window.hf.tokenCalls, evs: window.hf.events }));
      assert(r.calls >= 1, `getToken calls ${r.calls}`);
      assert(!r.evs.some((e) => e.kind === 'disconnected'), `disconnected: ${brief(r.evs)}`);
      await api('publish', { channel: 'br-chan', data: { n: 3 } });
      const got = await page.evaluate(() => window.hfWaitPubs(3, 5000));
      assert(got.length === 3, `publications after refresh ${JSON.stringify(got)}`);
    });

    await runCase('http_stream_recovery_after_cut', async () => {
      assert(state.client, 'not connected');
      await api('disconnect', { user: 'br-user', disconnect: { code: 3011, reason: 'cut for the test' } });
      for (let n = 4; n < 9; n++) await api('publish', { channel: 'br-chan', data: { n } });
      const evs = await page.evaluate(() => window.hfWaitSubscribed(2, 10000));
      const again = evs.filter((e) => e.kind === 'sub.subscribed')[1];
      assert(again && again.wasRecovering && again.recovered, `resubscribe: ${JSON.stringify(again)}; ${brief(evs)}`);
      assert(evs.filter((e) => e.kind === 'connected').every((e) => e.transport === 'http_stream'), brief(evs));
      const got = await page.evaluate(() => window.hfWaitPubs(8, 5000));
      assert(JSON.stringify(got.map((d) => d.n)) === '[1,2,3,4,5,6,7,8]', `publications ${JSON.stringify(got)}`);
      await page.evaluate(() => window.hfStop());
    });

    await runCase('sse_only', async () => {
      const evs = await page.evaluate(([tr, em, t]) => window.hfStart(tr, em, t, 'sse-chan'), [[
        { transport: 'sse', endpoint: `${base}/connection/sse` },
      ], `${base}/emulation`, token('sse-user')]);
      const conn = evs.find((e) => e.kind === 'connected');
      assert(conn && conn.transport === 'sse', `events: ${brief(evs)}`);
      await api('publish', { channel: 'sse-chan', data: { s: 1 } });
      assert(await page.evaluate(() => window.hfPublish({ s: 2 })) === true, 'page publish failed');
      const got = await page.evaluate(() => window.hfWaitPubs(2, 5000));
      assert(JSON.stringify(got) === '[{"s":1},{"s":2}]', `publications ${JSON.stringify(got)}`);
      const cc = await waitEvent(S.log, 'client_connected', (e) => e.conn_id === conn.client);
      assert(cc.transport === 'sse', JSON.stringify(cc));
      await page.evaluate(() => window.hfStop());
    });
  });
  return runCase.failed;
}
