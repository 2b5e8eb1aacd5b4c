// SO_PEERCRED on a connected Unix socket: the pid, uid and gid of the peer *at connect time*
// (the kernel records them in connect(2)/socketpair(2); they do not change if the peer later
// drops privileges or passes the fd on). The control server uses them to decide, per method,
// what a caller may do.
//
// Three layers: the raw libc declaration, the C struct named as in <sys/socket.h>, and a safe
// wrapper that reads the fd of a node:net socket and turns a failed call into an OsCallError.
import koffi from 'koffi';
type KoffiFunction = ReturnType<ReturnType<typeof koffi.load>['func']>;
import type { Socket } from 'node:net';
import { ControlError, OsCallError } from '../../errors.ts';

/** <asm-generic/socket.h>: SOL_SOCKET = 1, SO_PEERCRED = 17 on x86, x86-64, arm, arm64, riscv. */
export const SOL_SOCKET = 1;
export const SO_PEERCRED = 17;

/** struct ucred { pid_t pid; uid_t uid; gid_t gid; } — <sys/socket.h> with _GNU_SOURCE. */
export const ucred = koffi.struct('ucred', {
  pid: 'int32',
  uid: 'uint32',
  gid: 'uint32',
});

let getsockoptFn: KoffiFunction | undefined;

// getsockopt(2): https://man7.org/linux/man-pages/man2/getsockopt.2.html
function rawGetsockopt(): KoffiFunction {
  if (getsockoptFn === undefined) {
    const libc = koffi.load('libc.so.6');
    getsockoptFn = libc.func('int getsockopt(int sockfd, int level, int optname, _Out_ ucred *optval, _Inout_ uint32_t *optlen)');
  }
  return getsockoptFn;
}

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/** Reads SO_PEERCRED from a raw fd. */
export function peerCredOfFd(fd: number): PeerCred {
  const out: Partial<PeerCred> = {};
  const len = [koffi.sizeof(ucred)];
  const rc = rawGetsockopt()(fd, SOL_SOCKET, SO_PEERCRED, out, len) as number;
  if (rc !== 0) throw new OsCallError('SY_ERR_CONTROL_IDENTITY', 'getsockopt(SO_PEERCRED)', koffi.errno());
  if (len[0] !== koffi.sizeof(ucred) || typeof out.uid !== 'number' || typeof out.gid !== 'number' || typeof out.pid !== 'number') {
    throw new ControlError('SY_ERR_CONTROL_IDENTITY', `getsockopt(SO_PEERCRED) returned ${len[0]} bytes, expected ${koffi.sizeof(ucred)}`);
  }
  return { pid: out.pid, uid: out.uid, gid: out.gid };
}

/** The fd behind a node:net socket (libuv's handle); undefined for a closed or non-fd handle. */
export function socketFd(socket: Socket): number | undefined {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } })._handle;
  const fd = handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** SO_PEERCRED of an accepted Unix-socket connection. */
export function peerCredOfSocket(socket: Socket): PeerCred {
  const fd = socketFd(socket);
  if (fd === undefined) throw new ControlError('SY_ERR_CONTROL_IDENTITY', 'the connection has no file descriptor');
  return peerCredOfFd(fd);
}
