// The daemon with [enforce] enabled, inside `unshare --mount --net` (nft rules never touch the
// host): the supervised egress core runs in the exempt cgroup (/proc/PID/cgroup), an app in the
// egress's group is redirected through the transparent inbound and the core (the server sees the
// core's bind address), an app outside stays direct, and after stop the fail-closed skeleton
// refuses the group's traffic until `down`. Cgroups: a unique per-run root, removed afterwards.
// Reuses the namespace helpers of test/redirect-linux (per-run cgroup root, cleanup, host check).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { hostRuleset, missingForNamespaces, removeCgroupTree, runFixture, uniqueCgroupRoot } from '../redirect-linux/helpers/host.ts';
import { tempDir } from '../helpers/daemon.ts';

const root = uniqueCgroupRoot('daemon');
after(() => removeCgroupTree(root));

test('enforcement: exempt core, redirected group, skeleton after stop', async (t) => {
  const why = missingForNamespaces() ?? (spawnSync('sh', ['-c', 'command -v microsocks']).status === 0 ? null : 'needs microsocks');
  if (why) return t.skip(why);
  const hostBefore = hostRuleset();
  // runFixture looks in test/redirect-linux/fixtures/; ours lives next to this file.
  const out = await runFixture('../../daemon/fixtures/enforce.ts', { SY_TEST_CGROUP_ROOT: root, SY_TEST_DIR: tempDir('sy-enforce-') }, 45_000);
  const r = out.result as Record<string, any> | null;
  assert.ok(r, `no result:\n${out.stdout}\n${out.stderr}`);
  assert.equal(r['error'], undefined, `${r['error']}\n${out.stderr}`);
  assert.equal(out.code, 0);
  assert.equal(r['backendState'], 'active');
  assert.equal(r['supervisedExempt'], true);
  const v2 = (r['supervisedCgroup'] as string).split('\n').find((l) => l.startsWith('0::'));
  assert.equal(v2, `0::${r['expectedExempt']}`, 'the core runs in the exempt group (/proc/PID/cgroup)');
  const self = (r['daemonCgroup'] as string).split('\n').find((l) => l.startsWith('0::'));
  assert.equal(self, `0::${r['expectedExempt']}`, 'the daemon itself joined the exempt group');
  assert.equal(r['groupClient'], 'from 198.18.0.11', 'the group app went through the supervised core');
  assert.equal(r['plainClient'], 'from 198.18.0.10', 'an app outside any group stays direct');
  assert.deepEqual(r['sourcesActive'], ['198.18.0.11', '198.18.0.10']);
  assert.ok((r['rules'] as [string, number, number][]).some(([id, c]) => id === 'rule#1' && c === 1));
  // Stop: skeleton stays, the core is gone, the group's traffic is refused (not sent direct).
  assert.equal(r['tableAfterStop'], true);
  assert.equal(r['stateAfterStop'], 'skeleton');
  assert.equal(r['supervisedAliveAfterStop'], false);
  assert.match(r['groupClientSkeleton'], /^failed/);
  assert.equal(r['plainClientSkeleton'], 'from 198.18.0.10');
  assert.equal(r['newArrivalsFromGroupDuringSkeleton'], 1, 'only the ungrouped client arrived');
  assert.equal(r['downExit'], 0);
  assert.equal(r['tableAfterDown'], false, '`switchyard down` removed the skeleton');
  assert.equal(hostRuleset(), hostBefore, 'host ruleset untouched');
});
