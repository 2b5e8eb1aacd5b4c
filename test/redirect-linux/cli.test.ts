// `switchyard exec` (src/cli/commands/exec.ts) and `switchyard down` (src/cli/commands/down.ts) as
// real processes inside `unshare --mount --net`, against a table the backend installed; plus the
// argument parser.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { parseExecArgs } from '../../src/cli/commands/exec.ts';
import { isSwitchyardError } from '../../src/errors.ts';
import { hostRuleset, missingForNamespaces, removeCgroupTree, runFixture, uniqueCgroupRoot } from './helpers/host.ts';

const missing = missingForNamespaces();
let r: Record<string, any> = {};
let root = '';

before(async () => {
  if (missing) return;
  root = uniqueCgroupRoot('cli');
  const res = await runFixture('cli.ts', { SY_TEST_CGROUP_ROOT: root });
  if (!res.result || res.result['error']) throw new Error(`fixture failed: ${String(res.result?.['error'])}\n${res.stderr.slice(-2000)}`);
  r = res.result;
});

after(() => {
  if (root) removeCgroupTree(root);
});

const t = (name: string, fn: () => void) => test(name, (c) => (missing ? c.skip(missing) : fn()));

test('exec argument parsing', () => {
  assert.deepEqual(parseExecArgs(['--egress', 'vpn', '--', 'curl', '-v']), { egress: 'vpn', command: ['curl', '-v'] });
  assert.deepEqual(parseExecArgs(['--egress=vpn', 'curl', '--', 'x']), { egress: 'vpn', command: ['curl', '--', 'x'] });
  assert.equal(parseExecArgs(['--help']), 'help');
  for (const bad of [[], ['--egress'], ['--egress', 'vpn'], ['--bogus', '--', 'x'], ['--', 'curl']]) {
    assert.throws(() => parseExecArgs(bad), (e: unknown) => isSwitchyardError(e) && e.code === 'SY_ERR_USAGE', JSON.stringify(bad));
  }
});

t('switchyard exec --egress vpn: the program lands on the transparent port from its first connection', () => {
  assert.deepEqual(r['execVpn'], { code: 0, out: 'T:vpn', err: '' });
  assert.equal(r['plain'], 'S:plain');
  assert.match(String(r['execSeesGroup']), /^0::\/.*\/egress-vpn$/m);
  assert.equal(r['execExitCode'], 7, 'exit code passed through');
});

t('switchyard exec --egress exempt is never redirected; unknown groups fail clearly', () => {
  assert.equal(r['execExempt'].out, 'S:plain');
  assert.equal(r['execUnknown'].code, 1);
  assert.match(r['execUnknown'].err, /SY_ERR_REDIRECT_UNAVAILABLE: group 'nosuch' does not exist/);
  assert.equal(r['serverCount'], 2, 'only the plain and exempt clients reached the server');
});

t('switchyard down after a crash (state file left) removes table and groups and restores processes', () => {
  assert.equal(r['downAfterCrash'].code, 0);
  const j = JSON.parse(r['downAfterCrash'].out);
  assert.equal(j.table, 'removed');
  assert.equal(j.processesRestored, 1);
  assert.equal(r['rulesetAfterDown'], '');
  assert.equal(r['sleeperRestored'], true);
  assert.match(r['downAgain'].out, /no firewall table was installed; no groups/);
});

t('switchyard down with no state file finds the table and groups by their fixed names', () => {
  assert.match(r['downNoState'].out, /removed the firewall table; removed 3 group/);
  assert.equal(r['rulesetAfterDownNoState'], '');
  assert.equal(r['rootGone'], true);
});

t('nothing left in the host namespace', () => {
  assert.doesNotMatch(hostRuleset(), /switchyard/);
});
