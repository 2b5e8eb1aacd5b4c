// `switchyard diff [REV]`: what a revision would change against the running policy.
import { UsageError } from '../../errors.ts';
import { call, parseClientArgs, printJson, COMMON_HELP } from '../client.ts';

export const summary = 'show what a revision changes against the running policy, its origin and risk';

const HELP = `usage: switchyard diff [REV] [--format text|json] [--socket PATH]

Without REV: the newest pending revision. Lines: \`+\` added, \`-\` removed, \`~\` rerouted or
changed, \`default: a -> b\`, exemptions, egresses, sections.
${COMMON_HELP}`;

export function revArg(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s.replace(/^#/, ''));
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`'${s}' is not a revision number`);
  return n;
}

export async function run(argv: string[]): Promise<number> {
  const a = parseClientArgs(argv, {}, true);
  if (a.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (a.positionals.length > 1) throw new UsageError('give at most one revision');
  const n = revArg(a.positionals[0]);
  const r = (await call(a.socket, 'diff', n === undefined ? {} : { revision: n })) as {
    revision: number;
    state: string;
    against: number | null;
    provenance: { channel: string; source: string | null; sourceSha256: string | null; user: string; time: string; interactive: boolean; note?: string };
    risk: { level: string; reasons: string[] };
    lines: string[];
    moreLines: number;
  };
  if (a.format === 'json') {
    printJson(r);
    return 0;
  }
  const p = r.provenance;
  const out = [
    `revision #${r.revision} (${r.state}) against the running #${r.against ?? '-'}`,
    `origin: ${p.channel}${p.source ? ` ${p.source}` : ''}${p.sourceSha256 ? ` sha256 ${p.sourceSha256.slice(0, 16)}…` : ''}, by ${p.user} at ${p.time}${p.interactive ? '' : ' (not interactive)'}${p.note ? ` — ${p.note}` : ''}`,
    `risk: ${r.risk.level.toUpperCase()}`,
    ...r.risk.reasons.map((x) => `  ${x}`),
    '',
    ...r.lines,
  ];
  if (r.moreLines) out.push(`… and ${r.moreLines} more lines (--format json has the counts)`);
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}
