// Batched UDP I/O for the DNS fast path: a UDP socket made with libc (socket/setsockopt/bind),
// read with recvmmsg(2) and answered with sendmmsg(2), many datagrams per system call, from one
// block of native memory that JavaScript reads and writes through a view (no copy per call).
//
// Three layers, as elsewhere in src/sys: raw koffi declarations (one line each, with the manual
// page), the C structs with their layout (test/dns/udp-batch.test.ts compares it with gcc's), and
// safe wrappers that own descriptors and memory and turn -1 into OsCallError with errno.
// Loaded lazily: importing this module on another OS does nothing.
import koffi from 'koffi';
import type { TypeObject } from 'koffi';
import { OsCallError } from '../../errors.ts';

interface Raw {
  socket: (domain: number, type: number, protocol: number) => number;
  setsockopt: (fd: number, level: number, name: number, value: Buffer, len: number) => number;
  bind: (fd: number, addr: Buffer, len: number) => number;
  getsockname: (fd: number, addr: Buffer, len: Buffer) => number;
  inet_pton: (af: number, src: string, dst: Buffer) => number;
  recvmmsg: (fd: number, vec: bigint, vlen: number, flags: number, timeout: null) => number;
  sendmmsg: (fd: number, vec: bigint, vlen: number, flags: number) => number;
  sendto: (fd: number, buf: Uint8Array, len: number, flags: number, addr: Uint8Array, alen: number) => number;
  shutdown: (fd: number, how: number) => number;
  poll: (fds: Buffer, nfds: number, timeoutMs: number) => number;
  close: (fd: number) => number;
}

let raw: Raw | undefined;

function lib(): Raw {
  if (raw) return raw;
  const c = koffi.load('libc.so.6');
  raw = {
    socket: c.func('int socket(int domain, int type, int protocol)'), // https://man7.org/linux/man-pages/man2/socket.2.html
    setsockopt: c.func('int setsockopt(int fd, int level, int name, void *value, uint32_t len)'), // https://man7.org/linux/man-pages/man2/setsockopt.2.html
    bind: c.func('int bind(int fd, void *addr, uint32_t len)'), // https://man7.org/linux/man-pages/man2/bind.2.html
    getsockname: c.func('int getsockname(int fd, void *addr, void *len)'), // https://man7.org/linux/man-pages/man2/getsockname.2.html
    inet_pton: c.func('int inet_pton(int af, const char *src, void *dst)'), // https://man7.org/linux/man-pages/man3/inet_pton.3.html
    recvmmsg: c.func('int recvmmsg(int fd, void *msgvec, unsigned int vlen, int flags, void *timeout)'), // https://man7.org/linux/man-pages/man2/recvmmsg.2.html
    sendmmsg: c.func('int sendmmsg(int fd, void *msgvec, unsigned int vlen, int flags)'), // https://man7.org/linux/man-pages/man2/sendmmsg.2.html
    sendto: c.func('long sendto(int fd, void *buf, size_t len, int flags, void *addr, uint32_t alen)'), // https://man7.org/linux/man-pages/man2/sendto.2.html
    shutdown: c.func('int shutdown(int fd, int how)'), // https://man7.org/linux/man-pages/man2/shutdown.2.html
    poll: c.func('int poll(void *fds, unsigned long nfds, int timeout)'), // https://man7.org/linux/man-pages/man2/poll.2.html
    close: c.func('int close(int fd)'), // https://man7.org/linux/man-pages/man2/close.2.html
  } as Raw;
  return raw;
}

// Constants from the Linux UAPI headers (x86-64 and arm64 agree on all of these).
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_DGRAM = 2;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_RCVTIMEO = 20; // SO_RCVTIMEO_OLD: struct timeval with 64-bit fields on 64-bit Linux
export const IPPROTO_IPV6 = 41;
export const IPV6_V6ONLY = 26;
export const MSG_DONTWAIT = 0x40;
export const MSG_TRUNC = 0x20;
export const MSG_WAITFORONE = 0x10000;
export const SHUT_RDWR = 2;
export const POLLIN = 0x1;
export const POLLHUP = 0x10;
export const EAGAIN = 11;
export const EINTR = 4;

// The C structs, field names as in the headers. Anonymous koffi types: named ones live in one
// process-wide registry, where another module declaring `iovec` too would collide.
let types: { iovec: TypeObject; msghdr: TypeObject; mmsghdr: TypeObject; sockaddr_in: TypeObject; sockaddr_in6: TypeObject; timeval: TypeObject } | undefined;

function structs(): NonNullable<typeof types> {
  if (types) return types;
  // <bits/types/struct_iovec.h>
  const iovec = koffi.struct({ iov_base: 'void *', iov_len: 'size_t' });
  // <bits/socket.h>: msg_namelen and msg_flags are socklen_t / int; msg_iovlen and msg_controllen size_t.
  const msghdr = koffi.struct({
    msg_name: 'void *',
    msg_namelen: 'uint32_t',
    msg_iov: 'void *',
    msg_iovlen: 'size_t',
    msg_control: 'void *',
    msg_controllen: 'size_t',
    msg_flags: 'int',
  });
  const mmsghdr = koffi.struct({ msg_hdr: msghdr, msg_len: 'unsigned int' });
  // <netinet/in.h>
  const sockaddr_in = koffi.struct({ sin_family: 'uint16_t', sin_port: 'uint16_t', sin_addr: 'uint32_t', sin_zero: koffi.array('uint8_t', 8) });
  const sockaddr_in6 = koffi.struct({ sin6_family: 'uint16_t', sin6_port: 'uint16_t', sin6_flowinfo: 'uint32_t', sin6_addr: koffi.array('uint8_t', 16), sin6_scope_id: 'uint32_t' });
  // <bits/types/struct_timeval.h>
  const timeval = koffi.struct({ tv_sec: 'long', tv_usec: 'long' });
  types = { iovec, msghdr, mmsghdr, sockaddr_in, sockaddr_in6, timeval };
  return types;
}

/** Sizes and field offsets of the structs as koffi lays them out (what the code below relies on). */
export function layout(): Record<string, Record<string, number>> {
  const t = structs();
  const of = (ty: TypeObject, fields: string[]): Record<string, number> => {
    const o: Record<string, number> = { size: koffi.sizeof(ty) };
    for (const f of fields) o[f] = koffi.offsetof(ty, f);
    return o;
  };
  return {
    iovec: of(t.iovec, ['iov_base', 'iov_len']),
    msghdr: of(t.msghdr, ['msg_name', 'msg_namelen', 'msg_iov', 'msg_iovlen', 'msg_control', 'msg_controllen', 'msg_flags']),
    mmsghdr: of(t.mmsghdr, ['msg_hdr', 'msg_len']),
    sockaddr_in: of(t.sockaddr_in, ['sin_family', 'sin_port', 'sin_addr', 'sin_zero']),
    sockaddr_in6: of(t.sockaddr_in6, ['sin6_family', 'sin6_port', 'sin6_flowinfo', 'sin6_addr', 'sin6_scope_id']),
    timeval: of(t.timeval, ['tv_sec', 'tv_usec']),
  };
}

function fail(call: string, detail?: string): never {
  throw new OsCallError('SY_ERR_DNS_FAST_PATH', call, koffi.errno(), detail);
}

/** A sockaddr_in / sockaddr_in6 for an IP literal and port; throws on anything else. */
export function sockaddr(host: string, port: number): Buffer {
  const L = layout();
  const six = host.includes(':');
  const addr = Buffer.alloc(six ? 16 : 4);
  if (lib().inet_pton(six ? AF_INET6 : AF_INET, host, addr) !== 1) throw new OsCallError('SY_ERR_DNS_FAST_PATH', 'inet_pton', undefined, `not an IP literal: ${host}`);
  if (six) {
    const sa = Buffer.alloc(L.sockaddr_in6!.size!);
    sa.writeUInt16LE(AF_INET6, L.sockaddr_in6!.sin6_family!);
    sa.writeUInt16BE(port, L.sockaddr_in6!.sin6_port!);
    addr.copy(sa, L.sockaddr_in6!.sin6_addr!);
    return sa;
  }
  const sa = Buffer.alloc(L.sockaddr_in!.size!);
  sa.writeUInt16LE(AF_INET, L.sockaddr_in!.sin_family!);
  sa.writeUInt16BE(port, L.sockaddr_in!.sin_port!);
  addr.copy(sa, L.sockaddr_in!.sin_addr!);
  return sa;
}

export interface OpenUdpOptions {
  /** Socket buffer sizes (the kernel caps them at net.core.rmem_max / wmem_max). */
  bufferBytes: number;
  /** recvmmsg returns after this long without a datagram (SO_RCVTIMEO), so its thread can look at its mailbox. */
  recvTimeoutMs: number;
}

/**
 * A bound UDP socket: blocking (its reader is a worker thread), close-on-exec, IPv6-only for an
 * IPv6 address (as the dgram listeners are). Returns the descriptor and the bound port.
 */
export function openUdp(host: string, port: number, opts: OpenUdpOptions): { fd: number; port: number } {
  const c = lib();
  const six = host.includes(':');
  const sa = sockaddr(host, port);
  const fd = c.socket(six ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail('socket(SOCK_DGRAM)');
  try {
    const int = (v: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeInt32LE(v);
      return b;
    };
    if (six && c.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, int(1), 4) !== 0) fail('setsockopt(IPV6_V6ONLY)');
    // Best effort, like dgram's recvBufferSize/sendBufferSize: a refusal is not worth failing over.
    c.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, int(opts.bufferBytes), 4);
    c.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, int(opts.bufferBytes), 4);
    const L = layout().timeval!;
    const tv = Buffer.alloc(L.size!);
    tv.writeBigInt64LE(BigInt(Math.floor(opts.recvTimeoutMs / 1000)), L.tv_sec!);
    tv.writeBigInt64LE(BigInt((opts.recvTimeoutMs % 1000) * 1000), L.tv_usec!);
    if (c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, tv.length) !== 0) fail('setsockopt(SO_RCVTIMEO)');
    if (c.bind(fd, sa, sa.length) !== 0) fail('bind', `${host}:${port}`);
    const out = Buffer.alloc(28);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(out.length);
    if (c.getsockname(fd, out, len) !== 0) fail('getsockname');
    return { fd, port: out.readUInt16BE(2) };
  } catch (err) {
    c.close(fd);
    throw err;
  }
}

/** Wakes a thread blocked in recvmmsg on `fd` (it returns 0) and stops further I/O. Errors ignored. */
export function shutdownUdp(fd: number): void {
  lib().shutdown(fd, SHUT_RDWR);
}

export function closeFd(fd: number): void {
  lib().close(fd);
}

/**
 * One datagram to `addr` (a sockaddr as received), without blocking: false when the kernel did not
 * take it (buffer full, socket shut down). Used by the thread that is not the fast path's reader.
 */
export function sendTo(fd: number, data: Uint8Array, addr: Uint8Array): boolean {
  return lib().sendto(fd, data, data.length, MSG_DONTWAIT, addr, addr.length) === data.length;
}

/**
 * `count` receive and `count` send slots in one native allocation, laid out as
 *   recv mmsghdr[count] | send mmsghdr[count] | recv iovec[count] | send iovec[count] |
 *   names[count] (sockaddr_in6 size, rounded) | recv data[count][slot] | send data[count][slot]
 * The recv headers point at the names and recv data; the send headers at the same names (a reply
 * goes where its query came from) and the send data. `mem` views the whole block.
 */
export class BatchRing {
  readonly fd: number;
  readonly count: number;
  readonly slot: number;
  readonly mem: Buffer;
  /** 32-bit words of `mem`: header fields are read and written through it (every offset used is 4-aligned). */
  readonly #u32: Uint32Array;
  readonly #base: bigint;
  readonly #recvVec: bigint;
  readonly #sendVec: bigint;
  /** Low and high 32-bit halves of each name slot's address, to point a reply at a sender without BigInt. */
  readonly #nameLo: Uint32Array;
  readonly #nameHi: Uint32Array;
  readonly #nameOffInHdr: number;
  readonly #recvHdr: number;
  readonly #sendHdr: number;
  readonly #sendIov: number;
  readonly #names: number;
  readonly #recvData: number;
  readonly #sendData: number;
  readonly #hdr: number;
  readonly #nameLenOff: number;
  readonly #flagsOff: number;
  readonly #lenOff: number;
  readonly #iovLenOff: number;
  readonly #iovSize: number;
  #nameSize: number;
  #freed = false;

  /** `slot`: bytes per datagram (65536 takes any UDP payload; only touched pages use memory). */
  constructor(fd: number, count: number, slot = 65536) {
    const L = layout();
    const mm = L.mmsghdr!;
    const mh = L.msghdr!;
    const io = L.iovec!;
    this.fd = fd;
    this.count = count;
    this.slot = slot;
    this.#hdr = mm.size!;
    this.#nameSize = (L.sockaddr_in6!.size! + 7) & ~7;
    this.#recvHdr = 0;
    this.#sendHdr = count * this.#hdr;
    const recvIov = 2 * count * this.#hdr;
    this.#sendIov = recvIov + count * io.size!;
    this.#names = this.#sendIov + count * io.size!;
    this.#recvData = (this.#names + count * this.#nameSize + 63) & ~63;
    this.#sendData = this.#recvData + count * slot;
    const total = this.#sendData + count * slot;
    this.#nameLenOff = mm.msg_hdr! + mh.msg_namelen!;
    this.#flagsOff = mm.msg_hdr! + mh.msg_flags!;
    this.#lenOff = mm.msg_len!;
    this.#iovLenOff = io.iov_len!;
    this.#iovSize = io.size!;
    const ptr = koffi.alloc('uint8_t', total) as unknown;
    if (ptr === null || ptr === undefined) throw new OsCallError('SY_ERR_DNS_FAST_PATH', 'alloc', undefined, `${total} bytes`);
    this.#base = BigInt(koffi.address(ptr));
    this.mem = Buffer.from(koffi.view(ptr, total));
    this.mem.fill(0, 0, this.#recvData);
    this.#u32 = new Uint32Array(this.mem.buffer, this.mem.byteOffset, this.#recvData >> 2);
    this.#recvVec = this.#base + BigInt(this.#recvHdr);
    this.#sendVec = this.#base + BigInt(this.#sendHdr);
    this.#nameOffInHdr = mm.msg_hdr! + mh.msg_name!;
    this.#nameLo = new Uint32Array(count);
    this.#nameHi = new Uint32Array(count);
    for (let i = 0; i < count; i++) {
      const a = this.#base + BigInt(this.#names + i * this.#nameSize);
      this.#nameLo[i] = Number(a & 0xffffffffn);
      this.#nameHi[i] = Number(a >> 32n);
    }
    const m = this.mem;
    const at = (off: number): bigint => this.#base + BigInt(off);
    for (let i = 0; i < count; i++) {
      for (const [hdr, iov, data] of [
        [this.#recvHdr, recvIov, this.#recvData],
        [this.#sendHdr, this.#sendIov, this.#sendData],
      ] as const) {
        const h = hdr + i * this.#hdr + mm.msg_hdr!;
        m.writeBigUInt64LE(at(this.#names + i * this.#nameSize), h + mh.msg_name!);
        m.writeUInt32LE(this.#nameSize, h + mh.msg_namelen!);
        m.writeBigUInt64LE(at(iov + i * io.size!), h + mh.msg_iov!);
        m.writeBigUInt64LE(1n, h + mh.msg_iovlen!);
        m.writeBigUInt64LE(at(data + i * slot), iov + i * io.size! + io.iov_base!);
        m.writeBigUInt64LE(BigInt(slot), iov + i * io.size! + io.iov_len!);
      }
    }
    this.#ptr = ptr;
  }

  readonly #ptr: unknown;

  /**
   * Takes every queued datagram, up to `count`; when none is queued, waits up to `waitMs` for one
   * (poll(2): the socket may be non-blocking, as it is once a Node dgram socket shares it). Returns
   * how many arrived: 0 on timeout or interruption; -1 once the socket was shut down. Throws
   * OsCallError on other errors.
   */
  recv(waitMs = 100): number {
    // The kernel overwrites msg_namelen with each sender's length: restore the capacity.
    const u = this.#u32;
    const step = this.#hdr >> 2;
    for (let i = 0, w = (this.#recvHdr + this.#nameLenOff) >> 2; i < this.count; i++, w += step) u[w] = this.#nameSize;
    const c = lib();
    // Under load the queue is rarely empty: try first, poll only when nothing was there.
    let n = c.recvmmsg(this.fd, this.#recvVec, this.count, MSG_WAITFORONE | MSG_DONTWAIT, null);
    if (n < 0 && koffi.errno() === EAGAIN) {
      this.#pollFd.writeInt32LE(this.fd, 0);
      this.#pollFd.writeInt32LE(POLLIN, 4); // events = POLLIN, revents = 0
      if (c.poll(this.#pollFd, 1, waitMs) <= 0) return 0;
      n = c.recvmmsg(this.fd, this.#recvVec, this.count, MSG_WAITFORONE | MSG_DONTWAIT, null);
      // A socket shut down both ways polls as hung up and, non-blocking, reads as empty.
      if (n < 0 && (this.#pollFd.readInt16LE(6) & POLLHUP) !== 0) return -1;
    }
    if (n < 0) {
      const e = koffi.errno();
      if (e === EAGAIN || e === EINTR) return 0;
      fail('recvmmsg');
    }
    // After shutdown(2) a blocking recvmmsg returns at once with one empty "datagram" that has no
    // sender (msg_namelen 0); a real datagram always has one.
    if (n === 0 || this.nameLen(0) === 0) return -1;
    return n;
  }

  /** True when a datagram is queued (poll with no wait). */
  readable(): boolean {
    this.#pollFd.writeInt32LE(this.fd, 0);
    this.#pollFd.writeInt32LE(POLLIN, 4);
    return lib().poll(this.#pollFd, 1, 0) > 0 && (this.#pollFd.readInt16LE(6) & POLLIN) !== 0;
  }

  /** struct pollfd { int fd; short events; short revents; } for recv's wait. */
  readonly #pollFd = Buffer.alloc(8);

  /** Offset in `mem` of received datagram i's bytes, and their length. */
  dataOff(i: number): number {
    return this.#recvData + i * this.slot;
  }
  length(i: number): number {
    return this.#u32[(this.#recvHdr + i * this.#hdr + this.#lenOff) >> 2]!;
  }
  /** True when datagram i was larger than the slot (the rest was cut off). */
  truncated(i: number): boolean {
    return (this.#u32[(this.#recvHdr + i * this.#hdr + this.#flagsOff) >> 2]! & MSG_TRUNC) !== 0;
  }
  /** Offset in `mem` of datagram i's sender address, and its length (16 for IPv4, 28 for IPv6). */
  nameOff(i: number): number {
    return this.#names + i * this.#nameSize;
  }
  nameLen(i: number): number {
    return this.#u32[(this.#recvHdr + i * this.#hdr + this.#nameLenOff) >> 2]!;
  }
  /** Offset in `mem` where reply slot j's bytes are written. */
  outOff(j: number): number {
    return this.#sendData + j * this.slot;
  }

  /** Reply slot j answers datagram i (goes to its sender) with `len` bytes written at outOff(j). */
  reply(j: number, i: number, len: number): void {
    const u = this.#u32;
    const h = this.#sendHdr + j * this.#hdr;
    const np = (h + this.#nameOffInHdr) >> 2;
    u[np] = this.#nameLo[i]!;
    u[np + 1] = this.#nameHi[i]!;
    u[(h + this.#nameLenOff) >> 2] = this.nameLen(i);
    // iov_len is a size_t: its high word stays 0 (a slot is far below 4 GiB).
    u[(this.#sendIov + j * this.#iovSize + this.#iovLenOff) >> 2] = len;
  }

  /** Sends reply slots 0..n-1; returns how many the kernel took (errors drop the rest: UDP is lossy). */
  send(n: number): number {
    let sent = 0;
    while (sent < n) {
      const r = lib().sendmmsg(this.fd, sent === 0 ? this.#sendVec : this.#sendVec + BigInt(sent * this.#hdr), n - sent, 0);
      if (r <= 0) {
        if (r < 0 && koffi.errno() === EINTR) continue;
        // A datagram the kernel refuses (e.g. an unreachable sender): skip it, send the rest.
        sent++;
        continue;
      }
      sent += r;
    }
    return sent;
  }

  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    koffi.free(this.#ptr);
  }
}
