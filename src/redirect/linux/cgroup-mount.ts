// Where the cgroup v2 hierarchy is mounted, from /proc/self/mountinfo (proc(5)). Pure parser plus
// one reader. On a unified host it is /sys/fs/cgroup; on a hybrid host (v1 controllers at
// /sys/fs/cgroup/*) it is /sys/fs/cgroup/unified — then nft, which resolves `socket cgroupv2`
// paths under /sys/fs/cgroup, must run with the hierarchy bind-mounted there (see nft-cli.ts).
import { readFileSync } from 'node:fs';
import { RedirectError } from '../../errors.ts';

export interface Cgroup2Mount {
  mountPoint: string;
  /** Path of the hierarchy's root inside the mount ('/' unless a cgroup namespace or bind mount). */
  root: string;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** All cgroup2 mounts, in mountinfo order. Lines that do not parse are skipped (not ours). */
export function parseCgroup2Mounts(mountinfo: string): Cgroup2Mount[] {
  const out: Cgroup2Mount[] = [];
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    if (left.length < 5 || right.length < 1) continue;
    if (right[0] !== 'cgroup2') continue;
    out.push({ root: unescape(left[3]!), mountPoint: unescape(left[4]!) });
  }
  return out;
}

/** Picks the mount to use: /sys/fs/cgroup when cgroup2 is there, else the first one with root '/'. */
export function pickCgroup2Mount(mounts: Cgroup2Mount[]): Cgroup2Mount | null {
  return mounts.find((m) => m.mountPoint === '/sys/fs/cgroup') ?? mounts.find((m) => m.root === '/') ?? mounts[0] ?? null;
}

export function findCgroup2Mount(mountinfoPath = '/proc/self/mountinfo'): Cgroup2Mount {
  let text: string;
  try {
    text = readFileSync(mountinfoPath, 'utf8');
  } catch (err) {
    throw new RedirectError('SY_ERR_REDIRECT_CGROUP', `cannot read ${mountinfoPath}`, err);
  }
  const m = pickCgroup2Mount(parseCgroup2Mounts(text));
  if (!m) throw new RedirectError('SY_ERR_REDIRECT_CGROUP', 'no cgroup2 filesystem is mounted (cgroup v2 is required)');
  return m;
}

/** Depth of a cgroup path ('/' → 0, '/a/b' → 2). */
export function cgroupDepth(path: string): number {
  return path.split('/').filter((c) => c !== '').length;
}
