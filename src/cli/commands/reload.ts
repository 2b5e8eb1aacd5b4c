// `switchyard reload`: validate the config file and swap it in, or say why not.
import { call, parseClientArgs, printJson, COMMON_HELP } from '../client.ts';
import type { ReloadResult } from '../../daemon/daemon.ts';

export const summary = 'reload the config file (an invalid one is refused; the running policy stays)';

const HELP = `usage: switchyard reload [--format text|json] [--socket PATH]

Asks the daemon to read its config file again. A valid config replaces the policy in one step;
live flows keep going (\`switchyard close --changed\` ends those the new policy would send
elsewhere). An invalid config is refused with its error and the running policy stays
(exit 1, SY_ERR_DAEMON_RELOAD). Needs root, the daemon's user, or the control group.

${COMMON_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const a = parseClientArgs(argv, {});
  if (a.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const r = (await call(a.socket, 'reload', null, 30_000)) as ReloadResult;
  if (a.format === 'json') {
    printJson(r);
    return 0;
  }
  const lines = [`reloaded: generation ${r.generation}${r.egressRebuilt ? ', egresses rebuilt' : ''}`];
  if (r.changedFlows) lines.push(`${r.changedFlows} live flow(s) would now take another egress: \`switchyard close --changed\` ends them`);
  if (r.restartNeeded.length) lines.push(`changed but applied only after a restart: ${r.restartNeeded.join(', ')}`);
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}
