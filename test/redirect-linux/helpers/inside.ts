// Inside a test namespace: interfaces, servers that count arrivals, clients started inside a
// group (or as another user, or with the fwmark), and a config builder. Everything here runs in
// the namespace made by runFixture(); nothing touches the host's network.
import { execFileSync, spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import type { Config, EgressConfig, RuleConfig } from '../../../src/policy/types.ts';

export function sh(cmd: string): string {
  return execFileSync('sh', ['-c', cmd], { encoding: 'utf8' });
}

/** lo up; veth sy0 with the given 198.18.0.0/15 host addresses; optionally cgroup2 at /sys/fs/cgroup. */
export function setupNamespace(addrs: string[], mountCgroup2: boolean): void {
  sh('ip link set lo up');
  // A veth pair (no dummy module on every kernel): the test hosts are local addresses on sy0.
  sh('ip link add sy0 type veth peer name sy1 && ip link set sy0 up && ip link set sy1 up');
  for (const a of addrs) {
    if (!a.startsWith('198.18.') && !a.startsWith('198.19.')) throw new Error(`test address ${a} outside 198.18.0.0/15`);
    sh(`ip addr add ${a}/32 dev sy0`);
  }
  if (mountCgroup2) sh('mount -t cgroup2 none /sys/fs/cgroup');
}

/** A TCP server that writes `tag` to every client and counts arrivals. */
export class TcpCounter {
  count = 0;
  server: Server;
  port = 0;
  readonly tag: string;
  constructor(tag: string) {
    this.tag = tag;
    this.server = createServer((s) => {
      this.count++;
      s.on('error', () => {});
      s.end(tag);
    });
  }
  listen(host: string, port = 0): Promise<this> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.port = (this.server.address() as { port: number }).port;
        resolve(this);
      });
    });
  }
  close(): void {
    this.server.close();
  }
}

/** A UDP server that answers `tag` and counts datagrams. */
export class UdpCounter {
  count = 0;
  sock: UdpSocket;
  port = 0;
  readonly tag: string;
  constructor(tag: string) {
    this.tag = tag;
    this.sock = createSocket('udp4');
    this.sock.on('message', (_m, r) => {
      this.count++;
      this.sock.send(tag, r.port, r.address);
    });
  }
  listen(host: string, port = 0): Promise<this> {
    return new Promise((resolve) => {
      this.sock.bind(port, host, () => {
        this.port = this.sock.address().port;
        resolve(this);
      });
    });
  }
  close(): void {
    this.sock.close();
  }
}

export interface ClientOpts {
  /** cgroup.procs file to join before exec (what `switchyard exec` does). */
  procs?: string;
  /** Run as this uid (setpriv). */
  uid?: number;
  /** SO_MARK on the socket before connect (TCP only; a python3 client). */
  mark?: number;
  udp?: boolean;
}

/** Connects with socat; resolves with what the peer wrote, or `ERR <stderr>`. */
export function client(host: string, port: number, o: ClientOpts = {}): Promise<string> {
  const addr = `${o.udp ? 'UDP' : 'TCP'}:${host}:${port}${o.udp ? '' : ',connect-timeout=3'}`;
  let argv = ['socat', '-T2', '-', addr];
  // socat sets socket options only after connect(); the mark must be on the SYN.
  if (o.mark !== undefined) {
    const py = `import socket,sys
s=socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, ${o.mark})
s.settimeout(3)
s.connect(('${host}', ${port}))
sys.stdout.write(s.recv(100).decode())`;
    argv = ['python3', '-c', py];
  }
  if (o.uid !== undefined) argv = ['setpriv', `--reuid=${o.uid}`, `--regid=${o.uid}`, '--clear-groups', ...argv];
  if (o.procs) argv = ['sh', '-c', 'echo $$ > "$0" || exit 96; exec "$@"', o.procs, ...argv];
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.stdin.on('error', () => {});
    if (o.udp) child.stdin.write('ping\n');
    else child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 6000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(out !== '' ? out.trim() : `ERR ${code} ${err.trim().split('\n').pop() ?? ''}`);
    });
    if (o.udp) setTimeout(() => child.stdin.end(), 800);
  });
}

const health = { target: null, intervalMs: 10_000, timeoutMs: 2000 };
function egress(name: string, rest: Record<string, unknown>): EgressConfig {
  return { name, fallback: null, health, dns: [], obfuscatesOnly: false, process: null, ...rest } as unknown as EgressConfig;
}

export function rule(index: number, egressName: string, p: Partial<RuleConfig>): RuleConfig {
  return { index, name: null, egress: egressName, domains: [], apps: [], cidrs: [], ports: [], network: null, origin: {}, ...p };
}

/** A Config with direct, block and a socks5 egress `vpn` at `vpnEndpoint`. */
export function makeConfig(p: { rules?: RuleConfig[]; exemptUsers?: string[]; mode?: 'selected' | 'all'; vpnEndpoint?: string } = {}): Config {
  return {
    version: 1,
    default: 'direct',
    dns: {} as Config['dns'],
    inbound: {} as Config['inbound'],
    enforce: { enabled: true, mode: p.mode ?? 'selected', lan: 'direct', blockQuic: true, exemptUsers: p.exemptUsers ?? [], windivertPath: null },
    control: { group: 'switchyard', readUsers: [] },
    egress: {
      direct: egress('direct', { type: 'direct' }),
      block: egress('block', { type: 'block' }),
      vpn: egress('vpn', { type: 'socks5', endpoint: { host: p.vpnEndpoint ?? '198.18.0.13', port: 1080 }, auth: null, sendDomain: true, udp: true }),
    },
    exempt: [],
    rules: p.rules ?? [],
    source: 'test',
    notices: [],
  };
}

export function report(result: unknown): void {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}
