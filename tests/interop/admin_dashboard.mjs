// SPDX-License-Identifier: MIT
// The admin dashboard in a real browser (Debian's headless Chromium via
// playwright-core). First a scripted load against the server (SRV_PORT,
// SRV_LOG; config from test_admin_dashboard.sh): 12 real-time clients over
// Node's `ws` (10 on "news", 2 on "sports"), 3 upgrades refused by origin,
// one client whose burst of 40 commands runs into client.rate_limit (111),
// one slow consumer (a paused socket flooded through the server API until
// the server closes it with 3008) and publications to "news" all along.
// Then the page: a wrong password is refused, the right one opens the live
// view, and the DOM must show those figures (clients, close code 3008, the
// origin rejections, the rate-limit hits, the slow-consumer count, top channels by subscribers
// and by publication rate, RTT, loop lag, the connections chart). A
// screenshot goes to SHOT_DIR. Last, the connection search finds one user
// and its disconnect button closes that client with the chosen code; the
// "all of user" button closes both connections of another user.
import WebSocket from 'ws';
import { statSync } from 'node:fs';
import { events, waitEvent, assert, caseRunner, hs256, nowS, apiPost, sleep } from './serverlog.mjs';
import { withChromium } from './browser.mjs';

const SUITE = 'interop/admin_dashboard';
const PORT = +process.env.SRV_PORT;
const LOG = process.env.SRV_LOG;
const SHOT_DIR = process.env.SHOT_DIR;
const URL = `ws://127.0.0.1:${PORT}/connection/websocket`;
const API_KEY = 'dash-api-key';
const SECRET = 'dash-token-secret';

// A real-time client: connect with a token for USER, subscribe to CHANNELS,
// answer the server's {} pings. Resolves once every reply arrived.
function rtClient(user, channels) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(URL);
    const c = { ws, user, closed: null };
    let want = 1 + channels.length;
    const timer = setTimeout(() => reject(new Error(`client ${user} not ready in 10 s`)), 10000);
    ws.on('open', () => {
      const cmds = [{ id: 1, connect: { token: hs256(SECRET, { sub: user, exp: nowS() + 3600 }) } }];
      channels.forEach((ch, i) => cmds.push({ id: 2 + i, subscribe: { channel: ch } }));
      ws.send(cmds.map((x) => JSON.stringify(x)).join('\n'));
    });
    ws.on('message', (data) => {
      for (const line of String(data).split('\n')) {
        if (line === '{}') { ws.send('{}'); continue; }
        const m = JSON.parse(line);
        if (m.error) { clearTimeout(timer); reject(new Error(`${user}: ${JSON.stringify(m.error)}`)); }
        if (m.connect) c.id = m.connect.client;
        if (m.id && --want === 0) { clearTimeout(timer); resolve(c); }
      }
    });
    ws.on('close', (code, reason) => { c.closed = { code, reason: String(reason) }; });
    ws.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

// A client that sends N commands in one frame (command_burst is 20):
// resolves with how many were refused with 111 (too many requests).
function abuser(n) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(URL);
    let refused = 0, left = n + 1;
    const timer = setTimeout(() => reject(new Error('abuser: no replies in 10 s')), 10000);
    ws.on('open', () => {
      const cmds = [{ id: 1, connect: { token: hs256(SECRET, { sub: 'abuser', exp: nowS() + 3600 }) } }];
      for (let i = 0; i < n; i++) cmds.push({ id: 2 + i, subscribe: { channel: `burst${i}` } });
      ws.send(cmds.map((x) => JSON.stringify(x)).join('\n'));
    });
    ws.on('message', (data) => {
      for (const line of String(data).split('\n')) {
        if (line === '{}') { ws.send('{}'); continue; }
        const m = JSON.parse(line);
        if (m.error && m.error.code === 111) refused++;
        if (m.id && --left === 0) { clearTimeout(timer); ws.terminate(); resolve(refused); }
      }
    });
    ws.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

function refusedByOrigin() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(URL, { origin: 'https://evil.example' });
    ws.on('unexpected-response', (req, res) => { resolve(res.statusCode); req.destroy(); });
    ws.on('open', () => reject(new Error('upgrade with a foreign origin was accepted')));
    ws.on('error', () => {});
  });
}

// What the page shows, for failure messages.
const pageState = (page) => page.evaluate(() => ({
  status: document.getElementById('status').textContent,
  clients: document.getElementById('clients').textContent,
  rttN: document.getElementById('rtt-n').textContent,
  closeCodes: document.getElementById('close-codes').innerText,
  rejections: document.getElementById('rejections').innerText,
  topPubs: document.getElementById('top-pubs').innerText,
  search: document.getElementById('search-total').textContent,
  results: document.querySelectorAll('#results tbody tr').length,
}));

// page.waitForFunction, failing with the page state and console errors.
async function waitPage(page, fn, ms, what) {
  try {
    await page.waitForFunction(fn, null, { timeout: ms, polling: 200 });
  } catch (e) {
    throw new Error(`${what} not shown within ${ms} ms; page: ${JSON.stringify(await pageState(page))}; ` +
      `console: ${JSON.stringify(consoleErrors.slice(-5))}`);
  }
}
const consoleErrors = [];

async function main() {
  const runCase = caseRunner(SUITE, { clip: true, ms: 30000 });
  const clients = [];
  let pubTimer = null;
  let limitedCount = 0;
  const later = ['wrong_password_refused', 'live_figures_in_dom', 'screenshot',
    'search_and_disconnect_4001'];

  const loaded = await runCase('scripted_load', async () => {
    for (let i = 0; i < 12; i++) clients.push(await rtClient(`user${i}`, [i < 10 ? 'news' : 'sports']));
    for (let i = 0; i < 3; i++) assert(await refusedByOrigin() === 403, 'origin refusal is not 403');
    limitedCount = await abuser(40);
    assert(limitedCount >= 10, `only ${limitedCount} of 40 commands refused with 111`);
    const slow = await rtClient('slowpoke', ['flood']);
    slow.ws._socket.pause(); // reads nothing from now on
    const data = 'x'.repeat(30000);
    for (let i = 0; i < 600 && !slow.closed; i += 8) {
      if (events(LOG, 'closed').some((e) => e.code === 3008)) break;
      await Promise.all(Array.from({ length: 8 }, () =>
        apiPost(PORT, API_KEY, 'publish', { channel: 'flood', data: { d: data } })));
    }
    await waitEvent(LOG, 'closed', (e) => e.code === 3008, 10000);
    slow.ws.terminate();
    pubTimer = setInterval(() => {
      apiPost(PORT, API_KEY, 'publish', { channel: 'news', data: { n: 1 } }).catch(() => {});
    }, 100);
  }, 60000);
  if (!loaded) {
    for (const n of later) runCase.fail(n, 'the load did not complete');
    return runCase.failed;
  }

  await withChromium(runCase, later, async (page) => {
    const resp = await page.goto(`http://127.0.0.1:${PORT}/admin/`, { timeout: 10000 });
    assert(resp && resp.status() === 200, `page status ${resp && resp.status()}`);
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    await page.waitForSelector('#password', { state: 'visible', timeout: 10000 });
  }, async (page) => {
    await runCase('wrong_password_refused', async () => {
      await page.fill('#password', 'not-it');
      await page.click('#login-form button');
      await page.waitForFunction(() => /wrong admin password/.test(document.getElementById('login-error').textContent),
        null, { timeout: 10000 });
      await waitEvent(LOG, 'admin_login_failed');
    });

    await runCase('live_figures_in_dom', async () => {
      await page.fill('#password', 'dash-pass');
      await page.click('#login-form button');
      await page.waitForFunction(() => document.getElementById('status').textContent === 'live', null,
        { timeout: 10000 });
      // one snapshot a second: wait until the figures settle (RTT needs a ping)
      await waitPage(page, () => {
        const t = (id) => document.getElementById(id).textContent;
        const row = (tb, k, v) => document.querySelector(`#${tb} tr[data-${k}="${v}"] td:last-child`);
        const pub = document.querySelector('#top-pubs tr[data-channel="news"]');
        return t('clients') === '12' && row('close-codes', 'code', '3008') && row('rate-limited', 'limit', 'command') &&
          row('rejections', 'reason', 'origin_rejected') && pub && +t('rtt-n') >= 12;
      }, 30000, 'the load figures'); // RTT: after the first ping, 5 s in
      const dom = await page.evaluate(() => {
        const t = (id) => document.getElementById(id).textContent;
        const cell = (sel) => document.querySelector(sel).textContent;
        const subs = [...document.querySelectorAll('#top-subs tr')].map((tr) => [tr.cells[0].textContent, tr.cells[1].textContent]);
        return {
          clients: t('clients'), connections: +t('connections'),
          c3008: +cell('#close-codes tr[data-code="3008"] td:last-child'),
          origin: +cell('#rejections tr[data-reason="origin_rejected"] td:last-child'),
          limited: +cell('#rate-limited tr[data-limit="command"] td:last-child'),
          slow: +t('slow-disconnected'), subs,
          newsRate: parseFloat(cell('#top-pubs tr[data-channel="news"] td:last-child')),
          rttAvg: parseFloat(t('rtt-avg')), lag: parseFloat(t('lag-max')), lagWorkers: t('lag-workers'),
          connRate: parseFloat(t('conn-rate')),
          chartPoints: document.querySelector('#chart-conns polyline').getAttribute('points').split(' ').length,
        };
      });
      assert(dom.connections >= 12, `connections ${dom.connections}`);
      assert(dom.c3008 >= 1, `close code 3008 count ${dom.c3008}`);
      assert(dom.origin >= 3, `origin_rejected ${dom.origin}`);
      assert(dom.limited >= limitedCount, `rate-limited commands ${dom.limited}, the abuser saw ${limitedCount}`);
      assert(dom.slow >= 1, `slow consumers disconnected ${dom.slow}`);
      assert(JSON.stringify(dom.subs[0]) === '["news","10"]' && JSON.stringify(dom.subs[1]) === '["sports","2"]',
        `top channels by subscribers ${JSON.stringify(dom.subs)}`);
      assert(dom.newsRate > 0, `news publication rate ${dom.newsRate}`);
      assert(dom.rttAvg > 0 && dom.lag >= 0 && /per worker: [\d.]+, [\d.]+$/.test(dom.lagWorkers),
        `rtt ${dom.rttAvg} lag ${dom.lag} ${dom.lagWorkers}`);
      assert(dom.connRate >= 0 && dom.chartPoints >= 2, `rate ${dom.connRate}, chart points ${dom.chartPoints}`);
    }, 45000);

    await runCase('screenshot', async () => {
      const path = `${SHOT_DIR}/dashboard.png`;
      await page.screenshot({ path, fullPage: true, timeout: 15000 });
      const size = statSync(path).size;
      assert(size > 20000, `screenshot only ${size} bytes`);
    });

    await runCase('search_and_disconnect_4001', async () => {
      const victim = clients[3];
      await page.fill('#q-user', 'user3');
      await page.fill('#d-code', '4001');
      await page.fill('#d-reason', 'bye from the dashboard');
      await page.click('#search button');
      await waitPage(page, () => document.querySelectorAll('#results tbody tr').length === 1, 10000,
        'one search result');
      const row = await page.evaluate(() => [...document.querySelectorAll('#results tbody tr td')].map((td) => td.textContent));
      assert(row[0] === victim.id && row[1] === 'user3' && row[5] === 'news', `row ${JSON.stringify(row)}`);
      await page.click('#results tbody tr button.danger:not(.user)');
      const end = Date.now() + 10000;
      while (!victim.closed && Date.now() < end) await sleep(50);
      assert(victim.closed && victim.closed.code === 4001 && victim.closed.reason === 'bye from the dashboard',
        `victim close ${JSON.stringify(victim.closed)}`);
      await page.waitForFunction(() => document.querySelectorAll('#results tbody tr').length === 0, null,
        { timeout: 5000 });
      // every connection of a user at once
      const more = await rtClient('user4', ['sports']);
      await page.fill('#q-user', 'user4');
      await page.fill('#d-code', '4002');
      await page.click('#search button');
      await waitPage(page, () => document.querySelectorAll('#results tbody tr').length === 2, 10000,
        'two connections of user4');
      await page.click('#results tbody tr button.user');
      const until = Date.now() + 10000;
      while (!(clients[4].closed && more.closed) && Date.now() < until) await sleep(50);
      assert(clients[4].closed && clients[4].closed.code === 4002 && more.closed && more.closed.code === 4002,
        `user4 closes ${JSON.stringify([clients[4].closed, more.closed])}`);
      await waitPage(page, () => document.getElementById('search-total').textContent === '2 connection(s) disconnected' &&
        document.querySelectorAll('#results tbody tr').length === 0, 5000, 'the disconnected count');
    });
  });
  clearInterval(pubTimer);
  for (const c of clients) c.ws.terminate();
  return runCase.failed;
}

process.exit(await main() ? 1 : 0);
