// A name-matched program under a real `switchyard up` in `unshare --mount --net`, with the watcher in
// fanotify mode (exec permission events: the exec waits until the process is in its group). No
// connector namespace trick is needed: fanotify marks belong to filesystems, not network namespaces.
// 200 launches (× SWITCHYARD_TEST_SCALE) that connect at once: zero direct arrivals; the server
// proves the path (microsocks -b dials from its own address). SIGKILL of the daemon while execs run:
// they go on (the kernel drops the fanotify group with the process). Exec timings are figures only.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { missing, removeCgroupTree, runFixture, uniqueCgroupRoot } from './helpers.ts';

const root = uniqueCgroupRoot('e2e-fan');
after(() => removeCgroupTree(root));

test('e2e fanotify watcher: launches that connect at once never arrive directly; SIGKILL leaves execs working', async (t) => {
  const why = missing(['curl', 'microsocks']);
  if (why) return t.skip(why);
  const run = await runFixture('watch.ts', root, 110_000, { SY_WATCH_SCENARIO: 'fanotify' });
  const r = run.result;
  assert.equal(r['error'], undefined, `${r['error']}\n${run.stderr}`);
  assert.equal(r['watcher']?.mode, 'fanotify', `status shows the watcher mode: ${JSON.stringify(r['watcher'])} ${r['watcherLog']}`);
  assert.ok(r['watcher'].marked >= 1);
  assert.equal(r['plainCurl'], 'from 198.18.0.20', 'an unmatched curl arrives directly (the direct path is reachable)');
  t.diagnostic(`launches ${r['launches']}: ${r['direct']} arrived direct, ${r['viaEgress']} through the egress, ${r['failed']} curl failures, ${r['launchMs']} ms`);
  assert.equal(r['direct'], 0, 'no launch arrived directly');
  assert.equal(r['failed'], 0, 'every launch got its answer');
  assert.equal(r['viaEgress'], r['launches'], 'every launch arrived from the egress address');
  const tm = r['timing'];
  const per = (ms: number | null) => (ms === null ? 'hung' : `${((ms * 1000) / r['loopExecs']).toFixed(0)} µs`);
  t.diagnostic(`fork+exec of true: before ${per(tm.before)}, under the daemon ${per(tm.under)} (matched copy ${per(tm.underMatched)}), after SIGKILL ${per(tm.afterKill)} (matched ${per(tm.afterKillMatched)})`);
  assert.equal(r['loopRunningAtKill'], true, 'the exec loop was running when the daemon was killed');
  assert.equal(r['loopAfterKill'], 'finished', 'execs went on after the daemon was SIGKILLed');
  t.diagnostic(`the loop finished ${r['loopAfterKillMs']} ms after the kill`);
  assert.notEqual(tm.afterKill, null, 'execs after the kill finish');
  assert.notEqual(tm.afterKillMatched, null);
  assert.equal(r['down'], 0);
  assert.equal(r['rulesetAfter'], r['rulesetBefore'], 'nft list ruleset as before');
  assert.equal(r['cgroupRootAfter'], false, 'the per-run cgroup root is gone');
  assert.equal(run.code, 0);
});
