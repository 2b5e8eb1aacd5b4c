// Which filesystems the fanotify watcher marks: every superblock in this mount namespace that can
// hold an executable, i.e. every mounted filesystem except the pseudo ones (proc, sysfs, cgroup...).
// A FAN_MARK_FILESYSTEM mark covers the whole superblock, whatever mount or mount namespace the exec
// goes through, so one mount point per superblock (major:minor in /proc/self/mountinfo) suffices.
import { readFileSync, statSync } from 'node:fs';

/** Filesystem types that never hold programs (kernel interfaces, not storage). */
export const PSEUDO_FS = new Set([
  'proc', 'sysfs', 'cgroup', 'cgroup2', 'devpts', 'mqueue', 'debugfs', 'tracefs', 'securityfs', 'pstore',
  'bpf', 'configfs', 'fusectl', 'hugetlbfs', 'autofs', 'binfmt_misc', 'efivarfs', 'rpc_pipefs', 'nsfs',
  'selinuxfs', 'nfsd',
]);

export interface ExecMount {
  /** `major:minor` of the superblock. */
  dev: string;
  mountPoint: string;
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
    if (!seen.has(dev)) seen.set(dev, { dev, mountPoint: unescape(f[4]!), fsType });
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

/** True when the mount point still reaches that superblock (it is not hidden under another mount). */
export function reachable(m: ExecMount): boolean {
  try {
    return statSync(m.mountPoint).dev === encodeDev(m.dev);
  } catch {
    return false;
  }
}
