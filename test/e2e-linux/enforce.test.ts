// Linux enforcement end to end (issue 6, "Done means"): a real `switchyard up` process inside
// `unshare --mount --net`, real curl/dig, microsocks egresses that dial out from their own address
// (-b) so the server proves the path, a per-run cgroup root, nothing in the host's ruleset.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { missing, removeCgroupTree, runFixture, uniqueCgroupRoot } from './helpers.ts';

const root = uniqueCgroupRoot('e2e');
after(() => removeCgroupTree(root));

test('e2e: exec, DNS-learned destinations, DNS redirect, 853/QUIC, reload, repair, egress down, SIGKILL, stop/up, down, enforce off/on', async (t) => {
  const why = missing(['curl', 'dig', 'dnsmasq', 'microsocks', 'socat']);
  if (why) return t.skip(why);
  const hostBefore = spawnSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }).stdout;
  const run = await runFixture('main.ts', root, 80_000);
  const r = run.result;
  assert.equal(r['error'], undefined, `${r['error']}\n${r['daemonLog'] ?? ''}\n${run.stderr}`);
  const VIA = 'from 198.18.0.11';
  const VIA6 = 'from 2001:2::11';

  // exec vs outside, IPv4 and IPv6 (and a v6-only server).
  assert.equal(r['execVpn'], VIA, 'switchyard exec --egress vpn: arrives from the egress');
  assert.equal(r['outside'], 'from 198.18.0.10', 'the same curl outside arrives directly');
  assert.equal(r['execVpn6'], VIA6, 'IPv6 through the v6 egress');
  assert.equal(r['outside6'], 'from 2001:2::10');
  assert.equal(r['v6only'], VIA6, 'a v6-only server through the egress');

  // DNS-learned destinations.
  assert.equal(r['beforeDig'], 'from 198.18.0.30', 'before any answer the address is not captured');
  assert.deepEqual(r['digThenCurl'], ['198.18.0.30', VIA], 'an unselected curl right after the answer takes the domain egress');
  assert.equal(r['digHardcoded'], '198.18.0.31', 'dig @198.18.0.53 from a selected app is answered by switchyard');
  assert.equal(r['afterHardcodedDig'], VIA, 'and the answer captured the address');

  // 853 and QUIC refused; plain UDP of unselected apps works.
  assert.match(r['dot'], /^failed/);
  assert.equal(r['dotArrivals'], 0);
  assert.equal(r['quicCaptured'], 0, 'UDP 443 to a captured address is rejected');
  assert.equal(r['quicFromGroup'], 0, 'UDP 443 from a selected app is rejected');
  assert.equal(r['udpControl'], 1, 'UDP 443 from an unselected app to another address arrives (control)');

  // Reload re-applies the plan and keeps the live set elements.
  assert.equal(r['reload'], true);
  assert.equal(r['staticAfterReload'], true, 'the new plan is installed');
  assert.equal(r['capturedAfterReload'], VIA, 'learned destinations survive the reload');
  assert.equal(r['capturedAfterReload2'], VIA);
  assert.deepEqual(r['digThenCurlAfterReload'], ['198.18.0.30', VIA], 'dig then curl after the reload');

  // A group removed and re-created by hand.
  assert.ok(r['problemsAfterRecreate'] > 0 || r['lastRepairProblems'] > 0, 'the drift was detected');
  assert.equal(r['afterRepair'], VIA, 'repaired: the new group is redirected again');
  assert.equal(r['problemsAfterRepair'], 0);

  // The table deleted by hand: no answer leaves without its address in the set.
  const hf = r['hookFailedDig'] as string[];
  assert.ok(
    (hf[0] === 'status: SERVFAIL' && /^from 198\.18\.0\.31$|^curl/.test(hf[1] ?? '')) || (hf[0] === 'status: NOERROR' && hf[1] === VIA),
    `a non-direct name while the set is gone: SERVFAIL, or an answer only with the address captured (${hf.join(' | ')})`,
  );
  assert.equal(r['hookFailedDirectName'], 'status: NOERROR', 'a direct name is still answered');
  assert.equal(r['tableBack'], true, 'the periodic check put the table back');
  assert.deepEqual(r['digThenCurlTableBack'], ['198.18.0.31', VIA]);
  assert.equal(r['plainCaptured'], false, 'a name that only app/CIDR rules could route is not captured');

  // enforce off / on.
  assert.deepEqual(r['enforceOff'], { active: false, changed: true });
  assert.equal(r['tableWhileOff'], false, 'off removes the table');
  assert.equal(r['capturedWhileOff'], 'from 198.18.0.30', 'off: nothing is steered');
  assert.deepEqual(r['enforceOn'], { active: true, changed: true });
  assert.equal(r['groupAfterOn'], VIA, 'on: the group is redirected again');
  assert.deepEqual(r['digThenCurlAfterOn'], ['198.18.0.30', VIA], 'on: a cached answer re-fills the set before it leaves');

  // Egress down: refused, nothing direct.
  assert.match(r['egressDown'], /^failed/);
  assert.equal(r['egressDownDirect'], 0);

  // SIGKILL: selected fail, unselected work.
  assert.match(r['killedSelected'], /^failed/);
  assert.equal(r['killedSelectedArrivals'], 0);
  assert.equal(r['killedUnselected'], 'from 198.18.0.10');

  // Restart.
  assert.equal(r['capturedAfterRestart'], VIA, 'learned destinations survive a crash and restart');
  assert.deepEqual(r['digThenCurlAfterRestart'], ['198.18.0.31', VIA]);

  // stop → up with a client in a loop.
  assert.equal(r['stop'], 0);
  assert.equal(r['arrivalsDuringSkeleton'], 0);
  assert.equal(r['loopDirect'], 0, 'no direct arrival across stop and up');
  assert.ok(r['loopViaEgress'] > 0, 'the loop came back through the egress after up');

  // down: as before.
  assert.equal(r['down'], 0);
  assert.equal(r['rulesetAfter'], r['rulesetBefore'], 'nft list ruleset as before the test');
  assert.equal(r['cgroupRootAfter'], r['cgroupRootBefore'], 'the cgroup tree as before the test');
  assert.equal(run.code, 0);
  assert.equal(spawnSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }).stdout, hostBefore, 'host ruleset untouched');
});
