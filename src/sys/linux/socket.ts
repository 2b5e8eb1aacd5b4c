// Safe wrappers over the libc socket calls the front door needs: read a redirected connection's
// original destination, mark or bind an outgoing socket, and create an outgoing socket that the
// OS backend's rules exempt from redirection. Every failure becomes an OsCallError naming the
// call and errno; descriptors created here are closed on every error path.
import net from 'node:net';
import { OsCallError } from '../../errors.ts';
import {
  libc,
  AF_INET,
  AF_INET6,
  SOCK_STREAM,
  SOCK_NONBLOCK,
  SOCK_CLOEXEC,
  SOL_SOCKET,
  SO_MARK,
  SO_BINDTODEVICE,
  SOL_IP,
  SOL_IPV6,
  SO_ORIGINAL_DST,
  IP6T_SO_ORIGINAL_DST,
  RLIMIT_NOFILE,
  EPERM,
} from './libc.ts';

/** struct sockaddr_in (<netinet/in.h>): family u16 host order, port u16 network order, addr[4], zero[8]. */
export const SOCKADDR_IN = { size: 16, family: 0, port: 2, addr: 4 } as const;
/** struct sockaddr_in6: family u16, port u16 BE, flowinfo u32, addr[16], scope_id u32. */
export const SOCKADDR_IN6 = { size: 28, family: 0, port: 2, flowinfo: 4, addr: 8, scopeId: 24 } as const;

export interface SockAddr {
  address: string;
  port: number;
  family: 4 | 6;
}

function fail(call: string): never {
  const errno = libc().errno();
  throw new OsCallError('SY_ERR_FRONT_SOCKET_CALL', call, errno);
}

/** Parses a sockaddr_in / sockaddr_in6 buffer of `len` valid bytes; throws on anything else. */
export function parseSockaddr(buf: Buffer, len: number): SockAddr {
  if (len < 2 || buf.length < len) throw new OsCallError('SY_ERR_FRONT_SOCKET_CALL', 'parse sockaddr', undefined, `short (${len} bytes)`);
  const family = buf.readUInt16LE(SOCKADDR_IN.family);
  if (family === AF_INET) {
    if (len < SOCKADDR_IN.size) throw new OsCallError('SY_ERR_FRONT_SOCKET_CALL', 'parse sockaddr_in', undefined, `short (${len} bytes)`);
    const a = buf.subarray(SOCKADDR_IN.addr, SOCKADDR_IN.addr + 4);
    return { family: 4, port: buf.readUInt16BE(SOCKADDR_IN.port), address: `${a[0]}.${a[1]}.${a[2]}.${a[3]}` };
  }
  if (family === AF_INET6) {
    if (len < SOCKADDR_IN6.size) throw new OsCallError('SY_ERR_FRONT_SOCKET_CALL', 'parse sockaddr_in6', undefined, `short (${len} bytes)`);
    const words: string[] = [];
    for (let i = 0; i < 8; i++) words.push(buf.readUInt16BE(SOCKADDR_IN6.addr + i * 2).toString(16));
    // Let the URL parser produce the canonical compressed form (RFC 5952).
    const address = new URL(`http://[${words.join(':')}]/`).hostname.slice(1, -1);
    return { family: 6, port: buf.readUInt16BE(SOCKADDR_IN6.port), address };
  }
  throw new OsCallError('SY_ERR_FRONT_SOCKET_CALL', 'parse sockaddr', undefined, `unknown family ${family}`);
}

/**
 * The destination a connection had before an nft `redirect`/`dnat` rewrote it: SO_ORIGINAL_DST
 * (IPv4, SOL_IP) or IP6T_SO_ORIGINAL_DST (IPv6, SOL_IPV6), both reading conntrack's original tuple.
 */
export function getOriginalDst(fd: number, family: 4 | 6): SockAddr {
  const size = family === 4 ? SOCKADDR_IN.size : SOCKADDR_IN6.size;
  const buf = Buffer.alloc(size);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(size);
  const [level, name, call] =
    family === 4 ? [SOL_IP, SO_ORIGINAL_DST, 'getsockopt(SO_ORIGINAL_DST)'] : [SOL_IPV6, IP6T_SO_ORIGINAL_DST, 'getsockopt(IP6T_SO_ORIGINAL_DST)'];
  if (libc().getsockopt(fd, level, name, buf, len) !== 0) fail(call);
  return parseSockaddr(buf, len.readUInt32LE());
}

function setInt(fd: number, level: number, name: number, value: number, call: string): void {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0);
  if (libc().setsockopt(fd, level, name, b, 4) !== 0) fail(call);
}

export function getMark(fd: number): number {
  const b = Buffer.alloc(4);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(4);
  if (libc().getsockopt(fd, SOL_SOCKET, SO_MARK, b, len) !== 0) fail('getsockopt(SO_MARK)');
  return b.readUInt32LE();
}

/** SO_MARK: needs CAP_NET_ADMIN (EPERM otherwise). */
export function setMark(fd: number, mark: number): void {
  setInt(fd, SOL_SOCKET, SO_MARK, mark, 'setsockopt(SO_MARK)');
}

/** SO_BINDTODEVICE: route only through `device`; needs CAP_NET_RAW. */
export function bindToDevice(fd: number, device: string): void {
  const name = Buffer.from(`${device}\0`, 'utf8');
  if (name.length > 16) throw new OsCallError('SY_ERR_FRONT_SOCKET_CALL', 'setsockopt(SO_BINDTODEVICE)', undefined, `interface name too long: ${device}`);
  if (libc().setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, name.length) !== 0) fail('setsockopt(SO_BINDTODEVICE)');
}

export interface ExemptSocketOptions {
  family: 4 | 6;
  /** Firewall mark; applied when the process may (CAP_NET_ADMIN), otherwise skipped. */
  mark?: number;
  /** SO_BINDTODEVICE before connecting. Failure throws: an interface egress must not leak. */
  device?: string;
}

export interface ExemptSocket {
  socket: net.Socket;
  /** Whether the mark was applied (false when not permitted). */
  marked: boolean;
}

/**
 * Creates an unconnected TCP socket with libc socket(), applies the mark and device, and hands
 * the descriptor to a net.Socket; the caller then calls `.connect(...)`. Marking needs to happen
 * before connect (the SYN must carry it), which net.connect cannot do.
 */
export function openExemptSocket(opts: ExemptSocketOptions, socketOptions: Omit<net.SocketConstructorOpts, 'fd'> = {}): ExemptSocket {
  const c = libc();
  const fd = c.socket(opts.family === 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) fail('socket');
  let marked = false;
  try {
    if (opts.mark !== undefined) {
      try {
        setMark(fd, opts.mark);
        marked = true;
      } catch (err) {
        if (!(err instanceof OsCallError && err.errno === EPERM)) throw err;
      }
    }
    if (opts.device !== undefined) bindToDevice(fd, opts.device);
    return { socket: new net.Socket({ ...socketOptions, fd }), marked };
  } catch (err) {
    c.close(fd);
    throw err;
  }
}

/** Raises the soft RLIMIT_NOFILE toward the hard limit (or `want`); returns the new soft limit. */
export function raiseFdLimit(want?: number): { soft: number; hard: number } {
  const c = libc();
  const b = Buffer.alloc(16);
  if (c.getrlimit(RLIMIT_NOFILE, b) !== 0) fail('getrlimit(RLIMIT_NOFILE)');
  const soft = b.readBigUInt64LE(0);
  const hard = b.readBigUInt64LE(8);
  let target = hard;
  if (want !== undefined && BigInt(want) < hard) target = BigInt(want);
  if (target > soft) {
    b.writeBigUInt64LE(target, 0);
    if (c.setrlimit(RLIMIT_NOFILE, b) !== 0) fail('setrlimit(RLIMIT_NOFILE)');
    return { soft: Number(target), hard: Number(hard) };
  }
  return { soft: Number(soft), hard: Number(hard) };
}

/** The descriptor behind a net.Socket (libuv's handle field), or undefined when it has none. */
export function socketFd(socket: net.Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * A socket factory for the egress layer (structurally its SocketFactory): every outgoing socket
 * carries switchyard's fwmark when permitted, so the OS backend's rules never redirect
 * switchyard's own connections, and is bound to `device` when an interface egress asks.
 */
export function exemptSocketFactory(mark: number): (req: { family: 4 | 6; device?: string; socketOptions: Omit<net.SocketConstructorOpts, 'fd'> }) => net.Socket {
  return (req) => openExemptSocket({ family: req.family, mark, ...(req.device !== undefined ? { device: req.device } : {}) }, req.socketOptions).socket;
}

/** The descriptor of a bound dgram socket (it sits in Node's internal state), or undefined. */
export function dgramFd(s: import('node:dgram').Socket): number | undefined {
  const sym = Object.getOwnPropertySymbols(s).find((x) => x.description === 'state symbol');
  const fd = sym ? (s as unknown as Record<symbol, { handle?: { fd?: number } }>)[sym]?.handle?.fd : undefined;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * SO_BINDTODEVICE on a bound dgram socket: an `interface` egress's datagrams then leave (and are
 * received) only through that device, not merely with its address as source. Throws OsCallError
 * (EPERM without CAP_NET_RAW) or when the socket has no descriptor yet.
 */
export function bindDgramToDevice(s: import('node:dgram').Socket, device: string): void {
  const fd = dgramFd(s);
  if (fd === undefined) throw new OsCallError('SY_ERR_FRONT_SOCKET_CALL', 'setsockopt(SO_BINDTODEVICE)', undefined, 'datagram socket is not bound yet');
  bindToDevice(fd, device);
}

/** The device a socket is bound to (getsockopt SO_BINDTODEVICE), '' when none. */
export function boundDevice(fd: number): string {
  const b = Buffer.alloc(16);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(16);
  if (libc().getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, b, len) !== 0) fail('getsockopt(SO_BINDTODEVICE)');
  const n = len.readUInt32LE();
  const end = b.indexOf(0);
  return b.toString('utf8', 0, end >= 0 && end < n ? end : n);
}

/** Marks a bound dgram socket (its descriptor sits in Node's internal state; absent → no-op). */
export function markDgramSocket(s: import('node:dgram').Socket, mark: number): boolean {
  const fd = dgramFd(s);
  if (fd === undefined) return false;
  try {
    setMark(fd, mark);
    return true;
  } catch {
    return false;
  }
}
