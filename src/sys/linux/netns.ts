// Run a synchronous function with the calling thread in another network namespace, then come
// back. setns(CLONE_NEWNET) changes only the calling thread, so call this from a worker thread
// (the process watcher's), never from the main thread. A socket created inside keeps the
// namespace it was created in: this is how the proc connector (which only delivers events in the
// initial network namespace) can be opened by a daemon that runs in another one.
import { closeSync, openSync } from 'node:fs';
import koffi from 'koffi';
import { OsCallError } from '../../errors.ts';

const CLONE_NEWNET = 0x40000000;

let setnsFn: ((fd: number, nstype: number) => number) | undefined;
function setns(): (fd: number, nstype: number) => number {
  // https://man7.org/linux/man-pages/man2/setns.2.html
  setnsFn ??= koffi.load('libc.so.6').func('int setns(int fd, int nstype)') as (fd: number, nstype: number) => number;
  return setnsFn;
}

export function inNetNamespace<T>(nsPath: string, fn: () => T): T {
  const own = openSync('/proc/thread-self/ns/net', 'r');
  try {
    const target = openSync(nsPath, 'r');
    try {
      if (setns()(target, CLONE_NEWNET) !== 0) throw new OsCallError('SY_ERR_SYS_NETLINK', `setns(${nsPath}, CLONE_NEWNET)`, koffi.errno());
    } finally {
      closeSync(target);
    }
    try {
      return fn();
    } finally {
      // Not coming back would leave this thread's later sockets in the wrong namespace.
      if (setns()(own, CLONE_NEWNET) !== 0) throw new OsCallError('SY_ERR_SYS_NETLINK', 'setns(back to the own network namespace)', koffi.errno());
    }
  } finally {
    closeSync(own);
  }
}
