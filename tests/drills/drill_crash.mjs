// SPDX-License-Identifier: MIT
// Crash (SIGKILL) with 2,000 clients: nothing is said to anyone; the
// kernel resets the connections; every client must notice by itself,
// reconnect with jittered backoff to the new server on the same port.
import { restartDrill, checkAfter } from './restart.mjs';

export default {
  name: 'crash',
  what: 'crash (SIGKILL) with 2,000 clients connected',
  long: true,
  ms: 120000,
  async run(d) {
    const x = await restartDrill(d, 'SIGKILL');
    const e = await x.srv1.exit;
    d.saw('old server', `killed (${e.sig}); no close frames`);
    d.check('detected', x.drops.every((c) => c && c.code === 1), `every SDK client noticed the reset by itself: code ${x.drops[0]?.code} "${x.drops[0]?.reason}"; the bench saw all ${x.r.reconnected} drop`);
    const up = x.srv2.events('upgrade_accepted').length;
    d.check('explained', e.sig === 'SIGKILL' && up >= 2003,
      `clients report the transport closed (no code from the server, which had no chance to send one); the new server logged ${up} "upgrade_accepted" lines for the returning clients`);
    await checkAfter(d, x);
  },
};
