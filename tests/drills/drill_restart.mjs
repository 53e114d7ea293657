// SPDX-License-Identifier: MIT
// Planned restart (SIGTERM) with 2,000 clients: the server drains (close
// 3001 "shutdown" to everyone, exit 0), a new one starts on the same port,
// and the clients come back spread by their jittered backoff.
import { restartDrill, checkAfter } from './restart.mjs';

export default {
  name: 'restart',
  what: 'planned restart (SIGTERM) with 2,000 clients connected',
  long: true,
  ms: 120000,
  async run(d) {
    const x = await restartDrill(d, 'SIGTERM');
    const e = await x.srv1.exit;
    const shut = x.srv1.events('shutdown_started');
    const closes = x.srv1.events('closed');
    const c3001 = closes.filter((c) => c.code === 3001).length;
    d.saw('old server', `exit ${e.code}; "shutdown_started" ${shut.length}; ${closes.length} "closed" lines, ${c3001} with 3001`);
    d.check('detected', x.drops.every((c) => c && c.code === 3001), `every SDK client was told: code ${x.drops[0]?.code} "${x.drops[0]?.reason}"`);
    d.check('explained', e.code === 0 && shut.length === 1 && c3001 >= 2000, `the old server logged shutdown_started and a "closed" line with code 3001 for ${c3001} connections, then exited 0 after ${(x.tDown / 1000).toFixed(2)} s`);
    await checkAfter(d, x);
  },
};
