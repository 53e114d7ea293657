// SPDX-License-Identifier: MIT
// Interop with a real browser: Debian's headless Chromium (/usr/bin/chromium)
// driven by playwright-core (never downloads a browser). A page served from
// http://127.0.0.1:PAGE_PORT opens `new WebSocket("ws://127.0.0.1:PORT/echo")`
//  - against OK (page origin allowed): text and ArrayBuffer echoes, close 1000
//    (wasClean); the server log's upgrade_accepted names the page origin and
//    Chromium's user agent, closed is code 1000 who client;
//  - against NO (origin not allowed): the page sees onerror then onclose 1006
//    and never onopen; the server log has upgrade_rejected origin_rejected 403
//    naming the page origin.
//
//   node chromium.mjs serve-page PORTFILE   tiny HTTP server on 127.0.0.1:0;
//                                           writes its port to PORTFILE
//   node chromium.mjs                        the browser cases; environment:
//                                           PAGE_PORT, OK_PORT, OK_LOG, NO_PORT, NO_LOG
// Prints "PASS interop/chromium/<case>" or "FAIL interop/chromium/<case>: why".
import { events, waitEvent, assert, caseRunner } from './serverlog.mjs';
import { servePageOrRun, htmlPage, withChromium } from './browser.mjs';

const SUITE = 'interop/chromium';

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>holdfast interop</title></head>
<body><p id="status">ready</p>
<script>
// hfRun(url): open, send text + ArrayBuffer, close 1000 after both echoes;
// resolves with what the WebSocket did (events, messages, close event).
window.hfRun = function (url) {
  return new Promise(function (resolve) {
    var out = { events: [], messages: [], error: null };
    var ws;
    var timer = setTimeout(function () { out.error = 'page-side timeout'; resolve(out); }, 8000);
    function done() { clearTimeout(timer); resolve(out); }
    try { ws = new WebSocket(url); } catch (e) { out.error = 'constructor threw ' + e; return done(); }
    ws.binaryType = 'arraybuffer';
    ws.onopen = function () {
      out.events.push('open');
      out.protocol = ws.protocol;
      ws.send('hello from chromium \\u00e9\\u2713');
      var b = new Uint8Array(256);
      for (var i = 0; i < 256; i++) b[i] = i;
      ws.send(b.buffer);
    };
    ws.onmessage = function (ev) {
      if (typeof ev.data === 'string') out.messages.push({ type: 'text', data: ev.data });
      else out.messages.push({ type: 'binary', data: Array.from(new Uint8Array(ev.data)) });
      if (out.messages.length === 2) ws.close(1000, 'bye');
    };
    ws.onerror = function () { out.events.push('error'); };
    ws.onclose = function (ev) {
      out.events.push('close');
      out.close = { code: ev.code, reason: ev.reason, wasClean: ev.wasClean };
      done();
    };
  });
};
</script></body></html>`;

await servePageOrRun({ '/': htmlPage(PAGE), '/index.html': htmlPage(PAGE) }, main);

async function main() {
  const env = process.env;
  const pagePort = +env.PAGE_PORT;
  const pageOrigin = `http://127.0.0.1:${pagePort}`;
  const OK = { port: +env.OK_PORT, log: env.OK_LOG };
  const NO = { port: +env.NO_PORT, log: env.NO_LOG };
  const runCase = caseRunner(SUITE, { clip: true });
  const state = {};

  const later = ['echo_text_arraybuffer_close_1000', 'accepted_log_origin_user_agent',
    'rejected_origin_error_then_close_1006', 'rejected_origin_server_log'];
  await withChromium(runCase, later, async (page) => {
    const resp = await page.goto(`${pageOrigin}/`, { timeout: 10000 });
    assert(resp && resp.status() === 200, `page load status ${resp && resp.status()}`);
    state.ua = await page.evaluate(() => navigator.userAgent);
    state.origin = await page.evaluate(() => location.origin);
    assert(state.origin === pageOrigin, `page origin ${state.origin}`);
  }, async (page) => {
    await runCase('echo_text_arraybuffer_close_1000', async () => {
      const r = await page.evaluate((u) => window.hfRun(u), `ws://127.0.0.1:${OK.port}/echo`);
      state.okResult = r;
      assert(!r.error, `${r.error}; events ${JSON.stringify(r.events)}`);
      assert(JSON.stringify(r.events) === '["open","close"]', `events ${JSON.stringify(r.events)}, expected open, close`);
      assert(r.messages.length === 2, `${r.messages.length} messages`);
      assert(r.messages[0].type === 'text' && r.messages[0].data === 'hello from chromium \u00e9\u2713',
        `text echo ${JSON.stringify(r.messages[0])}`);
      const want = Array.from({ length: 256 }, (_, i) => i);
      assert(r.messages[1].type === 'binary' && JSON.stringify(r.messages[1].data) === JSON.stringify(want),
        `binary echo ${JSON.stringify(r.messages[1]).slice(0, 80)}`);
      assert(r.close.code === 1000 && r.close.wasClean === true,
        `close event ${JSON.stringify(r.close)}, expected code 1000 wasClean`);
    });

    await runCase('accepted_log_origin_user_agent', async () => {
      const acc = await waitEvent(OK.log, 'upgrade_accepted', (e) => e.origin === pageOrigin);
      assert(acc.path === '/echo', `path ${acc.path}`);
      assert(acc.user_agent === state.ua,
        `upgrade_accepted user_agent ${JSON.stringify(acc.user_agent)} != navigator.userAgent ${JSON.stringify(state.ua)}`);
      assert(/Chrome\//.test(acc.user_agent), `user_agent ${acc.user_agent} is not Chromium's`);
      const cl = await waitEvent(OK.log, 'closed', (e) => e.conn_id === acc.conn_id);
      assert(cl.code === 1000 && cl.who === 'client', `closed ${JSON.stringify(cl)}, expected code 1000 who client`);
      assert(cl.msgs_in === 2 && cl.msgs_out === 2, `closed counts ${JSON.stringify(cl)}, expected 2 in, 2 out`);
    });

    await runCase('rejected_origin_error_then_close_1006', async () => {
      const r = await page.evaluate((u) => window.hfRun(u), `ws://127.0.0.1:${NO.port}/echo`);
      assert(!r.error, `${r.error}; events ${JSON.stringify(r.events)}`);
      assert(JSON.stringify(r.events) === '["error","close"]', `events ${JSON.stringify(r.events)}, expected error, close`);
      assert(r.close.code === 1006 && r.close.wasClean === false,
        `close event ${JSON.stringify(r.close)}, expected code 1006, not clean`);
    });

    await runCase('rejected_origin_server_log', async () => {
      const ev = await waitEvent(NO.log, 'upgrade_rejected', (e) => e.origin === pageOrigin);
      assert(ev.reason === 'origin_rejected' && ev.status === 403,
        `upgrade_rejected ${JSON.stringify(ev)}, expected reason origin_rejected status 403`);
      assert(ev.path === '/echo', `path ${ev.path}`);
      assert(ev.user_agent === state.ua, `user_agent ${JSON.stringify(ev.user_agent)} != ${JSON.stringify(state.ua)}`);
      const acc = events(NO.log, 'upgrade_accepted');
      assert(acc.length === 0, `NO server accepted an upgrade: ${JSON.stringify(acc[0])}`);
    });
  });
  return runCase.failed;
}
