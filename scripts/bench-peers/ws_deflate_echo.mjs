// SPDX-License-Identifier: MIT
// Node `ws` echo server with permessage-deflate (the deflate peer of
// scripts/bench-deflate.sh): server_no_context_takeover like holdfast, zlib
// level 1, threshold 0 (every message compressed), no native addons.
// usage: node ws_deflate_echo.mjs PORT [LIFETIME_S]   (binds 127.0.0.1 only)
import { createRequire } from 'node:module';
const require = createRequire(process.env.NODE_MODULES + '/');
const { WebSocketServer } = require('ws');
const port = Number(process.argv[2]);
const life = Number(process.argv[3] || 900);
const wss = new WebSocketServer({
  host: '127.0.0.1', port, maxPayload: 64 << 20,
  perMessageDeflate: { serverNoContextTakeover: true, zlibDeflateOptions: { level: 1 }, threshold: 0 },
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
wss.on('listening', () => console.error(`ws deflate echo on 127.0.0.1:${port}`));
setTimeout(() => process.exit(0), life * 1000);
