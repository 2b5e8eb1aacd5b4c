// `switchyard rules`: per-rule hit counters of the running policy.
import { ago, call, parseClientArgs, printJson, table, COMMON_HELP } from '../client.ts';
import type { RuleHits } from '../../daemon/live-policy.ts';

export const summary = 'show per-rule hit counters (flows connected / refused) of the running policy';

const HELP = `usage: switchyard rules [--format text|json] [--socket PATH]

Counters count flows the front door decided since the running config was loaded (a reload
starts them again).

${COMMON_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const a = parseClientArgs(argv, {});
  if (a.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const r = (await call(a.socket, 'rules')) as { generation: number; since: number; rules: RuleHits[] };
  if (a.format === 'json') {
    printJson(r);
    return 0;
  }
  process.stdout.write(`generation ${r.generation}, counting for ${ago(r.since)}\n`);
  process.stdout.write(table(['RULE', 'EGRESS', 'CONNECTED', 'REFUSED', 'LAST'], r.rules.map((h) => [h.rule, h.egress, h.connected, h.refused, h.lastAt ? `${ago(h.lastAt)} ago` : null])));
  return 0;
}
