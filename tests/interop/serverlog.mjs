// SPDX-License-Identifier: MIT
// Shared by the Node interop clients: read the server's JSON log lines and
// wait (bounded) for an event, plus a plain assert.
import { readFileSync } from 'node:fs';

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
