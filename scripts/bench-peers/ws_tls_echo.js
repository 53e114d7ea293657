// SPDX-License-Identifier: MIT
// Echo server on npm `ws` over Node's https (TLS in Node/OpenSSL), the
// "Node ws over https" peer of scripts/bench-tls.sh. Binds 127.0.0.1 only.
// usage: NODE_PATH=tests/interop/node_modules node ws_tls_echo.js PORT CERT KEY [LIFETIME_S]
'use strict';
const fs = require('fs');
const https = require('https');
const { WebSocketServer } = require('ws');

const [port, cert, key, life] = [Number(process.argv[2]), process.argv[3], process.argv[4],
  Number(process.argv[5] || 900)];
const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) });
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 64 << 20 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
server.listen(port, '127.0.0.1', () => console.error(`ws over https on 127.0.0.1:${port}`));
setTimeout(() => process.exit(0), life * 1000);
