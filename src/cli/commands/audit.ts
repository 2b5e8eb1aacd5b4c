// `switchyard audit [--verify]`: the audit log, and its check against the protected anchor.
import { StoreError } from '../../errors.ts';
import { call, parseClientArgs, printJson, COMMON_HELP } from '../client.ts';

export const summary = 'show the audit log; --verify checks its hash chain against the protected state';

const HELP = `usage: switchyard audit [--verify] [--limit N] [--format text|json] [--socket PATH]

Events are shown to privileged callers only (they name users and files). --verify checks every
line's hash, the chain, and the count and last hash kept in the HMAC-protected state: an edited
line, a cut end, and a log rewritten with recomputed hashes are all reported, with exit 1 and
SY_ERR_STORE_AUDIT.
  --verify          verify the log
  --limit N         last N events (default 50, at most 1000)
${COMMON_HELP}`;

interface Reply {
  count: number;
  head: string;
  verification?: { ok: boolean; count: number; problems: string[]; firstBadLine: number | null };
  events: { seq: number; time: string; type: string; revision?: number; actor?: { user: string }; detail?: unknown }[] | null;
}

export async function run(argv: string[]): Promise<number> {
  const a = parseClientArgs(argv, { verify: { type: 'boolean' }, limit: { type: 'string' } });
  if (a.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const v = a.values as Record<string, unknown>;
  const limit = v['limit'] === undefined ? 50 : Number(v['limit']);
  const r = (await call(a.socket, 'audit', { verify: v['verify'] === true, limit })) as Reply;
  const bad = r.verification && !r.verification.ok;
  if (a.format === 'json' && !bad) {
    printJson(r);
    return 0;
  }
  if (a.format !== 'json') {
    const lines: string[] = [];
    for (const e of r.events ?? []) lines.push(`${e.seq} ${e.time} ${e.type}${e.revision !== undefined ? ` #${e.revision}` : ''}${e.actor ? ` by ${e.actor.user}` : ''}${e.detail ? ` ${JSON.stringify(e.detail)}` : ''}`);
    if (r.events === null) lines.push('(events are shown to privileged callers only)');
    lines.push(`${r.count} events, last hash ${r.head.slice(0, 16)}…`);
    if (r.verification?.ok) lines.push('verified: every line, the chain, and the count and last hash in the protected state agree');
    process.stdout.write(lines.join('\n') + '\n');
  }
  if (bad) throw new StoreError('SY_ERR_STORE_AUDIT', `the audit log failed verification: ${r.verification!.problems.join('; ')}`);
  return 0;
}
