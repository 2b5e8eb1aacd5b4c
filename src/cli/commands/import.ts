// `switchyard import FILE [--linked]`: a config or rule-list file as a pending revision.
import { resolve } from 'node:path';
import { UsageError } from '../../errors.ts';
import { call, parseClientArgs, printJson, COMMON_HELP } from '../client.ts';

export const summary = 'import a config or rule-list file as a pending revision (--linked: follow its changes)';

const HELP = `usage: switchyard import FILE [--linked] [--format text|json] [--socket PATH]

FILE is a whole config (it replaces the running one) or a rule list (only \`version = 1\` and
[[rule]] tables: appended to the running rules, replacing the rules an earlier import of the same
file added). Every config limit applies (size, nesting, rule and pattern counts, pattern lengths,
version, unknown keys). The result is always a PENDING revision: \`switchyard approve REV\`.
  --linked          later changes of FILE make new pending revisions (default: a snapshot —
                    a later change only produces a notice in \`switchyard status\`)
Needs root, the daemon's user, or the control group. The daemon reads FILE itself.
${COMMON_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const a = parseClientArgs(argv, { linked: { type: 'boolean' } }, true);
  if (a.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (a.positionals.length !== 1) throw new UsageError('give exactly one FILE');
  const linked = (a.values as Record<string, unknown>)['linked'] === true;
  const r = (await call(a.socket, 'import', { path: resolve(a.positionals[0]!), linked, interactive: process.stdin.isTTY === true }, 60_000)) as {
    revision: number | null;
    kind: string;
    rules: number;
    risk: { level: string; reasons: string[] } | null;
  };
  if (a.format === 'json') printJson(r);
  else if (r.revision === null) process.stdout.write(`no policy change (${r.kind}, ${r.rules} rules)${linked ? '; linked: later changes make pending revisions' : ''}\n`);
  else
    process.stdout.write(
      [`revision #${r.revision} is PENDING (${r.kind}, ${r.rules} rules, risk ${r.risk?.level}): switchyard diff ${r.revision}, then approve or reject`, ...(r.risk?.reasons ?? []).map((x) => `  ${x}`)].join('\n') + '\n',
    );
  return 0;
}
