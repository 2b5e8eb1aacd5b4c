// Raw libc declarations for the front door's socket work, through koffi. One line per function,
// each with its manual page. Nothing here interprets results: src/sys/linux/socket.ts wraps these
// calls, turns -1 into OsCallError with errno, and owns the file descriptors it creates.
// Loaded lazily so that merely importing this module on another OS does not fail.
import koffi from 'koffi';

export interface Libc {
  /** https://man7.org/linux/man-pages/man2/socket.2.html */
  socket(domain: number, type: number, protocol: number): number;
  /** https://man7.org/linux/man-pages/man2/setsockopt.2.html */
  setsockopt(fd: number, level: number, name: number, value: Buffer, len: number): number;
  /** https://man7.org/linux/man-pages/man2/getsockopt.2.html (optlen is a 4-byte in/out buffer) */
  getsockopt(fd: number, level: number, name: number, value: Buffer, len: Buffer): number;
  /** https://man7.org/linux/man-pages/man2/close.2.html */
  close(fd: number): number;
  /** https://man7.org/linux/man-pages/man2/getrlimit.2.html (struct rlimit: two 64-bit words) */
  getrlimit(resource: number, rlim: Buffer): number;
  /** https://man7.org/linux/man-pages/man2/setrlimit.2.html */
  setrlimit(resource: number, rlim: Buffer): number;
  /** errno of the last call on this thread (koffi saves it right after each call). */
  errno(): number;
}

let cached: Libc | undefined;

export function libc(): Libc {
  if (cached) return cached;
  const lib = koffi.load('libc.so.6');
  const socket = lib.func('int socket(int domain, int type, int protocol)'); // socket(2)
  const setsockopt = lib.func('int setsockopt(int fd, int level, int name, void *value, uint32_t len)'); // setsockopt(2)
  const getsockopt = lib.func('int getsockopt(int fd, int level, int name, void *value, void *len)'); // getsockopt(2)
  const close = lib.func('int close(int fd)'); // close(2)
  const getrlimit = lib.func('int getrlimit(int resource, void *rlim)'); // getrlimit(2)
  const setrlimit = lib.func('int setrlimit(int resource, void *rlim)'); // setrlimit(2)
  cached = {
    socket: (d, t, p) => socket(d, t, p) as number,
    setsockopt: (fd, level, name, value, len) => setsockopt(fd, level, name, value, len) as number,
    getsockopt: (fd, level, name, value, len) => getsockopt(fd, level, name, value, len) as number,
    close: (fd) => close(fd) as number,
    getrlimit: (r, b) => getrlimit(r, b) as number,
    setrlimit: (r, b) => setrlimit(r, b) as number,
    errno: () => koffi.errno(),
  };
  return cached;
}

// Constants from the Linux UAPI headers (x86-64 and arm64 agree on all of these).
export const AF_INET = 2; // <bits/socket.h>
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_NONBLOCK = 0o4000; // O_NONBLOCK
export const SOCK_CLOEXEC = 0o2000000; // O_CLOEXEC
export const IPPROTO_TCP = 6;
export const SOL_SOCKET = 1; // <asm-generic/socket.h>
export const SO_MARK = 36;
export const SO_BINDTODEVICE = 25;
export const SOL_IP = 0; // <linux/in.h>
export const SOL_IPV6 = 41;
/** <linux/netfilter_ipv4.h>: SO_ORIGINAL_DST = 80, read at SOL_IP. */
export const SO_ORIGINAL_DST = 80;
/** <linux/netfilter_ipv6/ip6_tables.h>: IP6T_SO_ORIGINAL_DST = 80, read at SOL_IPV6. */
export const IP6T_SO_ORIGINAL_DST = 80;
export const RLIMIT_NOFILE = 7; // <asm-generic/resource.h>
export const EPERM = 1;
export const ENOENT = 2;
