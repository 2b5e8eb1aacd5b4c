// What every watcher test file sets up: a temp folder for uniquely named program copies, a unique
// per-run cgroup root with a `vpn` group, and after the file: children killed, both removed.
import { before, after } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findCgroup2Mount } from '../../../src/redirect/linux/cgroup-mount.ts';
import { CgroupManager } from '../../../src/redirect/linux/cgroups.ts';
import { removeCgroupTree, uniqueCgroupRoot } from './host.ts';

export class WatchSandbox {
  dir = '';
  root = '';
  cg!: CgroupManager;
  readonly children: ChildProcess[] = [];

  /** Registers the file's before/after hooks; `skip`: the file's tests are skipped, set up nothing. */
  constructor(prefix: string, skip: boolean) {
    before(() => {
      if (skip) return;
      this.dir = mkdtempSync(join(tmpdir(), `sy-${prefix}-`));
      this.root = uniqueCgroupRoot(prefix);
      this.cg = new CgroupManager({ mount: findCgroup2Mount(), root: this.root });
      this.cg.ensure(['vpn']);
    });
    after(() => {
      for (const c of this.children) c.kill('SIGKILL');
      if (this.root) removeCgroupTree(this.root);
      if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    });
  }

  /** A copy of `tool` named `name` in the sandbox, so no other program on the host matches it. */
  copyTool(tool: string, name: string): string {
    const p = join(this.dir, name);
    copyFileSync(tool, p);
    chmodSync(p, 0o755);
    return p;
  }

  /** Where the watcher writes pids: the groups' cgroup.procs files under this run's root. */
  placer() {
    return { procs: { vpn: join(this.cg.fsPath('vpn'), 'cgroup.procs'), exempt: join(this.cg.fsPath('exempt'), 'cgroup.procs') }, rootPath: this.cg.hierarchyRootPath() };
  }
}
