// SPDX-License-Identifier: MIT
// Load generator of scripts/bench-evproxy.sh (npm `ws` from tests/interop):
//   connects  N connect commands, at most C in flight: with an HS256 token
//             (verified locally) and with a cookie through the connect proxy;
//             connects/s and connect latency p50/p99 (WebSocket handshake to
//             connect reply), and the proxy's added latency (the difference)
//   rpc       K proxy-connected clients, each with one rpc in flight, for D
//             seconds: RPCs/s and p50/p99; next to the same answer fetched
//             directly from the backend over keep-alive HTTP with K requests
//             in flight (added latency = rpc - direct)
// Environment: HF_PORT, BE_PORT, HF_SECRET, N, C, K, D. Prints RESULT lines.
import { createHmac } from 'node:crypto';
import http from 'node:http';
import WebSocket from '../tests/interop/node_modules/ws/index.js';

const env = process.env;
const URL = `ws://127.0.0.1:${env.HF_PORT}/connection/websocket`;
const N = +(env.N || 2000), C = +(env.C || 50), K = +(env.K || 50), D = +(env.D || 5);
const b64u = (b) => Buffer.from(b).toString('base64url');
const token = (sub) => {
  const h = b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const p = b64u(JSON.stringify({ sub, exp: Math.floor(Date.now() / 1000) + 3600 }));
  return `${h}.${p}.${createHmac('sha256', env.HF_SECRET).update(`${h}.${p}`).digest('base64url')}`;
};
const pct = (a, q) => a[Math.min(a.length - 1, Math.floor(q * a.length))];
const ms = (ns) => Number(ns) / 1e6;

function connectOnce(i, viaProxy) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const opts = viaProxy ? { headers: { Cookie: `session=u${i}` } } : {};
    const ws = new WebSocket(URL, opts);
    const timer = setTimeout(() => { ws.terminate(); reject(new Error('connect timeout')); }, 10000);
    ws.on('open', () => ws.send(JSON.stringify({ id: 1, connect: viaProxy ? {} : { token: token(`u${i}`) } })));
    ws.on('message', (m) => {
      clearTimeout(timer);
      const r = JSON.parse(String(m).split('\n')[0]);
      ws.terminate();
      if (!r.connect) return reject(new Error(`connect failed: ${String(m)}`));
      resolve(process.hrtime.bigint() - t0);
    });
    ws.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

async function connects(viaProxy) {
  const lat = [];
  let next = 0, failed = 0;
  const t0 = process.hrtime.bigint();
  async function worker() {
    while (next < N) {
      const i = next++;
      try { lat.push(ms(await connectOnce(i, viaProxy))); } catch { failed++; }
    }
  }
  await Promise.all(Array.from({ length: C }, worker));
  const secs = ms(process.hrtime.bigint() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return { rate: lat.length / secs, p50: pct(lat, 0.5), p99: pct(lat, 0.99), failed };
}

async function rpcs() {
  const clients = await Promise.all(Array.from({ length: K }, (_, i) => new Promise((res, rej) => {
    const ws = new WebSocket(URL, { headers: { Cookie: `session=r${i}` } });
    ws.on('open', () => ws.send('{"id":1,"connect":{}}'));
    ws.once('message', () => res(ws));
    ws.on('error', rej);
  })));
  const lat = [];
  let failed = 0;
  const end = Date.now() + D * 1000;
  await Promise.all(clients.map((ws) => new Promise((resolve) => {
    let id = 1, t0;
    const send = () => {
      if (Date.now() >= end) return resolve();
      t0 = process.hrtime.bigint();
      ws.send(JSON.stringify({ id: ++id, rpc: { method: 'bench', data: { n: id } } }));
    };
    ws.on('message', (m) => {
      const s = String(m);
      if (s === '{}') return ws.send('{}');
      if (!s.includes('"rpc"')) failed++;
      lat.push(ms(process.hrtime.bigint() - t0));
      send();
    });
    send();
  })));
  for (const ws of clients) ws.terminate();
  lat.sort((a, b) => a - b);
  return { rate: lat.length / D, p50: pct(lat, 0.5), p99: pct(lat, 0.99), failed };
}

async function direct() {
  const agent = new http.Agent({ keepAlive: true, maxSockets: K });
  const lat = [];
  const end = Date.now() + D * 1000;
  const one = () => new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = http.request({ host: '127.0.0.1', port: +env.BE_PORT, path: '/direct', method: 'POST',
      agent, headers: { 'Content-Type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(ms(process.hrtime.bigint() - t0)));
    });
    req.on('error', reject);
    req.end('{"method":"bench","data":{"n":1}}');
  });
  await Promise.all(Array.from({ length: K }, async () => {
    while (Date.now() < end) lat.push(await one());
  }));
  agent.destroy();
  lat.sort((a, b) => a - b);
  return { rate: lat.length / D, p50: pct(lat, 0.5), p99: pct(lat, 0.99), failed: 0 };
}

const f = (x) => x.toFixed(2);
const line = (name, r) => console.log(`RESULT ${name} rate=${r.rate.toFixed(0)}/s p50=${f(r.p50)}ms p99=${f(r.p99)}ms failed=${r.failed}`);
const tok = await connects(false);
line(`connect-token n=${N} c=${C}`, tok);
const px = await connects(true);
line(`connect-proxy n=${N} c=${C}`, px);
console.log(`RESULT connect-added p50=${f(px.p50 - tok.p50)}ms p99=${f(px.p99 - tok.p99)}ms ratio=${(px.rate / tok.rate).toFixed(2)}`);
const dir = await direct();
line(`backend-direct k=${K} d=${D}s`, dir);
const rpc = await rpcs();
line(`rpc-proxy k=${K} d=${D}s`, rpc);
console.log(`RESULT rpc-added p50=${f(rpc.p50 - dir.p50)}ms p99=${f(rpc.p99 - dir.p99)}ms`);
process.exit(tok.failed + px.failed + rpc.failed ? 1 : 0);
