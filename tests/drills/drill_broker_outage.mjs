// SPDX-License-Identifier: MIT
// Broker outage: two holdfast nodes share a Redis (append-only file,
// fsync always); Redis is killed for 2 s and restarted with its data while
// publications flow into a channel with history. The nodes must report it
// (/health degraded, engine_up 0, engine_redis_down, server API error
// 100), keep their clients connected, and once Redis is back the
// subscriber on the other node ends with every accepted publication
// exactly once and in order.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startServer, sdkSubscriber, metrics, untilMetric, httpJson, apiCall, sdk, sleep } from './kit.mjs';

const REDIS = process.env.REDIS_SERVER || '/usr/bin/redis-server';

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

async function startRedis(d, port, dir) {
  const p = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes',
    '--appendfsync', 'always', '--save', '', '--daemonize', 'no', '--loglevel', 'warning'], { stdio: 'ignore' });
  const exit = new Promise((r) => p.on('exit', r));
  d.defer(async () => { if (p.exitCode === null && p.signalCode === null) { p.kill('SIGKILL'); await exit; } });
  await sdk.until(() => new Promise((r) => {
    const s = net.connect(port, '127.0.0.1', () => { s.destroy(); r(true); });
    s.on('error', () => r(false));
  }), 5000, 'redis-server did not start');
  return { p, exit };
}

export default {
  name: 'broker_outage',
  what: 'Redis killed for 2 s and restarted (with its data) under two nodes',
  ms: 60000,
  async run(d) {
    if (!fs.existsSync(REDIS)) throw new Error(`no redis-server at ${REDIS} (scripts/deps.sh installs it)`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-drill-redis-'));
    d.defer(() => fs.rmSync(dir, { recursive: true, force: true }));
    const rport = await freePort();
    let redis = await startRedis(d, rport, dir);
    const cfg = { engine: { type: 'redis', redis: { address: [`127.0.0.1:${rport}`] } },
      channel: { namespaces: [{ name: 'rec', history_size: 10000, history_ttl: '300s', force_recovery: true, allow_subscribe_for_client: true }] } };
    const a = await startServer(d, [], { config: cfg });
    const b = await startServer(d, [], { config: cfg });
    const sub = await sdkSubscriber(d, b.port, 'on-b', 'rec:orders', { minReconnectDelay: 100, maxReconnectDelay: 500 });
    const other = await sdkSubscriber(d, a.port, 'on-a', 'rec:orders', { minReconnectDelay: 100, maxReconnectDelay: 500 });
    const m0 = await metrics(a.port);
    // publish into node A at 20/s; remember which were accepted and which failed
    const pub = { ok: [], failed: [], codes: new Set(), stopped: false };
    const loop = (async () => {
      for (let n = 0; !pub.stopped; n++) {
        const r = await apiCall(a.port, 'publish', { channel: 'rec:orders', data: { n } })
          .catch((e) => ({ status: 0, body: String(e) }));
        if (r.status === 200 && r.json && !r.json.error) pub.ok.push(n);
        else { pub.failed.push(n); if (r.json && r.json.error) pub.codes.add(`${r.json.error.code}${r.json.error.temporary ? ' temporary' : ''}`); }
        await sleep(50);
      }
    })();
    await sleep(1000);
    const t0 = Date.now();
    redis.p.kill('SIGKILL');
    await redis.exit;
    d.did('two nodes on one Redis (AOF, fsync always); 20 publications/s into node A; an SDK subscriber on each node; Redis SIGKILLed');
    const tDown = (await untilMetric(a.port, (m) => m('holdfast_engine_up') === 0, 10000, 'engine_up stayed 1')) - t0;
    const health = await httpJson(a.port, 'GET', '/health');
    const down = await a.waitEvent('engine_redis_down', () => true, 5000);
    await sleep(2000);
    redis = await startRedis(d, rport, dir);
    const t1 = Date.now();
    d.did('Redis restarted on the same port with its append-only file, 2 s later');
    const tUp = (await untilMetric(a.port, (m) => m('holdfast_engine_up') === 1, 15000, 'engine_up did not return to 1')) - t1;
    await d.until(async () => (await httpJson(b.port, 'GET', '/health')).json?.status === 'ok', 15000, 'node B not healthy again');
    await sleep(1500);
    pub.stopped = true;
    await loop;
    d.saw('node A', `/health during the outage: ${health.status} ${health.body.slice(0, 120)}; log ${JSON.stringify(Object.fromEntries(Object.entries(down).filter(([k]) => k !== 'ts')))}`);
    d.saw('publisher', `${pub.ok.length} accepted, ${pub.failed.length} refused with ${[...pub.codes].join(', ') || 'no code'}`);
    d.time('engine_up 0 after the kill (first scrape after redis-server exited)', tDown);
    d.time('engine_up 1 after the restart', tUp);
    d.check('detected', health.json?.status === 'degraded' && tDown < 6000 && pub.failed.length > 0 && pub.ok.length > 20,
      `node A noticed within ${(tDown / 1000).toFixed(2)} s: /health "degraded", publishes refused instead of queued`);
    const m1 = await metrics(a.port);
    const disc = m1('holdfast_engine_disconnects_total') - m0('holdfast_engine_disconnects_total');
    d.check('explained', pub.codes.size >= 1 && [...pub.codes].every((c) => c.startsWith('100')) && down.event === 'engine_redis_down' && disc >= 1,
      `API error ${[...pub.codes].join(', ')}; log "engine_redis_down" (warn) then "engine_redis_up"; engine_disconnects_total +${disc}`);
    await a.waitEvent('engine_redis_up', (e) => Date.parse(e.ts) >= t1 - 100, 5000);
    // every accepted publication exactly once, in order; nothing else but
    // possibly a refused one whose reply was lost
    for (const [who, s] of [['on-b', sub.s], ['on-a', other.s]]) {
      await d.until(() => pub.ok.every((n) => s.data.some((x) => x.n === n)), 10000,
        () => `${who} is missing ${pub.ok.filter((n) => !s.data.some((x) => x.n === n)).slice(0, 5)}`);
      const ns = s.data.map((x) => x.n);
      const inOrder = ns.every((v, i) => i === 0 || v > ns[i - 1]);
      const extra = ns.filter((n) => !pub.ok.includes(n));
      d.check('recovered', inOrder && extra.every((n) => pub.failed.includes(n)),
        `${who}: all ${pub.ok.length} accepted publications, exactly once and in order${extra.length ? ` (+${extra.length} refused to the publisher but stored: a reply lost with Redis)` : ''}; resubscribes ${s.ev.filter((e) => e.n === 'subscribed').length - 1}, recovered: ${s.ev.filter((e) => e.n === 'subscribed').slice(1).map((e) => e.ctx.recovered).join(', ') || '-'}`);
    }
    const conns = [sub, other].map((x) => x.c.ev.filter((e) => e.n === 'connected').length);
    d.check('unhurt', conns.every((n) => n === 1), `clients stayed connected through the outage (connects: ${conns.join(', ')}); no reconnect storm`);
  },
};
