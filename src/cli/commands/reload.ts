// `switchyard reload`: the config file becomes a candidate revision; a low-risk one asked for at a
// terminal is activated at once, medium/high ones wait for `switchyard approve`.
import { call, parseClientArgs, printJson, COMMON_HELP } from '../client.ts';
import type { ReloadResult } from '../../daemon/daemon.ts';

export const summary = 'read the config file into a candidate revision (low risk at a terminal: active at once)';

const HELP = `usage: switchyard reload [--non-interactive] [--format text|json] [--socket PATH]

Asks the daemon to read its config file again. An invalid config is refused with its error and
the running policy stays (exit 1, SY_ERR_DAEMON_RELOAD). A valid one becomes a candidate
revision: if its risk is LOW (only a few exact names added) and you run this at a terminal, it is
activated at once (audited); otherwise it stays pending — see \`switchyard diff\` and
\`switchyard approve REV\`. Live flows keep going (\`switchyard close --changed\` ends those the
new policy would send elsewhere). Needs root, the daemon's user, or the control group.

  --non-interactive   never activate at once, even at a terminal (scripts)
${COMMON_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const a = parseClientArgs(argv, { 'non-interactive': { type: 'boolean' } });
  if (a.help) {
    process.stdout.write(HELP);
    return 0;
  }
  // A person at a terminal: stdin is a TTY. Scripts, cron and pipes are not.
  const interactive = process.stdin.isTTY === true && (a.values as Record<string, unknown>)['non-interactive'] !== true;
  const r = (await call(a.socket, 'reload', { interactive }, 30_000)) as ReloadResult;
  if (a.format === 'json') {
    printJson(r);
    return 0;
  }
  const lines: string[] = [];
  if (r.state === 'unchanged') lines.push(`no policy change: the file holds the running revision #${r.revision ?? '-'}`);
  else if (r.state === 'active') lines.push(`revision #${r.revision} (risk ${r.risk?.level}) is active: generation ${r.generation}${r.egressRebuilt ? ', egresses rebuilt' : ''}`);
  else {
    lines.push(`revision #${r.revision} is PENDING (risk ${r.risk?.level}${interactive ? '' : ', not asked for at a terminal'}): review with \`switchyard diff ${r.revision}\`, then \`switchyard approve ${r.revision}\` or \`reject ${r.revision}\``);
    for (const reason of r.risk?.reasons ?? []) lines.push(`  ${reason}`);
  }
  if (r.changedFlows) lines.push(`${r.changedFlows} live flow(s) would now take another egress: \`switchyard close --changed\` ends them`);
  if (r.restartNeeded.length) lines.push(`changed but applied only after a restart: ${r.restartNeeded.join(', ')}`);
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}
