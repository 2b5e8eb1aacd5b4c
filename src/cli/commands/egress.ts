// `switchyard egress`: the egresses, their health and supervised processes.
import { call, parseClientArgs, printJson, COMMON_HELP } from '../client.ts';
import { egressTable, type StatusReply } from './status.ts';

export const summary = 'list egresses with health and supervised process state';

const HELP = `usage: switchyard egress [--format text|json] [--socket PATH]

${COMMON_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const a = parseClientArgs(argv, {});
  if (a.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const r = (await call(a.socket, 'egress')) as { egress: StatusReply['egress'] };
  if (a.format === 'json') printJson(r);
  else process.stdout.write(egressTable(r.egress));
  return 0;
}
