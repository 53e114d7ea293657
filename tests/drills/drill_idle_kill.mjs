// SPDX-License-Identifier: MIT
// Idle kill by a middlebox (a load balancer or NAT that drops connections
// with no traffic for 2 s): with the protocol's heartbeat every 1 s the
// connection is never idle and survives; with heartbeats off (ping interval
// far beyond the middlebox's timeout) it is cut, the SDK sees the transport
// close and reconnects, and the server logs the abnormal close.
import { tsOf, startServer, startChaos, sdkSubscriber, connIdViaChaos, bystanders, steadyPublisher, checkBystanders, metrics, sleep } from './kit.mjs';

const CFG = { channel: { without_namespace: { allow_subscribe_for_client: true } } };

export default {
  name: 'idle_kill',
  what: 'a middlebox cuts connections idle for 2 s; heartbeats on (1 s) and off',
  ms: 40000,
  async run(d) {
    // heartbeats on: nothing is cut
    const on = await startServer(d, ['--client.ping_interval=1s', '--client.pong_timeout=500ms'], { config: CFG });
    const chOn = await startChaos(d, on.port, ['--idle-kill', '2s', '--cut-mode', 'rst']);
    const a = await sdkSubscriber(d, chOn.port, 'hb-on', 'quiet', { maxServerPingDelay: 1500 });
    d.did('heartbeats on: one SDK client through chaos --idle-kill 2s, channel silent for 5 s');
    await sleep(5000);
    const stOn = await chOn.stats();
    d.saw('chaos (on)', `idle kills ${stOn.idle_kill}, frames down ${stOn.frames_down}, up ${stOn.frames_up} (pings and pongs)`);
    d.check('unhurt', stOn.idle_kill === 0 && a.c.ev.filter((e) => e.n === 'connected').length === 1,
      `with heartbeats every 1 s the middlebox never saw 2 s of silence: ${stOn.idle_kill} idle kills, the client connected once`);

    // heartbeats off (25 s, the default): cut after 2 s of silence
    const off = await startServer(d, ['--client.ping_interval=25s'], { config: CFG });
    const chOff = await startChaos(d, off.port, ['--idle-kill', '2s', '--cut-mode', 'rst']);
    const others = await bystanders(d, off, 'news', 2);
    const pub = steadyPublisher(off, 'news', 10);
    const t0 = Date.now();
    const b = await sdkSubscriber(d, chOff.port, 'hb-off', 'quiet', { minReconnectDelay: 200, maxReconnectDelay: 1000 });
    const conn = await connIdViaChaos(off, chOff, 1);
    const m0 = await metrics(off.port);
    d.did('heartbeats off (client.ping_interval 25 s): the same, the channel silent');
    await d.until(() => b.c.ev.find((e) => e.n === 'connecting' && e.ctx.code !== 0), 8000, 'the SDK saw no cut');
    const cev = b.c.ev.find((e) => e.n === 'connecting' && e.ctx.code !== 0).ctx;
    const cut = await chOff.waitEvent('chaos_cut', (e) => e.conn === 1 && e.why === 'idle-kill', 3000);
    const closed = await off.waitEvent('closed', (e) => e.conn_id === conn, 5000);
    d.saw('chaos (off)', `cut connection 1 (${cut.why}, ${cut.mode}) at ${((tsOf(cut) - t0) / 1000).toFixed(2)} s`);
    d.saw('client', `SDK connecting: code ${cev.code} "${cev.reason}" at ${((cev.t - t0) / 1000).toFixed(2)} s`);
    d.saw('server', `closed ${conn}: ${closed.code} "${closed.reason}" who=${closed.who}`);
    d.check('detected', cev.code === 1 && closed.who === 'abnormal',
      `both ends saw the cut at once: the SDK's transport closed (code ${cev.code}), the server logged an abnormal close`);
    const m1 = await metrics(off.port);
    const ab = m1('holdfast_closes_total', { side: 'abnormal' }) - m0('holdfast_closes_total', { side: 'abnormal' });
    d.check('explained', ab >= 1 && closed.conn_id === conn,
      `server log "closed" conn_id ${conn} who=abnormal code ${closed.code}; closes_total{side="abnormal"} +${ab}; chaos log chaos_cut why=idle-kill: the middlebox, not the server, ended it`);
    const t1 = cev.t;
    await d.until(() => b.c.ev.some((e) => e.n === 'connected' && e.ctx.t > t1) && b.s.state === 'subscribed', 5000, 'no reconnect');
    const back = b.c.ev.find((e) => e.n === 'connected' && e.ctx.t > t1).ctx.t - t1;
    d.time('reconnected after the cut', back);
    d.check('recovered', back < 3000, `the SDK reconnected and resubscribed ${(back / 1000).toFixed(2)} s after the cut (it will be cut again every 2 s of silence: the fix is a ping interval below the middlebox's timeout)`);
    await pub.stop();
    await d.until(() => others.every((x) => x.s.data.length >= pub.sent.length), 5000, 'bystanders behind');
    checkBystanders(d, others, pub, 1000);
  },
};
