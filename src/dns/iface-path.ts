// Upstream queries for names routed to an `interface` egress: every socket is tied to that
// interface, so the name is resolved on the network the connection will use (a CDN answers for
// the network that asks), and never leaves by the default route.
//
//   with `InterfaceSockets` (the daemon passes them on Linux): TCP sockets made by the OS socket
//   factory with SO_BINDTODEVICE before connect, UDP sockets bound then SO_BINDTODEVICE'd before
//   the first send. Any failure to bind — missing device, EPERM — fails the query (SERVFAIL).
//   without (other platforms): sockets bound to the interface's own address. On Windows (strong
//   host model for sends) that selects the interface; on Linux it only selects the source address,
//   which is why the daemon passes the binders there.
//
// Before every exchange the interface is looked up again (`auto` follows the default route): a
// missing interface, or one that is down (Node lists only interfaces that are up and running)
// fails the query — there is no fallback to another path.
import { createSocket } from 'node:dgram';
import type { Socket as UdpSocket } from 'node:dgram';
import { connect as netConnect, isIP } from 'node:net';
import type { Socket } from 'node:net';
import { InterfaceResolver, interfaceAddresses } from '../egress/iface.ts';
import type { IfaceRoots } from '../egress/iface.ts';
import type { EgressConfig } from '../policy/types.ts';
import { headerOnlyError, matchesQuery } from './answer.ts';
import type { OutQuery } from './build.ts';
import type { Dialer, ResolveHost } from './dial.ts';
import { DnsError } from './errors.ts';
import { UpstreamPool } from './pool.ts';
import type { UpstreamSpec } from './upstream.ts';

/** OS socket binders for interface egresses (Linux: src/sys/linux/socket.ts). */
export interface InterfaceSockets {
  /**
   * An unconnected TCP socket bound to `device` (SO_BINDTODEVICE); throws when it cannot be.
   * The egress layer's SocketFactory (exemptSocketFactory) has this shape.
   */
  tcp(req: { family: 4 | 6; device: string; socketOptions: Record<string, never> }): Socket;
  /** SO_BINDTODEVICE on a bound datagram socket (bindDgramToDevice); throws when it cannot be. */
  bindUdp(s: UdpSocket, device: string): void;
}

export interface InterfacePathOptions {
  /** Upstream URLs when the egress has no `dns` list: the default upstreams (configured or system). */
  defaultUrls: string[];
  parse: (url: string) => UpstreamSpec;
  resolveHost: ResolveHost;
  timeoutMs: number;
  /** Absent: bind to the interface's address instead of the device. */
  sockets?: InterfaceSockets;
  /** Creates outgoing UDP sockets (the daemon's marked ones); default: plain dgram. */
  udpSocket?: (family: 4 | 6) => UdpSocket;
  ifaceRoots?: IfaceRoots;
}

type InterfaceEgress = Extract<EgressConfig, { type: 'interface' }>;

/** Loopback resolvers cannot be reached through a network interface. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return h.startsWith('127.') || h === '::1' || h === 'localhost' || h.startsWith('::ffff:127.');
}

/** The device to use now and its addresses; throws SY_ERR_DNS_INTERFACE when missing or down. */
export function currentInterface(egress: InterfaceEgress, ifr: InterfaceResolver): { device: string; v4: string | undefined; v6: string | undefined } {
  const device = ifr.current();
  if (!device) throw new DnsError('SY_ERR_DNS_INTERFACE', `egress ${egress.name}: no physical interface carries the default route`);
  const a = interfaceAddresses(device);
  if (!a) throw new DnsError('SY_ERR_DNS_INTERFACE', `egress ${egress.name}: interface ${device} is missing, down or has no address`);
  return { device, v4: a.v4, v6: a.v6 };
}

function wrapBindError(egress: string, device: string, what: string, err: unknown): DnsError {
  return new DnsError('SY_ERR_DNS_INTERFACE', `egress ${egress}: cannot bind the ${what} socket to ${device}: ${(err as Error).message}`, err);
}

/** TCP (and so DoT and DoH) connections through the interface. */
export function interfaceDialer(egress: InterfaceEgress, ifr: InterfaceResolver, o: InterfacePathOptions): Dialer {
  return async (host, port, timeoutMs) => {
    const ip = isIP(host) ? host : (await o.resolveHost(host))[0];
    if (ip === undefined) throw new DnsError('SY_ERR_DNS_UPSTREAM', `no address for ${host}`);
    const family: 4 | 6 = isIP(ip) === 6 ? 6 : 4;
    const cur = currentInterface(egress, ifr);
    let s: Socket;
    if (o.sockets) {
      try {
        s = o.sockets.tcp({ family, device: cur.device, socketOptions: {} });
      } catch (err) {
        throw wrapBindError(egress.name, cur.device, 'TCP', err);
      }
      s.connect({ host: ip, port });
    } else {
      const local = family === 6 ? cur.v6 : cur.v4;
      if (!local) throw new DnsError('SY_ERR_DNS_INTERFACE', `egress ${egress.name}: interface ${cur.device} has no IPv${family} address`);
      s = netConnect({ host: ip, port, localAddress: local });
    }
    return new Promise<Socket>((resolve, reject) => {
      const timer = setTimeout(() => {
        s.destroy();
        reject(new DnsError('SY_ERR_DNS_TIMEOUT', `connect to ${ip}:${port} via ${cur.device} timed out`));
      }, timeoutMs);
      const onError = (err: Error): void => {
        clearTimeout(timer);
        s.destroy();
        reject(new DnsError('SY_ERR_DNS_UPSTREAM', `connect to ${ip}:${port} via ${cur.device}: ${err.message}`, err));
      };
      s.once('error', onError);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeListener('error', onError);
        s.setNoDelay(true);
        resolve(s);
      });
    });
  };
}

/**
 * Plain-DNS UDP through the interface: one socket per query (kernel-chosen random port), bound to
 * the device (or the interface's address) before the query is sent, closed after. The reply must
 * come from the address and port asked, with our ID and exactly our question (0x20 case).
 * Same `exchange` signature as UdpSocketPool, so UdpExchange (with its TCP retry) uses it as is.
 */
export class InterfaceUdp {
  readonly #egress: InterfaceEgress;
  readonly #ifr: InterfaceResolver;
  readonly #o: InterfacePathOptions;
  readonly #open = new Set<UdpSocket>();
  /** Replies ignored (wrong source, ID or question). */
  ignored = 0;

  constructor(egress: InterfaceEgress, ifr: InterfaceResolver, o: InterfacePathOptions) {
    this.#egress = egress;
    this.#ifr = ifr;
    this.#o = o;
  }

  async exchange(ip: string, port: number, family: 4 | 6, q: OutQuery, timeoutMs: number, label: string): Promise<Buffer> {
    const cur = currentInterface(this.#egress, this.#ifr);
    const local = this.#o.sockets ? (family === 6 ? '::' : '0.0.0.0') : family === 6 ? cur.v6 : cur.v4;
    if (!local) throw new DnsError('SY_ERR_DNS_INTERFACE', `egress ${this.#egress.name}: interface ${cur.device} has no IPv${family} address`);
    const s = (this.#o.udpSocket ?? ((f: 4 | 6) => createSocket(f === 6 ? 'udp6' : 'udp4')))(family);
    this.#open.add(s);
    const done = (): void => {
      this.#open.delete(s);
      try {
        s.close();
      } catch {
        // already closed
      }
    };
    try {
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.bind(0, local, () => {
          s.removeListener('error', reject);
          resolve();
        });
      });
      if (this.#o.sockets) {
        try {
          this.#o.sockets.bindUdp(s, cur.device);
        } catch (err) {
          throw wrapBindError(this.#egress.name, cur.device, 'UDP', err);
        }
      }
    } catch (err) {
      done();
      throw err instanceof DnsError ? err : new DnsError('SY_ERR_DNS_UPSTREAM', `${label}: bind failed: ${(err as Error).message}`, err);
    }
    return new Promise<Buffer>((resolve, reject) => {
      const finish = (err: Error | null, msg?: Buffer): void => {
        clearTimeout(timer);
        done();
        if (err) reject(err);
        else resolve(msg!);
      };
      const timer = setTimeout(() => finish(new DnsError('SY_ERR_DNS_TIMEOUT', `${label} via ${cur.device} did not answer in ${timeoutMs} ms`)), timeoutMs);
      s.on('error', (err) => finish(new DnsError('SY_ERR_DNS_UPSTREAM', `${label} via ${cur.device}: ${err.message}`, err)));
      s.on('message', (msg, rinfo) => {
        if (rinfo.address !== ip || rinfo.port !== port || msg.length < 12 || msg.readUInt16BE(0) !== q.buf.readUInt16BE(0)) return void this.ignored++;
        try {
          matchesQuery(msg, q.buf, q.qEnd);
        } catch {
          const rcode = headerOnlyError(msg, q.buf);
          if (rcode <= 0) return void this.ignored++;
          return finish(new DnsError('SY_ERR_DNS_UPSTREAM', `${label} answered rcode ${rcode} without a question`));
        }
        finish(null, msg);
      });
      s.send(q.buf, port, ip, (err) => {
        if (err) finish(new DnsError('SY_ERR_DNS_UPSTREAM', `${label} via ${cur.device}: send failed: ${err.message}`, err));
      });
    });
  }

  close(): void {
    for (const s of this.#open) {
      try {
        s.close();
      } catch {
        // already closed
      }
    }
    this.#open.clear();
  }
}

/**
 * The resolvers of an interface egress, every socket through that interface: its `dns` list, else
 * the default upstreams (minus loopback ones, which no interface reaches). `obfuscates_only`
 * keeps only DoT/DoH as for proxies. Returns a DnsError (the name then gets SERVFAIL) when nothing
 * usable is left.
 */
export function makeInterfacePool(egress: InterfaceEgress, o: InterfacePathOptions): UpstreamPool | DnsError {
  try {
    const own = egress.dns.length > 0;
    let specs = (own ? egress.dns : o.defaultUrls).map((u) => o.parse(u)).filter((s) => !isLoopbackHost(s.host));
    if (egress.obfuscatesOnly) specs = specs.filter((s) => s.proto === 'tls' || s.proto === 'https');
    if (specs.length === 0) {
      return new DnsError(
        'SY_ERR_DNS_NO_UPSTREAM',
        `egress ${egress.name} has no resolver reachable through its interface (${own ? 'its dns list' : 'the default upstreams'} hold${own ? 's' : ''} only loopback or plaintext-refused ones; set dns = [...] on the egress)`,
      );
    }
    const ifr = new InterfaceResolver(egress.interface, o.ifaceRoots);
    const udp = new InterfaceUdp(egress, ifr, o);
    const pool = new UpstreamPool(specs, { dial: interfaceDialer(egress, ifr, o), udpPool: udp, resolveHost: o.resolveHost }, o.timeoutMs);
    const close = pool.close.bind(pool);
    pool.close = () => {
      close();
      udp.close();
    };
    return pool;
  } catch (err) {
    return err instanceof DnsError ? err : new DnsError('SY_ERR_DNS_UPSTREAM_URL', String(err));
  }
}
