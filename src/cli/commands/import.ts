// `switchyard import FILE [--linked]`: a config or rule-list file as a pending revision.
import { resolve } from 'node:path';
import { UsageError } from '../../errors.ts';
import type { ListFormat } from '../../lists/types.ts';
import { call, parseClientArgs, printJson, COMMON_HELP } from '../client.ts';

export const summary = 'import a config or rule-list file as a pending revision (--linked: follow its changes)';

const HELP = `usage: switchyard import FILE [--linked] [--format text|json] [--socket PATH]
       switchyard import FILE --format plain|v2fly|singbox|clash|clash-domain|clash-ipcidr|clash-classical|netrulerouter
                         --egress EGRESS [--linked] [--socket PATH]

FILE is a whole config (it replaces the running one) or a rule list (only \`version = 1\` and
[[rule]] tables: appended to the running rules, replacing the rules an earlier import of the same
file added). Every config limit applies (size, nesting, rule and pattern counts, pattern lengths,
version, unknown keys). The result is always a PENDING revision: \`switchyard approve REV\`.
  --linked          later changes of FILE make new pending revisions (default: a snapshot —
                    a later change only produces a notice in \`switchyard status\`)
With a list --format the file is a rule list in that format (docs/lists.md; \`clash\` means
clash-classical): it becomes a [[list]] of the running config, every entry taking EGRESS
(NetRuleRouter +block entries: block). It is parsed strictly first (errors name the line); the
64 MiB list size limit applies instead of the config's 1 MiB.
Needs root, the daemon's user, or the control group. The daemon reads FILE itself.
${COMMON_HELP}`;

const LIST_FORMAT_ARGS: Record<string, ListFormat> = {
  plain: 'plain',
  v2fly: 'v2fly',
  singbox: 'singbox',
  'sing-box': 'singbox',
  clash: 'clash-classical',
  'clash-domain': 'clash-domain',
  'clash-ipcidr': 'clash-ipcidr',
  'clash-classical': 'clash-classical',
  netrulerouter: 'netrulerouter',
};

export async function run(argv: string[]): Promise<number> {
  // --format is the output format (text|json) or, for a rule list, the list's format: the names
  // do not overlap, so one option serves both (as the docs promise `import FILE --format v2fly`).
  argv = [...argv];
  let listFormat: ListFormat | undefined;
  for (let i = 0; i < argv.length; i++) {
    const m = /^--format(?:=(.*))?$/.exec(argv[i]!);
    if (!m) continue;
    const v = m[1] ?? argv[i + 1];
    if (v !== undefined && Object.hasOwn(LIST_FORMAT_ARGS, v)) {
      listFormat = LIST_FORMAT_ARGS[v];
      argv.splice(i, m[1] === undefined ? 2 : 1);
      break;
    }
  }
  const a = parseClientArgs(argv, { linked: { type: 'boolean' }, egress: { type: 'string' } }, true);
  if (a.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (a.positionals.length !== 1) throw new UsageError('give exactly one FILE');
  const linked = (a.values as Record<string, unknown>)['linked'] === true;
  const egress = (a.values as Record<string, unknown>)['egress'] as string | undefined;
  if (listFormat !== undefined && egress === undefined) throw new UsageError('a list import needs --egress EGRESS (the egress its entries take)');
  if (listFormat === undefined && egress !== undefined) throw new UsageError('--egress applies to list formats only (give --format plain|v2fly|…)');
  const params = { path: resolve(a.positionals[0]!), linked, interactive: process.stdin.isTTY === true, ...(listFormat ? { format: listFormat, egress } : {}) };
  const r = (await call(a.socket, 'import', params, 60_000)) as {
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
