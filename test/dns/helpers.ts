// Shared pieces of the DNS tests: a real unbound upstream (UDP, TCP, DoT, DoH) started per test
// file on loopback, certificates made with openssl, dig/kdig runners, and small config builders.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { DnsConfig, DomainProjection, EgressConfig } from '../../src/policy/types.ts';

const run = promisify(execFile);

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `sy-dns-${tag}-`));
}

export function have(cmd: string): boolean {
  return ['/usr/bin', '/usr/sbin', '/bin', '/sbin', '/usr/local/bin'].some((d) => existsSync(join(d, cmd)));
}

/** A free TCP+UDP port on 127.0.0.1 (kernel-chosen, then released: good enough on loopback). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, host, () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const ok = await new Promise<boolean>((resolve) => {
      const u = createSocket('udp4');
      u.once('error', () => resolve(false));
      u.bind(port, host, () => u.close(() => resolve(true)));
    });
    if (ok) return port;
  }
}

export interface Certs {
  ca: string;
  key: string;
  cert: string;
  /** A CA that did not sign `cert`. */
  wrongCa: string;
}

/** A CA and a server certificate for dns.test and the given IPs, plus an unrelated CA. */
export async function makeCerts(dir: string, ips: string[] = ['127.0.0.1']): Promise<Certs> {
  const o = (args: string[]): Promise<unknown> => run('openssl', args, { cwd: dir });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await o(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=switchyard test CA']);
  await o(['req', '-x509', ...ec, '-keyout', 'wrong.key', '-out', 'wrong.pem', '-days', '2', '-subj', '/CN=switchyard wrong CA']);
  await o(['req', ...ec, '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', '/CN=dns.test']);
  writeFileSync(join(dir, 'ext'), `subjectAltName=DNS:dns.test,${ips.map((ip) => `IP:${ip}`).join(',')}\n`);
  await o(['x509', '-req', '-in', 'srv.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'srv.pem', '-days', '2', '-extfile', 'ext']);
  return { ca: join(dir, 'ca.pem'), key: join(dir, 'srv.key'), cert: join(dir, 'srv.pem'), wrongCa: join(dir, 'wrong.pem') };
}

export interface Unbound {
  host: string;
  port: number;
  tlsPort: number;
  httpsPort: number;
  /** Queries unbound logged, as `name. TYPE` (lower-cased). */
  queries(): string[];
  /** Queries with the client address unbound saw: `ip name. TYPE`. */
  queriesFrom(): string[];
  stop(): Promise<void>;
}

export interface UnboundOptions {
  dir: string;
  host?: string;
  /** Fixed UDP/TCP port (default: a free one). */
  port?: number;
  localData: string[];
  certs?: Certs;
  extra?: string;
  /** Zones to let through the local "." zone (e.g. a forward-zone's name). */
  transparent?: string[];
  /** unbound access-control lines (default: all of 127/8 allowed). */
  access?: string[];
  /** Zone `chain.` served by unbound's auth-zone (which, unlike local-data, follows CNAME chains). */
  chainZone?: string[];
}

export interface UnboundConfOptions extends UnboundOptions {
  /** Fixed DoT / DoH ports when certs are given (default: free ones on `host`). */
  tlsPort?: number;
  httpsPort?: number;
  /** Base name of the .conf and .log files in `dir` (default `unbound-<port>`). */
  name?: string;
}

export interface UnboundConf {
  /** The configuration file written. */
  conf: string;
  /** unbound's log (queries, `start of service`). */
  log: string;
  host: string;
  port: number;
  tlsPort: number;
  httpsPort: number;
}

/**
 * Writes the configuration of an unbound serving `localData` in zone test. (static), with DoT and
 * DoH when certs are given, without starting it: for tests that start it themselves (inside a
 * namespace, from a script). Nothing leaves it: every name outside the test zones is answered locally.
 */
export async function writeUnboundConf(o: UnboundConfOptions): Promise<UnboundConf> {
  const host = o.host ?? '127.0.0.1';
  const port = o.port ?? (await freePort(host));
  const tlsPort = o.certs ? (o.tlsPort ?? (await freePort(host))) : 0;
  const httpsPort = o.certs ? (o.httpsPort ?? (await freePort(host))) : 0;
  const base = o.name ?? `unbound-${port}`;
  const log = join(o.dir, `${base}.log`);
  const lines = [
    'server:',
    `  interface: ${host}@${port}`,
    ...(o.certs
      ? [
          `  interface: ${host}@${tlsPort}`,
          `  interface: ${host}@${httpsPort}`,
          `  tls-port: ${tlsPort}`,
          `  https-port: ${httpsPort}`,
          `  tls-service-key: "${o.certs.key}"`,
          `  tls-service-pem: "${o.certs.cert}"`,
        ]
      : []),
    '  do-daemonize: no',
    '  use-syslog: no',
    `  logfile: "${log}"`,
    '  username: ""',
    '  chroot: ""',
    `  directory: "${o.dir}"`,
    '  pidfile: ""',
    '  do-ip6: no',
    '  num-threads: 1',
    ...(o.access ?? ['127.0.0.0/8 allow']).map((a) => `  access-control: ${a}`),
    '  module-config: "iterator"',
    '  log-queries: yes',
    '  verbosity: 1',
    // Nothing leaves loopback: every name outside the test zones is answered locally.
    '  local-zone: "." static',
    '  local-zone: "test." static',
    ...(o.chainZone ? ['  local-zone: "chain." transparent'] : []),
    ...(o.transparent ?? []).map((z) => `  local-zone: "${z}" transparent`),
    '  local-data: "test. 3600 IN SOA ns.test. admin.test. 1 3600 600 86400 30"',
    ...o.localData.map((d) => (d.includes('"') ? `  local-data: '${d}'` : `  local-data: "${d}"`)),
    o.extra ?? '',
  ];
  if (o.chainZone) {
    const zone = join(o.dir, `chain-${port}.zone`);
    writeFileSync(zone, ['$ORIGIN chain.', '@ 3600 IN SOA ns.chain. admin.chain. 1 3600 600 86400 30', ...o.chainZone].join('\n') + '\n');
    lines.push('auth-zone:', '  name: "chain."', `  zonefile: "${zone}"`, '  for-upstream: yes', '  for-downstream: yes');
  }
  const conf = join(o.dir, `${base}.conf`);
  writeFileSync(conf, lines.join('\n') + '\n');
  return { conf, log, host, port, tlsPort, httpsPort };
}

export interface StartUnboundRun {
  /** Starts unbound on `conf` (default `unbound -d -c conf`; e.g. through nsenter into a namespace). */
  spawn?: (conf: string) => ChildProcess;
}

/** Starts unbound serving `localData` in zone test. (static), with DoT and DoH when certs are given. */
export async function startUnbound(o: UnboundConfOptions, run: StartUnboundRun = {}): Promise<Unbound> {
  const { conf, log, host, port, tlsPort, httpsPort } = await writeUnboundConf(o);
  const child: ChildProcess = run.spawn ? run.spawn(conf) : spawn('unbound', ['-d', '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + 5000;
  while (!(existsSync(log) && readFileSync(log, 'utf8').includes('start of service'))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`unbound did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    host,
    port,
    tlsPort,
    httpsPort,
    queries: () =>
      [...readFileSync(log, 'utf8').matchAll(/info: \S+ (\S+) (\S+) IN$/gm)].map((m) => `${m[1]!.toLowerCase()} ${m[2]}`),
    queriesFrom: () =>
      [...readFileSync(log, 'utf8').matchAll(/info: (\S+) (\S+) (\S+) IN$/gm)].map((m) => `${m[1]} ${m[2]!.toLowerCase()} ${m[3]}`),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

export interface DigResult {
  status: string;
  answers: string[];
  flags: string;
  raw: string;
}

/** Runs dig against host:port; `answers` are the answer section's lines (name ttl class type data). */
export async function dig(host: string, port: number, args: string[]): Promise<DigResult> {
  const { stdout } = await run('dig', [`@${host}`, '-p', String(port), '+time=3', '+tries=1', ...args]);
  return parseDig(stdout);
}

export async function kdig(host: string, port: number, args: string[]): Promise<DigResult> {
  const { stdout } = await run('kdig', [`@${host}`, '-p', String(port), '+time=3', '+retry=0', ...args]);
  return parseDig(stdout);
}

export function parseDig(out: string): DigResult {
  const status = /status: ([A-Z]+)/.exec(out)?.[1] ?? 'NONE';
  const flags = /;; flags: ([a-z ]+)/i.exec(out)?.[1] ?? '';
  const sec = /;; ANSWER SECTION:\n([\s\S]*?)(\n\n|$)/.exec(out)?.[1] ?? '';
  const answers = sec
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith(';'))
    .map((l) => l.trim().split(/\s+/).join(' '));
  return { status, answers, flags, raw: out };
}

export function dnsConfig(over: Partial<DnsConfig> = {}): DnsConfig {
  return {
    listen: [{ host: '127.0.0.1', port: 0 }],
    upstreams: [],
    bootstrap: [],
    hosts: {},
    blockAnswer: 'nxdomain',
    firefoxCanary: true,
    stripEch: true,
    timeoutMs: 2000,
    rateLimit: 0,
    cache: { maxEntries: 10000, minTtl: 0, maxTtl: 86400, negativeTtl: 300 },
    store: { maxEntries: 10000, graceSeconds: 600, persist: false },
    ...over,
  };
}

function common(name: string): Omit<EgressConfig, 'type'> {
  return { name, fallback: null, health: { target: null, intervalMs: 10000, timeoutMs: 2000 }, dns: [], obfuscatesOnly: false, process: null };
}

export function builtinEgresses(): Record<string, EgressConfig> {
  return { direct: { ...common('direct'), type: 'direct' }, block: { ...common('block'), type: 'block' } };
}

export function socksEgress(name: string, host: string, port: number, dns: string[], obfuscatesOnly = false): EgressConfig {
  return { ...common(name), dns, obfuscatesOnly, type: 'socks5', endpoint: { host, port }, auth: null, sendDomain: true, udp: false };
}

export function ifaceEgress(name: string, iface: string): EgressConfig {
  return { ...common(name), type: 'interface', interface: iface };
}

/** A projection from suffix rules: the longest matching suffix wins; else `direct`. */
export function projector(rules: Record<string, string>, fallback = 'direct'): (name: string) => DomainProjection {
  return (name) => {
    let best: string | null = null;
    for (const suffix of Object.keys(rules)) {
      if ((name === suffix || name.endsWith(`.${suffix}`)) && (best === null || suffix.length > best.length)) best = suffix;
    }
    const egress = best === null ? fallback : rules[best]!;
    return { egresses: [egress], uniform: true, egress, rule: null };
  };
}

export function cleanup(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Sends one raw UDP query and returns the first reply (or null after timeoutMs). */
export function udpQuery(host: string, port: number, msg: Buffer, timeoutMs = 3000): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const timer = setTimeout(() => {
      s.close();
      resolve(null);
    }, timeoutMs);
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m);
    });
    s.send(msg, port, host);
  });
}
