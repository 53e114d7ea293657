// SPDX-License-Identifier: MIT
// Runs the failure drills (tests/drills/drill_*.mjs): each starts holdfast
// (and chaos) with real clients, causes one failure and checks that it was
// detected, explained, recovered from per policy, and hurt nobody else. Each
// prints a short report; the run ends with "N passed, N failed".
//   DRILLS=            the short drills (default)
//   DRILLS=long        every drill, long ones included
//   DRILLS=a,b         the drills whose names contain a or b
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Drill } from './kit.mjs';

const dir = path.dirname(fileURLToPath(import.meta.url));
const sel = process.env.DRILLS || '';
const files = fs.readdirSync(dir).filter((f) => /^drill_.*\.mjs$/.test(f)).sort();
let passed = 0;
let failed = 0;
const t00 = Date.now();

for (const f of files) {
  const mod = (await import(pathToFileURL(path.join(dir, f)))).default;
  const wanted = sel === 'long' || (sel === '' ? !mod.long
    : sel.split(',').some((s) => s && mod.name.includes(s)));
  if (!wanted) continue;
  const d = new Drill(mod.name);
  console.log(`== drill ${mod.name}${mod.long ? ' (long)' : ''}: ${mod.what}`);
  let err = null;
  let timer;
  try {
    await Promise.race([mod.run(d), new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error(`timed out after ${mod.ms / 1000} s`)), mod.ms);
    })]);
  } catch (e) {
    err = e;
  } finally {
    clearTimeout(timer);
  }
  const errs = await d.finish();
  for (const [k, v] of d.lines) console.log(`| ${k.padEnd(12)} ${v}`);
  for (const c of d.checks) console.log(`| ${c.ok ? 'ok  ' : 'FAIL'} ${c.kind.padEnd(9)} ${c.detail}`);
  const v = d.verdict();
  const why = [];
  if (err) why.push(`stopped: ${String(err.message || err).split('\n')[0]}`);
  if (v.failed.length) why.push(`failed: ${v.failed.map((c) => c.kind).join(', ')}`);
  if (!err && v.missing.length) why.push(`not checked: ${v.missing.join(', ')}`);
  for (const e of errs) why.push(`afterwards: ${e.split('\n')[0]}`);
  const secs = ((Date.now() - d.t0) / 1000).toFixed(2);
  if (why.length === 0) {
    passed++;
    console.log(`PASS drills/${mod.name} (${secs}s)`);
  } else {
    failed++;
    console.log(`FAIL drills/${mod.name}: ${why.join('; ')}`);
    for (const c of v.failed) console.log(`  ${c.kind}: ${c.detail}`);
    if (err && err.stack) for (const l of String(err.stack).split('\n').slice(1, 12)) console.log(`  ${l}`);
    for (const e of errs) for (const l of e.split('\n').slice(1, 20)) console.log(`  ${l}`);
  }
}
console.log(`== drills done in ${((Date.now() - t00) / 1000).toFixed(1)} s`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
