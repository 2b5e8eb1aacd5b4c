// A supervised egress core and `switchyard enforce off|on`, end to end: a real `switchyard up`
// inside `unshare --mount --net` supervising microsocks (dialling out from its own address, so
// the server proves the path). See fixtures/supervised.ts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { missing, removeCgroupTree, runFixture, uniqueCgroupRoot } from './helpers.ts';

const root = uniqueCgroupRoot('sup');
after(() => removeCgroupTree(root));

test('e2e: a supervised core killed while enforcement is off restarts, and is in the exempt group after `enforce on`', async (t) => {
  const why = missing(['curl', 'microsocks']);
  if (why) return t.skip(why);
  const hostBefore = spawnSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }).stdout;
  const run = await runFixture('supervised.ts', root, 60_000);
  const r = run.result;
  assert.equal(r['error'], undefined, `${r['error']}\n${run.stderr}`);
  assert.equal(r['cgroupAtStart'], true, 'started in the exempt group');
  assert.equal(r['execAtStart'], 'from 198.18.0.11');
  assert.equal(r['off'], 0);
  assert.equal(r['restartedWhileOff'], true, 'the core restarts while enforcement is off (no exempt group to start in)');
  assert.equal(r['cgroupWhileOff'], false);
  assert.equal(r['on'], 0);
  assert.equal(r['cgroupAfterOn'], r['exemptPath'], '`enforce on` moved the restarted core into the exempt group');
  assert.equal(r['samePidAfterOn'], true);
  assert.equal(r['execAfterOn'], 'from 198.18.0.11', 'a selected app reaches the server through the restarted core');
  assert.equal(r['state'], 'active');
  assert.equal(run.code, 0);
  assert.equal(spawnSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }).stdout, hostBefore, 'host ruleset untouched');
});
