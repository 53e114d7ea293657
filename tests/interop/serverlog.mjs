// SPDX-License-Identifier: MIT
// Shared by the Node interop clients: read the server's JSON log lines and
// wait (bounded) for an event, a plain assert and the bounded case runner
// that prints the PASS/FAIL lines; for the real-time suites also an HS256
// JWT signer and a bounded server API call (node:http).
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function events(log, name) {
  const out = [];
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const ev = JSON.parse(line);
      if (!name || ev.event === name) out.push(ev);
    } catch { /* partial line */ }
  }
  return out;
}

export async function waitEvent(log, name, pred = () => true, ms = 5000) {
  const end = Date.now() + ms;
  for (;;) {
    const ev = events(log, name).find(pred);
    if (ev) return ev;
    if (Date.now() > end) {
      const tail = readFileSync(log, 'utf8').slice(-1500);
      throw new Error(`no ${name} event matching within ${ms} ms; log tail:\n${tail}`);
    }
    await sleep(20);
  }
}

export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// HS256 JWT over `claims` (header {"alg":"HS256","typ":"JWT"}), base64url.
export function hs256(secret, claims) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc(claims)}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}

export const nowS = () => Math.floor(Date.now() / 1000);

// POST http://127.0.0.1:PORT/api/METHOD with X-API-Key; resolves with
// { status, body, json } (json null when the body is not JSON). Bounded.
export function apiPost(port, key, method, body, ms = 5000) {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = http.request({
      host: '127.0.0.1', port, method: 'POST', path: `/api/${method}`,
      headers: { 'Content-Type': 'application/json', 'Content-Length': data.length, 'X-API-Key': key },
      timeout: ms,
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, body: text, json });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`POST /api/${method}: no answer within ${ms} ms`)));
    req.on('error', reject);
    req.end(data);
  });
}

// A case runner for SUITE: run(NAME, FN, MS) awaits FN() for at most MS
// milliseconds (default `ms`) and prints "PASS SUITE/NAME (1.23s)" or
// "FAIL SUITE/NAME: <first line of the error>" with its further lines
// indented; then awaits `after()` (per-case cleanup) if given. It resolves
// true when the case passed. With `clip` the error text loses ANSI colour
// codes (playwright's messages carry them) and blank lines, and at most 29
// further lines are printed. run.fail(NAME, WHY) prints a FAIL line for a
// case that could not run; run.failed counts the failures.
export function caseRunner(suite, { ms: defaultMs = 15000, after = null, clip = false } = {}) {
  async function run(name, fn, ms = defaultMs) {
    const t0 = Date.now();
    let timer;
    try {
      await Promise.race([
        fn(),
        new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms`)), ms); }),
      ]);
      console.log(`PASS ${suite}/${name} (${((Date.now() - t0) / 1000).toFixed(2)}s)`);
      return true;
    } catch (e) {
      run.failed++;
      let text = String(e && e.message ? e.message : e);
      // eslint-disable-next-line no-control-regex
      if (clip) text = text.replace(/\x1b\[[0-9;]*m/g, '');
      let lines = text.split('\n');
      if (clip) lines = lines.filter((l) => l.trim() !== '');
      console.log(`FAIL ${suite}/${name}: ${lines[0]}`);
      for (const l of lines.slice(1, clip ? 30 : undefined)) console.log(`  ${l}`);
      return false;
    } finally {
      clearTimeout(timer);
      if (after) await after();
    }
  }
  run.failed = 0;
  run.fail = (name, why) => {
    run.failed++;
    console.log(`FAIL ${suite}/${name}: ${why}`);
  };
  return run;
}
