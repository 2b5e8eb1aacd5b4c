// Shared by the client commands (status, reload, stop, conns, ...): find the daemon's control
// endpoint, make a call, print a table or JSON. The daemon's error codes reach the user as they
// are (`switchyard: SY_ERR_...: message`, exit 1; usage errors exit 2).
import { callDaemon, ControlClient } from '../control/index.ts';
import { ControlError, isSwitchyardError } from '../errors.ts';
import { resolvePaths, type RunMode } from '../paths.ts';
import { formatOption, parseCommandArgs } from './args.ts';

/**
 * Where to find the daemon: `--socket`, else SWITCHYARD_RUNTIME_DIR (both modes resolve to it),
 * else the caller's own mode first (root: the system daemon; others: their user daemon), then the
 * other one — an unprivileged user usually talks to the system daemon.
 */
export function candidateEndpoints(socket: string | undefined): string[] {
  if (socket !== undefined) return [socket];
  const mine = resolvePaths();
  const other: RunMode = mine.mode === 'service' ? 'user' : 'service';
  const list = [mine.controlEndpoint, resolvePaths(other).controlEndpoint];
  return [...new Set(list)];
}

export async function connectDaemon(socket: string | undefined, timeoutMs?: number): Promise<{ client: ControlClient; endpoint: string }> {
  const tried = candidateEndpoints(socket);
  for (const ep of tried) {
    try {
      return { client: await ControlClient.connect(ep, timeoutMs === undefined ? {} : { timeoutMs }), endpoint: ep };
    } catch (err) {
      if (!(isSwitchyardError(err) && err.code === 'SY_ERR_CONTROL_NOT_RUNNING')) throw err;
    }
  }
  throw new ControlError('SY_ERR_CONTROL_NOT_RUNNING', `no daemon answers on ${tried.join(' or ')} (is \`switchyard up\` running?)`);
}

export async function call(socket: string | undefined, method: string, params: unknown = null, timeoutMs?: number): Promise<unknown> {
  const { client } = await connectDaemon(socket, timeoutMs);
  try {
    return await client.call(method, params, timeoutMs === undefined ? {} : { timeoutMs });
  } finally {
    client.close();
  }
}

export { callDaemon };

/** Options every client command takes. */
export const COMMON_OPTIONS = {
  format: { type: 'string' },
  socket: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const COMMON_HELP = `  --format FMT      text (default) or json (stable fields: docs/cli.md)
  --socket PATH     control socket (default: the daemon's runtime directory)
`;

export function parseClientArgs<T extends NonNullable<Parameters<typeof parseCommandArgs>[1]>>(argv: string[], extra: T, positionals = false) {
  const parsed = parseCommandArgs(argv, { ...COMMON_OPTIONS, ...extra }, positionals);
  const v = parsed.values as Record<string, unknown>;
  return {
    ...parsed,
    help: v['help'] === true,
    format: formatOption(v['format'] as string | undefined),
    socket: v['socket'] as string | undefined,
  };
}

export function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v) + '\n');
}

/** A plain text table: columns padded to the widest cell, no borders. */
export function table(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

export function ago(ms: number | null | undefined, now = Date.now()): string {
  if (ms === null || ms === undefined) return '-';
  return duration(now - ms);
}

export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n}B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)}K`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)}M`;
  return `${(n / 1024 ** 3).toFixed(2)}G`;
}
