// Shared by the fixtures that run an enforcing Daemon in-process inside `unshare --mount --net`
// (test/daemon/fixtures/enforce.ts, test/revisions/fixtures/enforce.ts): the namespace's
// addresses, a counting server that answers with the address a connection came from, a client
// started in a given cgroup, the config with a supervised microsocks as egress `sup`, and the
// `RESULT {json}` line the host-side test reads.
// Env: SY_TEST_CGROUP_ROOT (per-run cgroup root), SY_TEST_DIR (scratch directory).
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import type { Daemon } from '../../src/daemon/daemon.ts';
import { setupNamespace } from '../redirect-linux/helpers/inside.ts';
import { runFixtureMain } from './fixture-main.ts';

/** The counting server's address (on a veth inside the namespace). */
export const SERVER = '198.18.0.10';
/** The supervised microsocks binds its outgoing side here: a flow through it arrives from this address. */
export const VIA_PROXY = '198.18.0.11';
/** The hierarchy's root group: a client there is in no switchyard group. */
export const OUTSIDE = '/sys/fs/cgroup/cgroup.procs';

/** Reads the fixture's env and points the daemon's runtime and state directories into SY_TEST_DIR. */
export function fixtureEnv(): { root: string; dir: string } {
  const root = process.env['SY_TEST_CGROUP_ROOT']!;
  const dir = process.env['SY_TEST_DIR']!;
  process.env['SWITCHYARD_RUNTIME_DIR'] = join(dir, 'run');
  process.env['SWITCHYARD_STATE_DIR'] = join(dir, 'state');
  return { root, dir };
}

/** Loopback up, a veth carrying SERVER and VIA_PROXY, and a private cgroup2 mount. */
export function setupEnforceNamespace(): void {
  setupNamespace([SERVER, VIA_PROXY], true);
}

/** A server on SERVER:8080 that answers `from <source address>` and records each source. */
export async function startCountingServer(): Promise<{ server: Server; sources: string[] }> {
  const sources: string[] = [];
  const server = createServer((s) => {
    sources.push(s.remoteAddress ?? '?');
    s.on('error', () => {});
    s.end(`from ${s.remoteAddress}`);
  });
  server.listen(8080, SERVER);
  await once(server, 'listening');
  return { server, sources };
}

/**
 * Connects to the counting server from a process placed in `procs` (a cgroup.procs file) or from
 * no group; returns what it read, or `failed (code): …`. Asynchronous: the server and the daemon
 * live in this process's event loop.
 */
export function clientIn(procs: string | null, timeoutS = 3): Promise<string> {
  const cmd = `${procs ? 'echo 0 > "$1" || exit 9; ' : ''}exec socat -T ${timeoutS} -u TCP:${SERVER}:8080,connect-timeout=${timeoutS} -`;
  return new Promise((resolve) => {
    const p = spawn('sh', ['-c', cmd, 'sh', procs ?? ''], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), (timeoutS + 7) * 1000);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve(code === 0 && out.trim() !== '' ? out.trim() : `failed (${code}): ${out.trim()} ${err.trim().split('\n').pop() ?? ''}`);
    });
  });
}

/**
 * A config with [enforce] enabled: DNS on `dnsPort` (no upstream: 127.0.0.1:9), the mixed inbound on
 * `mixedPort`, one SOCKS5 egress `egress` on loopback `socksPort` (`process`: a TOML inline table
 * that makes it supervised), and `rules` (TOML text) after it.
 */
export function enforceConfig(o: { dnsPort: number; mixedPort: number; egress: string; socksPort: number; process?: string; rules: string }): string {
  return `version = 1
default = "direct"
[dns]
listen = ["127.0.0.1:${o.dnsPort}"]
upstreams = ["udp://127.0.0.1:9"]
[inbound]
mixed = "127.0.0.1:${o.mixedPort}"
[enforce]
enabled = true
[egress.${o.egress}]
type = "socks5"
endpoint = "socks5://127.0.0.1:${o.socksPort}"
${o.process ? `process = ${o.process}\n` : ''}${o.rules}`;
}

/** [enforce] enabled, a supervised microsocks as egress `sup` (outgoing from VIA_PROXY), apps of group `sup` sent there. */
export function supConfig(o: { dnsPort: number; mixedPort: number; supPort: number; extra?: string }): string {
  return enforceConfig({
    dnsPort: o.dnsPort,
    mixedPort: o.mixedPort,
    egress: 'sup',
    socksPort: o.supPort,
    process: `{ command = "microsocks", args = ["-i", "127.0.0.1", "-p", "${o.supPort}", "-b", "${VIA_PROXY}"] }`,
    rules: `[[rule]]\negress = "sup"\napps = ["group:sup"]\n${o.extra ?? ''}`,
  });
}

/** The real Daemon and Linux backend with the per-run cgroup root, started. */
export async function startEnforcingDaemon(configPath: string, root: string): Promise<Daemon> {
  const { Daemon } = await import('../../src/daemon/daemon.ts');
  const { createLogger } = await import('../../src/log.ts');
  const log = createLogger({ level: process.env['SY_TEST_LOG'] ?? 'warn', destination: process.stderr as never });
  const d = new Daemon({ configPath, log, watch: false, backend: { linux: { cgroupRoot: root } } });
  await d.start();
  return d;
}

/** Waits until the daemon's egress `name` is healthy (a loaded machine starts a supervised core slowly); its health then. */
export async function egressUp(d: Daemon, name: string, ms = 20_000): Promise<string | undefined> {
  const deadline = Date.now() + ms;
  while (d.egress.health(name)?.state !== 'up' && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
  return d.egress.health(name)?.state;
}

/** Runs the fixture's main and prints `RESULT {json}`; exits 1 when main threw. */
export function reportResult(main: () => Promise<void>, r: Record<string, unknown>): void {
  runFixtureMain(main, r, { errorExitCode: 1 });
}
