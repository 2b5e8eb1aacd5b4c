// Atomic activation with enforcement on (inside `unshare --mount --net`; nft never touches the
// host): a failure at `verify` — after the backend applied the new plan — puts the old ruleset
// back and the flow path stays direct; a successful approval changes the ruleset and sends a
// plain client's connection through the egress core (the server sees the core's bind address).
// Reuses the namespace helpers of test/redirect-linux (per-run cgroup root, cleanup, host check).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { hostRuleset, missingForNamespaces, removeCgroupTree, runFixture, uniqueCgroupRoot } from '../redirect-linux/helpers/host.ts';
import { tempDir } from '../helpers/daemon.ts';

const root = uniqueCgroupRoot('revisions');
after(() => removeCgroupTree(root));

test('enforcing: a failed verify restores the OS ruleset; an approved revision changes it and the flow path', async (t) => {
  const why = missingForNamespaces() ?? (spawnSync('sh', ['-c', 'command -v microsocks']).status === 0 ? null : 'needs microsocks');
  if (why) return t.skip(why);
  const before = hostRuleset();
  // runFixture looks in test/redirect-linux/fixtures/; ours lives next to this file.
  const out = await runFixture('../../revisions/fixtures/enforce.ts', { SY_TEST_CGROUP_ROOT: root, SY_TEST_DIR: tempDir('sy-rev-enforce-') }, 60_000);
  const r = out.result as Record<string, any> | null;
  assert.ok(r, `no result:\n${out.stdout}\n${out.stderr}`);
  t.diagnostic(`fixture result: ${JSON.stringify(r)}`);
  assert.equal(r['error'], undefined, `${r['error']}\n${out.stderr}`);
  assert.equal(r['clientA'], 'from 198.18.0.10', 'before: direct');
  assert.equal(r['candidate1'], 'pending');
  assert.match(r['approve1'], /^SY_ERR_STORE_APPLY: activating revision #2 failed at verify: injected failure at verify; previous state restored/);
  assert.equal(r['tableAfterFailedVerify'], true, 'the old nft table is back');
  assert.equal(r['backendAfterFailedVerify'], 'active');
  assert.equal(r['clientAfterFailedVerify'], 'from 198.18.0.10', 'still direct after the failed activation');
  assert.equal(r['activeAfterFailure'], 1);
  assert.equal(r['tableChanged'], true);
  assert.equal(r['tableHasCidr'], true, 'the captured CIDR is in the ruleset');
  assert.equal(r['clientB'], 'from 198.18.0.11', 'after approve: through the supervised core');
  assert.equal(r['activeB'], r['revisionB']);
  assert.equal(r['downExit'], 0);
  assert.equal(out.code, 0);
  assert.equal(hostRuleset(), before, 'host ruleset untouched');
});
