// `switchyard check-config FILE`: validate a config; exit 0 when valid, 2 with every problem named.
import { UsageError } from '../../errors.ts';
import { loadConfigFile } from '../../config-file.ts';
import { formatOption, parseCommandArgs } from '../args.ts';

export const summary = 'validate a config file (exit 2 with each problem\'s key path and line)';

const HELP = `usage: switchyard check-config FILE [--format text|json]

Parses and validates FILE (config v1, or a policy-router-rs config, read with a notice). Prints a
summary and exits 0 when it is valid; otherwise prints each problem with its key path and line
and exits 2.
`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, { format: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, true);
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const format = formatOption(values.format);
  if (positionals.length !== 1) throw new UsageError('usage: switchyard check-config FILE');
  const file = positionals[0]!;
  const c = loadConfigFile(file);
  const egresses = Object.keys(c.egress);
  if (format === 'json') {
    process.stdout.write(JSON.stringify({ ok: true, file, rules: c.rules.length, exempt: c.exempt.length, egresses, default: c.default, notices: c.notices }) + '\n');
    return 0;
  }
  const lines = [`ok: ${file}: ${c.rules.length} rules, ${c.exempt.length} exempt entries, egresses ${egresses.join(', ')}; default ${c.default}`];
  for (const n of c.notices) lines.push(`notice: ${n}`);
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}
