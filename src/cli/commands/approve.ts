// `switchyard approve REV`: activate a pending revision atomically.
import { UsageError } from '../../errors.ts';
import { call, parseClientArgs, printJson, COMMON_HELP } from '../client.ts';
import { revArg } from './diff.ts';

export const summary = 'activate a pending revision (atomic; rolled back if applying fails)';

const HELP = `usage: switchyard approve REV [--format text|json] [--socket PATH]

Snapshots what runs, applies the revision (policy, DNS projection, egresses, OS plan when
enforcing), verifies, and commits; any failure before the commit restores the previous policy
and rejects the revision (SY_ERR_STORE_APPLY). Reviews the alerts the revision raised.
Needs root, the daemon's user, or the control group.
${COMMON_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const a = parseClientArgs(argv, {}, true);
  if (a.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (a.positionals.length !== 1) throw new UsageError('give exactly one revision number (see switchyard revisions)');
  const r = (await call(a.socket, 'approve', { revision: revArg(a.positionals[0]) }, 60_000)) as { revision: number; changedFlows: number; restartNeeded: string[] };
  if (a.format === 'json') printJson(r);
  else {
    const lines = [`revision #${r.revision} is active`];
    if (r.changedFlows) lines.push(`${r.changedFlows} live flow(s) would now take another egress: \`switchyard close --changed\` ends them`);
    if (r.restartNeeded.length) lines.push(`changed but applied only after a restart: ${r.restartNeeded.join(', ')}`);
    process.stdout.write(lines.join('\n') + '\n');
  }
  return 0;
}
