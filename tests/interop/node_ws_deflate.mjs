// SPDX-License-Identifier: MIT
// Interop: permessage-deflate (RFC 7692) with the npm `ws` client's
// perMessageDeflate against /echo of the real binary. DFL has
// echo.compression on (client context takeover refused, the default), TAKE
// also allows client context takeover, OFF has compression off:
//  - negotiation as ws sees it (ws.extensions) and as the server logs it;
//  - text and binary echoes, compressible and random, 10 B..512 KiB;
//  - every combination of ws's four negotiation options (window bits 9..15);
//  - 200 similar messages with client context takeover (TAKE);
//  - a ws-compressed 16 MiB message of zeros (a few KiB on the wire) over the
//    1 MiB limit closes 1009;
//  - the server counted inflated and compressed messages (/metrics);
//  - OFF: ws's offer is declined and everything still works uncompressed.
// Started by test_node_ws_deflate.sh (DFL_/TAKE_/OFF_ PORT and LOG).
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import WebSocket from 'ws';
import { waitEvent, assert, caseRunner } from './serverlog.mjs';

const SUITE = 'interop/node_ws_deflate';
const env = process.env;
const DFL = { port: +env.DFL_PORT, log: env.DFL_LOG };
const TAKE = { port: +env.TAKE_PORT, log: env.TAKE_LOG };
const OFF = { port: +env.OFF_PORT, log: env.OFF_LOG };
const live = new Set();

async function open(srv, pmd = true) {
  const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/echo`, { perMessageDeflate: pmd });
  live.add(ws);
  const up = once(ws, 'upgrade'), opened = once(ws, 'open');
  const [[res]] = await Promise.all([up, opened]);
  return { ws, id: res.headers['x-holdfast-connection-id'], ext: res.headers['sec-websocket-extensions'] || '' };
}

// Send each message and await its echo, in order.
async function echoAll(ws, msgs) {
  for (const m of msgs) {
    const got = once(ws, 'message');
    ws.send(m);
    const [data, isBinary] = await got;
    assert(isBinary === Buffer.isBuffer(m), `echo type binary=${isBinary} for ${typeof m}`);
    const want = Buffer.isBuffer(m) ? m : Buffer.from(m);
    assert(Buffer.compare(data, want) === 0, `echo of ${want.length} bytes differs (got ${data.length})`);
  }
}

function metric(srv, kind) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: srv.port, path: '/metrics' }, (res) => {
      let b = '';
      res.on('data', (c) => { b += c; });
      res.on('end', () => {
        const m = b.match(new RegExp(`^holdfast_compressed_messages_total\\{kind="${kind}"\\} (\\d+)$`, 'm'));
        m ? resolve(+m[1]) : reject(new Error('metric missing'));
      });
    }).on('error', reject);
  });
}

const runCase = caseRunner(SUITE, {
  ms: 20000,
  after: () => { for (const ws of live) ws.terminate(); live.clear(); },
});

const sizes = [10, 1000, 16384, 65536, 524288];
const text = (n) => 'holdfast compresses this line \u00fc\u2713 '.repeat(Math.ceil(n / 36)).slice(0, n);

await runCase('negotiated_and_logged', async () => {
  const { ws, id, ext } = await open(DFL);
  assert(ws.extensions === 'permessage-deflate', `ws.extensions ${JSON.stringify(ws.extensions)}`);
  assert(/server_no_context_takeover/.test(ext) && /client_no_context_takeover/.test(ext), `response ${ext}`);
  const ev = await waitEvent(DFL.log, 'upgrade_accepted', (e) => e.conn_id === id);
  assert(ev.extensions === ext, `logged ${ev.extensions} != ${ext}`);
});

await runCase('echo_text_binary_10B_to_512KiB', async () => {
  const before = [await metric(DFL, 'in'), await metric(DFL, 'out')];
  const { ws } = await open(DFL);
  const msgs = [];
  for (const n of sizes) msgs.push(text(n), Buffer.from(text(n)), randomBytes(n));
  await echoAll(ws, msgs);
  const inflated = (await metric(DFL, 'in')) - before[0];
  const deflated = (await metric(DFL, 'out')) - before[1];
  // ws compresses messages of 1 KiB and more (its threshold); the server
  // compresses what shrinks (not the random ones)
  assert(inflated >= 8, `server inflated ${inflated} messages`);
  assert(deflated >= 8, `server compressed ${deflated} messages`);
});

await runCase('all_option_combinations', async () => {
  let n = 0;
  for (const snct of [false, true]) for (const cnct of [false, true])
    for (const smwb of [undefined, 9, 12, 15]) for (const cmwb of [undefined, true, 9, 15]) {
      const pmd = { serverNoContextTakeover: snct, clientNoContextTakeover: cnct, threshold: 0 };
      if (smwb !== undefined) pmd.serverMaxWindowBits = smwb;
      if (cmwb !== undefined) pmd.clientMaxWindowBits = cmwb;
      const { ws, ext } = await open(TAKE, pmd);
      assert(ws.extensions === 'permessage-deflate', `combo ${JSON.stringify(pmd)}: ${ext}`);
      if (smwb) assert(ext.includes(`server_max_window_bits=${smwb}`), `combo ${JSON.stringify(pmd)}: ${ext}`);
      assert(ext.includes('client_no_context_takeover') === cnct, `combo ${JSON.stringify(pmd)}: ${ext}`);
      await echoAll(ws, [text(100), text(5000), Buffer.from(text(70000)), text(0)]);
      ws.close(1000);
      await once(ws, 'close');
      live.delete(ws);
      n++;
    }
  assert(n === 64, `${n} combinations`);
});

await runCase('client_context_takeover_200_messages', async () => {
  const { ws, ext } = await open(TAKE, { threshold: 0 });
  assert(/^permessage-deflate/.test(ext) && !/client_no_context_takeover/.test(ext), `response ${ext}`);
  const msgs = [];
  for (let i = 0; i < 200; i++) msgs.push(`{"channel":"news","data":{"seq":${i},"text":"${text(200)}"}}`);
  await echoAll(ws, msgs);
});

await runCase('bomb_16MiB_of_zeros_closes_1009', async () => {
  const { ws, id } = await open(DFL, { threshold: 0 });
  ws.on('error', () => {});
  const c = once(ws, 'close');
  ws.send(Buffer.alloc(16 << 20));
  const [code, reason] = await c;
  assert(code === 1009, `close ${code} ${reason}`);
  const ev = await waitEvent(DFL.log, 'closed', (e) => e.conn_id === id);
  assert(ev.code === 1009 && /inflat/.test(ev.reason), `closed ${JSON.stringify(ev)}`);
  assert(ev.bytes_in < 1 << 20, `the bomb took ${ev.bytes_in} bytes on the wire`);
});

await runCase('off_declines_offer', async () => {
  const { ws } = await open(OFF);
  assert(ws.extensions === '', `ws.extensions ${JSON.stringify(ws.extensions)}`);
  await echoAll(ws, [text(5000), randomBytes(3000)]);
});

process.exit(runCase.failed ? 1 : 0);
