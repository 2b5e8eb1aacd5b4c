// UDP through an egress, for SOCKS5 UDP ASSOCIATE clients. `direct`/`interface` send from local
// datagram sockets; a `socks5` egress carries datagrams through its own UDP ASSOCIATE (a TCP
// control connection plus a relay address). `http` cannot carry UDP: refused, never rerouted.
import dgram from 'node:dgram';
import net from 'node:net';
import { EgressError } from '../errors.ts';
import type { EgressConfig } from '../policy/types.ts';
import type { EgressResolver } from '../flow/types.ts';
import { dial, type SocketFactory, type Upstream } from './upstream.ts';
import { socks5Handshake } from './socks5-client.ts';
import { CMD, encodeAddress, parseAddress } from './socks5-wire.ts';
import { interfaceAddresses, InterfaceResolver } from './iface.ts';

export interface UdpPeer {
  host: string;
  port: number;
}

export interface UdpChannel {
  readonly egress: string;
  send(dst: UdpPeer, payload: Buffer): void;
  onMessage: ((src: UdpPeer, payload: Buffer) => void) | null;
  close(): void;
}

export interface UdpDeps {
  resolver: EgressResolver;
  socketFactory: SocketFactory;
  connectTimeoutMs: number;
  /** Called with each new datagram socket after bind (Linux: set SO_MARK on its fd). */
  udpSocketHook?: (s: dgram.Socket) => void;
  /**
   * Binds a bound datagram socket to a device (Linux: SO_BINDTODEVICE); throws when it cannot.
   * Absent (other OSes, tests without the OS layer): `interface` UDP uses the address only.
   */
  udpDeviceBinder?: (s: dgram.Socket, device: string) => void;
}

/** Datagrams dropped because they were SOCKS5 fragments (FRAG != 0), which are not reassembled. */
export const udpCounters = { fragmentsDropped: 0 };

/** Largest datagram payload relayed (IPv4 UDP maximum minus headers). */
export const MAX_UDP_PAYLOAD = 65507;

/** How an `interface` channel pins its sockets: the device, and its addresses as fallback. */
interface DevicePin {
  device: string;
  local: (fam: 4 | 6) => string | undefined;
}

function localChannel(cfg: EgressConfig, deps: UdpDeps, pin?: DevicePin): UdpChannel {
  const sockets = new Map<4 | 6, Promise<dgram.Socket>>();
  const names = new Map<string, string>();
  let closed = false;
  const ch: UdpChannel = {
    egress: cfg.name,
    onMessage: null,
    send(dst, payload) {
      void (async () => {
        let ip = net.isIP(dst.host) ? dst.host : names.get(dst.host);
        if (!ip) {
          const list = await deps.resolver.resolve(dst.host, cfg.name).catch(() => [] as string[]);
          ip = list.find((a) => net.isIP(a));
          if (!ip) return;
          if (names.size < 1024) names.set(dst.host, ip);
        }
        const fam = net.isIP(ip) as 4 | 6;
        let p = sockets.get(fam);
        if (!p) {
          // One socket per family, created once even when datagrams race to create it.
          p = (async () => {
            const sock = dgram.createSocket(fam === 4 ? 'udp4' : 'udp6');
            sock.on('error', () => {});
            sock.on('message', (msg, rinfo) => ch.onMessage?.({ host: rinfo.address, port: rinfo.port }, msg));
            const local = pin?.local(fam);
            await new Promise<void>((resolve) => sock.bind({ port: 0, ...(local ? { address: local } : {}) }, resolve));
            deps.udpSocketHook?.(sock);
            if (pin && deps.udpDeviceBinder) {
              try {
                deps.udpDeviceBinder(sock, pin.device);
              } catch (err) {
                // Not permitted (no CAP_NET_RAW): the interface's source address still steers by
                // source routing, as for TCP. Any other failure: this channel sends nothing.
                const errno = (err as { errno?: number }).errno;
                if (errno !== 1) {
                  sock.close();
                  throw err;
                }
              }
            }
            return sock;
          })();
          sockets.set(fam, p);
        }
        const s = await p;
        if (!closed) s.send(payload, dst.port, ip);
      })().catch(() => {});
    },
    close() {
      closed = true;
      for (const p of sockets.values()) void p.then((s) => s.close());
      sockets.clear();
    },
  };
  return ch;
}

async function socks5Channel(cfg: Extract<EgressConfig, { type: 'socks5' }>, deps: UdpDeps): Promise<UdpChannel> {
  const proxyIps = net.isIP(cfg.endpoint.host) ? [cfg.endpoint.host] : await deps.resolver.resolve(cfg.endpoint.host, 'direct');
  const proxyIp = proxyIps.find((a) => net.isIP(a));
  if (!proxyIp) throw new EgressError('SY_ERR_EGRESS_PROXY', 'proxy', cfg.name, `cannot resolve proxy ${cfg.endpoint.host}`);
  const control: Upstream = await dial({ factory: deps.socketFactory, egress: cfg.name, address: proxyIp, port: cfg.endpoint.port, timeoutMs: deps.connectTimeoutMs, role: 'proxy' });
  const fam = net.isIP(proxyIp) as 4 | 6;
  const s = dgram.createSocket(fam === 4 ? 'udp4' : 'udp6');
  s.on('error', () => {});
  try {
    await new Promise<void>((resolve) => s.bind({ port: 0, address: fam === 4 ? '0.0.0.0' : '::' }, resolve));
    deps.udpSocketHook?.(s);
    // We announce no fixed source (0.0.0.0:0): the proxy learns it from the first datagram.
    const bnd = await socks5Handshake(control, { egress: cfg.name, auth: cfg.auth, command: CMD.UDP_ASSOCIATE, host: fam === 4 ? '0.0.0.0' : '::', port: 0, timeoutMs: deps.connectTimeoutMs });
    // An unspecified BND.ADDR means "the address you reached me on".
    const relayHost = bnd.host === '0.0.0.0' || bnd.host === '::' || bnd.family === 0 ? proxyIp : bnd.host;
    const relayPort = bnd.port;
    control.onData = () => true; // nothing is expected on the control connection
    const resolved = new Map<string, string>();
    let closed = false;
    const ch: UdpChannel = {
      egress: cfg.name,
      onMessage: null,
      send(dst, payload) {
        // Names go to the proxy only when the egress sends domains; else resolved for it here.
        if (!net.isIP(dst.host) && !cfg.sendDomain) {
          const ip = resolved.get(dst.host);
          if (!ip) {
            void deps.resolver
              .resolve(dst.host, cfg.name)
              .then((list) => {
                const a = list.find((x) => net.isIP(x));
                if (!a) return;
                if (resolved.size < 1024) resolved.set(dst.host, a);
                ch.send({ host: a, port: dst.port }, payload);
              })
              .catch(() => {});
            return;
          }
          dst = { host: ip, port: dst.port };
        }
        //   +----+------+------+----------+----------+----------+
        //   |RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
        //   | 2  |  1   |  1   | Variable |    2     | Variable |
        let head: Buffer;
        try {
          head = Buffer.concat([Buffer.from([0, 0, 0]), encodeAddress(dst.host, dst.port)]);
        } catch {
          return;
        }
        if (!closed) s.send(Buffer.concat([head, payload]), relayPort, relayHost);
      },
      close() {
        if (closed) return;
        closed = true;
        s.close();
        control.destroy();
      },
    };
    s.on('message', (msg, rinfo) => {
      if (rinfo.address !== relayHost) return; // only the proxy's relay may answer
      if (msg.length < 4) return;
      if (msg[2] !== 0) return void udpCounters.fragmentsDropped++; // fragments are not reassembled
      try {
        const { addr, next } = parseAddress(msg, 3);
        ch.onMessage?.({ host: addr.host, port: addr.port }, msg.subarray(next));
      } catch {
        /* malformed reply: dropped */
      }
    });
    control.socket.on('close', () => ch.close());
    return ch;
  } catch (err) {
    s.close();
    control.destroy();
    throw err;
  }
}

export async function openUdpChannel(cfg: EgressConfig, deps: UdpDeps): Promise<UdpChannel> {
  switch (cfg.type) {
    case 'direct':
      return localChannel(cfg, deps);
    case 'interface': {
      const ifr = new InterfaceResolver(cfg.interface);
      const name = ifr.current();
      const addrs = name ? interfaceAddresses(name) : undefined;
      if (!addrs) throw new EgressError('SY_ERR_EGRESS_INTERFACE', 'interface', cfg.name, `interface ${cfg.interface} not found`);
      return localChannel(cfg, deps, { device: name!, local: (f) => (f === 4 ? addrs.v4 : addrs.v6) });
    }
    case 'socks5':
      if (!cfg.udp) throw new EgressError('SY_ERR_EGRESS_UNSUPPORTED', 'unsupported', cfg.name, 'UDP is disabled for this socks5 egress (udp = false)');
      return socks5Channel(cfg, deps);
    case 'http':
      throw new EgressError('SY_ERR_EGRESS_UNSUPPORTED', 'unsupported', cfg.name, 'an http egress cannot carry UDP');
    case 'block':
      throw new EgressError('SY_ERR_EGRESS_BLOCKED', 'blocked', cfg.name, 'blocked by policy');
  }
}
