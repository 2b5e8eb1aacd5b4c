// `switchyard alerts [ack ID]`: store alerts that stay in `status` until reviewed.
import { UsageError } from '../../errors.ts';
import { call, parseClientArgs, printJson, table, COMMON_HELP } from '../client.ts';

export const summary = 'list store alerts (tamper, high-risk, …) or mark one reviewed: alerts ack ID';

const HELP = `usage: switchyard alerts [--all] [--format text|json] [--socket PATH]
       switchyard alerts ack ID

An alert stays in \`switchyard status\` until reviewed: \`alerts ack ID\` (audited; needs root,
the daemon's user or the control group), or approving / rejecting the revision that raised it.
Tamper alerts are cleared only by \`alerts ack\`.
  --all             include reviewed alerts
${COMMON_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const a = parseClientArgs(argv, { all: { type: 'boolean' } }, true);
  if (a.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (a.positionals[0] === 'ack') {
    const id = Number(a.positionals[1]);
    if (a.positionals.length !== 2 || !Number.isInteger(id) || id < 1) throw new UsageError('usage: switchyard alerts ack ID');
    const r = await call(a.socket, 'alerts.ack', { id });
    if (a.format === 'json') printJson(r);
    else process.stdout.write(`alert #${id} reviewed\n`);
    return 0;
  }
  if (a.positionals.length > 0) throw new UsageError(`unknown alerts subcommand '${a.positionals[0]}'`);
  const r = (await call(a.socket, 'alerts', { all: (a.values as Record<string, unknown>)['all'] === true })) as {
    alerts: { id: number; kind: string; message: string; revision?: number; time: string; reviewed: boolean; reviewedBy?: string }[];
  };
  if (a.format === 'json') printJson(r);
  else process.stdout.write(r.alerts.length === 0 ? 'no alerts\n' : table(['ID', 'KIND', 'REV', 'TIME', 'REVIEWED', 'MESSAGE'], r.alerts.map((x) => [x.id, x.kind, x.revision, x.time, x.reviewed ? (x.reviewedBy ?? 'yes') : 'no', x.message])));
  return 0;
}
