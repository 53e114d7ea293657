// SPDX-License-Identifier: MIT
// Interop with the official `centrifuge` SDK in a real browser: Debian's
// headless Chromium (/usr/bin/chromium) driven by playwright-core (never
// downloads a browser). A page served from http://127.0.0.1:PAGE_PORT loads
// the SDK's browser bundle, taken from the npm package installed here
// (node_modules/centrifuge/dist/centrifuge.js, which sets
// globalThis.Centrifuge; no CDN), and uses the browser's own WebSocket:
//  - against OK (page origin allowed): connect with an HS256 token,
//    subscribe, receive a publication sent through the server API (POST
//    /api/publish from Node), publish from the page and receive it back with
//    info, disconnect cleanly; the server log names the page origin and
//    Chromium's user agent, and closed is who client;
//  - against NO (origin not allowed): the SDK never reaches 'connected' and
//    the log has upgrade_rejected origin_rejected 403 naming the page origin.
//
//   node centrifuge_chromium.mjs serve-page PORTFILE   page + SDK bundle on
//                                   127.0.0.1:0; writes its port to PORTFILE
//   node centrifuge_chromium.mjs    the browser cases; environment: PAGE_PORT,
//                                   OK_PORT, OK_LOG, NO_PORT, NO_LOG,
//                                   HF_SECRET, HF_API_KEY
// Prints "PASS interop/centrifuge_chromium/<case>" or "FAIL ...: why".
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { events, waitEvent, assert, hs256, nowS, apiPost, caseRunner } from './serverlog.mjs';
import { servePageOrRun, htmlPage, withChromium } from './browser.mjs';

const SUITE = 'interop/centrifuge_chromium';
const BUNDLE = new URL('./node_modules/centrifuge/dist/centrifuge.js', import.meta.url);
const WS_PATH = '/connection/websocket';

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>holdfast centrifuge interop</title>
<script src="/centrifuge.js"></script></head>
<body><p id="status">ready</p>
<script>
// The SDK client and one subscription; every event is recorded in hf.events.
window.hf = { events: [], pubs: [], client: null, sub: null };
function rec(kind, ctx) {
  var c = ctx || {};
  var e = { kind: kind, t: Date.now() };
  if (c.code !== undefined) e.code = c.code;
  if (c.reason !== undefined) e.reason = c.reason;
  if (c.client !== undefined) e.client = c.client;
  if (c.transport !== undefined) e.transport = c.transport;
  if (c.error) e.error = { code: c.error.code, message: c.error.message };
  if (c.type) e.type = c.type;
  hf.events.push(e);
}
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
function last(kind) {
  for (var i = hf.events.length - 1; i >= 0; i--) if (hf.events[i].kind === kind) return hf.events[i];
  return null;
}
window.hfStart = function (url, token, channel, opts) {
  var c = new Centrifuge(url, Object.assign({ token: token, minReconnectDelay: 200, maxReconnectDelay: 1000 }, opts || {}));
  hf.client = c;
  ['connecting', 'connected', 'disconnected', 'error'].forEach(function (n) {
    c.on(n, function (ctx) { rec(n, ctx); });
  });
  if (channel) {
    var s = c.newSubscription(channel);
    hf.sub = s;
    ['subscribing', 'subscribed', 'unsubscribed', 'error'].forEach(function (n) {
      s.on(n, function (ctx) { rec('sub.' + n, ctx); });
    });
    s.on('publication', function (ctx) {
      hf.pubs.push({ channel: ctx.channel, data: ctx.data, info: ctx.info || null, offset: ctx.offset || 0 });
    });
    s.subscribe();
  }
  c.connect();
};
window.hfConnectSubscribe = function (url, token, channel) {
  hfStart(url, token, channel);
  return waitFor(function () { return last('sub.subscribed') && last('connected'); }, 8000)
    .then(function () { return { events: hf.events, state: hf.client.state, subState: hf.sub.state }; });
};
window.hfWaitPubs = function (n, ms) {
  return waitFor(function () { return hf.pubs.length >= n; }, ms).then(function () { return hf.pubs; });
};
window.hfPublish = function (data) {
  return hf.sub.publish(data).then(function (r) { return { ok: true, result: r }; },
    function (e) { return { ok: false, error: e }; });
};
window.hfDisconnect = function () {
  hf.client.disconnect();
  return waitFor(function () { return last('disconnected'); }, 5000)
    .then(function () { return { events: hf.events, state: hf.client.state }; });
};
// Presence in the browser: A subscribes with joinLeave, B joins; A sees
// B's join, presence and stats, then B's leave when B disconnects.
window.hfPresence = function (url, tokenA, tokenB, channel) {
  var out = { joins: [], leaves: [] };
  var a = new Centrifuge(url, { token: tokenA });
  var b = new Centrifuge(url, { token: tokenB });
  var sa = a.newSubscription(channel, { joinLeave: true });
  var sb = b.newSubscription(channel);
  sa.on('join', function (ctx) { out.joins.push(ctx.info); });
  sa.on('leave', function (ctx) { out.leaves.push(ctx.info); });
  var bid = null;
  b.on('connected', function (ctx) { bid = ctx.client; });
  sa.subscribe(); a.connect();
  return waitFor(function () { return sa.state === 'subscribed'; }, 5000).then(function () {
    sb.subscribe(); b.connect();
    return waitFor(function () { return bid && out.joins.some(function (i) { return i.client === bid; }); }, 5000);
  }).then(function () { return sa.presence(); })
    .then(function (p) { out.presence = p.clients; return sa.presenceStats(); })
    .then(function (st) {
      out.stats = st;
      out.bid = bid;
      b.disconnect();
      return waitFor(function () { return out.leaves.some(function (i) { return i.client === bid; }); }, 5000);
    }).then(function () { a.disconnect(); return out; },
      function (e) { out.error = String(e && e.message || JSON.stringify(e)); return out; });
};
// Try to connect for MS milliseconds, then stop the client.
window.hfTry = function (url, token, ms) {
  hfStart(url, token, null);
  return new Promise(function (resolve) { setTimeout(resolve, ms); }).then(function () {
    var state = hf.client.state;
    hf.client.disconnect();
    return { events: hf.events, state: state };
  });
};
</script></body></html>`;

// The SDK bundle, read afresh for every request (500 if it cannot be read).
function bundle() {
  try {
    return { type: 'text/javascript; charset=utf-8', body: readFileSync(BUNDLE) };
  } catch (e) {
    throw new Error(`cannot read ${BUNDLE.pathname}: ${e.message}`);
  }
}

await servePageOrRun({ '/': htmlPage(PAGE), '/index.html': htmlPage(PAGE), '/centrifuge.js': bundle }, main);

async function main() {
  const env = process.env;
  const pageOrigin = `http://127.0.0.1:${+env.PAGE_PORT}`;
  const OK = { port: +env.OK_PORT, log: env.OK_LOG };
  const NO = { port: +env.NO_PORT, log: env.NO_LOG };
  const SECRET = env.HF_SECRET;
  const API_KEY = env.HF_API_KEY;
  const runCase = caseRunner(SUITE, { clip: true });
  const state = {};
  const CASES = ['sdk_bundle_loaded', 'connect_subscribe', 'api_publish_received', 'page_publish_own_publication',
    'disconnect_clean', 'presence_join_leave', 'rejected_origin_never_connected', 'rejected_origin_server_log'];

  const brief = (evs) => evs.map((e) => `${e.kind}${e.code !== undefined ? `(${e.code}${e.reason ? ` ${e.reason}` : ''})` : ''}${e.error ? `(${e.error.code} ${e.error.message})` : ''}`).join(', ');

  await withChromium(runCase, CASES, async (page) => {
    state.pageErrors = [];
    page.on('pageerror', (e) => state.pageErrors.push(String(e)));
    state.bundleStatus = null;
    page.on('response', (r) => { if (r.url().endsWith('/centrifuge.js')) state.bundleStatus = r.status(); });
    const resp = await page.goto(`${pageOrigin}/`, { timeout: 10000, waitUntil: 'load' });
    assert(resp && resp.status() === 200, `page load status ${resp && resp.status()}`);
    state.ua = await page.evaluate(() => navigator.userAgent);
  }, async (page) => {
    await runCase('sdk_bundle_loaded', async () => {
      assert(state.bundleStatus === 200, `GET /centrifuge.js status ${state.bundleStatus}`);
      const r = await page.evaluate(() => ({
        type: typeof window.Centrifuge,
        sub: typeof (window.Centrifuge && window.Centrifuge.prototype.newSubscription),
        ws: typeof window.WebSocket,
      }));
      assert(r.type === 'function' && r.sub === 'function', `window.Centrifuge ${JSON.stringify(r)}`);
      assert(state.pageErrors.length === 0, `page errors: ${state.pageErrors.join('; ')}`);
    });

    await runCase('connect_subscribe', async () => {
      const token = hs256(SECRET, { sub: 'browser-user', exp: nowS() + 600, info: { agent: 'chromium' } });
      const r = await page.evaluate(([u, t]) => window.hfConnectSubscribe(u, t, 'room'),
        [`ws://127.0.0.1:${OK.port}${WS_PATH}`, token]);
      const conn = r.events.find((e) => e.kind === 'connected');
      assert(conn, `no 'connected'; events ${brief(r.events)}`);
      assert(r.events.some((e) => e.kind === 'sub.subscribed'), `no 'subscribed'; events ${brief(r.events)}`);
      assert(conn.transport === 'websocket' && /^[0-9a-f-]{36}$/.test(conn.client), `connected ${JSON.stringify(conn)}`);
      assert(r.state === 'connected' && r.subState === 'subscribed', `states ${r.state}/${r.subState}`);
      state.client = conn.client;
      const acc = await waitEvent(OK.log, 'upgrade_accepted', (e) => e.conn_id === conn.client);
      assert(acc.origin === pageOrigin && acc.path === WS_PATH,
        `upgrade_accepted ${JSON.stringify(acc)}, expected origin ${pageOrigin} path ${WS_PATH}`);
      assert(acc.user_agent === state.ua, `user_agent ${JSON.stringify(acc.user_agent)} != navigator.userAgent`);
      assert(acc.subprotocol === undefined || acc.subprotocol === '' || acc.subprotocol === null,
        `subprotocol ${JSON.stringify(acc.subprotocol)} although the JSON SDK offers none`);
      const cc = await waitEvent(OK.log, 'client_connected', (e) => e.conn_id === conn.client);
      assert(cc.user === 'browser-user', `client_connected ${JSON.stringify(cc)}`);
    });

    await runCase('api_publish_received', async () => {
      assert(state.client, 'not connected');
      const data = { from: 'server-api', text: 'h\u00e9llo \u2713', list: [1, 2, 3] };
      const res = await apiPost(OK.port, API_KEY, 'publish', { channel: 'room', data });
      assert(res.status === 200 && isDeepStrictEqual(res.json, { result: {} }), `API publish: HTTP ${res.status} ${res.body}`);
      const got = await page.evaluate(() => window.hfWaitPubs(1, 5000));
      assert(got.length === 1, `${got.length} publications in the page`);
      assert(isDeepStrictEqual(got[0].data, data), `publication data ${JSON.stringify(got[0].data)}`);
      assert(got[0].info === null, `API publication carries info ${JSON.stringify(got[0].info)}`);
    });

    await runCase('page_publish_own_publication', async () => {
      assert(state.client, 'not connected');
      const data = { from: 'page', n: 42 };
      const r = await page.evaluate((d) => window.hfPublish(d), data);
      assert(r.ok, `publish from the page failed: ${JSON.stringify(r.error)}`);
      const got = await page.evaluate(() => window.hfWaitPubs(2, 5000));
      assert(got.length === 2, `${got.length} publications in the page, expected 2`);
      assert(isDeepStrictEqual(got[1].data, data), `publication data ${JSON.stringify(got[1].data)}`);
      const info = got[1].info;
      assert(info && info.user === 'browser-user' && info.client === state.client,
        `publication info ${JSON.stringify(info)}, expected user browser-user client ${state.client}`);
      assert(isDeepStrictEqual(info.connInfo, { agent: 'chromium' }), `info.connInfo ${JSON.stringify(info.connInfo)}`);
    });

    await runCase('disconnect_clean', async () => {
      assert(state.client, 'not connected');
      const r = await page.evaluate(() => window.hfDisconnect());
      const d = r.events.filter((e) => e.kind === 'disconnected');
      assert(d.length === 1 && d[0].code === 0, `disconnected events ${JSON.stringify(d)}, expected one with code 0 (disconnect called)`);
      assert(r.state === 'disconnected', `state ${r.state}`);
      assert(r.events.filter((e) => e.kind === 'connecting').length === 1, `reconnects: ${brief(r.events)}`);
      const cl = await waitEvent(OK.log, 'closed', (e) => e.conn_id === state.client);
      assert(cl.who === 'client' && (cl.code === 1000 || cl.code === 1005),
        `closed ${JSON.stringify(cl)}, expected who client, code 1000/1005`);
      const errs = r.events.filter((e) => e.kind === 'error' || e.kind === 'sub.error');
      assert(errs.length === 0, `SDK errors: ${brief(errs)}`);
      assert(state.pageErrors.length === 0, `page errors: ${state.pageErrors.join('; ')}`);
    });

    await runCase('presence_join_leave', async () => {
      const ta = hs256(SECRET, { sub: 'ann', exp: nowS() + 600 });
      const tb = hs256(SECRET, { sub: 'ben', exp: nowS() + 600, info: { seat: 7 } });
      const r = await page.evaluate(([u, a, b]) => window.hfPresence(u, a, b, 'pres:lobby'),
        [`ws://127.0.0.1:${OK.port}${WS_PATH}`, ta, tb]);
      assert(!r.error, `page: ${r.error}`);
      const join = r.joins.find((i) => i.client === r.bid);
      assert(join && join.user === 'ben' && isDeepStrictEqual(join.connInfo, { seat: 7 }), `joins ${JSON.stringify(r.joins)}`);
      assert(Object.keys(r.presence).length === 2 && r.presence[r.bid].user === 'ben', `presence ${JSON.stringify(r.presence)}`);
      assert(r.stats.numClients === 2 && r.stats.numUsers === 2, `stats ${JSON.stringify(r.stats)}`);
      assert(r.leaves.some((i) => i.client === r.bid && i.user === 'ben'), `leaves ${JSON.stringify(r.leaves)}`);
    });

    await runCase('rejected_origin_never_connected', async () => {
      // a fresh page: the first one holds the first client
      await page.reload({ waitUntil: 'load', timeout: 10000 });
      const token = hs256(SECRET, { sub: 'browser-user', exp: nowS() + 600 });
      const r = await page.evaluate(([u, t]) => window.hfTry(u, t, 3000), [`ws://127.0.0.1:${NO.port}${WS_PATH}`, token]);
      assert(!r.events.some((e) => e.kind === 'connected'), `SDK connected through a disallowed origin: ${brief(r.events)}`);
      assert(r.state === 'connecting', `state after 3 s ${r.state}, expected connecting (retrying)`);
      assert(r.events[0] && r.events[0].kind === 'connecting', `events ${brief(r.events)}`);
      assert(r.events.some((e) => e.kind === 'error' && e.type === 'transport'), `no transport error: ${brief(r.events)}`);
    });

    await runCase('rejected_origin_server_log', async () => {
      const ev = await waitEvent(NO.log, 'upgrade_rejected', (e) => e.origin === pageOrigin);
      assert(ev.reason === 'origin_rejected' && ev.status === 403 && ev.path === WS_PATH,
        `upgrade_rejected ${JSON.stringify(ev)}, expected origin_rejected 403 on ${WS_PATH}`);
      assert(ev.user_agent === state.ua, `user_agent ${JSON.stringify(ev.user_agent)}`);
      const acc = events(NO.log, 'upgrade_accepted');
      assert(acc.length === 0, `NO server accepted an upgrade: ${JSON.stringify(acc[0])}`);
      assert(events(NO.log, 'client_connected').length === 0, 'NO server logged client_connected');
    });
  });
  return runCase.failed;
}
