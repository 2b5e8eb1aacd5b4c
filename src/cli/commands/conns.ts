// `switchyard conns [--watch]`: live flows. Unprivileged callers see only their own.
import { bytes, call, duration, parseClientArgs, printJson, table, COMMON_HELP } from '../client.ts';
import type { FlowView } from '../../daemon/methods.ts';
import { UsageError } from '../../errors.ts';

export const summary = 'list live flows (yours only unless you are root or in the control group)';

const HELP = `usage: switchyard conns [--watch] [--interval SECONDS] [--format text|json] [--socket PATH]

One row per live flow: id, inbound, process, destination, domain (and where it came from),
egress, deciding rule, bytes up/down, age. CHANGED marks flows the running policy would now send
elsewhere (after a reload). Flows reveal browsing: root and the control group see every flow,
others only their own (by the uid owning the connection).

  --watch           refresh until interrupted (JSON: one line per refresh)
  --interval SECS   refresh period for --watch (default 2)
${COMMON_HELP}`;

function render(flows: FlowView[]): string {
  return table(
    ['ID', 'IN', 'PROCESS', 'DESTINATION', 'DOMAIN', 'EGRESS', 'RULE', 'UP', 'DOWN', 'AGE', 'CHANGED'],
    flows.map((f) => [
      f.id,
      f.inbound,
      f.process ? `${f.process}${f.pid ? `(${f.pid})` : ''}` : null,
      f.dst,
      f.domain ? `${f.domain} [${f.domainSource}]` : null,
      f.egress,
      f.rule,
      bytes(f.bytesUp),
      bytes(f.bytesDown),
      duration(f.ageMs),
      f.changed ? 'yes' : '',
    ]),
  );
}

export async function run(argv: string[]): Promise<number> {
  const a = parseClientArgs(argv, { watch: { type: 'boolean' }, interval: { type: 'string' } });
  if (a.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const v = a.values as { watch?: boolean; interval?: string };
  const interval = v.interval === undefined ? 2 : Number(v.interval);
  if (!Number.isFinite(interval) || interval < 0.2 || interval > 3600) throw new UsageError('--interval must be 0.2..3600 seconds');
  // --watch ends on SIGINT/SIGTERM with exit code 0: the refresh in flight finishes (its
  // connection is closed by call()), the wait is cut short, nothing is printed half-way.
  let stopped = false;
  let wake: () => void = () => {};
  const stop = () => {
    stopped = true;
    wake();
  };
  if (v.watch) {
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  }
  try {
    for (;;) {
      const r = (await call(a.socket, 'conns')) as { generation: number; flows: FlowView[] };
      if (a.format === 'json') printJson(r);
      else {
        if (v.watch && process.stdout.isTTY) process.stdout.write('\x1b[H\x1b[2J');
        process.stdout.write(r.flows.length ? render(r.flows) : 'no live flows\n');
      }
      if (!v.watch || stopped) return 0;
      await new Promise<void>((res) => {
        const timer = setTimeout(res, interval * 1000);
        wake = () => {
          clearTimeout(timer);
          res();
        };
      });
      if (stopped) return 0;
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
