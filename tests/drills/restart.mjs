// SPDX-License-Identifier: MIT
// Shared by drill_restart.mjs (SIGTERM) and drill_crash.mjs (SIGKILL):
// 2,000 protocol clients (`holdfast bench -m reconnect --rt --trigger
// server`, the SDK's full-jitter backoff, 0.5 s to 5 s) and three SDK
// subscribers; the server is stopped with SIG and a new one started on the
// same port; the arrival curve of the reconnections is the result.
import { spawn } from 'node:child_process';
import readline from 'node:readline';
import { BIN, SECRET, startServer, bystanders, resultOf, tsOf, sleep, sdk } from './kit.mjs';

const N = 2000;

export async function restartDrill(d, sig) {
  const cfg = { channel: { without_namespace: { allow_subscribe_for_client: true } } };
  const args = ['--shutdown.timeout=5s'];
  const srv1 = await startServer(d, args, { config: cfg });
  const port = srv1.port;
  const subs = await bystanders(d, srv1, 'news', 3, 'sdk');
  const bench = spawn(BIN, ['bench', '-m', 'reconnect', '--rt', '-t', SECRET, '-u', `ws://127.0.0.1:${port}/connection/websocket`,
    '-c', String(N), '--trigger', 'server', '--wait', '30', '--min-delay', '0.5', '--max-delay', '5', '--bucket', '0.25'],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  d.defer(() => bench.kill('SIGKILL'));
  let out = '';
  const lines = readline.createInterface({ input: bench.stdout });
  const up = new Promise((resolve) => lines.on('line', (l) => { out += `${l}\n`; if (l.includes('clients up')) resolve(); }));
  bench.stderr.on('data', (b) => { out += b; });
  const exited = new Promise((resolve) => bench.on('exit', resolve));
  await Promise.race([up, sleep(60000).then(() => { throw new Error(`the bench's ${N} clients did not come up: ${out.slice(-500)}`); })]);

  const t0 = Date.now();
  srv1.signal(sig);
  const e = await srv1.exit;
  const tDown = Date.now() - t0;
  d.did(`${N} protocol clients (bench, full-jitter backoff 0.5-5 s) and 3 SDK subscribers; server sent ${sig}; it exited (${e.code ?? e.sig}) after ${(tDown / 1000).toFixed(2)} s; a new server started on the same port`);
  const srv2 = await startServer(d, args, { config: cfg, port });
  const tUp = Date.now() - t0;
  d.time('new server listening after', tUp);
  const code = await Promise.race([exited, sleep(60000).then(() => null)]);
  if (code === null) throw new Error('the bench did not finish within 60 s');
  const r = resultOf(out);
  const curve = (r.curve || '').split(',').map(Number);
  d.saw('bench', `${r.reconnected} of ${N} back ${r.all_back_s} s after the drop; per client p50 ${r.p50_s} s p99 ${r.p99_s} s; ${r.attempts} attempts; peak ${r.peak_per_s}/s`);
  d.saw('arrivals', `per 0.25 s: ${curve.join(' ')}`);
  await d.until(() => subs.every((b) => b.c.state === 'connected' && b.s.state === 'subscribed'), 20000, 'SDK subscribers did not come back');
  const drops = subs.map((b) => b.c.ev.find((x) => x.n === 'connecting' && x.ctx.t >= t0)?.ctx);
  d.saw('SDK', `connecting: ${[...new Set(drops.map((c) => `${c?.code} "${c?.reason}"`))].join(', ')}`);
  return { srv1, srv2, r, curve, drops, subs, code, t0, tDown, tUp, out };
}

// After the restart: one publication on the new server reaches all SDK
// subscribers; the bench's clients all came back (exit 0).
export async function checkAfter(d, x) {
  const before = x.subs.map((b) => b.s.data.length);
  const t = Date.now();
  await sdk.api(x.srv2, 'publish', { channel: 'news', data: { n: -1, t } });
  const lat = await d.until(() => x.subs.every((b, i) => b.s.data.length > before[i]), 5000, 'a publication after the restart did not arrive', t);
  d.check('recovered', x.code === 0 && x.r.reconnected === String(N),
    `all ${N} bench clients reconnected, the last ${x.r.all_back_s} s after the drop (spread by the jitter: peak ${x.r.peak_per_s}/s)`);
  d.check('unhurt', lat < 1000, `every SDK subscriber is back and got a new publication in ${lat} ms; the new server took the storm (${x.r.attempts} attempts for ${N} clients)`);
  return tsOf;
}
