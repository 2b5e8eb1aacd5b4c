// One home for every filesystem path switchyard uses. Two modes:
// - service: the system daemon (root / LocalSystem) — /run/switchyard, /var/lib/switchyard,
//   %ProgramData%\switchyard on Windows;
// - user: an unprivileged daemon — $XDG_RUNTIME_DIR/switchyard, $XDG_STATE_HOME/switchyard,
//   %LOCALAPPDATA%\switchyard on Windows.
// SWITCHYARD_RUNTIME_DIR and SWITCHYARD_STATE_DIR override both (tests use them).
import { join } from 'node:path';
import { homedir, tmpdir } from 'node:os';
import { CONTROL_SOCKET_NAME, WINDOWS_PIPE_NAME } from './ids.ts';

export type RunMode = 'service' | 'user';

export interface PathEnv {
  platform: NodeJS.Platform;
  env: Record<string, string | undefined>;
  uid: number | undefined;
  home: string;
}

export function currentPathEnv(): PathEnv {
  return {
    platform: process.platform,
    env: process.env,
    uid: typeof process.getuid === 'function' ? process.getuid() : undefined,
    home: homedir(),
  };
}

/** Root on Unix runs in service mode; everyone else in user mode. Windows: SWITCHYARD_MODE decides. */
export function defaultMode(pe: PathEnv = currentPathEnv()): RunMode {
  const forced = pe.env['SWITCHYARD_MODE'];
  if (forced === 'service' || forced === 'user') return forced;
  if (pe.platform === 'win32') return 'user';
  return pe.uid === 0 ? 'service' : 'user';
}

export interface Paths {
  mode: RunMode;
  /** Sockets and pid files: gone after reboot. */
  runtimeDir: string;
  /** Correlation store, revisions, audit log, HMAC key: kept across restarts. */
  stateDir: string;
  /** Control endpoint: a Unix socket path or a Windows pipe name. */
  controlEndpoint: string;
}

export function resolvePaths(mode: RunMode = defaultMode(), pe: PathEnv = currentPathEnv()): Paths {
  const e = pe.env;
  let runtimeDir: string;
  let stateDir: string;
  if (pe.platform === 'win32') {
    const base =
      mode === 'service'
        ? join(e['ProgramData'] ?? 'C:\\ProgramData', 'switchyard')
        : join(e['LOCALAPPDATA'] ?? join(pe.home, 'AppData', 'Local'), 'switchyard');
    runtimeDir = join(base, 'run');
    stateDir = join(base, 'state');
  } else if (mode === 'service') {
    runtimeDir = '/run/switchyard';
    stateDir = '/var/lib/switchyard';
  } else {
    runtimeDir = join(e['XDG_RUNTIME_DIR'] ?? join(tmpdir(), `switchyard-${pe.uid ?? 'user'}`), 'switchyard');
    stateDir = join(e['XDG_STATE_HOME'] ?? join(pe.home, '.local', 'state'), 'switchyard');
  }
  runtimeDir = e['SWITCHYARD_RUNTIME_DIR'] ?? runtimeDir;
  stateDir = e['SWITCHYARD_STATE_DIR'] ?? stateDir;
  const controlEndpoint =
    pe.platform === 'win32'
      ? (e['SWITCHYARD_PIPE'] ?? (mode === 'service' ? WINDOWS_PIPE_NAME : `${WINDOWS_PIPE_NAME}-${e['USERNAME'] ?? 'user'}`))
      : join(runtimeDir, CONTROL_SOCKET_NAME);
  return { mode, runtimeDir, stateDir, controlEndpoint };
}

/** The embedded default config shipped in the package. */
export const DEFAULT_CONFIG_URL = new URL('../config/default.toml', import.meta.url);

/** The package root (src/ in development, dist/ in production: both one level below it). */
export const PACKAGE_ROOT_URL = new URL('../', import.meta.url);
