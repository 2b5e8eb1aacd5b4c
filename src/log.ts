// The one logger factory. pino writes JSON lines by default (for journald, files and log
// shippers); on a terminal a small formatter below prints one readable line per record instead.
//
// Privacy rule (docs/logging in docs/control.md): host names, domains, IP addresses, paths and
// user names reveal what people do, so they are logged only at `debug` or `trace`. Callers put
// such values under the SENSITIVE_KEYS field names; at `info` and above the factory redacts those
// fields, so a call site that forgets the rule still cannot leak them. The level is chosen at
// start (flag, then SWITCHYARD_LOG, then `info`); redaction follows the level chosen then.
//
// Why not pino-pretty: it pulls in a dozen packages (colorette, dateformat, fast-copy,
// help-me, pump, secure-json-parse, ...) for what is a 40-line job here, and the daemon's
// dependency set is part of its attack surface.
import { pino, type Logger, type DestinationStream, type LevelWithSilent } from 'pino';
import { UsageError } from './errors.ts';

export type { Logger };

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Field names whose values are redacted unless the level is debug or trace. */
export const SENSITIVE_KEYS = [
  'host',
  'hostname',
  'domain',
  'domains',
  'sni',
  'ip',
  'address',
  'src',
  'dst',
  'path',
  'file',
  'exe',
  'user',
  'cmdline',
] as const;

export const REDACTED = '[redacted]';

export interface LoggerOptions {
  /** From `--log-level`; wins over the environment. */
  level?: string | undefined;
  /** Defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** 'json', 'pretty', or 'auto' (pretty when the destination is a TTY). Default 'auto'. */
  format?: 'json' | 'pretty' | 'auto';
  /** Where lines go; default stderr (fd 2), so command output on stdout stays clean. */
  destination?: DestinationStream & { isTTY?: boolean };
  /** Component name, logged as `component`. */
  component?: string;
}

/** Validates a level string; throws SY_ERR_USAGE naming the allowed values. */
export function parseLogLevel(value: string, from: string): LogLevel {
  const v = value.trim().toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(v)) return v as LogLevel;
  throw new UsageError(`${from}: unknown log level '${value}' (one of ${LOG_LEVELS.join(', ')})`);
}

/** Flag first, then SWITCHYARD_LOG, then info. */
export function resolveLogLevel(flag: string | undefined, env: Record<string, string | undefined> = process.env): LogLevel {
  if (flag !== undefined) return parseLogLevel(flag, '--log-level');
  const fromEnv = env['SWITCHYARD_LOG'];
  if (fromEnv !== undefined && fromEnv !== '') return parseLogLevel(fromEnv, 'SWITCHYARD_LOG');
  return 'info';
}

/** True when sensitive fields are logged as they are. */
export function revealsSensitive(level: LogLevel): boolean {
  return level === 'trace' || level === 'debug';
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = resolveLogLevel(opts.level, opts.env ?? process.env);
  const dest = opts.destination ?? (process.stderr as unknown as DestinationStream & { isTTY?: boolean });
  const format = opts.format ?? 'auto';
  const pretty = format === 'pretty' || (format === 'auto' && dest.isTTY === true);
  const options: pino.LoggerOptions = {
    level: level as LevelWithSilent,
    base: opts.component === undefined ? { pid: process.pid } : { pid: process.pid, component: opts.component },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (!revealsSensitive(level)) {
    // Top level and one level down (e.g. `{ flow: { dst } }`), which is how call sites nest.
    options.redact = {
      paths: SENSITIVE_KEYS.flatMap((k) => [k, `*.${k}`]),
      censor: REDACTED,
    };
  }
  return pino(options, pretty ? prettyStream(dest) : dest);
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const OMIT = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

/** One readable line per record: `12:00:01.123 INFO  message key=value ...`. */
export function formatPretty(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : line + '\n'; // not ours: pass through untouched
  }
  if (rec === null || typeof rec !== 'object') return line;
  const time = typeof rec['time'] === 'string' ? rec['time'].slice(11, 23) : '';
  const lvl = (LEVEL_NAMES[Number(rec['level'])] ?? String(rec['level'])).padEnd(5);
  const parts = [time, lvl, typeof rec['msg'] === 'string' ? rec['msg'] : ''];
  for (const [k, v] of Object.entries(rec)) {
    if (OMIT.has(k)) continue;
    if (k === 'err' && v && typeof v === 'object') {
      const e = v as { type?: string; message?: string; code?: string; stack?: string };
      parts.push(`err=${e.code ?? e.type ?? 'Error'}: ${e.message ?? ''}`);
      continue;
    }
    parts.push(`${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  }
  return parts.filter((p) => p !== '').join(' ') + '\n';
}

function prettyStream(dest: DestinationStream): DestinationStream {
  return { write: (s: string) => void dest.write(formatPretty(s)) };
}
