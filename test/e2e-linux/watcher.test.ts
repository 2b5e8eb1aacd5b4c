// A name-matched program under a real `switchyard up` in `unshare --mount --net`. The proc
// connector delivers exec events only in the initial network namespace: the daemon's watcher
// opens it there (SWITCHYARD_PROC_CONNECTOR_NETNS, setns on its worker thread) while the daemon,
// its nft rules and all traffic stay in the test's namespace. Launches that connect at once are
// counted: the connector's window is not zero (docs/linux.md gives the figures). This is the
// fallback mode: fanotify (the default, no window: fanotify.test.ts) is switched off with
// SWITCHYARD_FANOTIFY=0, as on a kernel without CONFIG_FANOTIFY_ACCESS_PERMISSIONS. A keep-alive
// connection opened before the move is reset and the next request comes back through the egress.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { missing, removeCgroupTree, runFixture, uniqueCgroupRoot } from './helpers.ts';

const root = uniqueCgroupRoot('e2e-watch');
after(() => removeCgroupTree(root));

test('e2e watcher: keep-alive reset at the move; launches that connect at once, counted', async (t) => {
  const why = missing(['curl', 'microsocks']);
  if (why) return t.skip(why);
  const run = await runFixture('watch.ts', root, 40_000, { SY_WATCH_SCENARIO: 'connector', SWITCHYARD_FANOTIFY: '0' });
  const r = run.result;
  assert.equal(r['error'], undefined, `${r['error']}\n${run.stderr}`);
  assert.equal(r['netlink'], true, `the watcher uses exec events: ${r['watcherStarted']}`);
  assert.match(r['watcherStarted'], /"mode":"netlink"/, 'fanotify off: the proc connector is the fallback');
  assert.match(r['watcherStarted'], /fanotify disabled/);
  const ka = r['keepAlive'];
  assert.equal(ka.first, 'from 198.18.0.10', 'first request before the move: direct');
  assert.equal(ka.firstInGroup, false);
  assert.equal(ka.pooled, true, 'the connection was kept alive');
  assert.equal(ka.placed, true, 'the watcher moved the process');
  assert.equal(ka.resetSeen, true, 'the kept-alive connection was reset by the move');
  assert.equal(ka.second, 'from 198.18.0.11', 'the next request came back through the egress');
  assert.equal(ka.third, 'from 198.18.0.11');
  assert.ok(r['direct'] + r['viaEgress'] <= r['launches']);
  assert.ok(r['viaEgress'] > 0, 'the watcher placed launches at exec');
  t.diagnostic(`launches ${r['launches']}: ${r['direct']} arrived direct, ${r['viaEgress']} through the egress, ${r['failed']} curl failures (reset at the move), ${r['launchMs']} ms`);
  assert.equal(r['down'], 0);
  assert.equal(r['rulesetAfter'], r['rulesetBefore'], 'nft list ruleset as before');
  assert.equal(r['cgroupRootAfter'], false, 'the per-run cgroup root is gone');
  assert.equal(run.code, 0);
});
