// `switchyard close FLOW | --egress E | --changed`: end live flows.
import { call, parseClientArgs, printJson, COMMON_HELP } from '../client.ts';
import { UsageError } from '../../errors.ts';

export const summary = 'close a live flow, every flow of an egress, or flows whose decision changed';

const HELP = `usage: switchyard close FLOW | --egress NAME | --changed [--format text|json] [--socket PATH]

  FLOW              a flow id from \`switchyard conns\`
  --egress NAME     every live flow carried by egress NAME
  --changed         every live flow the running policy would now send elsewhere (after a reload)
${COMMON_HELP}
Needs root, the daemon's user, or the control group.
`;

export async function run(argv: string[]): Promise<number> {
  const a = parseClientArgs(argv, { egress: { type: 'string' }, changed: { type: 'boolean' } }, true);
  if (a.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const v = a.values as { egress?: string; changed?: boolean };
  const given = [a.positionals.length > 0, v.egress !== undefined, v.changed === true].filter(Boolean).length;
  if (given !== 1 || a.positionals.length > 1) throw new UsageError('give exactly one of FLOW, --egress NAME, --changed (see switchyard close --help)');
  const params = a.positionals[0] !== undefined ? { flow: a.positionals[0] } : v.egress !== undefined ? { egress: v.egress } : { changed: true };
  const r = (await call(a.socket, 'close', params)) as { closed: number };
  if (a.format === 'json') printJson(r);
  else process.stdout.write(`closed ${r.closed} flow(s)\n`);
  return 0;
}
