// UDP and TCP listeners on each `[dns] listen` address. TCP (RFC 7766): two-byte length framing,
// several queries per connection answered as they complete, bounded per connection and in total,
// idle connections closed. Port 0 binds UDP first and TCP on the same port. On Linux, UDP goes
// through the fast path (fast-path.ts: a worker answering cache hits with batched syscalls) when it
// can be set up, else — and on every other OS — through a Node dgram socket.
import { createSocket } from 'node:dgram';
import type { Socket as UdpSocket } from 'node:dgram';
import { createServer, isIP } from 'node:net';
import type { Server, Socket } from 'node:net';
import type { HostPort } from '../policy/types.ts';
import { DnsError } from './errors.ts';
import type { DnsLog } from './forwarder.ts';
import { FastUdp } from './fast-path.ts';
import type { FastPathOptions } from './fast-path.ts';
import type { FastReplicas } from './fast-replicas.ts';
import { FrameReader, frame } from './frame.ts';
import { literalLookup } from './literal-lookup.ts';

/** `limited`: the rate limit was already applied (by the UDP fast path). */
export type Handler = (msg: Buffer, client: string, udp: boolean, limited?: boolean) => Buffer | null | Promise<Buffer | null>;

export interface FastListen {
  options: FastPathOptions;
  replicas: FastReplicas;
}

export interface ListenLimits {
  maxTcpConnections: number;
  maxQueriesPerConnection: number;
  tcpIdleMs: number;
}

export const DEFAULT_LIMITS: ListenLimits = { maxTcpConnections: 512, maxQueriesPerConnection: 32, tcpIdleMs: 10_000 };

export interface Listener {
  address: HostPort;
  /** The UDP fast path serving this address, or null (dgram). */
  fast: FastUdp | null;
  close(): Promise<void>;
}

function bindUdp(host: string, port: number, handler: Handler, log: DnsLog): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const six = isIP(host) === 6;
    // Larger buffers absorb bursts (the kernel caps them at net.core.rmem_max / wmem_max).
    const sock = createSocket({
      type: six ? 'udp6' : 'udp4',
      recvBufferSize: 1 << 20,
      sendBufferSize: 1 << 20,
      lookup: literalLookup(six ? 6 : 4),
      ...(six ? { ipv6Only: true } : {}),
    });
    // No per-send callback: send errors reach the socket's 'error' listener below.
    const send = (out: Buffer | null, port: number, addr: string): void => {
      if (!out) return;
      try {
        sock.send(out, port, addr);
      } catch (err) {
        log.debug({ err }, 'dns: udp send failed'); // e.g. the listener closed while the answer was pending
      }
    };
    sock.on('message', (msg, rinfo) => {
      let r: Buffer | null | Promise<Buffer | null>;
      try {
        r = handler(msg, rinfo.address, true);
      } catch (err) {
        log.error({ err }, 'dns: handler threw');
        return;
      }
      if (r instanceof Promise) r.then((out) => send(out, rinfo.port, rinfo.address), (err) => log.error({ err }, 'dns: handler failed'));
      else send(r, rinfo.port, rinfo.address);
    });
    sock.once('error', reject);
    sock.bind(port, host, () => {
      sock.removeListener('error', reject);
      sock.on('error', (err) => log.debug({ err }, 'dns: udp socket error'));
      resolve(sock);
    });
  });
}

function serveTcp(conn: Socket, handler: Handler, limits: ListenLimits, log: DnsLog): void {
  const reader = new FrameReader();
  let inFlight = 0;
  conn.setNoDelay(true);
  conn.setTimeout(limits.tcpIdleMs, () => conn.destroy());
  conn.on('error', () => {});
  const reply = (out: Buffer | null): void => {
    inFlight--;
    if (out && !conn.destroyed) conn.write(frame(out));
    if (inFlight < limits.maxQueriesPerConnection && conn.isPaused()) conn.resume();
  };
  conn.on('data', (d: Buffer) => {
    for (const msg of reader.push(d)) {
      inFlight++;
      let r: Buffer | null | Promise<Buffer | null>;
      try {
        r = handler(msg, conn.remoteAddress ?? '', false);
      } catch (err) {
        log.error({ err }, 'dns: handler threw');
        r = null;
      }
      if (r instanceof Promise) r.then(reply, () => reply(null));
      else reply(r);
    }
    if (inFlight >= limits.maxQueriesPerConnection) conn.pause();
  });
}

function bindTcp(host: string, port: number, handler: Handler, limits: ListenLimits, log: DnsLog): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer({ pauseOnConnect: false }, (conn) => serveTcp(conn, handler, limits, log));
    server.maxConnections = limits.maxTcpConnections;
    server.once('error', reject);
    server.listen({ host, port, ...(isIP(host) === 6 ? { ipv6Only: true } : {}) }, () => {
      server.removeListener('error', reject);
      server.on('error', (err) => log.warn({ err }, 'dns: tcp listener error'));
      resolve(server);
    });
  });
}

/** The UDP side of a listener: the fast path, or a dgram socket (also what the fast path falls back to). */
async function bindUdpSide(addr: HostPort, handler: Handler, log: DnsLog, fast: FastListen | undefined): Promise<{ port: number; fast: FastUdp | null; close(): void }> {
  if (fast && isIP(addr.host) !== 0) {
    try {
      const f = await FastUdp.start(addr.host, addr.port, handler, log, fast.options, fast.replicas);
      log.info({ host: addr.host, port: f.port }, 'dns: udp fast path on');
      // The fast path's socket is closed by f.close() (the listener awaits it).
      return { port: f.port, fast: f, close: () => void f.close() };
    } catch (err) {
      if (err instanceof DnsError || (err as { code?: string }).code === 'SY_ERR_DNS_FAST_PATH') log.warn({ err }, 'dns: udp fast path unavailable; using a dgram socket');
      else log.info({ err }, 'dns: udp fast path unavailable on this system; using a dgram socket');
    }
  }
  const u = await bindUdp(addr.host, addr.port, handler, log);
  return { port: u.address().port, fast: null, close: () => u.close() };
}

/**
 * Binds UDP and TCP on one address; with port 0, both on the port the kernel chose for UDP.
 * `fast`: try the UDP fast path first (falls back to dgram on any failure).
 */
export async function listen(addr: HostPort, handler: Handler, log: DnsLog, limits: ListenLimits = DEFAULT_LIMITS, fast?: FastListen): Promise<Listener> {
  for (let attempt = 0; ; attempt++) {
    let udp: { port: number; fast: FastUdp | null; close(): void };
    try {
      udp = await bindUdpSide(addr, handler, log, fast);
    } catch (err) {
      throw new DnsError('SY_ERR_DNS_LISTEN', `cannot listen on udp ${addr.host}:${addr.port}: ${(err as Error).message}`, err);
    }
    const port = udp.port;
    try {
      const tcp = await bindTcp(addr.host, port, handler, limits, log);
      const conns = new Set<Socket>();
      tcp.on('connection', (c) => {
        conns.add(c);
        c.on('close', () => conns.delete(c));
      });
      return {
        address: { host: addr.host, port },
        fast: udp.fast,
        close: async () => {
          if (udp.fast) await udp.fast.close();
          udp.close();
          for (const c of conns) c.destroy();
          await new Promise<void>((resolve) => tcp.close(() => resolve()));
        },
      };
    } catch (err) {
      udp.close();
      if (addr.port === 0 && attempt < 5) continue;
      throw new DnsError('SY_ERR_DNS_LISTEN', `cannot listen on tcp ${addr.host}:${port}: ${(err as Error).message}`, err);
    }
  }
}
