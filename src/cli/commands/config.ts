// `switchyard config convert FILE`: print (or write) the config v1 form of a config, e.g. one in
// policy-router-rs's format. The output loads back to an equivalent policy.
import { writeFileSync } from 'node:fs';
import { UsageError } from '../../errors.ts';
import { loadConfigFile } from '../../config-file.ts';
import { configToToml } from '../../policy/index.ts';
import { parseCommandArgs } from '../args.ts';

export const summary = 'config tools: `config convert FILE` writes the v1 form of a config';

const HELP = `usage: switchyard config convert FILE [--output OUT]

Reads FILE (config v1 or policy-router-rs format) and prints it as config v1 TOML, or writes it to
OUT. Notices about the conversion go to stderr and into the output's header comment.
`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, { output: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } }, true);
  if (values.help || positionals.length === 0) {
    process.stdout.write(HELP);
    return values.help ? 0 : 2;
  }
  const [sub, file, ...extra] = positionals;
  if (sub !== 'convert') throw new UsageError(`unknown config subcommand '${sub}' (try: switchyard config convert FILE)`);
  if (file === undefined || extra.length) throw new UsageError('usage: switchyard config convert FILE [--output OUT]');
  const c = loadConfigFile(file);
  const header = [`Converted by \`switchyard config convert\` from ${file}.`, ...c.notices.map((n) => `notice: ${n}`)].join('\n');
  const text = configToToml(c, header);
  for (const n of c.notices) process.stderr.write(`notice: ${n}\n`);
  if (values.output !== undefined) writeFileSync(values.output, text);
  else process.stdout.write(text);
  return 0;
}
