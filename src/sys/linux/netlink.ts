// Netlink sockets through koffi (libc). Three layers: raw declarations (one per call, see the
// linked man pages), the C layouts as named offset tables (checked against the kernel headers by
// test/redirect-linux/layout.test.ts), and NetlinkSocket, which owns the fd and turns -1 into an
// error naming the call and errno.
import koffi from 'koffi';
import { OsCallError } from '../../errors.ts';

export const AF_NETLINK = 16;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const NETLINK_SOCK_DIAG = 4;
export const NETLINK_CONNECTOR = 11;
export const SOL_SOCKET = 1;
export const SO_RCVTIMEO = 20;
export const SO_RCVBUF = 8;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

/** struct nlmsghdr (linux/netlink.h): 16 bytes. */
export const nlmsghdr = { size: 16, nlmsg_len: 0, nlmsg_type: 4, nlmsg_flags: 6, nlmsg_seq: 8, nlmsg_pid: 12 } as const;
/** struct sockaddr_nl (linux/netlink.h): 12 bytes. */
export const sockaddr_nl = { size: 12, nl_family: 0, nl_pad: 2, nl_pid: 4, nl_groups: 8 } as const;

interface Raw {
  socket: (domain: number, type: number, protocol: number) => number;
  bind: (fd: number, addr: Buffer, len: number) => number;
  sendto: (fd: number, buf: Buffer, len: number, flags: number, addr: Buffer | null, alen: number) => number;
  recv: (fd: number, buf: Buffer, len: number, flags: number) => number;
  setsockopt: (fd: number, level: number, name: number, val: Buffer, len: number) => number;
  close: (fd: number) => number;
}

let raw: Raw | undefined;
function libc(): Raw {
  if (raw) return raw;
  const lib = koffi.load('libc.so.6');
  raw = {
    // https://man7.org/linux/man-pages/man2/socket.2.html
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    // https://man7.org/linux/man-pages/man2/bind.2.html
    bind: lib.func('int bind(int fd, const void *addr, uint32_t addrlen)'),
    // https://man7.org/linux/man-pages/man2/sendto.2.html
    sendto: lib.func('long sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)'),
    // https://man7.org/linux/man-pages/man2/recv.2.html — blocking: call it from a worker thread
    // or on a socket with SO_RCVTIMEO, never on the main thread without a timeout.
    recv: lib.func('long recv(int fd, _Out_ void *buf, size_t len, int flags)'),
    // https://man7.org/linux/man-pages/man2/setsockopt.2.html
    setsockopt: lib.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)'),
    // https://man7.org/linux/man-pages/man2/close.2.html
    close: lib.func('int close(int fd)'),
  } as Raw;
  return raw;
}

const errnoNow = () => koffi.errno();

export class NetlinkSocket {
  #fd: number;

  constructor(protocol: number, type = SOCK_DGRAM) {
    const fd = libc().socket(AF_NETLINK, type | SOCK_CLOEXEC, protocol);
    if (fd < 0) throw new OsCallError('SY_ERR_SYS_NETLINK', `socket(AF_NETLINK, ${protocol})`, errnoNow());
    this.#fd = fd;
  }

  get fd(): number {
    return this.#fd;
  }

  /** Binds with a multicast group mask (proc connector) or 0; the kernel picks the port id. */
  bind(groups: number): void {
    const a = Buffer.alloc(sockaddr_nl.size);
    a.writeUInt16LE(AF_NETLINK, sockaddr_nl.nl_family);
    a.writeUInt32LE(0, sockaddr_nl.nl_pid);
    a.writeUInt32LE(groups >>> 0, sockaddr_nl.nl_groups);
    if (libc().bind(this.#fd, a, a.length) < 0) throw new OsCallError('SY_ERR_SYS_NETLINK', 'bind(AF_NETLINK)', errnoNow());
  }

  /** Sends one message to the kernel (port id 0). */
  send(msg: Buffer): void {
    const a = Buffer.alloc(sockaddr_nl.size);
    a.writeUInt16LE(AF_NETLINK, sockaddr_nl.nl_family);
    const n = libc().sendto(this.#fd, msg, msg.length, 0, a, a.length);
    if (n < 0) throw new OsCallError('SY_ERR_SYS_NETLINK', 'sendto(netlink)', errnoNow());
  }

  /** Receives into buf; returns the byte count, or -errno (EAGAIN on timeout, ENOBUFS on overrun). */
  recv(buf: Buffer): number {
    const n = Number(libc().recv(this.#fd, buf, buf.length, 0));
    return n < 0 ? -errnoNow() : n;
  }

  setRecvTimeout(ms: number): void {
    const tv = Buffer.alloc(16); // struct timeval { long tv_sec; long tv_usec; } on 64-bit
    tv.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
    tv.writeBigInt64LE(BigInt((ms % 1000) * 1000), 8);
    if (libc().setsockopt(this.#fd, SOL_SOCKET, SO_RCVTIMEO, tv, tv.length) < 0) throw new OsCallError('SY_ERR_SYS_NETLINK', 'setsockopt(SO_RCVTIMEO)', errnoNow());
  }

  setRecvBuffer(bytes: number): void {
    const v = Buffer.alloc(4);
    v.writeInt32LE(bytes, 0);
    libc().setsockopt(this.#fd, SOL_SOCKET, SO_RCVBUF, v, 4); // best effort: the default also works
  }

  close(): void {
    if (this.#fd < 0) return;
    libc().close(this.#fd);
    this.#fd = -1;
  }
}

/** Builds a netlink message: header + payload, length filled in, 4-byte aligned. */
export function nlMessage(type: number, flags: number, seq: number, payload: Buffer): Buffer {
  const len = nlmsghdr.size + payload.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt32LE(len, nlmsghdr.nlmsg_len);
  b.writeUInt16LE(type, nlmsghdr.nlmsg_type);
  b.writeUInt16LE(flags, nlmsghdr.nlmsg_flags);
  b.writeUInt32LE(seq >>> 0, nlmsghdr.nlmsg_seq);
  b.writeUInt32LE(0, nlmsghdr.nlmsg_pid);
  payload.copy(b, nlmsghdr.size);
  return b;
}

export interface NlMsg {
  type: number;
  flags: number;
  seq: number;
  payload: Buffer;
}

/**
 * Splits a received datagram into messages, checking every length against the bytes present.
 * Throws (named failure) on a header that claims more than was received.
 */
export function parseNlMessages(buf: Buffer, n: number): NlMsg[] {
  const out: NlMsg[] = [];
  let off = 0;
  while (off < n) {
    if (n - off < nlmsghdr.size) throw new Error(`netlink: truncated header at offset ${off} (${n - off} bytes left)`);
    const len = buf.readUInt32LE(off + nlmsghdr.nlmsg_len);
    if (len < nlmsghdr.size) throw new Error(`netlink: message length ${len} below header size at offset ${off}`);
    if (len > n - off) throw new Error(`netlink: message length ${len} exceeds the ${n - off} bytes left at offset ${off}`);
    out.push({
      type: buf.readUInt16LE(off + nlmsghdr.nlmsg_type),
      flags: buf.readUInt16LE(off + nlmsghdr.nlmsg_flags),
      seq: buf.readUInt32LE(off + nlmsghdr.nlmsg_seq),
      payload: buf.subarray(off + nlmsghdr.size, off + len),
    });
    off += (len + 3) & ~3;
  }
  return out;
}
