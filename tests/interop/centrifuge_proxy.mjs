// SPDX-License-Identifier: MIT
// One `centrifuge` SDK (v5, npm `ws`) session through a reverse proxy, for
// tests/integration/test_proxies.py: connect to HF_URL (ws:// or wss://)
// from the local address HF_LOCAL (so the server can tell the client from
// the proxy), trusting the CA file HF_CA for wss://, subscribe to a channel,
// publish into it and receive the publication. Prints one JSON line
// {"ok":true,"client":ID,"transport":...} and exits 0, or {"ok":false,
// "error":...} and exits 1. Bounded: gives up after 15 s.
import { readFileSync } from 'node:fs';
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';
import { hs256, nowS } from './serverlog.mjs';

const env = process.env;
const wsOpts = { localAddress: env.HF_LOCAL || undefined, handshakeTimeout: 5000 };
if (env.HF_CA) wsOpts.ca = readFileSync(env.HF_CA);

// The SDK makes its sockets with `new WebSocket(url[, protocols])`; add
// the local address and the CA to each.
class ProxiedWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, wsOpts);
  }
}

function done(obj, code) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
  process.exit(code);
}

const timer = setTimeout(() => done({ ok: false, error: 'timed out after 15 s' }, 1), 15000);
const client = new Centrifuge(env.HF_URL, {
  websocket: ProxiedWebSocket,
  token: hs256(env.HF_SECRET, { sub: 'proxied-user', exp: nowS() + 600 }),
  minReconnectDelay: 200,
  maxReconnectDelay: 1000,
});
client.on('error', (ctx) => done({ ok: false, error: `client error: ${JSON.stringify(ctx.error)}` }, 1));
client.on('disconnected', (ctx) => done({ ok: false, error: `disconnected ${ctx.code} ${ctx.reason}` }, 1));
client.on('connected', (ctx) => {
  const sub = client.newSubscription('proxied');
  sub.on('error', (c) => done({ ok: false, error: `subscription error: ${JSON.stringify(c.error)}` }, 1));
  sub.on('publication', (p) => {
    if (p.data && p.data.n === 42) {
      clearTimeout(timer);
      client.removeAllListeners('disconnected');
      client.disconnect();
      done({ ok: true, client: ctx.client, transport: ctx.transport }, 0);
    }
  });
  sub.on('subscribed', () => {
    sub.publish({ n: 42 }).catch((e) => done({ ok: false, error: `publish: ${JSON.stringify(e)}` }, 1));
  });
  sub.subscribe();
});
client.connect();
