// SPDX-License-Identifier: MIT
// Shared by the browser interop clients (chromium.mjs, centrifuge_chromium.mjs):
// the `serve-page` HTTP server for the test page, and a headless Chromium
// (Debian's /usr/bin/chromium, or $CHROMIUM) driven by playwright-core, which
// never downloads a browser. Every request stays on 127.0.0.1.
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// `node X.mjs serve-page PORTFILE` or the browser cases: serve ROUTES (see
// servePage) when the first argument is serve-page, otherwise await MAIN()
// (resolving with the number of failed cases) and exit 1 if any failed.
export async function servePageOrRun(routes, main) {
  if (process.argv[2] === 'serve-page') {
    servePage(routes, process.argv[3]);
  } else {
    const failed = await main();
    process.exit(failed ? 1 : 0);
  }
}

// A route answering 200 with TEXT as text/html.
export const htmlPage = (text) => () => ({ type: 'text/html; charset=utf-8', body: text });

// HTTP server on 127.0.0.1:0 for ROUTES, { '/path': () => ({ type, body }) }:
// 200 with that Content-Type and Cache-Control: no-store, 500 with the
// message as text/plain when the route throws, 404 for any other path. The
// port goes to PORTFILE (written whole: PORTFILE.tmp, then renamed). The
// process exits on SIGTERM, and after 180 s even if nobody stops it.
export function servePage(routes, portFile) {
  const srv = http.createServer((req, res) => {
    const route = Object.hasOwn(routes, req.url) ? routes[req.url] : null;
    if (!route) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found\n');
      return;
    }
    let r;
    try { r = route(); } catch (e) {
      res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(`${e.message}\n`);
      return;
    }
    res.writeHead(200, { 'Content-Type': r.type, 'Cache-Control': 'no-store' });
    res.end(r.body);
  });
  srv.listen(0, '127.0.0.1', () => {
    writeFileSync(portFile + '.tmp', String(srv.address().port));
    renameSync(portFile + '.tmp', portFile);
  });
  setTimeout(() => process.exit(0), 180000);
  process.on('SIGTERM', () => process.exit(0));
}

// Headless Chromium with the profile directory UDD, every request kept on
// loopback; resolves with playwright's persistent context (launch limit 30 s).
export async function launchChromium(udd) {
  const { chromium } = await import('playwright-core');
  return chromium.launchPersistentContext(udd, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30000,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // keep every request on loopback
      '--no-proxy-server', '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
      '--disable-domain-reliability', '--no-pings',
    ],
  });
}

// The browser part of a suite, for the case runner RUN (serverlog.mjs
// caseRunner): case 'launch' (40 s) starts Chromium with a throw-away profile
// in /tmp and awaits SETUP(page) on its first page; then CASES(page) runs the
// remaining cases. If the launch case fails, each name in LATER is a FAIL
// "browser did not start" instead. The browser is closed (at most 10 s) and
// its profile removed in any case.
export async function withChromium(run, later, setup, cases) {
  const udd = mkdtempSync('/tmp/hf-chromium-');
  let ctx = null;
  try {
    let page = null;
    const launched = await run('launch', async () => {
      ctx = await launchChromium(udd);
      const p = ctx.pages()[0] || (await ctx.newPage());
      await setup(p);
      page = p;
    }, 40000);
    if (!launched) {
      for (const n of later) run.fail(n, 'browser did not start');
      return;
    }
    await cases(page);
  } finally {
    if (ctx) {
      await Promise.race([ctx.close().catch(() => {}), new Promise((r) => setTimeout(r, 10000))]);
    }
    rmSync(udd, { recursive: true, force: true });
  }
}
