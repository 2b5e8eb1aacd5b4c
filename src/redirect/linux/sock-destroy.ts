// Resets a process's existing TCP connections after it was moved into a group: they were opened
// before the move, so they go direct; destroyed, the app reconnects through the front door.
import { readdirSync, readlinkSync } from 'node:fs';
import { destroyTcpByInode } from '../../sys/linux/sockdiag.ts';

/** Inodes of the sockets a process holds (from /proc/PID/fd → `socket:[N]`). */
export function socketInodesOf(pid: number): Set<number> {
  const out = new Set<number>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(Number(m[1]));
    } catch {
      // fd closed meanwhile
    }
  }
  return out;
}

/** Destroys the pid's non-listening TCP sockets (SOCK_DESTROY). Returns how many. */
export async function destroyTcpSocketsOfPid(pid: number): Promise<number> {
  return destroyTcpByInode(socketInodesOf(pid));
}
