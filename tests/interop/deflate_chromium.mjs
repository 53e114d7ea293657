// SPDX-License-Identifier: MIT
// Interop: permessage-deflate with a real browser. Debian's headless
// Chromium (via playwright-core, no download), which offers
// "permessage-deflate; client_max_window_bits" on every WebSocket, against
// DFL (echo.compression and websocket.compression on):
//  - a raw WebSocket on /echo: the browser reports the negotiated extension
//    (ws.extensions), 100 KB text and 64 KiB binary echoes are intact, close
//    1000; the server logged the extension and counted inflated and
//    compressed messages;
//  - the `centrifuge` SDK (its browser bundle from node_modules) on the
//    real-time endpoint: connect with a token, subscribe, receive three
//    publications sent through the server API; the connection negotiated
//    deflate and each publication was compressed exactly once.
//
//   node deflate_chromium.mjs serve-page PORTFILE   page + SDK bundle
//   node deflate_chromium.mjs   the cases; environment: PAGE_PORT, DFL_PORT,
//                               DFL_LOG, HF_SECRET, HF_API_KEY
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { waitEvent, assert, hs256, nowS, apiPost, caseRunner } from './serverlog.mjs';
import { servePageOrRun, htmlPage, withChromium } from './browser.mjs';

const SUITE = 'interop/deflate_chromium';
const BUNDLE = new URL('./node_modules/centrifuge/dist/centrifuge.js', import.meta.url);

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>holdfast deflate interop</title>
<script src="/centrifuge.js"></script></head>
<body><script>
window.hfEcho = function (url) {
  return new Promise(function (resolve) {
    var out = { messages: [], error: null };
    var timer = setTimeout(function () { out.error = 'page-side timeout'; resolve(out); }, 8000);
    var ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    var text = '';
    for (var i = 0; i < 2000; i++) text += 'compressible line ' + (i % 10) + ' \\u00e9\\u2713 ';
    var bin = new Uint8Array(65536);
    for (var j = 0; j < bin.length; j++) bin[j] = (j >> 8) & 0xff;
    ws.onopen = function () { out.extensions = ws.extensions; ws.send(text); ws.send(bin.buffer); };
    ws.onmessage = function (ev) {
      if (typeof ev.data === 'string') out.messages.push(ev.data === text ? 'text ok' : 'text differs');
      else {
        var b = new Uint8Array(ev.data), ok = b.length === bin.length;
        for (var k = 0; ok && k < b.length; k++) ok = b[k] === bin[k];
        out.messages.push(ok ? 'binary ok' : 'binary differs');
      }
      if (out.messages.length === 2) ws.close(1000, 'bye');
    };
    ws.onclose = function (ev) { clearTimeout(timer); out.close = ev.code; resolve(out); };
  });
};
window.hfSdk = function (url, token, channel) {
  window.hf = { pubs: [], state: [] };
  var c = new Centrifuge(url, { token: token });
  hf.client = c;
  c.on('connected', function () { hf.state.push('connected'); });
  c.on('disconnected', function (ctx) { hf.state.push('disconnected ' + ctx.code); });
  var s = c.newSubscription(channel);
  s.on('subscribed', function () { hf.state.push('subscribed'); });
  s.on('publication', function (ctx) { hf.pubs.push(ctx.data); });
  s.subscribe();
  c.connect();
};
</script></body></html>`;

const bundle = () => ({ type: 'text/javascript; charset=utf-8', body: readFileSync(BUNDLE) });
await servePageOrRun({ '/': htmlPage(PAGE), '/centrifuge.js': bundle }, main);

function shared(port) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let b = '';
      res.on('data', (c) => { b += c; });
      res.on('end', () => {
        const m = b.match(/^holdfast_compressed_messages_total\{kind="(in|out|shared)"\} \d+$/gm) || [];
        const o = {};
        for (const line of m) o[line.match(/kind="(\w+)"/)[1]] = +line.split(' ')[1];
        resolve(o);
      });
    }).on('error', reject);
  });
}

async function main() {
  const env = process.env;
  const pageOrigin = `http://127.0.0.1:${+env.PAGE_PORT}`;
  const DFL = { port: +env.DFL_PORT, log: env.DFL_LOG };
  const runCase = caseRunner(SUITE, { clip: true });
  await withChromium(runCase, ['raw_websocket_echo', 'centrifuge_sdk_publications'], async (page) => {
    const resp = await page.goto(`${pageOrigin}/`, { timeout: 10000 });
    assert(resp && resp.status() === 200, `page load status ${resp && resp.status()}`);
  }, async (page) => {
    await runCase('raw_websocket_echo', async () => {
      const before = await shared(DFL.port);
      const r = await page.evaluate((u) => window.hfEcho(u), `ws://127.0.0.1:${DFL.port}/echo`);
      assert(!r.error, r.error);
      assert(/^permessage-deflate/.test(r.extensions), `browser extensions ${JSON.stringify(r.extensions)}`);
      assert(JSON.stringify(r.messages) === '["text ok","binary ok"]', `echoes ${JSON.stringify(r.messages)}`);
      assert(r.close === 1000, `close ${r.close}`);
      const ev = await waitEvent(DFL.log, 'upgrade_accepted', (e) => e.origin === pageOrigin && e.path === '/echo');
      assert(ev.extensions === r.extensions, `logged ${ev.extensions}, browser ${r.extensions}`);
      const after = await shared(DFL.port);
      assert(after.in - before.in === 2, `server inflated ${after.in - before.in} of Chromium's 2 messages`);
      assert(after.out - before.out === 2, `server compressed ${after.out - before.out} echoes`);
    });
    await runCase('centrifuge_sdk_publications', async () => {
      const token = hs256(env.HF_SECRET, { sub: 'deflate-user', exp: nowS() + 600 });
      await page.evaluate(([u, t]) => window.hfSdk(u, t, 'news'),
        [`ws://127.0.0.1:${DFL.port}/connection/websocket`, token]);
      await page.waitForFunction(() => window.hf.state.includes('subscribed'), null, { timeout: 8000 });
      const ev = await waitEvent(DFL.log, 'upgrade_accepted',
        (e) => e.origin === pageOrigin && e.path === '/connection/websocket');
      assert(/^permessage-deflate/.test(ev.extensions || ''), `logged extensions ${ev.extensions}`);
      const before = await shared(DFL.port);
      const sent = [];
      for (let i = 0; i < 3; i++) {
        const data = { seq: i, text: 'a publication worth compressing '.repeat(10) };
        sent.push(data);
        const res = await apiPost(DFL.port, env.HF_API_KEY, 'publish', { channel: 'news', data });
        assert(res.status === 200 && res.json && res.json.result, `publish ${res.status} ${res.body}`);
      }
      await page.waitForFunction(() => window.hf.pubs.length >= 3, null, { timeout: 8000 });
      const got = await page.evaluate(() => window.hf.pubs);
      assert(JSON.stringify(got) === JSON.stringify(sent), `publications ${JSON.stringify(got).slice(0, 200)}`);
      const after = await shared(DFL.port);
      assert(after.shared - before.shared === 3, `shared compressions ${after.shared - before.shared} for 3 publications`);
      await page.evaluate(() => window.hf.client.disconnect());
    });
  });
  return runCase.failed;
}
