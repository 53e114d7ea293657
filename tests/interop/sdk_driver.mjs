// SPDX-License-Identifier: MIT
// The JavaScript side of the SDK comparison (tests/integration/test_sdk.py):
// one `centrifuge` npm SDK client driven by commands on stdin, printing
// every event as one JSON line in the normalised form tests/sdk/driver.c
// prints for the C SDK. Same arguments and commands as that program:
//   node sdk_driver.mjs URL [--token T] [--get-token] [--min-delay MS] [--max-delay MS]
//     [--ping-delay MS] [--timeout MS] [--protobuf]
// commands: connect | disconnect | token T | sub CH [recoverable|token|joinleave] |
// unsub CH | subtoken CH T | publish CH JSON | presence CH | presence_stats CH |
// history CH | rpc METHOD | quit
import readline from 'node:readline';
import { Centrifuge as CentrifugeJSON } from 'centrifuge';
import { Centrifuge as CentrifugePB } from 'centrifuge/build/protobuf';
import WebSocket from 'ws';

const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const argv = process.argv.slice(2);
const url = argv[0];
const opts = { websocket: WebSocket, name: 'js' };
let Centrifuge = CentrifugeJSON;
// The Protobuf build carries payloads as bytes: the application encodes
// and decodes them (here JSON text, as the C SDK carries them).
let pb = false;
const enc = (v) => (pb ? new TextEncoder().encode(JSON.stringify(v)) : v);
const dec = (d) => (pb && d instanceof Uint8Array ? JSON.parse(new TextDecoder().decode(d)) : d);
let tokenWaiter = null;
const subTokenWaiters = {};
for (let i = 1; i < argv.length; i++) {
  if (argv[i] === '--token') opts.token = argv[++i];
  else if (argv[i] === '--get-token') {
    opts.getToken = () => new Promise((resolve) => { tokenWaiter = resolve; out({ ev: 'get_token' }); });
  } else if (argv[i] === '--min-delay') {
    opts.minReconnectDelay = +argv[++i];
    opts.minResubscribeDelay = opts.minReconnectDelay;
  } else if (argv[i] === '--protobuf') {
    Centrifuge = CentrifugePB; // the SDK's Protobuf build (binary frames)
    pb = true;
  } else if (argv[i] === '--timeout') {
    opts.timeout = +argv[++i];
  } else if (argv[i] === '--ping-delay') {
    opts.maxServerPingDelay = +argv[++i];
  } else if (argv[i] === '--max-delay') {
    opts.maxReconnectDelay = +argv[++i];
    opts.maxResubscribeDelay = opts.maxReconnectDelay;
  }
}

const c = new Centrifuge(url, opts);
c.on('connecting', (ctx) => out({ ev: 'connecting', code: ctx.code, reason: ctx.reason }));
c.on('connected', () => out({ ev: 'connected' }));
c.on('disconnected', (ctx) => out({ ev: 'disconnected', code: ctx.code, reason: ctx.reason }));
c.on('error', (ctx) => out({ ev: 'error', type: ctx.type, code: ctx.error.code }));
c.on('subscribing', (ctx) => out({ ev: 'server_subscribing', ch: ctx.channel }));
c.on('subscribed', (ctx) => out({
  ev: 'server_subscribed', ch: ctx.channel, wasRecovering: !!ctx.wasRecovering, recovered: !!ctx.recovered,
}));
c.on('unsubscribed', (ctx) => out({ ev: 'server_unsubscribed', ch: ctx.channel }));
c.on('publication', (ctx) => out({ ev: 'server_publication', ch: ctx.channel, data: dec(ctx.data), offset: ctx.offset || 0 }));
c.on('join', (ctx) => out({ ev: 'server_join', ch: ctx.channel, user: ctx.info.user }));
c.on('leave', (ctx) => out({ ev: 'server_leave', ch: ctx.channel, user: ctx.info.user }));
c.on('message', () => out({ ev: 'message' }));

function subscribe(ch, flags) {
  let s = c.getSubscription(ch);
  if (!s) {
    const so = { recoverable: flags.includes('recoverable'), joinLeave: flags.includes('joinleave') };
    if (flags.includes('token')) {
      so.getToken = () => new Promise((resolve) => { subTokenWaiters[ch] = resolve; out({ ev: 'get_sub_token', ch }); });
    }
    s = c.newSubscription(ch, so);
    s.on('subscribing', (ctx) => out({ ev: 'subscribing', ch, code: ctx.code, reason: ctx.reason }));
    s.on('subscribed', (ctx) => out({ ev: 'subscribed', ch, wasRecovering: !!ctx.wasRecovering, recovered: !!ctx.recovered }));
    s.on('unsubscribed', (ctx) => out({ ev: 'unsubscribed', ch, code: ctx.code, reason: ctx.reason }));
    s.on('error', (ctx) => out({ ev: 'sub_error', ch, type: ctx.type, code: ctx.error.code }));
    s.on('publication', (ctx) => out({ ev: 'publication', ch, data: dec(ctx.data), offset: ctx.offset || 0 }));
    s.on('join', (ctx) => out({ ev: 'join', ch, user: ctx.info.user }));
    s.on('leave', (ctx) => out({ ev: 'leave', ch, user: ctx.info.user }));
  }
  s.subscribe();
}

function reply(op, p) {
  p.then((r) => {
    const o = { ev: 'reply', op, code: 0 };
    if (op === 'presence_stats') o.result = { num_clients: r.numClients, num_users: r.numUsers };
    out(o);
  }, (e) => out({ ev: 'reply', op, code: e.code }));
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, a1, a2, ...rest] = line.trim().split(/\s+/);
  switch (cmd) {
    case 'connect': c.connect(); break;
    case 'disconnect': c.disconnect(); break;
    case 'token': if (tokenWaiter) { const w = tokenWaiter; tokenWaiter = null; w(a1 || ''); } break;
    case 'sub': subscribe(a1, [a2, ...rest]); break;
    case 'unsub': c.getSubscription(a1)?.unsubscribe(); break;
    case 'subtoken': if (subTokenWaiters[a1]) { const w = subTokenWaiters[a1]; delete subTokenWaiters[a1]; w(a2 || ''); } break;
    case 'publish': reply('publish', c.publish(a1, enc(JSON.parse(a2)))); break;
    case 'presence': reply('presence', c.presence(a1)); break;
    case 'presence_stats': reply('presence_stats', c.presenceStats(a1)); break;
    case 'history': reply('history', c.history(a1, { limit: -1 })); break;
    case 'rpc': reply('rpc', c.rpc(a1, enc({}))); break;
    case 'quit': c.disconnect(); process.exit(0); break;
    default: out({ ev: 'bad_command', cmd });
  }
});
rl.on('close', () => { c.disconnect(); process.exit(0); });
