// End-to-end tests of the Linux backend (src/redirect/linux/backend.ts) with real nft, cgroup v2
// and sockets, inside `unshare --mount --net` namespaces made here. Test hosts live on
// 198.18.0.0/15 in the namespace; each server counts arrivals, so "went direct" is observed, not
// assumed. The fixture runs all checks of one scenario in one namespace (starting one costs a
// node process); each test below asserts one behaviour from its record.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostRuleset, missingForNamespaces, removeCgroupTree, runFixture, uniqueCgroupRoot, type FixtureResult } from './helpers/host.ts';

const missing = missingForNamespaces();
const roots: string[] = [];
const rulesetBefore = missing ? '' : hostRuleset();
let traffic: Record<string, any> = {};
let hybrid: Record<string, any> = {};
let canary: Record<string, any> = {};
let sockd: Record<string, any> = {};
let crash: Record<string, any> = {};

function runOrExplain(res: FixtureResult): Record<string, any> {
  if (!res.result) throw new Error(`fixture printed no result (exit ${res.code}):\n${res.stderr.slice(-3000)}\n${res.stdout.slice(-2000)}`);
  if (res.result['error']) throw new Error(`fixture failed: ${String(res.result['error'])}\n${res.stderr.slice(-2000)}`);
  return res.result;
}

before(async () => {
  if (missing) return;
  const root = uniqueCgroupRoot('traffic');
  roots.push(root);
  const state = join(tmpdir(), `sy-linux-state-${process.pid}-1.json`);
  traffic = runOrExplain(await runFixture('traffic.ts', { SY_TEST_CGROUP_ROOT: root, SY_TEST_STATE: state }));
  rmSync(state, { force: true });
  const root2 = uniqueCgroupRoot('hybrid');
  roots.push(root2);
  const state2 = join(tmpdir(), `sy-linux-state-${process.pid}-2.json`);
  hybrid = runOrExplain(await runFixture('hybrid.ts', { SY_TEST_CGROUP_ROOT: root2, SY_TEST_STATE: state2 }));
  rmSync(state2, { force: true });
  const root3 = uniqueCgroupRoot('canary');
  roots.push(root3);
  const state3 = join(tmpdir(), `sy-linux-state-${process.pid}-3.json`);
  canary = runOrExplain(await runFixture('canary-fail.ts', { SY_TEST_CGROUP_ROOT: root3, SY_TEST_STATE: state3 }));
  rmSync(state3, { force: true });
  const root4 = uniqueCgroupRoot('sockd');
  roots.push(root4);
  const state4 = join(tmpdir(), `sy-linux-state-${process.pid}-4.json`);
  // SWITCHYARD_FANOTIFY=0: this one tests the rescan path (fanotify places at exec: fanotify.test.ts).
  sockd = runOrExplain(await runFixture('sockdestroy.ts', { SY_TEST_CGROUP_ROOT: root4, SY_TEST_STATE: state4, SWITCHYARD_FANOTIFY: '0' }));
  rmSync(state4, { force: true });
  const root5 = uniqueCgroupRoot('crash');
  roots.push(root5);
  const state5 = join(tmpdir(), `sy-linux-state-${process.pid}-5.json`);
  crash = runOrExplain(await runFixture('crash.ts', { SY_TEST_CGROUP_ROOT: root5, SY_TEST_STATE: state5 }));
  rmSync(state5, { force: true });
});

after(() => {
  for (const r of roots) removeCgroupTree(r);
});

const t = (name: string, fn: () => void) => test(name, (c) => (missing ? c.skip(missing) : fn()));
const refused = (v: unknown) => assert.match(String(v), /^ERR .*(Connection refused|Operation not permitted|No route|Connection reset)/);

t('a process in the group lands on its transparent port; the same client outside reaches the server', () => {
  assert.equal(traffic['groupToPlain'], 'T:vpn');
  assert.equal(traffic['outsideToPlain'], 'S:plain');
  assert.equal(traffic['plainServerAfterGroup'], 1, 'only the outside client reached the server');
});

t('a captured (DNS-learned) destination redirects an unselected process; static CIDRs too', () => {
  assert.equal(traffic['outsideToCaptured'], 'T:captured');
  assert.equal(traffic['outsideToStatic'], 'T:captured');
  assert.deepEqual(traffic['bindingStats'].elements, 1);
  assert.equal(traffic['keptTimeout'], '10m', 'a shorter answer does not shorten the entry');
  assert.equal(traffic['readded'], true, 'an entry deleted behind our back comes back with the next answer');
});

t('egress endpoints, the exempt group, the fwmark and exempt users are never redirected', () => {
  assert.equal(traffic['outsideToEndpoint'], 'S:vpnEndpoint');
  assert.equal(traffic['groupToEndpoint'], 'S:vpnEndpoint');
  assert.equal(traffic['exemptToCaptured'], 'S:captured');
  assert.equal(traffic['markToCaptured'], 'S:captured');
  assert.equal(traffic['exemptUserInGroup'], 'S:plain');
});

t('DNS to any address is answered by the forwarder', () => {
  assert.equal(traffic['dnsAnywhere'], 'D:forwarder');
  assert.equal(traffic['dnsForwarderCount'], 1);
});

t('853 is rejected; QUIC to captured destinations and UDP from groups are rejected; other QUIC is not', () => {
  refused(traffic['dot']);
  assert.equal(traffic['dotServerCount'], 0);
  refused(traffic['quicCaptured']);
  assert.equal(traffic['quicCapturedCount'], 0);
  refused(traffic['groupUdp']);
  assert.equal(traffic['groupUdpCount'], 0);
  assert.equal(traffic['quicPlainOutside'], 'U:plain443');
  assert.equal(traffic['quicPlainCount'], 1);
});

t('block rules reset (refused at once, not a timeout), by CIDR and by DNS binding', () => {
  assert.match(String(traffic['blocked']), /Connection refused/);
  assert.equal(traffic['blockedCount'], 0);
  assert.match(String(traffic['blockedByDns']), /Connection refused/);
});

t('status reports the active table, groups with ids and set sizes', () => {
  const s = traffic['statusActive'];
  assert.equal(s.state, 'active');
  assert.deepEqual(s.problems, []);
  assert.deepEqual(s.groups.map((g: { name: string }) => g.name).sort(), ['block', 'exempt', 'vpn']);
  assert.equal(s.setElements.captured4, 1);
});

t('skeleton after stop rejects selected and captured traffic; servers see nothing; unselected still works', () => {
  refused(traffic['skelGroup']);
  refused(traffic['skelCaptured']);
  refused(traffic['skelStatic']);
  refused(traffic['skelDns']);
  assert.deepEqual(traffic['skelCounts'], { plainDelta: 0, captured: 0, staticCidr: 0 });
  assert.equal(traffic['skelOutside'], 'S:plain');
  assert.equal(traffic['skelCapturedKept'].captured4, 1, 'the skeleton keeps the captured set');
});

t('replacing the table carries live set elements over', () => {
  assert.equal(traffic['carried'], 1);
  assert.equal(traffic['afterReapplyCaptured'], 'T:captured');
});

t('a plan nft refuses leaves the previous table in place and working', () => {
  assert.equal(traffic['badApply'], 'SY_ERR_REDIRECT_NFT');
  assert.equal(traffic['tableUnchangedAfterBad'], true, JSON.stringify(traffic['tableDiff']));
  assert.equal(traffic['afterBadGroup'], 'T:vpn');
});

t('a group removed and re-created by hand is detected (rule keeps the old id) and repaired', () => {
  assert.equal(traffic['staleGroupLanded'], 'S:plain', 'the stale rule no longer matches: this is the leak repair closes');
  assert.ok((traffic['staleProblems'] as string[]).some((p) => /re-created/.test(p)), JSON.stringify(traffic['staleProblems']));
  assert.ok((traffic['repaired'] as string[]).length > 0);
  assert.deepEqual(traffic['afterRepairProblems'], []);
  assert.equal(traffic['afterRepairGroup'], 'T:vpn');
});

t('an egress removed from the config: its group is emptied (processes back where they were) and removed', () => {
  assert.equal(traffic['removedGroupRestored'], true);
  assert.deepEqual(traffic['groupsAfterRemoval'], ['exempt', 'vpn']);
});

t('down removes the table and the groups and restores moved processes', () => {
  assert.equal(traffic['rulesetBefore'], '');
  assert.equal(traffic['rulesetAfter'], '');
  assert.match(String(traffic['placedCg']), /egress-vpn$/m);
  assert.equal(traffic['restoredCgSame'], true);
  assert.equal(traffic['rootLeft'], false);
  assert.equal(traffic['afterDownGroupFile'], 'ENOENT');
});

t('libnftables: set updates in-process, batched (µs per element reported)', () => {
  const b = traffic['bench'];
  assert.equal(b.batchElements, 2000);
  assert.ok(traffic['capturedCount'].captured4 >= 2450);
  assert.equal(traffic['concurrent'].merged, 50, '50 concurrent callers share one kernel transaction');
  process.stdout.write(
    `# libnftables: batch of 2000 = ${b.batchUsPerElement.toFixed(1)} µs/element; single-element call = ${b.singleUsPerCallSetSmall.toFixed(0)} µs (small set), ${b.singleUsPerCallSet2400.toFixed(0)} µs (2400 elements); 50 concurrent one-element calls merged: ${traffic['concurrent'].totalMs.toFixed(1)} ms in all\n`,
  );
});

t('hybrid layout: nft runs with cgroup2 bind-mounted in a private mount namespace; the rule matches', () => {
  assert.equal(hybrid['sysFsCgroupIsCgroup2'], 'tmpfs');
  assert.equal(hybrid['mountPoint'], '/sys/fs/cgroup/unified');
  assert.match(String(hybrid['runner']), /^unshare --mount/);
  assert.deepEqual(hybrid['listedInBind'], []);
  assert.equal(hybrid['group'], 'T:vpn');
  assert.equal(hybrid['outside'], 'S:plain');
  assert.equal(hybrid['serverCount'], 1);
  assert.equal(hybrid['hostMountsUntouched'], true);
  assert.equal(hybrid['binding'].elements, 1);
  assert.equal(hybrid['captured'], 'T:captured');
  assert.equal(hybrid['rulesetAfter'], '');
});

t('a failed canary refuses enforcement and rolls back (no table before → none; a table before → restored)', () => {
  assert.equal(canary['firstApply'], 'SY_ERR_REDIRECT_CANARY');
  assert.match(String(canary['firstMessage']), /group vpn/);
  assert.equal(canary['rulesetAfterFirst'], '');
  assert.equal(canary['secondApply'], 'SY_ERR_REDIRECT_CANARY');
  assert.equal(canary['restored'], true, JSON.stringify(canary['diff']));
  assert.equal(canary['groupAfterRestore'], 'T:vpn');
  assert.equal(canary['rulesetAfterDown'], '');
});

t('a moved process\'s keep-alive connection is reset (SOCK_DESTROY) and comes back through the front door', () => {
  assert.equal(sockd['openBefore'], 1);
  assert.equal(sockd['placeEnded'], 'first:S:hold | lost:1 | second:T:vpn');
});

t('the watcher (rescan path inside a namespace) places a matching program and resets its connection', () => {
  assert.equal(sockd['watchStart'].netlink, false, 'fanotify off, and no proc connector events inside a network namespace');
  assert.equal(sockd['watchStart'].mode, 'rescan');
  assert.match(String(sockd['watchStart'].reason), /proc connector/);
  assert.equal(sockd['watchEnded'], 'first:S:hold | lost:1 | second:T:vpn');
  assert.equal(sockd['countAfter'], sockd['countBeforeWatch'], 'the reconnection did not reach the server directly');
  assert.equal(sockd['groupClient'], 'T:vpn');
});

t('SIGKILL of the daemon: selected and captured clients are refused (servers see nothing), unselected work; down cleans up', () => {
  assert.equal(crash['aliveGroup'], 'T:vpn');
  assert.equal(crash['aliveCaptured'], 'T:captured');
  refused(crash['deadGroup']);
  refused(crash['deadCaptured']);
  assert.match(String(crash['deadDns']), /Connection refused/);
  assert.equal(crash['deadOutside'], 'S:plain');
  assert.deepEqual(crash['counts'], { plain: 1, captured: 0 }, 'only the unselected client reached a server');
  assert.equal(crash['statusAfterCrash'], 'active', 'a new backend finds the state file');
  assert.equal(crash['rulesetAfterDown'], '');
  assert.equal(crash['afterDownGroupFree'], 'S:plain');
});

t('the host namespace has no table and the cgroup roots are gone', () => {
  assert.equal(hostRuleset(), rulesetBefore);
  assert.doesNotMatch(hostRuleset(), /switchyard/);
  for (const r of roots) removeCgroupTree(r); // no-op when the fixture cleaned up
});
