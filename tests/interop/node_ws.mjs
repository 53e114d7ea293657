// SPDX-License-Identifier: MIT
// Interop with the npm `ws` client (Node) against /echo of the real holdfast
// binary: text/binary/large echo, 1000 pipelined messages in order, client
// ping -> pong, server pings answered by ws (connection stays open), close
// 4001 "done" round trip + server log, X-Holdfast-Connection-Id in the 101,
// Origin allowed/rejected (403 + upgrade_rejected log), 1009 for a message
// over websocket.message_size_limit, 1001 + reason on SIGTERM drain.
// Started by test_node_ws.sh, which runs three servers and passes
// MAIN_/KA_/DRAIN_ PORT, LOG and PID in the environment.
// Prints "PASS interop/node_ws/<case>" or "FAIL interop/node_ws/<case>: why".
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { sleep, events, waitEvent, assert, caseRunner } from './serverlog.mjs';

const SUITE = 'interop/node_ws';
const env = process.env;
const MAIN = { port: +env.MAIN_PORT, log: env.MAIN_LOG };
const KA = { port: +env.KA_PORT, log: env.KA_LOG };
const DRAIN = { port: +env.DRAIN_PORT, log: env.DRAIN_LOG, pid: +env.DRAIN_PID };
const ALLOWED_ORIGIN = env.ALLOWED_ORIGIN;
const LIMIT = +env.MESSAGE_LIMIT;
const CLOSE_TIMEOUT_MS = +env.CLOSE_TIMEOUT_MS;



const open = new Set();

// Open a ws connection; resolves with { ws, res } once 'open' fired.
function connect(srv, opts = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/echo`, opts);
    open.add(ws);
    let res = null;
    ws.on('upgrade', (r) => { res = r; });
    ws.once('open', () => resolve({ ws, res }));
    ws.once('error', reject);
    ws.once('unexpected-response', (req, r) => {
      reject(new Error(`unexpected HTTP ${r.statusCode}`));
      req.destroy();
    });
  });
}

function nextMessage(ws) {
  return new Promise((resolve, reject) => {
    const onMsg = (data, isBinary) => { cleanup(); resolve({ data, isBinary }); };
    const onClose = (code, reason) => { cleanup(); reject(new Error(`closed ${code} ${reason}`)); };
    const cleanup = () => { ws.off('message', onMsg); ws.off('close', onClose); };
    ws.on('message', onMsg);
    ws.on('close', onClose);
  });
}

function closed(ws) {
  return new Promise((resolve) => {
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

// Each case gets 10 s; the sockets it opened are terminated after it.
const runCase = caseRunner(SUITE, {
  ms: 10000,
  after: () => {
    for (const ws of open) ws.terminate();
    open.clear();
  },
});

await runCase('text_echo', async () => {
  const { ws } = await connect(MAIN);
  const text = 'hello, holdfast: h\u00e9llo w\u00f6rld \u2713 \u{1F600}';
  ws.send(text);
  const m = await nextMessage(ws);
  assert(!m.isBinary, 'echo of a text message arrived as binary');
  assert(m.data.toString('utf8') === text, `echo ${JSON.stringify(m.data.toString())} != sent`);
});

await runCase('binary_echo_256_byte_values', async () => {
  const { ws } = await connect(MAIN);
  const buf = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) buf[i] = i;
  ws.send(buf);
  const m = await nextMessage(ws);
  assert(m.isBinary, 'echo of a binary message arrived as text');
  assert(Buffer.compare(m.data, buf) === 0, `binary echo differs (len ${m.data.length})`);
});

await runCase('large_message_1MiB_minus_64', async () => {
  const { ws } = await connect(MAIN);
  const buf = randomBytes(LIMIT - 64);
  ws.send(buf);
  const m = await nextMessage(ws);
  assert(m.isBinary, 'large echo arrived as text');
  assert(m.data.length === buf.length, `large echo length ${m.data.length} != ${buf.length}`);
  assert(Buffer.compare(m.data, buf) === 0, 'large echo content differs');
});

await runCase('pipelined_1000_in_order', async () => {
  const { ws } = await connect(MAIN);
  const N = 1000;
  const got = [];
  const done = new Promise((resolve, reject) => {
    ws.on('message', (d) => { got.push(d.toString()); if (got.length === N) resolve(); });
    ws.once('close', (c, r) => reject(new Error(`closed ${c} ${r} after ${got.length} echoes`)));
  });
  for (let i = 0; i < N; i++) ws.send(`msg-${i}-${'x'.repeat(i % 50)}`);
  await done;
  for (let i = 0; i < N; i++) {
    const want = `msg-${i}-${'x'.repeat(i % 50)}`;
    assert(got[i] === want, `echo #${i} is ${JSON.stringify(got[i].slice(0, 40))}, expected ${JSON.stringify(want.slice(0, 40))}`);
  }
});

await runCase('client_ping_gets_pong', async () => {
  const { ws } = await connect(MAIN);
  const payload = Buffer.from('hf-ping-123');
  const pong = new Promise((resolve) => ws.once('pong', resolve));
  ws.ping(payload);
  const data = await pong;
  assert(Buffer.compare(data, payload) === 0, `pong payload ${JSON.stringify(data.toString())} != ping payload`);
  // The connection still echoes afterwards.
  ws.send('after-ping');
  const m = await nextMessage(ws);
  assert(m.data.toString() === 'after-ping', 'no echo after ping');
});

await runCase('server_ping_answered_idle_stays_open', async () => {
  // KA server: --websocket.ping_interval=300ms --websocket.pong_timeout=200ms
  const { ws, res } = await connect(KA);
  const id = res.headers['x-holdfast-connection-id'];
  let pings = 0;
  let closeInfo = null;
  ws.on('ping', () => { pings++; });
  ws.on('close', (c, r) => { closeInfo = `${c} ${r}`; });
  await sleep(1500);
  assert(closeInfo === null, `connection closed while idle: ${closeInfo}`);
  assert(ws.readyState === WebSocket.OPEN, `readyState ${ws.readyState} after 1.5 s idle`);
  assert(pings >= 3, `only ${pings} server pings in 1.5 s with ping_interval=300ms`);
  const gone = events(KA.log, 'closed').filter((e) => e.conn_id === id);
  assert(gone.length === 0, `server logged closed for the idle connection: ${JSON.stringify(gone[0])}`);
  ws.send('still-here');
  const m = await nextMessage(ws);
  assert(m.data.toString() === 'still-here', 'no echo after idle period');
  ws.close(1000, 'bye');
  const c = await closed(ws);
  assert(c.code === 1000, `close code ${c.code}`);
});

await runCase('close_4001_done', async () => {
  const { ws, res } = await connect(MAIN);
  const id = res.headers['x-holdfast-connection-id'];
  const t0 = Date.now();
  ws.close(4001, 'done');
  const c = await closed(ws);
  assert(c.code === 4001, `close event code ${c.code} (reason ${JSON.stringify(c.reason)}), expected 4001`);
  assert(Date.now() - t0 < CLOSE_TIMEOUT_MS / 2, `close handshake took ${Date.now() - t0} ms`);
  const ev = await waitEvent(MAIN.log, 'closed', (e) => e.conn_id === id);
  assert(ev.code === 4001 && ev.who === 'client', `server closed event ${JSON.stringify(ev)}, expected code 4001 who client`);
});

await runCase('connection_id_header_in_101', async () => {
  const { ws, res } = await connect(MAIN);
  assert(res && res.statusCode === 101, `upgrade event status ${res && res.statusCode}`);
  const id = res.headers['x-holdfast-connection-id'];
  assert(typeof id === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id),
    `X-Holdfast-Connection-Id ${JSON.stringify(id)} is not a UUID`);
  const ev = await waitEvent(MAIN.log, 'upgrade_accepted', (e) => e.conn_id === id);
  assert(ev.path === '/echo', `upgrade_accepted path ${ev.path}`);
  ws.close(1000);
  await closed(ws);
});

await runCase('origin_allowed', async () => {
  const { ws, res } = await connect(MAIN, { origin: ALLOWED_ORIGIN });
  const id = res.headers['x-holdfast-connection-id'];
  const ev = await waitEvent(MAIN.log, 'upgrade_accepted', (e) => e.conn_id === id);
  assert(ev.origin === ALLOWED_ORIGIN, `upgrade_accepted origin ${JSON.stringify(ev.origin)}, expected ${ALLOWED_ORIGIN}`);
  ws.send('o');
  assert((await nextMessage(ws)).data.toString() === 'o', 'no echo');
});

await runCase('origin_rejected_403', async () => {
  const origin = 'https://evil.example';
  const r = await new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${MAIN.port}/echo`, { origin });
    open.add(ws);
    ws.once('open', () => reject(new Error('upgrade with a disallowed Origin succeeded')));
    ws.once('error', (e) => reject(new Error(`error instead of unexpected-response: ${e.message}`)));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => { resolve({ status: res.statusCode, headers: res.headers, body }); req.destroy(); });
      res.on('error', reject);
    });
  });
  assert(r.status === 403, `status ${r.status}, expected 403`);
  assert(/^text\/plain/.test(r.headers['content-type'] || ''), `content-type ${r.headers['content-type']}`);
  assert(r.body.trim().length > 0, 'empty 403 body');
  const ev = await waitEvent(MAIN.log, 'upgrade_rejected', (e) => e.origin === origin);
  assert(ev.reason === 'origin_rejected' && ev.status === 403,
    `upgrade_rejected ${JSON.stringify(ev)}, expected reason origin_rejected status 403`);
});

await runCase('message_over_limit_closes_1009', async () => {
  const { ws, res } = await connect(MAIN);
  const id = res.headers['x-holdfast-connection-id'];
  let err = null;
  ws.on('error', (e) => { err = e; });
  const c = closed(ws);
  const t0 = Date.now();
  ws.send(Buffer.alloc(LIMIT + 1, 0x61), { binary: true });
  const { code, reason } = await c;
  const took = Date.now() - t0;
  assert(code === 1009, `close code ${code} (reason ${JSON.stringify(reason)}${err ? `, error ${err.message}` : ''}), expected 1009`);
  assert(reason.length > 0, 'close 1009 without a reason');
  const ev = await waitEvent(MAIN.log, 'closed', (e) => e.conn_id === id);
  assert(ev.code === 1009 && ev.who === 'server', `server closed event ${JSON.stringify(ev)}, expected code 1009 who server`);
  // ws answers the server's close frame at once; the server must then close
  // TCP promptly, not hold it until websocket.close_timeout expires.
  assert(took < CLOSE_TIMEOUT_MS / 2,
    `close event only after ${took} ms (server closed duration_ms ${ev.duration_ms}): the server kept TCP open ` +
    `for websocket.close_timeout (${CLOSE_TIMEOUT_MS} ms) after its 1009 close frame although ws answered the close`);
});

await runCase('sigterm_drain_closes_1001', async () => {
  const { ws, res } = await connect(DRAIN);
  const id = res.headers['x-holdfast-connection-id'];
  const c = closed(ws);
  process.kill(DRAIN.pid, 'SIGTERM');
  const { code, reason } = await c;
  assert(code === 1001, `close code ${code} (reason ${JSON.stringify(reason)}), expected 1001`);
  assert(reason.length > 0, 'close 1001 without a reason');
  const ev = await waitEvent(DRAIN.log, 'closed', (e) => e.conn_id === id);
  assert(ev.code === 1001 && ev.who === 'server', `server closed event ${JSON.stringify(ev)}, expected code 1001 who server`);
  await waitEvent(DRAIN.log, 'shutdown_complete');
});

process.exit(runCase.failed ? 1 : 0);
