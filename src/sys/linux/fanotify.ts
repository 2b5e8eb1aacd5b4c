// fanotify exec permission events through koffi (libc): the kernel holds every execve() of a file on a
// marked filesystem until the listener answers FAN_ALLOW or FAN_DENY for it. The watcher uses this to
// move a process into its group before the new image runs its first instruction.
//
// Safety: while marks exist, every exec on those filesystems waits for whoever reads this fd. Only a
// worker thread that answers every event (src/redirect/linux/fanotify-worker.ts) may read it, and
// the fd must be closed as soon as nobody reads it: closing it (or the process dying) makes the
// kernel allow every pending and future event of the group.
//
//   struct fanotify_event_metadata (linux/fanotify.h): event_len u32 | vers u8 | reserved u8 |
//     metadata_len u16 | mask u64 (aligned) | fd s32 | pid s32          = 24 bytes, then info records
//   struct fanotify_response: fd s32 | response u32                     = 8 bytes
import koffi from 'koffi';
import { OsCallError } from '../../errors.ts';

export const FAN_CLOEXEC = 0x1;
export const FAN_NONBLOCK = 0x2;
export const FAN_CLASS_CONTENT = 0x4;
export const FAN_MARK_ADD = 0x1;
export const FAN_MARK_REMOVE = 0x2;
export const FAN_MARK_IGNORED_MASK = 0x20;
export const FAN_MARK_IGNORED_SURV_MODIFY = 0x40;
export const FAN_MARK_FILESYSTEM = 0x100;
export const FAN_OPEN_EXEC_PERM = 0x40000;
export const FAN_Q_OVERFLOW = 0x4000;
export const FAN_ALLOW = 0x1;
export const FAN_NOFD = -1;
export const FANOTIFY_METADATA_VERSION = 3;
export const O_RDONLY = 0;
export const O_LARGEFILE = 0o100000;
export const O_CLOEXEC = 0o2000000;
export const AT_FDCWD = -100;
export const POLLIN = 0x1;

/** struct fanotify_event_metadata: offsets and size. */
export const fanotify_event_metadata = { size: 24, event_len: 0, vers: 4, reserved: 5, metadata_len: 6, mask: 8, fd: 16, pid: 20 } as const;
/** struct fanotify_response. */
export const fanotify_response = { size: 8, fd: 0, response: 4 } as const;

export interface FanEvent {
  mask: bigint;
  /** An open fd of the file (the listener must close it), or FAN_NOFD (-1) for an overflow. */
  fd: number;
  /** tgid of the process that caused the event; 0 when it is outside our pid namespace. */
  pid: number;
}

/**
 * The events of one read(). Every length is checked against the bytes present before it is used;
 * a malformed buffer throws a named error — but the events parsed before it are returned through
 * `out` first, so that the caller still answers them (an unanswered permission event hangs an exec).
 */
export function parseFanEvents(buf: Buffer, n: number, out: FanEvent[] = []): FanEvent[] {
  if (n > buf.length) throw new Error(`fanotify: ${n} bytes read into a ${buf.length}-byte buffer`);
  let off = 0;
  const m = fanotify_event_metadata;
  while (off < n) {
    if (n - off < m.size) throw new Error(`fanotify: ${n - off} trailing bytes, an event needs ${m.size}`);
    const len = buf.readUInt32LE(off + m.event_len);
    const vers = buf.readUInt8(off + m.vers);
    const metaLen = buf.readUInt16LE(off + m.metadata_len);
    if (vers !== FANOTIFY_METADATA_VERSION) throw new Error(`fanotify: metadata version ${vers}, expected ${FANOTIFY_METADATA_VERSION}`);
    if (metaLen < m.size) throw new Error(`fanotify: metadata_len ${metaLen} < ${m.size}`);
    if (len < metaLen || len > n - off) throw new Error(`fanotify: event_len ${len} outside ${metaLen}..${n - off}`);
    out.push({ mask: buf.readBigUInt64LE(off + m.mask), fd: buf.readInt32LE(off + m.fd), pid: buf.readInt32LE(off + m.pid) });
    off += len;
  }
  return out;
}

export function responseBytes(fd: number, response: number): Buffer {
  const b = Buffer.alloc(fanotify_response.size);
  b.writeInt32LE(fd, fanotify_response.fd);
  b.writeUInt32LE(response, fanotify_response.response);
  return b;
}

interface Raw {
  fanotify_init: (flags: number, eventFlags: number) => number;
  fanotify_mark: (fd: number, flags: number, mask: bigint, dirfd: number, path: string | null) => number;
  read: (fd: number, buf: Buffer, len: number) => number;
  write: (fd: number, buf: Buffer, len: number) => number;
  close: (fd: number) => number;
  poll: (fds: Buffer, n: number, timeout: number) => number;
  readlink: (path: string, buf: Buffer, len: number) => number;
  setpriority: (which: number, who: number, prio: number) => number;
}

let raw: Raw | undefined;
function libc(): Raw {
  if (raw) return raw;
  const lib = koffi.load('libc.so.6');
  raw = {
    // https://man7.org/linux/man-pages/man2/fanotify_init.2.html
    fanotify_init: lib.func('int fanotify_init(unsigned int flags, unsigned int event_f_flags)'),
    // https://man7.org/linux/man-pages/man2/fanotify_mark.2.html
    fanotify_mark: lib.func('int fanotify_mark(int fd, unsigned int flags, uint64_t mask, int dirfd, const char *path)'),
    // https://man7.org/linux/man-pages/man2/read.2.html — on the fanotify fd only after poll() says so
    read: lib.func('long read(int fd, _Out_ void *buf, size_t len)'),
    // https://man7.org/linux/man-pages/man2/write.2.html
    write: lib.func('long write(int fd, const void *buf, size_t len)'),
    // https://man7.org/linux/man-pages/man2/close.2.html
    close: lib.func('int close(int fd)'),
    // https://man7.org/linux/man-pages/man2/poll.2.html (struct pollfd: fd s32, events s16, revents s16)
    poll: lib.func('int poll(_Inout_ void *fds, unsigned long nfds, int timeout)'),
    // https://man7.org/linux/man-pages/man2/readlink.2.html
    readlink: lib.func('long readlink(const char *path, _Out_ void *buf, size_t len)'),
    // https://man7.org/linux/man-pages/man2/setpriority.2.html — on Linux, who = 0 is the calling thread
    setpriority: lib.func('int setpriority(int which, unsigned int who, int prio)'),
  } as Raw;
  return raw;
}

const errnoNow = () => koffi.errno();

/** A new fanotify group for permission events (no marks yet: nothing waits on it). Needs CAP_SYS_ADMIN. */
export function fanotifyInit(): number {
  // Event fds get O_CLOEXEC: a child the daemon spawns meanwhile must not inherit them.
  const fd = libc().fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK, O_RDONLY | O_LARGEFILE | O_CLOEXEC);
  if (fd < 0) throw new OsCallError('SY_ERR_SYS_FANOTIFY', 'fanotify_init', errnoNow());
  return fd;
}

/** Marks the whole filesystem holding `path` for exec permission events. */
export function markFilesystem(fd: number, path: string): void {
  if (libc().fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, BigInt(FAN_OPEN_EXEC_PERM), AT_FDCWD, path) !== 0)
    throw new OsCallError('SY_ERR_SYS_FANOTIFY', 'fanotify_mark', errnoNow(), path);
}

/**
 * Exec permission events for this one file are not generated at all (an ignore mark on its inode,
 * kept when the file is modified). For the ELF interpreter: the kernel opens it for exec after
 * every dynamically linked program, which would double the round trips through the worker.
 */
export function ignoreFile(fd: number, path: string): void {
  if (libc().fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY, BigInt(FAN_OPEN_EXEC_PERM), AT_FDCWD, path) !== 0)
    throw new OsCallError('SY_ERR_SYS_FANOTIFY', 'fanotify_mark(ignore)', errnoNow(), path);
}

/**
 * Sets the calling thread's nice value (Linux: PRIO_PROCESS with who = 0 changes this thread only).
 * The fanotify worker raises its own: every exec on the host waits until it is scheduled. Returns
 * false when refused (no CAP_SYS_NICE); the worker then runs at the normal priority.
 */
export function setThreadNice(nice: number): boolean {
  return libc().setpriority(0 /* PRIO_PROCESS */, 0, nice) === 0;
}

export function closeFd(fd: number): void {
  libc().close(fd);
}

/**
 * The reading side, for the worker thread only: waits up to `timeoutMs` for events, reads them,
 * and answers. Non-blocking fd + poll(), so that the worker can look at its stop flag.
 */
export class FanotifyReader {
  readonly fd: number;
  readonly buf = Buffer.alloc(64 * 1024);
  readonly #pfd = Buffer.alloc(8);
  readonly #link = Buffer.alloc(4096);

  constructor(fd: number) {
    this.fd = fd;
    this.#pfd.writeInt32LE(fd, 0);
    this.#pfd.writeInt16LE(POLLIN, 4);
  }

  /** Events ready within `timeoutMs` (possibly none). `out` receives them even when parsing throws. */
  next(timeoutMs: number, out: FanEvent[]): FanEvent[] {
    this.#pfd.writeInt16LE(0, 6);
    const r = libc().poll(this.#pfd, 1, timeoutMs);
    if (r < 0) {
      const e = errnoNow();
      if (e === 4 /* EINTR */) return out;
      throw new OsCallError('SY_ERR_SYS_FANOTIFY', 'poll(fanotify)', e);
    }
    if (r === 0) return out;
    const n = libc().read(this.fd, this.buf, this.buf.length);
    if (n < 0) {
      const e = errnoNow();
      if (e === 11 /* EAGAIN */ || e === 4 /* EINTR */) return out;
      throw new OsCallError('SY_ERR_SYS_FANOTIFY', 'read(fanotify)', e);
    }
    return parseFanEvents(this.buf, n, out);
  }

  /** The path of an event's file (readlink of /proc/self/fd/N), or null. */
  pathOf(eventFd: number): string | null {
    const n = libc().readlink(`/proc/self/fd/${eventFd}`, this.#link, this.#link.length);
    return n > 0 && n < this.#link.length ? this.#link.toString('utf8', 0, n) : null;
  }

  /** Answers FAN_ALLOW for a permission event. Returns false if the kernel refused the write. */
  allow(eventFd: number): boolean {
    const b = responseBytes(eventFd, FAN_ALLOW);
    return libc().write(this.fd, b, b.length) === b.length;
  }

  closeEventFd(eventFd: number): void {
    libc().close(eventFd);
  }
}
