// Non-blocking TCP sockets and epoll(7) through koffi, for a relay that runs its own event loop in a
// worker thread (no net.Socket per connection). Raw declarations (one line each, with the manual
// page) and a thin layer that keeps the call sites short: -1 is returned as is and errno() read
// right after, because on this path EAGAIN/EINPROGRESS are the normal case, not errors.
// Loaded lazily: importing this module on another OS does nothing.
import koffi from 'koffi';

export interface TcpRaw {
  socket: (domain: number, type: number, protocol: number) => number;
  setsockopt: (fd: number, level: number, name: number, value: Buffer, len: number) => number;
  getsockopt: (fd: number, level: number, name: number, value: Buffer, len: Buffer) => number;
  bind: (fd: number, addr: Buffer, len: number) => number;
  listen: (fd: number, backlog: number) => number;
  accept4: (fd: number, addr: null, len: null, flags: number) => number;
  connect: (fd: number, addr: Buffer, len: number) => number;
  getsockname: (fd: number, addr: Buffer, len: Buffer) => number;
  read: (fd: number, buf: Uint8Array, len: number) => number;
  write: (fd: number, buf: Uint8Array, len: number) => number;
  shutdown: (fd: number, how: number) => number;
  close: (fd: number) => number;
  epoll_create1: (flags: number) => number;
  epoll_ctl: (epfd: number, op: number, fd: number, ev: Buffer | null) => number;
  epoll_wait: (epfd: number, events: Buffer, max: number, timeout: number) => number;
  eventfd: (initval: number, flags: number) => number;
  errno: () => number;
}

let raw: TcpRaw | undefined;

export function tcpRaw(): TcpRaw {
  if (raw) return raw;
  const c = koffi.load('libc.so.6');
  raw = {
    socket: c.func('int socket(int domain, int type, int protocol)'), // https://man7.org/linux/man-pages/man2/socket.2.html
    setsockopt: c.func('int setsockopt(int fd, int level, int name, void *value, uint32_t len)'), // https://man7.org/linux/man-pages/man2/setsockopt.2.html
    getsockopt: c.func('int getsockopt(int fd, int level, int name, void *value, void *len)'), // https://man7.org/linux/man-pages/man2/getsockopt.2.html
    bind: c.func('int bind(int fd, void *addr, uint32_t len)'), // https://man7.org/linux/man-pages/man2/bind.2.html
    listen: c.func('int listen(int fd, int backlog)'), // https://man7.org/linux/man-pages/man2/listen.2.html
    accept4: c.func('int accept4(int fd, void *addr, void *len, int flags)'), // https://man7.org/linux/man-pages/man2/accept4.2.html
    connect: c.func('int connect(int fd, void *addr, uint32_t len)'), // https://man7.org/linux/man-pages/man2/connect.2.html
    getsockname: c.func('int getsockname(int fd, void *addr, void *len)'), // https://man7.org/linux/man-pages/man2/getsockname.2.html
    read: c.func('long read(int fd, void *buf, size_t len)'), // https://man7.org/linux/man-pages/man2/read.2.html
    write: c.func('long write(int fd, void *buf, size_t len)'), // https://man7.org/linux/man-pages/man2/write.2.html
    shutdown: c.func('int shutdown(int fd, int how)'), // https://man7.org/linux/man-pages/man2/shutdown.2.html
    close: c.func('int close(int fd)'), // https://man7.org/linux/man-pages/man2/close.2.html
    epoll_create1: c.func('int epoll_create1(int flags)'), // https://man7.org/linux/man-pages/man2/epoll_create1.2.html
    epoll_ctl: c.func('int epoll_ctl(int epfd, int op, int fd, void *event)'), // https://man7.org/linux/man-pages/man2/epoll_ctl.2.html
    epoll_wait: c.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)'), // https://man7.org/linux/man-pages/man2/epoll_wait.2.html
    eventfd: c.func('int eventfd(unsigned int initval, int flags)'), // https://man7.org/linux/man-pages/man2/eventfd.2.html
    errno: () => koffi.errno(),
  } as TcpRaw;
  return raw;
}

// Constants from the Linux UAPI headers (x86-64 and arm64 agree on all of these).
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_ERROR = 4;
export const IPPROTO_TCP = 6;
export const TCP_NODELAY = 1;
export const SHUT_WR = 1;
export const SHUT_RDWR = 2;
export const EPOLL_CLOEXEC = 0o2000000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLLRDHUP = 0x2000;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;
export const EAGAIN = 11;
export const EINTR = 4;
export const EINPROGRESS = 115;
export const ECONNREFUSED = 111;
export const ENETUNREACH = 101;
export const EHOSTUNREACH = 113;
export const ETIMEDOUT = 110;

/**
 * struct epoll_event: { uint32_t events; epoll_data_t data } — packed on x86-64 (12 bytes, the
 * data at offset 4), naturally aligned elsewhere (16 bytes, the data at offset 8). <sys/epoll.h>
 */
export const EPOLL_EVENT_SIZE = process.arch === 'x64' ? 12 : 16;
export const EPOLL_DATA_OFF = process.arch === 'x64' ? 4 : 8;

/** A sockaddr_in / sockaddr_in6 from raw address bytes (4 or 16) and a port. */
export function sockaddrFrom(addr: Uint8Array, port: number): Buffer {
  if (addr.length === 4) {
    const sa = Buffer.alloc(16);
    sa.writeUInt16LE(AF_INET, 0);
    sa.writeUInt16BE(port, 2);
    sa.set(addr, 4);
    return sa;
  }
  const sa = Buffer.alloc(28);
  sa.writeUInt16LE(AF_INET6, 0);
  sa.writeUInt16BE(port, 2);
  sa.set(addr, 8);
  return sa;
}
