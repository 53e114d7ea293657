// SPDX-License-Identifier: MIT
// The failure-drill framework: start the real holdfast (and `holdfast
// chaos`) on loopback, read their JSON logs and holdfast's /metrics, run
// `centrifuge` SDK clients (tests/interop/sdkkit.mjs) and raw clients, and
// record what a drill did, what each side saw, its timings and the four
// checks every drill makes (detected, explained, recovered, others unhurt).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as sdk from '../interop/sdkkit.mjs';
import { hs256, sleep, assert, nowS } from '../interop/serverlog.mjs';
import WebSocket from '../interop/node_modules/ws/wrapper.mjs';
import { Centrifuge } from '../interop/node_modules/centrifuge/build/index.mjs';

export { sdk, hs256, sleep, assert, nowS, WebSocket, Centrifuge };

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = process.env.HOLDFAST_BIN || path.join(ROOT, 'build/holdfast');
export const SECRET = 'holdfast-drill-secret-0123456789abcdef';
export const API_KEY = 'holdfast-drill-api-key';
const SAN = /AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer/;

sdk.configure({ token: (user) => hs256(SECRET, { sub: user }), apiKey: API_KEY });

// ---- processes ----------------------------------------------------------------------

function parseLines(text, name) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const ev = JSON.parse(line);
      if (!name || ev.event === name) out.push(ev);
    } catch { /* a partial line */ }
  }
  return out;
}

// A holdfast or chaos process whose stderr (JSON log lines) goes to a
// temporary file; ready when its listening line shows.
class Proc {
  constructor(kind, args, readyEvent, env) {
    this.kind = kind;
    this.logPath = path.join(os.tmpdir(), `hf-drill-${kind}-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.log`);
    this.fd = fs.openSync(this.logPath, 'w');
    this.proc = spawn(BIN, args, { stdio: ['ignore', 'ignore', this.fd], env: { ...process.env, ...env } });
    this.exit = new Promise((r) => this.proc.on('exit', (code, sig) => r({ code, sig })));
    this.readyEvent = readyEvent;
    this.exited = null;
    this.exit.then((e) => { this.exited = e; });
  }

  log() { return fs.readFileSync(this.logPath, 'utf8'); }
  events(name) { return parseLines(this.log(), name); }

  async waitEvent(name, pred = () => true, ms = 5000) {
    const end = Date.now() + ms;
    for (;;) {
      const ev = this.events(name).find(pred);
      if (ev) return ev;
      if (Date.now() > end) throw new Error(`${this.kind}: no ${name} event matching within ${ms} ms; log tail:\n${this.log().slice(-1500)}`);
      await sleep(20);
    }
  }

  async ready(ms = 10000) {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const ev = this.events(this.readyEvent)[0];
      if (ev) return ev;
      if (this.exited) break;
      await sleep(20);
    }
    throw new Error(`${this.kind} did not start: ${this.log().slice(-1500)}`);
  }

  signal(sig) { if (!this.exited) this.proc.kill(sig); }

  // SIGTERM, then require exit status 0 (or the signal expected) and a log
  // without sanitizer reports.
  async stop(ms = 15000) {
    this.signal('SIGTERM');
    const e = await Promise.race([this.exit, sleep(ms).then(() => null)]);
    if (!e) {
      this.signal('SIGKILL');
      await this.exit;
      throw new Error(`${this.kind} did not exit within ${ms} ms of SIGTERM`);
    }
    this.checkLog();
    if (e.code !== 0) throw new Error(`${this.kind} exited with ${e.code ?? e.sig}; log tail:\n${this.log().slice(-1500)}`);
  }

  checkLog() {
    const m = this.log().match(SAN);
    if (m) throw new Error(`${this.kind} log shows a sanitizer report: ${this.log().slice(Math.max(0, m.index - 200), m.index + 1500)}`);
  }

  async kill() {
    this.signal('SIGKILL');
    await this.exit;
  }

  cleanup() {
    try { fs.closeSync(this.fd); } catch { /* closed */ }
    if (!process.env.HF_KEEP_LOGS) { try { fs.unlinkSync(this.logPath); } catch { /* gone */ } }
  }
}

// holdfast serve on 127.0.0.1 (port 0: any free port; a restart drill passes
// the old one). Token secret and API key are the kit's. config: an object
// written to a temporary --config file.
export async function startServer(d, args = [], { port = 0, workers = 1, config = null, env = {} } = {}) {
  const a = ['serve', '--listen', `127.0.0.1:${port}`, '--workers', String(workers),
    `--client.token.hmac_secret_key=${SECRET}`, `--http_api.key=${API_KEY}`];
  if (config) {
    const f = path.join(os.tmpdir(), `hf-drill-cfg-${process.pid}-${Date.now()}.json`);
    fs.writeFileSync(f, JSON.stringify(config));
    d.defer(() => fs.rmSync(f, { force: true }));
    a.push('--config', f);
  }
  const p = new Proc('server', [...a, ...args], 'listening', env);
  d.procs.push(p);
  p.port = (await p.ready()).port;
  return p;
}

// holdfast chaos in front of upstreamPort, with its control endpoint.
export async function startChaos(d, upstreamPort, args = []) {
  const p = new Proc('chaos', ['chaos', '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${upstreamPort}`,
    '--control', '127.0.0.1:0', ...args], 'chaos_listening', {});
  d.procs.push(p);
  const ev = await p.ready();
  p.port = ev.port;
  p.controlPort = ev.control_port;
  p.call = (method, pth, body) => httpJson(p.controlPort, method, pth, body);
  p.rules = async (rules, conn) => {
    const r = await p.call('POST', `/rules${conn ? `?conn=${conn}` : ''}`, rules);
    assert(r.status === 200, `chaos POST /rules: ${r.status} ${r.body}`);
  };
  p.stats = async () => (await p.call('GET', '/stats')).json;
  return p;
}

// Run `holdfast ARGS...` (bench, for instance) to its end, at most ms;
// resolves with { code, out } (stdout and stderr together).
export function runBin(args, ms) {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (b) => { out += b; });
    p.stderr.on('data', (b) => { out += b; });
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`holdfast ${args.join(' ')}: no exit within ${ms} ms`)); }, ms);
    p.on('exit', (code) => { clearTimeout(timer); resolve({ code, out }); });
  });
}

// The KEY=VALUE fields of a bench's RESULT line (values may hold spaces).
export const resultOf = (out) => Object.fromEntries(((out.split('\n').find((l) => l.startsWith('RESULT ')) || '').slice(7)
  .match(/(\w+)=(.*?)(?= \w+=|$)/g) || []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));

// ---- HTTP, metrics -------------------------------------------------------------------

export function httpJson(port, method, pth, body, ms = 5000, headers = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const req = http.request({ host: '127.0.0.1', port, method, path: pth, timeout: ms, agent: false,
      headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length, ...headers } : headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, body: text, json });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${pth}: no answer within ${ms} ms`)));
    req.on('error', reject);
    req.end(data);
  });
}

// POST /api/METHOD with the kit's API key: { status, body, json }, errors
// included (sdk.api rejects on them).
export const apiCall = (port, method, body, ms = 5000) => httpJson(port, 'POST', `/api/${method}`, body, ms, { 'X-API-Key': API_KEY });

// GET /metrics: a function (name, labels) -> the sum of the samples of that
// name whose labels include the given ones.
export async function metrics(port) {
  const r = await httpJson(port, 'GET', '/metrics');
  assert(r.status === 200, `GET /metrics: ${r.status}`);
  const samples = [];
  for (const line of r.body.split('\n')) {
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const kv of (m[3] || '').matchAll(/(\w+)="([^"]*)"/g)) labels[kv[1]] = kv[2];
    samples.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return (name, want = {}) => samples
    .filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

// Poll /metrics (every 100 ms, at most ms) until f(m) is true; resolves
// with the time it became true.
export async function untilMetric(port, f, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const t = Date.now();
    if (f(await metrics(port))) return t;
    if (Date.now() > end) throw new Error(`${what} (waited ${ms} ms)`);
    await sleep(100);
  }
}

// ---- clients ---------------------------------------------------------------------------

// A centrifuge SDK client (user name = the server log's "user"), connected
// and subscribed to ch; resolves once subscribed.
export async function sdkSubscriber(d, port, user, ch, opts = {}, subOpts = {}) {
  const c = sdk.client(port, user, opts);
  for (const n of ['connecting', 'connected', 'disconnected', 'error'])
    c.on(n, (ctx) => { if (ctx) ctx.t = Date.now(); });
  const s = sdk.subscription(c, ch, subOpts);
  d.defer(() => { try { c.disconnect(); } catch { /* gone */ } });
  await sdk.subscribed(c, s);
  return { c, s };
}

// When a log line was written (its "ts"), in ms since the epoch.
export const tsOf = (ev) => Date.parse(ev.ts);

// The server's connection id of a connected SDK client (by its user name).
export async function connIdOf(srv, user, ms = 5000) {
  return (await srv.waitEvent('client_connected', (e) => e.user === user, ms)).conn_id;
}

// The server's connection id of connection number n through chaos (the
// upstream-side address chaos logs is the remote the server logs).
export async function connIdViaChaos(srv, chaos, n, ms = 5000) {
  const up = await chaos.waitEvent('chaos_upstream', (e) => e.conn === n, ms);
  return (await srv.waitEvent('upgrade_accepted', (e) => e.remote === up.up_local, ms)).conn_id;
}

// Publish numbered messages into ch at a steady rate until stop() is called;
// the subscribers given record when each arrived, so delivery and latency
// of the bystanders can be checked afterwards.
export function steadyPublisher(srv, ch, perSecond, padBytes = 0) {
  const p = { sent: [], stopped: false, errors: 0 };
  const pad = padBytes ? 'x'.repeat(padBytes) : undefined;
  const loop = (async () => {
    let n = 0;
    while (!p.stopped) {
      const t = Date.now();
      try {
        await sdk.api(srv, 'publish', { channel: ch, data: pad ? { n, t, pad } : { n, t } });
        p.sent.push(n);
      } catch { p.errors++; }
      n++;
      await sleep(Math.max(0, 1000 / perSecond - (Date.now() - t)));
    }
  })();
  p.stop = async () => { p.stopped = true; await loop; };
  return p;
}

// Bystanders' delivery: every sent number exactly once, in order, and the
// publish-to-delivery latency (ms) quantiles across them.
export function deliveryOf(subs, sent) {
  const lat = [];
  const problems = [];
  for (const { s, user } of subs) {
    const ns = s.data.map((x) => x.n);
    const want = sent.join(',');
    if (ns.join(',') !== want) problems.push(`${user}: got ${ns.length} of ${sent.length} (first difference at ${ns.findIndex((v, i) => v !== sent[i])})`);
    for (let i = 0; i < s.data.length; i++) if (s.arrived && s.arrived[i]) lat.push(s.arrived[i] - s.data[i].t);
  }
  lat.sort((a, b) => a - b);
  const q = (f) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(f * lat.length))] : NaN);
  return { ok: problems.length === 0, problems, p50: q(0.5), p99: q(0.99), max: lat.length ? lat[lat.length - 1] : NaN, n: lat.length };
}

// Record arrival times of a subscription's publications (for deliveryOf).
export function timeArrivals(s) {
  s.arrived = [];
  s.on('publication', () => s.arrived.push(Date.now()));
}

// Bystanders: k SDK subscribers directly on the server, on channel ch.
export async function bystanders(d, srv, ch, k, prefix = 'bystander') {
  const out = [];
  for (let i = 0; i < k; i++) {
    const user = `${prefix}-${i}`;
    const b = await sdkSubscriber(d, srv.port, user, ch);
    timeArrivals(b.s);
    out.push({ ...b, user });
  }
  return out;
}

// The standard "nobody else hurt" check for bystanders fed by pub: every
// publication, in order, and p99 latency under limitMs.
export function checkBystanders(d, subs, pub, limitMs = 1000) {
  const r = deliveryOf(subs, pub.sent);
  d.check('unhurt', r.ok && pub.errors === 0 && r.p99 < limitMs,
    `${subs.length} other subscribers: ${r.ok ? `all ${pub.sent.length} publications in order` : r.problems.slice(0, 3).join('; ')}` +
    `, ${pub.errors} publish errors, latency p50 ${r.p50} ms p99 ${r.p99} ms max ${r.max} ms (limit p99 < ${limitMs} ms)`);
  const again = subs.filter((b) => b.c.ev.filter((e) => e.n === 'connected').length !== 1);
  d.check('unhurt', again.length === 0,
    `other clients stayed connected${again.length ? `: ${again.map((b) => b.user).join(', ')} did not` : ''}`);
}

// ---- a drill ---------------------------------------------------------------------------

const KINDS = ['detected', 'explained', 'recovered', 'unhurt'];

export class Drill {
  constructor(name) {
    this.name = name;
    this.procs = [];
    this.cleanups = [];
    this.lines = [];
    this.checks = [];
    this.t0 = Date.now();
  }

  did(text) { this.lines.push(['did', text]); }
  saw(side, text) { this.lines.push([`saw ${side}`, text]); }
  time(label, ms) { this.lines.push(['time', `${label}: ${(ms / 1000).toFixed(2)} s`]); }
  defer(fn) { this.cleanups.push(fn); }
  check(kind, ok, detail) {
    if (!KINDS.includes(kind)) throw new Error(`unknown check kind ${kind}`);
    this.checks.push({ kind, ok: !!ok, detail });
  }

  // Bounded wait for a condition; its time since `from` is returned.
  async until(fn, ms, what, from = Date.now()) {
    await sdk.until(fn, ms, what);
    return Date.now() - from;
  }

  verdict() {
    const missing = KINDS.filter((k) => !this.checks.some((c) => c.kind === k));
    const failed = this.checks.filter((c) => !c.ok);
    return { ok: missing.length === 0 && failed.length === 0, missing, failed };
  }

  // Stop every process (SIGTERM, exit 0, clean logs unless the drill
  // killed them), run the cleanups. Errors are returned, not thrown.
  async finish() {
    const errs = [];
    for (const f of this.cleanups.splice(0).reverse()) { try { await f(); } catch (e) { errs.push(String(e.message || e)); } }
    sdk.clients.clear();
    for (const p of this.procs) {
      try {
        if (p.exited) p.checkLog();
        else await p.stop();
      } catch (e) { errs.push(String(e.message || e)); }
      p.cleanup();
    }
    return errs;
  }
}
