// SPDX-License-Identifier: MIT
// The minimal application backend of scripts/bench-evproxy.sh: node:http with
// keep-alive, answering every proxy event with a fixed small result (connect:
// the user named by the session cookie; rpc: {"data":{"ok":true}}). Prints
// "PORT <n>" and serves until killed.
import http from 'node:http';

const OK = Buffer.from('{"result":{}}');
const RPC = Buffer.from('{"result":{"data":{"ok":true}}}');
const srv = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let body = OK;
    if (req.url === '/connect') {
      const m = /session=([^;]+)/.exec(req.headers.cookie || '');
      body = Buffer.from(JSON.stringify({ result: { user: m ? m[1] : 'bench' } }));
    } else if (req.url === '/rpc') {
      body = RPC;
    } else if (req.url === '/direct') {
      body = RPC; // the baseline: the same answer without holdfast in between
    }
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.length });
    res.end(body);
  });
});
srv.keepAliveTimeout = 60000;
srv.listen(0, '127.0.0.1', () => console.log(`PORT ${srv.address().port}`));
