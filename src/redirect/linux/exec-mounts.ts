// Which filesystems the fanotify watcher marks: every superblock in this mount namespace that can
// hold an executable, i.e. every mounted filesystem except the pseudo ones (proc, sysfs, cgroup...).
// A FAN_MARK_FILESYSTEM mark covers the whole superblock, whatever mount or mount namespace the exec
// goes through, so one mount point per superblock (major:minor in /proc/self/mountinfo) suffices.
import { readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Filesystem types that never hold programs (kernel interfaces, not storage). */
export const PSEUDO_FS = new Set([
  'proc', 'sysfs', 'cgroup', 'cgroup2', 'devpts', 'mqueue', 'debugfs', 'tracefs', 'securityfs', 'pstore',
  'bpf', 'configfs', 'fusectl', 'hugetlbfs', 'autofs', 'binfmt_misc', 'efivarfs', 'rpc_pipefs', 'nsfs',
  'selinuxfs', 'nfsd',
]);

export interface ExecMount {
  /** `major:minor` of the superblock. */
  dev: string;
  /** The first mount point of that superblock in mountinfo order. */
  mountPoint: string;
  /** Every mount point of it (the first may be hidden under a later mount). */
  mountPoints: string[];
  fsType: string;
}

/** Undoes mountinfo's octal escapes (`\040` for a space, etc.). */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * One entry per superblock worth marking, from mountinfo text (proc(5): `id parent major:minor root
 * mountpoint options [optional fields] - fstype source superoptions`). Malformed lines are skipped:
 * a line this parser cannot read is a filesystem left to the rescan backstop, not a crash.
 */
export function execMounts(mountinfo: string): ExecMount[] {
  const seen = new Map<string, ExecMount>();
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (f.length < 7 || sep < 6 || sep + 1 >= f.length) continue;
    const dev = f[2]!;
    const fsType = f[sep + 1]!;
    if (!/^\d+:\d+$/.test(dev) || PSEUDO_FS.has(fsType)) continue;
    const mp = unescape(f[4]!);
    const had = seen.get(dev);
    if (had) had.mountPoints.push(mp);
    else seen.set(dev, { dev, mountPoint: mp, mountPoints: [mp], fsType });
  }
  return [...seen.values()];
}

export function readExecMounts(): ExecMount[] {
  try {
    return execMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
  } catch {
    return [];
  }
}

/** Linux's encoding of a dev_t as stat() returns it (new_encode_dev). */
export function encodeDev(dev: string): number {
  const [maj, min] = dev.split(':').map(Number) as [number, number];
  return (min & 0xff) | (maj << 8) | ((min & ~0xff) << 12);
}

/** A mount point that still reaches that superblock (not hidden under another mount), or null. */
export function reachablePath(m: ExecMount): string | null {
  for (const p of m.mountPoints) {
    try {
      if (statSync(p).dev === encodeDev(m.dev)) return p;
    } catch {
      // gone meanwhile: try the next
    }
  }
  return null;
}

/**
 * The ELF interpreters (dynamic loaders) present: the kernel opens one for exec after every
 * dynamically linked program. Resolved to real paths, deduplicated.
 */
export function dynamicLoaders(): string[] {
  const out = new Set<string>();
  for (const d of ['/lib64', '/lib', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu']) {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      continue;
    }
    for (const n of names) {
      if (!/^ld-(linux|musl)[\w.-]*\.so(\.\d+)*$/.test(n)) continue;
      try {
        out.add(realpathSync(join(d, n)));
      } catch {
        // dangling link
      }
    }
  }
  return [...out];
}
