// SPDX-License-Identifier: MIT
// A connection token expires mid-connection. With refresh (the SDK's
// getToken) the SDK refreshes in time and stays connected; without it the
// SDK disconnects itself at expiry ("unauthorized"), and a raw client that
// ignores the expiry is closed by the server with 3005 "connection expired"
// after client.expired_close_delay. Others are not affected.
import { Centrifuge, WebSocket, startServer, hs256, nowS, SECRET, metrics, bystanders, steadyPublisher, checkBystanders, sleep } from './kit.mjs';

export default {
  name: 'token_expiry',
  what: 'a connection token expiring mid-connection, with and without refresh',
  ms: 40000,
  async run(d) {
    const srv = await startServer(d, ['--client.expired_close_delay=1s'],
      { config: { channel: { without_namespace: { allow_subscribe_for_client: true } } } });
    const others = await bystanders(d, srv, 'news', 2);
    const pub = steadyPublisher(srv, 'news', 10);
    const m0 = await metrics(srv.port);
    const exp = nowS() + 3;
    let refreshes = 0;
    const withRefresh = new Centrifuge(`ws://127.0.0.1:${srv.port}/connection/websocket`, {
      websocket: WebSocket, token: hs256(SECRET, { sub: 'refresher', exp }),
      getToken: async () => { refreshes++; return hs256(SECRET, { sub: 'refresher', exp: nowS() + 60 }); },
    });
    const noRefresh = new Centrifuge(`ws://127.0.0.1:${srv.port}/connection/websocket`, {
      websocket: WebSocket, token: hs256(SECRET, { sub: 'norefresh', exp }), minReconnectDelay: 200, maxReconnectDelay: 500,
    });
    const evs = { r: [], n: [] };
    for (const [c, k] of [[withRefresh, 'r'], [noRefresh, 'n']]) {
      for (const n of ['connecting', 'connected', 'disconnected'])
        c.on(n, (ctx) => evs[k].push({ n, ctx, t: Date.now() }));
      d.defer(() => c.disconnect());
      c.connect();
    }
    d.did(`tokens expiring at ${exp} (in 3 s) for an SDK client with getToken, one without, and a raw client that never refreshes; client.expired_close_delay 1 s`);
    // a raw client that never refreshes (no SDK logic): only the server can end it
    const raw = new WebSocket(`ws://127.0.0.1:${srv.port}/connection/websocket`);
    const rawClose = new Promise((r) => raw.on('close', (code, reason) => r({ code, reason: String(reason), t: Date.now() })));
    raw.on('error', () => {});
    raw.on('open', () => raw.send(JSON.stringify({ id: 1, connect: { token: hs256(SECRET, { sub: 'raw-norefresh', exp }) } })));
    d.defer(() => raw.terminate());
    await d.until(() => evs.r.some((e) => e.n === 'connected') && evs.n.some((e) => e.n === 'connected'), 5000, 'not connected');
    const rawConn = (await srv.waitEvent('client_connected', (e) => e.user === 'raw-norefresh')).conn_id;
    const t0 = Date.now();
    const rc = await Promise.race([rawClose, sleep(12000).then(() => null)]);
    if (!rc) throw new Error('the raw client was not closed');
    const closed = await srv.waitEvent('closed', (e) => e.conn_id === rawConn, 5000);
    await d.until(() => evs.n.some((e) => e.n === 'disconnected'), 5000, 'the SDK without getToken did not give up');
    const gone = evs.n.find((e) => e.n === 'disconnected');
    d.saw('raw client', `closed by the server: ${rc.code} "${rc.reason}" ${((rc.t - t0) / 1000).toFixed(2)} s after connecting (token for 3 s + expired_close_delay 1 s)`);
    d.saw('server', `closed ${closed.conn_id} (user raw-norefresh): ${closed.code} "${closed.reason}" who=${closed.who}`);
    d.saw('SDK, no getToken', `disconnected by itself at expiry: code ${gone.ctx.code} "${gone.ctx.reason}"`);
    d.check('detected', rc.code === 3005 && closed.code === 3005 && rc.t - t0 < 7000,
      `the server ended the expired connection with 3005 ${((rc.t - t0) / 1000).toFixed(2)} s in; the SDK without a way to refresh noticed the expiry itself (code ${gone.ctx.code})`);
    const mm = await metrics(srv.port);
    const expired = mm('holdfast_tokens_total', { event: 'expired' }) - m0('holdfast_tokens_total', { event: 'expired' });
    const refreshed = mm('holdfast_tokens_total', { event: 'refreshed' }) - m0('holdfast_tokens_total', { event: 'refreshed' });
    d.check('explained', closed.reason === 'connection expired' && rc.reason === 'connection expired' && expired >= 1 && refreshed >= 1,
      `client got 3005 "${rc.reason}"; server log "closed" conn_id ${closed.conn_id} code 3005; tokens_total{event="expired"} +${expired}, {event="refreshed"} +${refreshed}`);
    await sleep(1500);
    const rConn = evs.r.filter((e) => e.n === 'connected').length;
    d.check('recovered', refreshes >= 1 && rConn === 1 && withRefresh.state === 'connected',
      `with getToken: ${refreshes} refresh(es), still connected on its first connection (${rConn} connect)`);
    d.check('recovered', noRefresh.state === 'disconnected',
      `without a refresh: disconnected and stays so (state ${noRefresh.state}), by policy: an expired token gets no connection`);
    await pub.stop();
    await d.until(() => others.every((x) => x.s.data.length >= pub.sent.length), 5000, 'bystanders behind');
    checkBystanders(d, others, pub, 1000);
  },
};
