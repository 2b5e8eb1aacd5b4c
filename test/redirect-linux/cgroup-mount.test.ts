// src/redirect/linux/cgroup-mount.ts: finding the cgroup2 mount in /proc/self/mountinfo, including
// the hybrid layout of these machines and hostile lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cgroupDepth, findCgroup2Mount, parseCgroup2Mounts, pickCgroup2Mount } from '../../src/redirect/linux/cgroup-mount.ts';
import { CgroupManager } from '../../src/redirect/linux/cgroups.ts';
import { isSwitchyardError } from '../../src/errors.ts';

const HYBRID = `35 24 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
36 35 0:31 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
37 35 0:32 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd`;
const UNIFIED = `30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot`;

test('hybrid layout: cgroup2 at /sys/fs/cgroup/unified', () => {
  assert.deepEqual(pickCgroup2Mount(parseCgroup2Mounts(HYBRID)), { root: '/', mountPoint: '/sys/fs/cgroup/unified' });
});

test('unified layout wins when both exist', () => {
  assert.deepEqual(pickCgroup2Mount(parseCgroup2Mounts(`${HYBRID}\n${UNIFIED}`)), { root: '/', mountPoint: '/sys/fs/cgroup' });
});

test('escaped mount points and a non-root mount (cgroup namespace) are read', () => {
  const m = parseCgroup2Mounts('40 1 0:9 /user.slice/a\\040b /mnt/my\\040cg rw - cgroup2 none rw');
  assert.deepEqual(m, [{ root: '/user.slice/a b', mountPoint: '/mnt/my cg' }]);
  const cg = new CgroupManager({ mount: m[0]!, root: 'sy' });
  assert.equal(cg.level('vpn'), 4, 'depth of the mount root (2) + sy/egress-vpn (2)');
});

test('hostile and truncated lines are skipped, not trusted', () => {
  const junk = ['', '-', ' - cgroup2', 'a b c - cgroup2', '1 2 3 4 - ', 'x'.repeat(10000), '\u0000 - cgroup2 x'].join('\n');
  assert.deepEqual(parseCgroup2Mounts(junk), []);
  assert.equal(pickCgroup2Mount([]), null);
});

test('no cgroup2 mount is a clear error', () => {
  assert.throws(() => findCgroup2Mount('/proc/self/nonexistent'), (e: unknown) => isSwitchyardError(e) && e.code === 'SY_ERR_REDIRECT_CGROUP');
});

test('cgroup depth', () => {
  assert.equal(cgroupDepth('/'), 0);
  assert.equal(cgroupDepth('/a/b/'), 2);
  assert.equal(cgroupDepth('switchyard/egress-vpn'), 2);
});

test('cgroup roots that escape the hierarchy are refused', () => {
  for (const root of ['', '/', '../x', 'a/../b', 'a/./b']) {
    assert.throws(() => new CgroupManager({ mount: { root: '/', mountPoint: '/sys/fs/cgroup' }, root }), /bad cgroup root/, root);
  }
});
