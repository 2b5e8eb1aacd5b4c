// `switchyard cache flush`: drop the DNS forwarder's cached answers.
import { call, parseClientArgs, printJson, COMMON_HELP } from '../client.ts';
import { UsageError } from '../../errors.ts';

export const summary = 'cache flush: drop every cached DNS answer (the correlation store stays)';

const HELP = `usage: switchyard cache flush [--format text|json] [--socket PATH]

Drops every cached DNS answer; the next query for each name goes upstream again. The correlation
store (which names an address came from) is kept. Needs root, the daemon's user, or the control
group.

${COMMON_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const a = parseClientArgs(argv, {}, true);
  if (a.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (a.positionals.length !== 1 || a.positionals[0] !== 'flush') throw new UsageError('usage: switchyard cache flush');
  const r = (await call(a.socket, 'cache.flush')) as { flushed: number };
  if (a.format === 'json') printJson(r);
  else process.stdout.write(`flushed ${r.flushed} cached answer(s)\n`);
  return 0;
}
