// Shared test fixtures for front and egress tests: configs, a rule-function policy (until the
// policy engine is merged), a static resolver, recording servers and real proxy peers
// (microsocks, dante, tinyproxy) started on loopback.
import net from 'node:net';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import type { Config, Decision, EgressConfig, FlowQuery, InboundConfig, Policy } from '../../src/policy/types.ts';
import type { EgressResolver } from '../../src/flow/types.ts';

export function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

const common = { fallback: null, health: { target: null, intervalMs: 60_000, timeoutMs: 2000 }, dns: [], obfuscatesOnly: false, process: null };

export function egressDirect(name = 'direct'): EgressConfig {
  return { ...common, name, type: 'direct' };
}
export function egressBlock(name = 'block'): EgressConfig {
  return { ...common, name, type: 'block' };
}
export function egressSocks(name: string, port: number, extra: Partial<Extract<EgressConfig, { type: 'socks5' }>> = {}): EgressConfig {
  return { ...common, name, type: 'socks5', endpoint: { host: '127.0.0.1', port }, auth: null, sendDomain: true, udp: true, ...extra };
}
export function egressHttp(name: string, port: number, extra: Partial<Extract<EgressConfig, { type: 'http' }>> = {}): EgressConfig {
  return { ...common, name, type: 'http', endpoint: { host: '127.0.0.1', port }, auth: null, sendDomain: true, ...extra };
}
export function egressIface(name: string, iface: string): EgressConfig {
  return { ...common, name, type: 'interface', interface: iface };
}

export function inboundConfig(extra: Partial<InboundConfig> = {}): InboundConfig {
  return {
    mixed: { host: '127.0.0.1', port: 0 },
    allowFrom: [],
    auth: null,
    transparentListen: '127.0.0.1',
    maxSessions: 1000,
    handshakeTimeoutMs: 5000,
    connectTimeoutMs: 5000,
    idleTimeoutMs: 60_000,
    sniffTimeoutMs: 300,
    ...extra,
  };
}

/**
 * `lan` defaults to "policy" here: these tests stand in for remote hosts with loopback addresses
 * (the traffic rules allow nothing else outside a namespace), and lan = "direct" would keep every
 * named destination off the proxies under test. Tests of the lan rule pass "direct".
 */
export function testConfig(egresses: EgressConfig[], inbound: Partial<InboundConfig> = {}, lan: 'direct' | 'policy' = 'policy'): Config {
  const egress: Record<string, EgressConfig> = { direct: egressDirect(), block: egressBlock() };
  for (const e of egresses) egress[e.name] = e;
  return {
    version: 1,
    default: 'direct',
    dns: {} as Config['dns'],
    inbound: inboundConfig(inbound),
    enforce: { enabled: true, mode: 'selected', lan, blockQuic: false, exemptUsers: [], windivertPath: null },
    control: { group: 'switchyard', readUsers: [] },
    egress,
    exempt: [],
    rules: [],
    source: 'test',
    notices: [],
  };
}

/** A Policy whose decide() is a plain function — stands in until the policy engine is merged. */
export function fnPolicy(config: Config, pick: (q: FlowQuery) => string): Policy {
  const decide = (q: FlowQuery): Decision => ({ egress: pick(q), stage: 'default', rule: null, matched: [] });
  return {
    config,
    decide,
    explain: (q) => ({ ...decide(q), query: q, candidates: [] }),
    projectDomain: () => ({ egresses: [config.default], uniform: true, egress: config.default, rule: null }),
  };
}

/** Resolves names from a fixed table; records every (name, egress) asked. */
export function staticResolver(table: Record<string, string[]>): EgressResolver & { asked: [string, string][] } {
  const asked: [string, string][] = [];
  return {
    asked,
    async resolve(name, egress) {
      asked.push([name, egress]);
      const r = table[name];
      if (!r) throw new Error(`NXDOMAIN ${name}`);
      return r;
    },
  };
}

export interface RecordingServer {
  port: number;
  /** Remote addresses of every accepted connection, in order. */
  arrivals: string[];
  close(): Promise<void>;
}

/** TCP server that records the source of each arrival and runs `handler` (default: echo). */
export async function recordingServer(host = '127.0.0.1', handler?: (s: net.Socket) => void): Promise<RecordingServer> {
  const arrivals: string[] = [];
  const sockets = new Set<net.Socket>();
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    arrivals.push((s.remoteAddress ?? '').replace(/^::ffff:/, ''));
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    if (handler) handler(s);
    else s.pipe(s);
  });
  srv.listen(0, host);
  await once(srv, 'listening');
  return {
    port: (srv.address() as net.AddressInfo).port,
    arrivals,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  };
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  const s = net.createServer().listen(0, host);
  await once(s, 'listening');
  const p = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}

export async function waitPort(port: number, host = '127.0.0.1', ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, host, () => (s.destroy(), r(true)));
      s.on('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`port ${host}:${port} never opened`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface Peer {
  port: number;
  proc: ChildProcess;
  stop(): Promise<void>;
}

async function startPeer(cmd: string, args: string[], port: number, cleanup?: () => void): Promise<Peer> {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr?.on('data', (d) => (err += d));
  try {
    await waitPort(port);
  } catch (e) {
    proc.kill('SIGKILL');
    throw new Error(`${cmd} did not start: ${err}`, { cause: e });
  }
  return {
    port,
    proc,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        await once(proc, 'exit');
      }
      cleanup?.();
    },
  };
}

/** microsocks on 127.0.0.1; `-b` binds its outgoing side so servers can tell the path. */
export async function startMicrosocks(bindOut: string, auth?: { user: string; pass: string }): Promise<Peer> {
  const port = await freePort();
  const args = ['-i', '127.0.0.1', '-p', String(port), '-b', bindOut];
  if (auth) args.push('-u', auth.user, '-P', auth.pass);
  return startPeer('microsocks', args, port);
}

/** dante (danted) on 127.0.0.1 with `external:` as its outgoing address. */
export async function startDante(external: string): Promise<Peer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sy-dante-'));
  const conf = join(dir, 'danted.conf');
  writeFileSync(
    conf,
    [
      'logoutput: stderr',
      `internal: 127.0.0.1 port = ${port}`,
      `external: ${external}`,
      'socksmethod: none',
      'clientmethod: none',
      'user.privileged: root',
      'user.unprivileged: nobody',
      'client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }',
      'socks pass { from: 0.0.0.0/0 to: 0.0.0.0/0 command: connect udpassociate udpreply }',
      '',
    ].join('\n'),
  );
  return startPeer('danted', ['-f', conf, '-N', '1', '-p', join(dir, 'pid')], port, () => rmSync(dir, { recursive: true, force: true }));
}

/** tinyproxy on 127.0.0.1, dialling out from `bindOut`. */
export async function startTinyproxy(bindOut: string): Promise<Peer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sy-tinyproxy-'));
  const conf = join(dir, 'tinyproxy.conf');
  writeFileSync(
    conf,
    [`Port ${port}`, 'Listen 127.0.0.1', `Bind ${bindOut}`, 'Timeout 60', 'MaxClients 100', 'Allow 127.0.0.1', 'DisableViaHeader Yes', 'LogLevel Critical', ''].join('\n'),
  );
  return startPeer('tinyproxy', ['-d', '-c', conf], port, () => rmSync(dir, { recursive: true, force: true }));
}

/**
 * Runs a fixture script in fresh network and mount namespaces (`unshare --mount --net`) and
 * returns the JSON object it prints as its last stdout line. Needs root and unshare.
 */
export async function runInNetns(script: string, env: Record<string, string> = {}, timeoutMs = 40_000): Promise<Record<string, unknown>> {
  const tsx = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).pathname;
  const proc = spawn('unshare', ['--mount', '--net', '--', process.execPath, '--import', tsx, script], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // Without the runner's context variable the child is a plain script, not a test subprocess.
    env: Object.fromEntries(Object.entries({ ...process.env, ...env }).filter(([k]) => k !== 'NODE_TEST_CONTEXT')),
  });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(proc, 'exit')) as [number | null];
  clearTimeout(timer);
  const last = out.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(last) as Record<string, unknown>;
  } catch {
    throw new Error(`netns fixture ${script} exited ${code}: ${err.slice(-2000)} ${out.slice(-2000)}`);
  }
}

export const canNetns = isRoot && has('unshare') && has('ip');

// ---------------------------------------------------------------- front harness

import { createEgressSet as _createEgressSet, type EgressSet } from '../../src/egress/set.ts';
import { SessionTable } from '../../src/front/sessions.ts';
import { startMixedInbound, type MixedInbound } from '../../src/front/mixed.ts';
import type { FlowEvent, FrontDeps } from '../../src/front/flow.ts';
import type { CorrelationLookup, FlowIdentity } from '../../src/flow/types.ts';

export interface Front {
  mixed: MixedInbound;
  port: number;
  deps: FrontDeps;
  egress: EgressSet;
  sessions: SessionTable;
  flows: FlowEvent[];
  close(): Promise<void>;
}

export async function startFront(o: {
  egresses?: EgressConfig[];
  pick?: (q: FlowQuery) => string;
  inbound?: Partial<InboundConfig>;
  resolve?: Record<string, string[]>;
  store?: CorrelationLookup;
  identity?: FlowIdentity;
  maxSessions?: number;
  policy?: Policy;
  lan?: 'direct' | 'policy';
}): Promise<Front> {
  const cfg = testConfig(o.egresses ?? [], o.inbound ?? {}, o.lan);
  const policy = o.policy ?? fnPolicy(cfg, o.pick ?? (() => 'direct'));
  const egress = _createEgressSet({ egresses: cfg.egress, resolver: staticResolver(o.resolve ?? {}), connectTimeoutMs: cfg.inbound.connectTimeoutMs });
  const sessions = new SessionTable({ maxSessions: o.maxSessions ?? cfg.inbound.maxSessions });
  const flows: FlowEvent[] = [];
  const deps: FrontDeps = { policy, egress, sessions, inbound: cfg.inbound, onFlow: (e) => flows.push(e), ...(o.store ? { store: o.store } : {}), ...(o.identity ? { identity: o.identity } : {}) };
  const mixed = await startMixedInbound(deps);
  return {
    mixed,
    port: mixed.address.port,
    deps,
    egress,
    sessions,
    flows,
    close: async () => {
      egress.stop();
      await mixed.close();
    },
  };
}

/** Raw SOCKS5 CONNECT; resolves with the reply byte and the socket (open on success). */
export async function socksConnect(port: number, host: string, dport: number, auth?: { user: string; pass: string }): Promise<{ rep: number; socket: net.Socket; rest: Buffer }> {
  const s = net.connect(port, '127.0.0.1');
  await once(s, 'connect');
  let buf = Buffer.alloc(0);
  const need = async (n: number) => {
    while (buf.length < n) {
      const r = await Promise.race([once(s, 'data').then(([d]) => d as Buffer), once(s, 'close').then(() => null)]);
      if (r === null) throw new Error(`closed after ${buf.length} bytes`);
      buf = Buffer.concat([buf, r]);
    }
    const out = buf.subarray(0, n);
    buf = buf.subarray(n);
    return out;
  };
  s.write(Buffer.from(auth ? [5, 1, 2] : [5, 1, 0]));
  const m = await need(2);
  if (m[1] === 0xff) return { rep: 0xff, socket: s, rest: buf };
  if (auth) {
    s.write(Buffer.concat([Buffer.from([1, auth.user.length]), Buffer.from(auth.user), Buffer.from([auth.pass.length]), Buffer.from(auth.pass)]));
    const a = await need(2);
    if (a[1] !== 0) return { rep: 0x100 + a[1]!, socket: s, rest: buf };
  }
  const fam = net.isIP(host);
  const addr = fam === 4 ? Buffer.from([1, ...host.split('.').map(Number)]) : fam === 6 ? Buffer.concat([Buffer.from([4]), (await import('../../src/egress/socks5-wire.ts')).ipv6Bytes(host)]) : Buffer.concat([Buffer.from([3, host.length]), Buffer.from(host)]);
  const p = Buffer.alloc(2);
  p.writeUInt16BE(dport);
  s.write(Buffer.concat([Buffer.from([5, 1, 0]), addr, p]));
  const head = await need(4);
  const alen = head[3] === 1 ? 4 : head[3] === 4 ? 16 : (await need(1))[0]!;
  await need(alen + 2);
  return { rep: head[1]!, socket: s, rest: buf };
}

/** Sends one raw HTTP proxy request and returns the status code and the whole response text. */
export async function httpProxyRequest(port: number, request: string): Promise<{ status: number; text: string }> {
  const s = net.connect(port, '127.0.0.1');
  s.write(request);
  const chunks: Buffer[] = [];
  s.on('data', (d) => chunks.push(d));
  s.on('error', () => {});
  await once(s, 'close');
  const text = Buffer.concat(chunks).toString('latin1');
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text };
}

/** Waits until `cond()` holds (servers in this process may see an arrival a tick after the client). */
export async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}
