// Regression: the captured sets were filled only by the binding hook, i.e. by the next DNS answer.
// After a reload that routes a name the store already knows to a proxy egress (and after `enforce
// on`, and at a restart from an empty table), an app still holding the address connected directly
// until it asked again. The daemon now re-projects the store's bindings with `capture: true` into
// the OS sets. Inside `unshare --mount --net` (nft never touches the host), per-run cgroup root.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { hostRuleset, missingForNamespaces, removeCgroupTree, runFixture, uniqueCgroupRoot } from '../redirect-linux/helpers/host.ts';
import { tempDir } from '../helpers/daemon.ts';

const root = uniqueCgroupRoot('capture');
after(() => removeCgroupTree(root));

test('enforcing: stored DNS destinations follow a reload, enforce on and a restart into the captured set (capture projection)', async (t) => {
  const need = (c: string) => (spawnSync('sh', ['-c', `command -v ${c}`]).status === 0 ? null : `needs ${c}`);
  const why = missingForNamespaces() ?? need('microsocks') ?? need('dig') ?? need('socat');
  if (why) return t.skip(why);
  const before = hostRuleset();
  // runFixture looks in test/redirect-linux/fixtures/; ours lives next to this file.
  const out = await runFixture('../../daemon/fixtures/capture-stored.ts', { SY_TEST_CGROUP_ROOT: root, SY_TEST_DIR: tempDir('sy-capture-') }, 90_000);
  const r = out.result as Record<string, any> | null;
  assert.ok(r, `no result:\n${out.stdout}\n${out.stderr}`);
  t.diagnostic(`fixture result: ${JSON.stringify(r)}`);
  assert.equal(r['error'], undefined, `${r['error']}\n${out.stderr}`);
  assert.equal(r['digCached'], '198.18.0.10');
  assert.deepEqual(r['storeHasCached'], ['cached.test']);
  assert.equal(r['capturedBefore'], false, 'a direct name is not captured');
  assert.equal(r['clientBefore'], 'from 198.18.0.10', 'before: direct');
  assert.deepEqual(r['activeRule'], ['sup']);
  assert.equal(r['capturedAfterReload'], true, 'after the reload, the cached name’s address is in the captured set without a new query');
  assert.equal(r['plainCapturedAfterReload'], false, 'a name only the app rule could route stays out (capture projection)');
  assert.equal(r['clientAfterReload'], 'from 198.18.0.11', 'and an unselected app holding the address goes through the egress');
  assert.equal(r['capturedAfterOn'], true, 'enforce on: put back at once');
  assert.equal(r['plainCapturedAfterOn'], false);
  assert.equal(r['downExit'], 0);
  assert.equal(r['capturedAfterRestart'], true, 'a restart from an empty table: the saved store fills the set');
  assert.equal(r['plainCapturedAfterRestart'], false);
  assert.equal(r['clientAfterRestart'], 'from 198.18.0.11');
  assert.equal(r['downExit2'], 0);
  assert.equal(out.code, 0);
  assert.equal(hostRuleset(), before, 'host ruleset untouched');
});
