// cgroup v2 groups under one root (default `switchyard`, see src/ids.ts; tests inject a per-run
// root). Groups are created before the rules that name them and never removed or re-created while
// a table refers to them: nft stores the cgroup's id (its inode), not its path, so a re-created
// directory would silently stop matching. verify() detects that by comparing ids.
import { mkdirSync, readFileSync, rmdirSync, statSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join, posix } from 'node:path';
import { CGROUP_EGRESS_PREFIX, CGROUP_EXEMPT, CGROUP_ROOT } from '../../ids.ts';
import { RedirectError } from '../../errors.ts';
import { cgroupDepth, type Cgroup2Mount } from './cgroup-mount.ts';

export const EXEMPT_GROUP = CGROUP_EXEMPT;

export interface CgroupManagerOptions {
  mount: Cgroup2Mount;
  /** Root of switchyard's groups relative to the mount (default CGROUP_ROOT). */
  root?: string;
}

/** Directory name of a group: `exempt`, or `egress-<name>`. */
export function groupDir(group: string): string {
  return group === EXEMPT_GROUP ? CGROUP_EXEMPT : `${CGROUP_EGRESS_PREFIX}${group}`;
}

export class CgroupManager {
  readonly mount: Cgroup2Mount;
  readonly root: string;
  /** pid → cgroup path (relative to the hierarchy) it was in before we moved it. */
  readonly originals = new Map<number, string>();

  constructor(opts: CgroupManagerOptions) {
    this.mount = opts.mount;
    this.root = (opts.root ?? CGROUP_ROOT).replace(/^\/+|\/+$/g, '');
    if (this.root === '' || this.root.split('/').some((c) => c === '.' || c === '..')) {
      throw new RedirectError('SY_ERR_REDIRECT_CGROUP', `bad cgroup root '${opts.root}'`);
    }
  }

  /** The path nft is given (relative to the mount nft sees at /sys/fs/cgroup). */
  nftPath(group: string): string {
    return `${this.root}/${groupDir(group)}`;
  }

  /** `socket cgroupv2 level N`: the group's depth in the whole hierarchy, not just below the mount. */
  level(group: string): number {
    return cgroupDepth(this.mount.root) + cgroupDepth(this.nftPath(group));
  }

  fsPath(group: string): string {
    return join(this.mount.mountPoint, this.nftPath(group));
  }

  rootFsPath(): string {
    return join(this.mount.mountPoint, this.root);
  }

  /** Creates the root and the groups that do not exist yet; returns each group's cgroup id. */
  ensure(groups: string[]): Map<string, number> {
    const ids = new Map<string, number>();
    try {
      mkdirSync(this.rootFsPath(), { recursive: true });
      for (const g of [EXEMPT_GROUP, ...groups]) {
        const p = this.fsPath(g);
        if (!existsSync(p)) mkdirSync(p);
        ids.set(g, statSync(p).ino);
      }
    } catch (err) {
      throw new RedirectError('SY_ERR_REDIRECT_CGROUP', `cannot create cgroups under ${this.rootFsPath()}: ${(err as Error).message}`, err);
    }
    return ids;
  }

  /** The cgroup id (inode number of its directory), or null when the group does not exist. */
  id(group: string): number | null {
    try {
      return statSync(this.fsPath(group)).ino;
    } catch {
      return null;
    }
  }

  /** Groups that exist on disk under the root (by directory name → group name). */
  existing(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.rootFsPath(), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch {
      return [];
    }
    return names.map((d) => (d === CGROUP_EXEMPT ? EXEMPT_GROUP : d.startsWith(CGROUP_EGRESS_PREFIX) ? d.slice(CGROUP_EGRESS_PREFIX.length) : null)).filter((g): g is string => g !== null);
  }

  pids(group: string): number[] {
    return readPids(join(this.fsPath(group), 'cgroup.procs'));
  }

  /** Moves a process into a group, remembering where it was so down() can put it back. */
  move(pid: number, group: string): void {
    if (!Number.isInteger(pid) || pid <= 0) throw new RedirectError('SY_ERR_REDIRECT_CGROUP', `bad pid ${pid}`);
    const current = cgroupOf(pid);
    if (current !== null && !this.originals.has(pid) && !isBelow(current, this.hierarchyRootPath())) {
      this.originals.set(pid, current);
    }
    const procs = join(this.fsPath(group), 'cgroup.procs');
    try {
      writeFileSync(procs, `${pid}\n`);
    } catch (err) {
      throw new RedirectError('SY_ERR_REDIRECT_CGROUP', `cannot move pid ${pid} into ${this.nftPath(group)}: ${(err as Error).message}`, err);
    }
  }

  /** Our root as a hierarchy path (as /proc/PID/cgroup shows it). */
  hierarchyRootPath(): string {
    return posix.join(this.mount.root, this.root);
  }

  /**
   * Puts every process in our groups back: to its recorded original cgroup when that still exists,
   * else to the cgroup that holds our root. Returns how many were moved.
   */
  restoreAll(): number {
    let moved = 0;
    for (const g of this.existing()) moved += this.restoreGroup(g);
    return moved;
  }

  /** Puts the processes of one group back (see restoreAll). */
  restoreGroup(g: string): number {
    let moved = 0;
    const fallback = posix.dirname(this.hierarchyRootPath());
    for (const pid of this.pids(g)) {
      const orig = this.originals.get(pid);
      const target = orig !== undefined && existsSync(this.hierarchyToFs(orig)) ? orig : fallback;
      try {
        writeFileSync(join(this.hierarchyToFs(target), 'cgroup.procs'), `${pid}\n`);
        moved++;
      } catch (err) {
        // The process may have exited between reading and writing: that is fine.
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw new RedirectError('SY_ERR_REDIRECT_CGROUP', `cannot restore pid ${pid} to ${target}`, err);
      }
      this.originals.delete(pid);
    }
    return moved;
  }

  /** Removes one group's directory (after restoreGroup). */
  removeGroup(g: string): void {
    rmdirRetry(this.fsPath(g));
  }

  /** Removes the groups and the root (after restoreAll). Missing ones are fine. */
  removeAll(): void {
    for (const g of this.existing()) rmdirRetry(this.fsPath(g));
    rmdirRetry(this.rootFsPath());
  }

  /** Hierarchy path ('/a/b', as in /proc/PID/cgroup) → filesystem path under our mount. */
  hierarchyToFs(path: string): string {
    const rel = posix.relative(this.mount.root, path);
    if (rel.startsWith('..')) throw new RedirectError('SY_ERR_REDIRECT_CGROUP', `cgroup ${path} is outside the mount ${this.mount.mountPoint}`);
    return join(this.mount.mountPoint, rel);
  }
}

function isBelow(path: string, root: string): boolean {
  return path === root || path.startsWith(root + '/');
}

function readPids(file: string): number[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter((l) => l !== '').map(Number).filter((n) => Number.isInteger(n) && n > 0);
}

/** The cgroup v2 path of a process ('0::/path' line of /proc/PID/cgroup), or null if gone. */
export function cgroupOf(pid: number | 'self'): string | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    if (line.startsWith('0::')) return line.slice(3).replace(/ \(deleted\)$/, '');
  }
  return null;
}

function rmdirRetry(path: string): void {
  for (let i = 0; ; i++) {
    try {
      rmdirSync(path);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      // EBUSY: a process that just exited may still be counted for a moment.
      if (code === 'EBUSY' && i < 50) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        continue;
      }
      throw new RedirectError('SY_ERR_REDIRECT_CGROUP', `cannot remove cgroup ${path}: ${(err as Error).message}`, err);
    }
  }
}
