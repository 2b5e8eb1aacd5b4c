// Helpers for driving a real daemon process: free ports, a config per test, the daemon spawned
// from source with private runtime/state directories, the CLI, a counting echo server (it tells
// which path a flow took by the source address), and flows through the proxy inbound.
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callDaemon } from '../../src/control/index.ts';

export const CLI = new URL('./cli.ts', import.meta.url).pathname;
export const TSX = new URL('../../node_modules/tsx/dist/esm/index.mjs', import.meta.url).pathname;
export const ROOT = new URL('../../', import.meta.url).pathname;

/** A port free for both TCP and UDP on 127.0.0.1 (the DNS listener binds both). */
export async function freePort(): Promise<number> {
  for (;;) {
    const s = createServer();
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
    const port = (s.address() as { port: number }).port;
    const u = createSocket('udp4');
    const ok = await new Promise<boolean>((res) => {
      u.once('error', () => res(false));
      u.bind(port, '127.0.0.1', () => res(true));
    });
    u.close();
    await new Promise((r) => s.close(r));
    if (ok) return port;
  }
}

export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  // Other users (the `nobody` test) must reach the socket inside.
  chmodSync(d, 0o755);
  return d;
}

export interface DaemonProc {
  proc: ChildProcess;
  dir: string;
  env: NodeJS.ProcessEnv;
  endpoint: string;
  stderr: () => string;
  exited: Promise<number | null>;
}

export function daemonEnv(dir: string): NodeJS.ProcessEnv {
  return { ...process.env, SWITCHYARD_RUNTIME_DIR: join(dir, 'run'), SWITCHYARD_STATE_DIR: join(dir, 'state'), SWITCHYARD_LOG: 'debug' };
}

/** Spawns `switchyard up --config FILE` (extraEnv: e.g. the test-only SWITCHYARD_FAILPOINT) and waits until its control socket answers `status`. */
export async function startDaemon(dir: string, configPath: string, extraArgs: string[] = [], extraEnv: NodeJS.ProcessEnv = {}): Promise<DaemonProc> {
  const env = { ...daemonEnv(dir), ...extraEnv };
  const proc = spawn(process.execPath, ['--import', TSX, CLI, 'up', '--config', configPath, ...extraArgs], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const endpoint = join(dir, 'run', 'control.sock');
  const d: DaemonProc = { proc, dir, env, endpoint, stderr: () => err, exited };
  const deadline = Date.now() + 20_000;
  let done = false;
  void exited.then(() => (done = true));
  for (;;) {
    if (done) throw new Error(`daemon exited while starting:\n${err}`);
    try {
      await callDaemon(endpoint, 'status', null, { timeoutMs: 2000 });
      return d;
    } catch {
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`daemon did not come up:\n${err}`);
      }
      await sleep(100);
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs the CLI (synchronously: the test waits for it anyway); `as` runs it as another user via setpriv. */
export function cli(env: NodeJS.ProcessEnv, args: string[], as?: 'nobody'): SpawnSyncReturns<string> {
  const base = [process.execPath, '--import', TSX, CLI, ...args];
  const argv = as === 'nobody' ? ['setpriv', '--reuid', 'nobody', '--regid', 'nogroup', '--clear-groups', ...base] : base;
  return spawnSync(argv[0]!, argv.slice(1), { env: { ...env, SWITCHYARD_LOG: 'silent' }, encoding: 'utf8', cwd: ROOT, timeout: 20_000 });
}

export function call(d: DaemonProc, method: string, params: unknown = null): Promise<unknown> {
  return callDaemon(d.endpoint, method, params, { timeoutMs: 5000 });
}

/** Echo server that records the source address of every connection. */
export interface CountServer {
  server: Server;
  port: number;
  sources: string[];
  sockets: Set<Socket>;
  close(): Promise<void>;
}

export async function countServer(): Promise<CountServer> {
  const sources: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sources.push(s.remoteAddress ?? '?');
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    server,
    port: (server.address() as { port: number }).port,
    sources,
    sockets,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** An HTTP CONNECT through the mixed inbound; resolves with the open tunnel, rejects with the status line. */
export function connectVia(proxyPort: number, host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(proxyPort, '127.0.0.1');
    let head = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('CONNECT timed out'));
    }, 8000);
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('close', () => {
      clearTimeout(timer);
      reject(new Error(`closed before a reply: ${head.split('\r\n')[0]}`));
    });
    const onData = (b: Buffer) => {
      head += b.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      clearTimeout(timer);
      s.off('data', onData);
      s.removeAllListeners('close');
      const status = head.split('\r\n')[0]!;
      if (!/^HTTP\/1\.1 200/.test(status)) {
        s.destroy();
        reject(new Error(status));
        return;
      }
      resolve(s);
    };
    s.on('data', onData);
    s.write(`CONNECT ${host}:${port} HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`);
  });
}

/** Writes `msg` and waits for the echo: proves a tunnel is still alive end to end. */
export function roundTrip(s: Socket, msg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const timer = setTimeout(() => reject(new Error(`no echo of ${msg}`)), 5000);
    const onData = (b: Buffer) => {
      got += b.toString();
      if (got.length >= msg.length) {
        clearTimeout(timer);
        s.off('data', onData);
        resolve(got);
      }
    };
    s.on('data', onData);
    s.write(msg);
  });
}

/** Polls until fn() is truthy (bounded). */
export async function until<T>(fn: () => Promise<T> | T, what: string, ms = 10_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** True when something accepts TCP on 127.0.0.1:port. */
export function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Children of a pid (from /proc/PID/task/PID/children). */
export function childrenOf(pid: number): number[] {
  const r = spawnSync('cat', [`/proc/${pid}/task/${pid}/children`], { encoding: 'utf8' });
  return (r.stdout ?? '').trim().split(/\s+/).filter(Boolean).map(Number);
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs a CLI command inside the test process (the same code path as the binary, without the
 * ~1 s start of a new tsx process): output captured, environment switched for the call.
 */
export async function cliIn(env: NodeJS.ProcessEnv, args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const { main } = await import('../../src/cli/main.ts');
  const keys = ['SWITCHYARD_RUNTIME_DIR', 'SWITCHYARD_STATE_DIR'] as const;
  const saved = keys.map((k) => process.env[k]);
  for (const k of keys) process.env[k] = env[k];
  let stdout = '';
  let stderr = '';
  const ow = process.stdout.write;
  const ew = process.stderr.write;
  // Only strings are the command's: node:test's own reports travel on stdout as binary frames and
  // must pass through untouched.
  process.stdout.write = function (this: NodeJS.WriteStream, c: string | Uint8Array, ...rest: unknown[]) {
    if (typeof c === 'string') return ((stdout += c), true);
    return (ow as (...a: unknown[]) => boolean).call(this, c, ...rest);
  } as typeof process.stdout.write;
  process.stderr.write = function (this: NodeJS.WriteStream, c: string | Uint8Array, ...rest: unknown[]) {
    if (typeof c === 'string') return ((stderr += c), true);
    return (ew as (...a: unknown[]) => boolean).call(this, c, ...rest);
  } as typeof process.stderr.write;
  try {
    const status = await main(args);
    return { status, stdout, stderr };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
    keys.forEach((k, i) => (saved[i] === undefined ? delete process.env[k] : (process.env[k] = saved[i])));
  }
}
