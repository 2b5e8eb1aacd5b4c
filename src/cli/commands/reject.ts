// `switchyard reject REV`: refuse a pending revision.
import { UsageError } from '../../errors.ts';
import { call, parseClientArgs, printJson, COMMON_HELP } from '../client.ts';
import { revArg } from './diff.ts';

export const summary = 'reject a pending revision (reviews its alerts)';

const HELP = `usage: switchyard reject REV [--reason TEXT] [--format text|json] [--socket PATH]

Needs root, the daemon's user, or the control group.
${COMMON_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const a = parseClientArgs(argv, { reason: { type: 'string' } }, true);
  if (a.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (a.positionals.length !== 1) throw new UsageError('give exactly one revision number (see switchyard revisions)');
  const reason = (a.values as Record<string, unknown>)['reason'] as string | undefined;
  const r = await call(a.socket, 'reject', { revision: revArg(a.positionals[0]), ...(reason ? { reason } : {}) });
  if (a.format === 'json') printJson(r);
  else process.stdout.write(`revision #${(r as { revision: number }).revision} rejected\n`);
  return 0;
}
