// SPDX-License-Identifier: MIT
// Interop: the `centrifuge` SDK's browser bundle in Debian's headless
// Chromium (playwright-core, no download) through holdfast's backend event
// proxy to evproxy_backend.py. The page (http://127.0.0.1:PAGE_PORT) sets its
// session cookie with document.cookie; the browser's own WebSocket sends it
// to holdfast (cookies are per host, not per port), which forwards it to the
// connect proxy: the SDK connects with no token, is subscribed server-side
// to "news:chromie", subscribes to "open:room" (allowed) and gets 103 for
// "secret:vault", publishes and receives the backend's rewritten data, and
// calls rpc(). With the backend answering garbage the SDK gets temporary
// errors and keeps retrying with backoff; when it answers again, the same
// client connects without a server restart. A session with expire_at is
// kept alive by the refresh proxy past its expiry and close delay.
//
//   node centrifuge_evproxy_chromium.mjs serve-page PORTFILE
//   node centrifuge_evproxy_chromium.mjs   (PAGE_PORT, MAIN_PORT, MAIN_LOG, BE_PORT)
import { readFileSync } from 'node:fs';
import { assert, caseRunner } from './serverlog.mjs';
import { servePageOrRun, htmlPage, withChromium } from './browser.mjs';

const SUITE = 'interop/centrifuge_evproxy_chromium';
const BUNDLE = new URL('./node_modules/centrifuge/dist/centrifuge.js', import.meta.url);

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>holdfast proxy interop</title>
<script src="/centrifuge.js"></script></head><body>
<script>
window.hf = { events: [], subs: {} };
function waitFor(pred, ms) {
  return new Promise(function (resolve) {
    var end = Date.now() + ms;
    (function poll() {
      var v = pred();
      if (v || Date.now() > end) return resolve(v || null);
      setTimeout(poll, 10);
    })();
  });
}
window.hfCookieConnect = function (url, user) {
  document.cookie = 'session=' + user + '; path=/';
  var c = new Centrifuge(url, { minReconnectDelay: 200, maxReconnectDelay: 1000 });
  hf.client = c;
  ['connecting', 'connected', 'disconnected', 'error', 'subscribed'].forEach(function (n) {
    c.on(n, function (ctx) {
      hf.events.push({ kind: n, t: Date.now(), channel: ctx && ctx.channel, data: ctx && ctx.data,
        code: ctx && (ctx.code !== undefined ? ctx.code : ctx.error && ctx.error.code),
        temporary: ctx && ctx.error && ctx.error.temporary });
    });
  });
  c.connect();
  return waitFor(function () {
    return hf.events.some(function (e) { return e.kind === 'connected'; }) &&
      hf.events.some(function (e) { return e.kind === 'subscribed'; });
  }, 8000).then(function () { return { events: hf.events, state: c.state }; });
};
window.hfSubscribe = function (channel) {
  var s = hf.client.newSubscription(channel);
  var out = { pubs: [] };
  hf.subs[channel] = out;
  s.on('subscribed', function (ctx) { out.subscribed = { data: ctx.data }; });
  s.on('unsubscribed', function (ctx) { out.unsubscribed = { code: ctx.code }; });
  s.on('publication', function (ctx) { out.pubs.push(ctx.data); });
  out.sub = s;
  s.subscribe();
  return waitFor(function () { return out.subscribed || out.unsubscribed; }, 5000)
    .then(function () { return { subscribed: out.subscribed || null, unsubscribed: out.unsubscribed || null }; });
};
window.hfPublish = function (channel, data) {
  var out = hf.subs[channel];
  return out.sub.publish(data).then(function () {
    return waitFor(function () { return out.pubs.length > 0; }, 5000);
  }).then(function () { return out.pubs; });
};
window.hfRpc = function (method, data) {
  return hf.client.rpc(method, data).then(function (r) { return { data: r.data }; },
    function (e) { return { error: { code: e.code, message: e.message } }; });
};
window.hfReconnect = function (ms) {
  hf.events = [];
  hf.client.disconnect();
  hf.client.connect();
  return new Promise(function (r) { setTimeout(r, ms); })
    .then(function () { return { events: hf.events, state: hf.client.state }; });
};
window.hfWaitConnected = function (ms) {
  return waitFor(function () { return hf.client.state === 'connected'; }, ms)
    .then(function () { return hf.client.state; });
};
</script></body></html>`;

await servePageOrRun({ '/': htmlPage(PAGE), '/centrifuge.js': () => ({
  type: 'text/javascript; charset=utf-8', body: readFileSync(BUNDLE) }) }, main);

async function main() {
  const env = process.env;
  const pageOrigin = `http://127.0.0.1:${+env.PAGE_PORT}`;
  const url = `ws://127.0.0.1:${+env.MAIN_PORT}/connection/websocket`;
  const mode = (m) => fetch(`http://127.0.0.1:${+env.BE_PORT}/_mode`,
    { method: 'POST', body: JSON.stringify({ mode: m }) });
  const run = caseRunner(SUITE, { clip: true });
  const CASES = ['cookie_connect_server_side', 'subscribe_allowed_refused', 'publish_rewritten', 'rpc',
    'garbage_backoff_recovery', 'session_kept_by_refresh_proxy'];
  const refreshes = async () => (await (await fetch(`http://127.0.0.1:${+env.BE_PORT}/_log`)).json())
    .filter((r) => r.path === '/refresh' && r.body.user === 'refresher').length;
  await withChromium(run, CASES, async (page) => {
    const resp = await page.goto(`${pageOrigin}/`, { timeout: 10000, waitUntil: 'load' });
    assert(resp && resp.status() === 200, `page load status ${resp && resp.status()}`);
  }, async (page) => {
    await run('cookie_connect_server_side', async () => {
      const r = await page.evaluate(([u]) => window.hfCookieConnect(u, 'chromie'), [url]);
      const conn = r.events.find((e) => e.kind === 'connected');
      assert(conn && conn.data && conn.data.hello === 'chromie', `events ${JSON.stringify(r.events)}`);
      assert(r.events.some((e) => e.kind === 'subscribed' && e.channel === 'news:chromie'),
        `no server-side subscription: ${JSON.stringify(r.events)}`);
    });
    await run('subscribe_allowed_refused', async () => {
      const ok = await page.evaluate(() => window.hfSubscribe('open:room'));
      assert(ok.subscribed && ok.subscribed.data.welcome === 'open:room', JSON.stringify(ok));
      const no = await page.evaluate(() => window.hfSubscribe('secret:vault'));
      assert(no.unsubscribed && no.unsubscribed.code === 103, JSON.stringify(no));
    });
    await run('publish_rewritten', async () => {
      const pubs = await page.evaluate(() => window.hfPublish('open:room', { text: 'from chromium' }));
      assert(JSON.stringify(pubs[0]) === '{"rewritten":{"text":"from chromium"},"by":"chromie"}',
        JSON.stringify(pubs));
    });
    await run('rpc', async () => {
      const r = await page.evaluate(() => window.hfRpc('echo', { n: 5 }));
      assert(r.data && r.data.echo.n === 5 && r.data.user === 'chromie', JSON.stringify(r));
      const f = await page.evaluate(() => window.hfRpc('fail', {}));
      assert(f.error && f.error.code === 1000, JSON.stringify(f));
    });
    await run('garbage_backoff_recovery', async () => {
      await mode('garbage');
      const r = await page.evaluate(() => window.hfReconnect(2500));
      const errs = r.events.filter((e) => e.kind === 'error');
      assert(errs.length >= 1 && errs.every((e) => e.code === 100 && e.temporary),
        `errors ${JSON.stringify(errs)}`);
      assert(r.state === 'connecting', `state ${r.state}`);
      const tries = r.events.filter((e) => e.kind === 'connecting').length;
      assert(tries < 12, `${tries} attempts in 2.5 s: no backoff`);
      await mode('ok');
      const st = await page.evaluate(() => window.hfWaitConnected(8000));
      assert(st === 'connected', `state ${st} after the backend recovered`);
    }, 20000);
    await run('session_kept_by_refresh_proxy', async () => {
      // expire_at 2 s ahead, close delay 2 s: only the refresh proxy keeps it
      const r = await page.evaluate(([u]) => { hf.events = []; return window.hfCookieConnect(u, 'refresher'); }, [url]);
      assert(r.state === 'connected', `state ${r.state}: ${JSON.stringify(r.events)}`);
      const end = Date.now() + 9000;
      while ((await refreshes()) < 2) {
        assert(Date.now() < end, 'no two refresh calls within 9 s');
        await new Promise((res) => setTimeout(res, 100));
      }
      const st = await page.evaluate(() => ({ state: hf.client.state,
        disc: hf.events.filter((e) => e.kind === 'disconnected').length }));
      assert(st.state === 'connected' && st.disc === 0, JSON.stringify(st));
      const e = await page.evaluate(() => window.hfRpc('echo', 'alive'));
      assert(e.data && e.data.echo === 'alive' && e.data.user === 'refresher', JSON.stringify(e));
    }, 15000);
  });
  process.exit(run.failed ? 1 : 0);
}
