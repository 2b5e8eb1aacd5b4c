// A name-matched program under a real `switchyard up` in `unshare --mount --net`. Inside a network
// namespace the proc connector delivers nothing, so the watcher places by /proc rescan (1 s): the
// launches below measure that bound (most short-lived launches go direct — documented in
// docs/linux.md); the connector's own window is measured in test/redirect-linux/watcher.test.ts in
// the initial namespace, where no traffic may be made. The keep-alive part is the issue's: a
// connection opened before the move is reset and the next request comes back through the egress.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { missing, removeCgroupTree, runFixture, uniqueCgroupRoot } from './helpers.ts';

const root = uniqueCgroupRoot('e2e-watch');
after(() => removeCgroupTree(root));

test('e2e watcher: keep-alive reset at the move, launches counted against the rescan bound', async (t) => {
  const why = missing(['curl', 'microsocks']);
  if (why) return t.skip(why);
  const run = await runFixture('watcher.ts', root, 40_000);
  const r = run.result;
  assert.equal(r['error'], undefined, `${r['error']}\n${run.stderr}`);
  const ka = r['keepAlive'];
  assert.equal(ka.first, 'from 198.18.0.10', 'first request before the move: direct');
  assert.equal(ka.firstInGroup, false);
  assert.equal(ka.pooled, true, 'the connection was kept alive');
  assert.equal(ka.placed, true, 'the watcher moved the process');
  assert.equal(ka.resetSeen, true, 'the kept-alive connection was reset by the move');
  assert.equal(ka.second, 'from 198.18.0.11', 'the next request came back through the egress');
  assert.equal(ka.third, 'from 198.18.0.11');
  assert.equal(r['direct'] + r['viaEgress'], r['launches'], 'every launch arrived, directly or through the egress');
  t.diagnostic(`launches ${r['launches']}: ${r['direct']} direct, ${r['viaEgress']} through the egress (rescan-only watcher, 1 s interval), ${r['launchMs']} ms`);
  assert.equal(r['down'], 0);
  assert.equal(run.code, 0);
});
