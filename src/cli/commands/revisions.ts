// `switchyard revisions`: the policy revisions the daemon keeps, newest last.
import { call, parseClientArgs, printJson, table, COMMON_HELP } from '../client.ts';

export const summary = 'list policy revisions: state, origin, risk, integrity';

const HELP = `usage: switchyard revisions [--format text|json] [--socket PATH]

States: pending (waits for approve), active, last-known-good, rejected, superseded.
${COMMON_HELP}`;

interface Row {
  n: number;
  state: string;
  channel: string | null;
  source: string | null;
  user: string | null;
  risk: string | null;
  createdAt: string | null;
  reason: string | null;
  integrity: string;
}

export async function run(argv: string[]): Promise<number> {
  const a = parseClientArgs(argv, {});
  if (a.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const r = (await call(a.socket, 'revisions')) as { active: number | null; lastKnownGood: number | null; revisions: Row[] };
  if (a.format === 'json') {
    printJson(r);
    return 0;
  }
  process.stdout.write(`active #${r.active ?? '-'}, last-known-good #${r.lastKnownGood ?? '-'}\n`);
  process.stdout.write(
    table(
      ['REV', 'STATE', 'CHANNEL', 'SOURCE', 'USER', 'RISK', 'CREATED', 'NOTE'],
      r.revisions.map((x) => [x.n, x.state, x.channel, x.source, x.user, x.risk, x.createdAt, x.integrity !== 'ok' ? `INTEGRITY: ${x.integrity}` : x.reason]),
    ),
  );
  return 0;
}
