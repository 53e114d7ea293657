// SPDX-License-Identifier: MIT
// Interop with the official `centrifuge` SDK's Protobuf build, unchanged:
//  - in Node (centrifuge/build/protobuf, npm `ws`): connect over the
//    centrifuge-protobuf sub-protocol, subscribe, publish both ways between a
//    Protobuf and a JSON client of one channel, one server API publication
//    reaching JSON and Protobuf subscribers, history and recovery after a
//    cut connection (a TCP proxy resets it), an RPC error, token refresh
//    keeping an expiring connection open, binary (non-JSON) Uint8Array data
//    reaching Protobuf subscribers byte-identical (live, recovery, history)
//    while a JSON subscriber is closed with 3506; the same over http_stream + /emulation (octet-stream bodies),
//    ended by a Protobuf disconnect push;
//  - in headless Chromium (dist/centrifuge.protobuf.js served from the npm
//    package, the browser's WebSocket): connect, subscribe, a server API
//    publication arriving as bytes (compressed: permessage-deflate is on),
//    a publication from the page reaching a JSON client in Node.
//   node centrifuge_protobuf.mjs serve-page PORTFILE   the page + bundle
//   node centrifuge_protobuf.mjs    the cases; environment: MAIN_PORT,
//                                   MAIN_LOG, PAGE_PORT, HF_SECRET, HF_API_KEY
// Started by test_centrifuge_protobuf.sh. Prints PASS/FAIL lines.
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { Centrifuge as CentrifugePB } from 'centrifuge/build/protobuf';
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';
import { sleep, events, waitEvent, assert, hs256, nowS, apiPost, caseRunner } from './serverlog.mjs';
import { proxy, until } from './sdkkit.mjs';
import { servePageOrRun, htmlPage, withChromium } from './browser.mjs';

const SUITE = 'interop/centrifuge_protobuf';
const BUNDLE = new URL('./node_modules/centrifuge/dist/centrifuge.protobuf.js', import.meta.url);
const WS_PATH = '/connection/websocket';
const enc = (o) => new TextEncoder().encode(JSON.stringify(o));
const dec = (b) => JSON.parse(Buffer.from(b).toString('utf8'));

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>holdfast protobuf interop</title>
<script src="/centrifuge.protobuf.js"></script></head><body><script>
window.hf = { events: [], pubs: [] };
window.hfStart = function (url, token, channel) {
  var c = new Centrifuge(url, { token: token });
  ['connected', 'disconnected', 'error'].forEach(function (n) {
    c.on(n, function (ctx) { hf.events.push({ kind: n, client: ctx && ctx.client, code: ctx && ctx.code }); });
  });
  var s = c.newSubscription(channel);
  s.on('subscribed', function () { hf.events.push({ kind: 'subscribed' }); });
  s.on('publication', function (ctx) {
    hf.pubs.push({ text: new TextDecoder().decode(ctx.data), isBytes: ctx.data instanceof Uint8Array });
  });
  hf.c = c; hf.s = s;
  s.subscribe(); c.connect();
  return new Promise(function (resolve) {
    var end = Date.now() + 8000;
    (function poll() {
      if (hf.events.some(function (e) { return e.kind === 'subscribed'; }) || Date.now() > end) return resolve(hf.events);
      setTimeout(poll, 10);
    })();
  });
};
window.hfWaitPubs = function (n) {
  return new Promise(function (resolve) {
    var end = Date.now() + 5000;
    (function poll() {
      if (hf.pubs.length >= n || Date.now() > end) return resolve(hf.pubs);
      setTimeout(poll, 10);
    })();
  });
};
window.hfPublish = function (obj) {
  return hf.s.publish(new TextEncoder().encode(JSON.stringify(obj))).then(function () { return 'ok'; },
    function (e) { return JSON.stringify(e); });
};
window.hfStop = function () { hf.c.disconnect(); return true; };
</script></body></html>`;

await servePageOrRun({
  '/': htmlPage(PAGE),
  '/centrifuge.protobuf.js': () => ({ type: 'text/javascript; charset=utf-8', body: readFileSync(BUNDLE) }),
}, main);

async function main() {
  const env = process.env;
  const MAIN = { port: +env.MAIN_PORT, log: env.MAIN_LOG };
  const SECRET = env.HF_SECRET;
  const API_KEY = env.HF_API_KEY;
  const token = (sub, ttl = 600) => hs256(SECRET, { sub, exp: nowS() + ttl });
  const url = (port = MAIN.port) => `ws://127.0.0.1:${port}${WS_PATH}`;
  const clients = new Set();
  const cleanups = [];
  const runCase = caseRunner(SUITE, {
    after: async () => {
      for (const c of clients) { try { c.disconnect(); } catch { /* gone */ } }
      clients.clear();
      for (const f of cleanups.splice(0)) { try { f(); } catch { /* best effort */ } }
    },
  });

  // An SDK client (Protobuf build unless json) with its events recorded.
  function client(user, opts = {}, json = false, port = MAIN.port) {
    const C = json ? Centrifuge : CentrifugePB;
    const c = new C(url(port), { websocket: WebSocket, token: token(user), minReconnectDelay: 50,
      maxReconnectDelay: 300, timeout: 5000, ...opts });
    c.ev = [];
    for (const n of ['connecting', 'connected', 'disconnected', 'error']) c.on(n, (ctx) => c.ev.push({ n, ctx }));
    clients.add(c);
    return c;
  }
  function sub(c, ch, opts = {}) {
    const s = c.newSubscription(ch, opts);
    s.ev = [];
    s.pubs = [];
    for (const n of ['subscribed', 'unsubscribed', 'error']) s.on(n, (ctx) => s.ev.push({ n, ctx }));
    s.on('publication', (ctx) => s.pubs.push(ctx));
    return s;
  }
  const brief = (evs) => evs.map((e) => `${e.n}${e.ctx && e.ctx.code !== undefined ? `(${e.ctx.code})` : ''}`).join(', ');
  async function ready(c, ...subs) {
    c.connect();
    for (const s of subs) s.subscribe();
    await until(() => c.ev.some((e) => e.n === 'connected'), 5000, () => `not connected: ${brief(c.ev)}`);
    for (const s of subs) {
      await until(() => s.ev.some((e) => e.n === 'subscribed'), 5000, () => `${s.channel} not subscribed: ${brief(s.ev)}`);
    }
  }
  const api = async (method, body) => {
    const r = await apiPost(MAIN.port, API_KEY, method, body);
    assert(r.status === 200 && r.json && !r.json.error, `/api/${method}: ${r.status} ${r.body}`);
    return r.json;
  };

  await runCase('connect_over_centrifuge_protobuf', async () => {
    const c = client('pb-1');
    await ready(c);
    const id = c.ev.find((e) => e.n === 'connected').ctx.client;
    const acc = await waitEvent(MAIN.log, 'upgrade_accepted', (e) => e.conn_id === id);
    assert(acc.subprotocol === 'centrifuge-protobuf', `upgrade_accepted ${JSON.stringify(acc)}`);
  });

  await runCase('publish_both_ways_json_and_protobuf', async () => {
    const p = client('pb-2');
    const j = client('json-2', {}, true);
    const ps = sub(p, 'mix');
    const js = sub(j, 'mix');
    await ready(p, ps);
    await ready(j, js);
    await ps.publish(enc({ from: 'pb', t: 'h\u00e9' }));
    await js.publish({ from: 'json', n: [1, 2] });
    await until(() => ps.pubs.length >= 2 && js.pubs.length >= 2, 5000,
      () => `pubs: pb ${ps.pubs.length}, json ${js.pubs.length}`);
    assert(ps.pubs[0].data instanceof Uint8Array, 'Protobuf data is not bytes');
    assert(isDeepStrictEqual(ps.pubs.map((x) => dec(x.data)), [{ from: 'pb', t: 'h\u00e9' }, { from: 'json', n: [1, 2] }]),
      `pb got ${ps.pubs.map((x) => Buffer.from(x.data).toString()).join(' | ')}`);
    assert(isDeepStrictEqual(js.pubs.map((x) => x.data), [{ from: 'pb', t: 'h\u00e9' }, { from: 'json', n: [1, 2] }]),
      `json got ${JSON.stringify(js.pubs.map((x) => x.data))}`);
    assert(ps.pubs[1].info && ps.pubs[1].info.user === 'json-2', `info ${JSON.stringify(ps.pubs[1].info)}`);
  });

  await runCase('api_publish_reaches_json_and_protobuf', async () => {
    const p = client('pb-3');
    const j = client('json-3', {}, true);
    const ps = sub(p, 'api-mix');
    const js = sub(j, 'api-mix');
    await ready(p, ps);
    await ready(j, js);
    for (let n = 0; n < 5; n++) await api('publish', { channel: 'api-mix', data: { n } });
    await until(() => ps.pubs.length >= 5 && js.pubs.length >= 5, 5000,
      () => `pubs: pb ${ps.pubs.length}, json ${js.pubs.length}`);
    assert(isDeepStrictEqual(ps.pubs.map((x) => dec(x.data)), [0, 1, 2, 3, 4].map((n) => ({ n }))), 'pb order/data');
    assert(isDeepStrictEqual(js.pubs.map((x) => x.data), [0, 1, 2, 3, 4].map((n) => ({ n }))), 'json order/data');
  });

  await runCase('history_and_recovery_after_cut', async () => {
    const px = await proxy(MAIN.port);
    cleanups.push(() => px.close());
    const c = client('pb-4', {}, false, px.port);
    const s = sub(c, 'rec:room');
    await ready(c, s);
    for (let n = 0; n < 3; n++) await api('publish', { channel: 'rec:room', data: { n } });
    await until(() => s.pubs.length >= 3, 5000, () => `${s.pubs.length} live publications`);
    px.refuseUntil = Date.now() + 300;
    px.cut();
    for (let n = 3; n < 6; n++) await api('publish', { channel: 'rec:room', data: { n } });
    await until(() => s.pubs.length >= 6, 8000, () => `${s.pubs.length} publications after the cut; ${brief(s.ev)}`);
    assert(isDeepStrictEqual(s.pubs.map((x) => dec(x.data).n), [0, 1, 2, 3, 4, 5]), `got ${s.pubs.map((x) => Buffer.from(x.data).toString())}`);
    assert(isDeepStrictEqual(s.pubs.map((x) => x.offset), [1, 2, 3, 4, 5, 6]), `offsets ${s.pubs.map((x) => x.offset)}`);
    const again = s.ev.filter((e) => e.n === 'subscribed');
    assert(again.length === 2 && again[1].ctx.wasRecovering && again[1].ctx.recovered,
      `subscribed events ${JSON.stringify(again.map((e) => e.ctx))}`);
    const h = await s.history({ limit: 10 });
    assert(h.publications.length === 6 && dec(h.publications[5].data).n === 5 && h.offset === 6 && h.epoch,
      `history ${JSON.stringify({ n: h.publications.length, offset: h.offset, epoch: h.epoch })}`);
  }, 20000);

  await runCase('rpc_error_and_binary_data', async () => {
    // a Uint8Array that is not JSON: Protobuf subscribers get it byte-
    // identical (live, after a cut in recovery, in history); a JSON
    // subscriber of the channel is closed with 3506 (as by Centrifugo)
    const px = await proxy(MAIN.port);
    cleanups.push(() => px.close());
    const c = client('pb-5');
    const s = sub(c, 'rec:bin');
    const r = client('pb-5r', {}, false, px.port);
    const rs = sub(r, 'rec:bin');
    const j = client('json-5', {}, true);
    const js = sub(j, 'rec:bin');
    await ready(c, s);
    await ready(r, rs);
    await ready(j, js);
    let err = null;
    try { await c.rpc('nothing', enc({})); } catch (e) { err = e; }
    assert(err && err.code === 108, `rpc: ${JSON.stringify(err)}`);
    const bin = (n) => Uint8Array.from({ length: 300 }, (_, i) => (i * 7 + n) & 0xff); // 0x00.. not JSON
    await s.publish(bin(0));
    await until(() => rs.pubs.length >= 1 && s.pubs.length >= 1, 5000, () => `pubs ${rs.pubs.length}`);
    assert(Buffer.from(rs.pubs[0].data).equals(Buffer.from(bin(0))), 'live bytes differ');
    const gone = await until(() => j.ev.find((e) => e.n === 'disconnected'), 5000, () => `json: ${brief(j.ev)}`);
    assert(gone.ctx.code === 3506, `json subscriber: ${JSON.stringify(gone.ctx)}`);
    await waitEvent(MAIN.log, 'binary_data_for_json_client', (e) => e.user === 'json-5' && e.what === 'publication');
    px.refuseUntil = Date.now() + 300;
    px.cut();
    await s.publish(bin(1));
    await s.publish(bin(2));
    await until(() => rs.pubs.length >= 3, 8000, () => `${rs.pubs.length} after the cut; ${brief(rs.ev)}`);
    const again = rs.ev.filter((e) => e.n === 'subscribed');
    assert(again.length === 2 && again[1].ctx.recovered, `subscribed ${JSON.stringify(again.map((e) => e.ctx))}`);
    for (let n = 0; n < 3; n++) assert(Buffer.from(rs.pubs[n].data).equals(Buffer.from(bin(n))), `recovered ${n} differs`);
    const h = await s.history({ limit: 10 });
    assert(h.publications.length === 3 && h.publications.every((p, n) => Buffer.from(p.data).equals(Buffer.from(bin(n)))),
      `history ${h.publications.length}`);
    assert(c.state === 'connected', `state ${c.state}`);
  }, 20000);

  await runCase('token_refresh_keeps_connection', async () => {
    // MAIN: --client.expired_close_delay=1s: without a refresh the server
    // would close with 3005 about 4 s after connect
    let calls = 0;
    const c = client('pb-6', { token: token('pb-6', 3), getToken: async () => { calls++; return token('pb-6', 3); } });
    await ready(c);
    const id = c.ev.find((e) => e.n === 'connected').ctx.client;
    await sleep(5500);
    assert(calls >= 1, `getToken called ${calls} times`);
    const gone = events(MAIN.log, 'closed').filter((e) => e.conn_id === id);
    assert(gone.length === 0 && c.state === 'connected', `closed ${JSON.stringify(gone[0])}; ${brief(c.ev)}`);
  }, 15000);

  await runCase('http_stream_with_emulation', async () => {
    // the Protobuf build over http_stream: octet-stream bodies, delimited
    // Replies in the chunked response, commands through /emulation
    const base = `http://127.0.0.1:${MAIN.port}`;
    const c = new CentrifugePB([{ transport: 'http_stream', endpoint: `${base}/connection/http_stream` }], {
      emulationEndpoint: `${base}/emulation`, token: token('pb-hs'), minReconnectDelay: 50,
      maxReconnectDelay: 300, timeout: 5000 });
    c.ev = [];
    for (const n of ['connecting', 'connected', 'disconnected', 'error']) c.on(n, (ctx) => c.ev.push({ n, ctx }));
    clients.add(c);
    const s = sub(c, 'hs-mix');
    const j = client('json-hs', {}, true);
    const js = sub(j, 'hs-mix');
    await ready(c, s);
    await ready(j, js);
    const conn = c.ev.find((e) => e.n === 'connected').ctx;
    assert(conn.transport === 'http_stream', `transport ${conn.transport}`);
    await api('publish', { channel: 'hs-mix', data: { from: 'api' } });
    await s.publish(enc({ from: 'pb-hs' })); /* through /emulation */
    await until(() => s.pubs.length >= 2 && js.pubs.length >= 2, 5000,
      () => `pubs: pb ${s.pubs.length}, json ${js.pubs.length}`);
    assert(isDeepStrictEqual(s.pubs.map((x) => dec(x.data)), [{ from: 'api' }, { from: 'pb-hs' }]), 'pb stream data');
    assert(isDeepStrictEqual(js.pubs.map((x) => x.data), [{ from: 'api' }, { from: 'pb-hs' }]), 'json data');
    let err = null;
    try { await c.rpc('none', enc({})); } catch (e) { err = e; }
    assert(err && err.code === 108, `rpc over emulation: ${JSON.stringify(err)}`);
    // the server ends the stream: a disconnect push in Protobuf, then the SDK
    // reconnects (3011 is a reconnect code)
    await api('disconnect', { user: 'pb-hs', disconnect: { code: 3011, reason: 'go away' } });
    const d = await until(() => c.ev.find((e) => e.n === 'disconnected' || (e.n === 'connecting' && e.ctx.code === 3011)),
      5000, () => `no disconnect seen: ${brief(c.ev)}`);
    assert(d.ctx.code === 3011, `disconnect ${JSON.stringify(d.ctx)}`);
  });

  const pageOrigin = `http://127.0.0.1:${+env.PAGE_PORT}`;
  const state = {};
  await withChromium(runCase, ['chromium_connect_subscribe', 'chromium_publications_both_ways'], async (page) => {
    state.errors = [];
    page.on('pageerror', (e) => state.errors.push(String(e)));
    const r = await page.goto(`${pageOrigin}/`, { timeout: 10000, waitUntil: 'load' });
    assert(r && r.status() === 200, `page status ${r && r.status()}`);
  }, async (page) => {
    await runCase('chromium_connect_subscribe', async () => {
      const evs = await page.evaluate(([u, t]) => window.hfStart(u, t, 'browser'), [url(), token('chromium-pb')]);
      const conn = evs.find((e) => e.kind === 'connected');
      assert(conn && evs.some((e) => e.kind === 'subscribed'), `page events ${JSON.stringify(evs)}`);
      const acc = await waitEvent(MAIN.log, 'upgrade_accepted', (e) => e.conn_id === conn.client);
      assert(acc.subprotocol === 'centrifuge-protobuf' && acc.origin === pageOrigin, `upgrade_accepted ${JSON.stringify(acc)}`);
      assert(/permessage-deflate/.test(acc.extensions || ''), `no permessage-deflate: ${JSON.stringify(acc)}`);
      state.ok = true;
    });
    await runCase('chromium_publications_both_ways', async () => {
      assert(state.ok, 'not connected');
      const j = client('json-7', {}, true);
      const js = sub(j, 'browser');
      await ready(j, js);
      const pad = 'compressible '.repeat(40); /* big enough to be sent compressed */
      await api('publish', { channel: 'browser', data: { from: 'api', pad } });
      const r = await page.evaluate((o) => window.hfPublish(o), { from: 'page' });
      assert(r === 'ok', `page publish: ${r}`);
      const pubs = await page.evaluate(() => window.hfWaitPubs(2));
      assert(pubs.length === 2 && pubs.every((p) => p.isBytes), `page pubs ${JSON.stringify(pubs)}`);
      assert(isDeepStrictEqual(pubs.map((p) => JSON.parse(p.text)), [{ from: 'api', pad }, { from: 'page' }]), `page pubs ${JSON.stringify(pubs)}`);
      await until(() => js.pubs.length >= 2, 5000, () => `json client got ${js.pubs.length}`);
      assert(isDeepStrictEqual(js.pubs.map((p) => p.data), [{ from: 'api', pad }, { from: 'page' }]), `json got ${JSON.stringify(js.pubs.map((p) => p.data))}`);
      await page.evaluate(() => window.hfStop());
      assert(state.errors.length === 0, `page errors: ${state.errors.join('; ')}`);
    });
  });
  return runCase.failed;
}
