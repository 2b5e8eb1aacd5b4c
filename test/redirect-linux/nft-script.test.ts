// Pure parts of the Linux backend: the plan builder (src/redirect/plan.ts), the nft script renderer
// (src/redirect/linux/nft-script.ts, golden files), the read-back parser and verifier
// (nft-cli.ts, verify.ts), and the OS switch (src/redirect/index.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { buildPlan, checkGroupName } from '../../src/redirect/plan.ts';
import { buildModel, dryRunScript, renderElements } from '../../src/redirect/linux/nft-script.ts';
import { parseListedTable } from '../../src/redirect/linux/nft-cli.ts';
import { verifyTable } from '../../src/redirect/linux/verify.ts';
import { createRedirectBackend } from '../../src/redirect/index.ts';
import { isSwitchyardError } from '../../src/errors.ts';
import { goldenScripts } from './fixtures/golden-plan.ts';
import { makeConfig, rule } from './helpers/inside.ts';

const golden = (name: string) => readFileSync(new URL(`./golden/${name}`, import.meta.url), 'utf8');
const ports = { groups: { vpn: 40001 }, captured: 40002, dns: 40053 };

test('dry-run script matches the golden file (active and skeleton)', () => {
  const g = goldenScripts();
  assert.equal(g.active, golden('dry-run.nft'));
  assert.equal(g.skeleton, golden('skeleton.nft'));
});

test('the script replaces the table in one batch: create-if-missing, delete, create', () => {
  const lines = goldenScripts().active.split('\n');
  assert.equal(lines[1], 'table inet switchyard');
  assert.equal(lines[2], 'delete table inet switchyard');
  assert.equal(lines[3], 'table inet switchyard {');
});

test('skeleton has no redirect at all', () => {
  assert.doesNotMatch(goldenScripts().skeleton, /redirect/);
});

test('cgroup level follows the real depth of the root', () => {
  const plan = buildPlan({ config: makeConfig(), ports });
  assert.match(dryRunScript(plan, 'a/b/c'), /socket cgroupv2 level 4 "a\/b\/c\/egress-vpn"/);
  assert.match(dryRunScript(plan, 'switchyard'), /socket cgroupv2 level 2 "switchyard\/exempt"/);
});

test('plan: every egress but direct is a group; block has no port, so it is refused', () => {
  const plan = buildPlan({ config: makeConfig(), ports });
  assert.deepEqual(plan.groups, ['block', 'vpn']);
  assert.match(dryRunScript(plan), /"switchyard\/egress-block" goto deny/);
});

test('plan: unconditional block CIDRs are rejected in the kernel; conditional ones go to the front door', () => {
  const config = makeConfig({
    rules: [
      rule(0, 'block', { cidrs: [{ family: 4, address: '198.18.1.0', prefix: 24 }] }),
      rule(1, 'block', { cidrs: [{ family: 4, address: '198.18.2.0', prefix: 24 }], ports: [{ from: 443, to: 443 }] }),
      rule(2, 'direct', { cidrs: [{ family: 4, address: '198.18.3.0', prefix: 24 }] }),
    ],
  });
  const plan = buildPlan({ config, ports });
  assert.deepEqual(plan.blockCidrs.map((c) => c.address), ['198.18.1.0']);
  assert.deepEqual(plan.staticCidrs.map((c) => c.address), ['198.18.2.0']);
});

test('plan: a non-direct default captures every domain', () => {
  const config = makeConfig();
  config.default = 'vpn';
  assert.deepEqual(buildPlan({ config, ports }).capturedEgresses, ['vpn']);
});

test('plan: exempt users resolve through the injected resolver; unknown users are an error', () => {
  const config = makeConfig({ exemptUsers: ['alice', '1002'] });
  const plan = buildPlan({ config, ports, resolveUser: (n) => (n === 'alice' ? 1001 : undefined) });
  assert.deepEqual(plan.exemptUids, [1001, 1002]);
  assert.throws(
    () => buildPlan({ config: makeConfig({ exemptUsers: ['mallory'] }), ports, resolveUser: () => undefined }),
    (e: unknown) => isSwitchyardError(e) && e.code === 'SY_ERR_REDIRECT_PLAN' && /mallory/.test(e.message),
  );
});

test('plan: hostile egress names and bad ports are refused', () => {
  for (const bad of ['../x', 'a b', 'x"y', '', '.', 'a'.repeat(64), 'é']) {
    assert.throws(() => checkGroupName(bad), (e: unknown) => isSwitchyardError(e) && e.code === 'SY_ERR_REDIRECT_PLAN', bad);
  }
  assert.throws(() => buildPlan({ config: makeConfig(), ports: { ...ports, dns: 70000 } }), /bad listener port/);
  assert.throws(() => buildPlan({ config: makeConfig(), ports: { ...ports, groups: { nosuch: 1 } } }), /unknown group/);
  assert.throws(() => buildPlan({ config: makeConfig(), ports, egressEndpointAddresses: ['vpn.example'] }), /not an IP/);
});

test('mode all sends every other TCP flow to the captured listener and refuses other UDP', () => {
  const plan = buildPlan({ config: makeConfig({ mode: 'all' }), ports });
  const s = dryRunScript(plan);
  assert.match(s, /\n\t\tmeta l4proto tcp redirect to :40002\n/);
  assert.match(s, /\n\t\tmeta l4proto udp goto deny\n/);
});

test('lan = policy drops the LAN exemption; loopback stays exempt', () => {
  const config = makeConfig();
  config.enforce.lan = 'policy';
  const s = dryRunScript(buildPlan({ config, ports }));
  assert.doesNotMatch(s, /@lan4 accept/);
  assert.match(s, /ip daddr 127\.0\.0\.0\/8 accept/);
});

// Regression: elements were rendered as `IP timeout Ns` when expires equalled the timeout. Re-adding
// an existing element that way leaves its expiry untouched in the kernel, so DNS refreshes of a
// captured address never extended it (a long-lived client fell out after TTL + grace; see
// test/e2e-linux/doh-refresh.test.ts). Every element now carries `expires`.
test('renderElements: one add line per set; every element with expires; carried elements keep their remaining time', () => {
  const lines = renderElements([
    { set: 'captured4', value: '198.18.0.1', timeoutSec: 300, expiresSec: 300 },
    { set: 'captured4', value: '198.18.0.2', timeoutSec: 300, expiresSec: 12.4 },
    { set: 'captured6', value: '2001:db8::1', timeoutSec: 0, expiresSec: 0 },
  ]);
  assert.deepEqual(lines, [
    'add element inet switchyard captured4 { 198.18.0.1 timeout 300s expires 300s, 198.18.0.2 timeout 300s expires 12s }',
    'add element inet switchyard captured6 { 2001:db8::1 timeout 1s expires 1s }',
  ]);
});

// A read-back in nft's JSON shape: the table from the golden plan with one rule naming a cgroup by
// bare id (its directory was re-created) and one set missing.
function listing(model: ReturnType<typeof buildModel>, opts: { dropSet?: string; staleIn?: string }) {
  const items: unknown[] = [{ metainfo: { version: '1.0.6' } }];
  for (const s of model.sets) {
    if (s.name === opts.dropSet) continue;
    items.push({ set: { name: s.name, type: s.type, flags: [s.kind], elem: s.elements.map((e) => (e.includes('/') ? { prefix: { addr: e.split('/')[0], len: Number(e.split('/')[1]) } } : e)) } });
  }
  for (const c of model.chains) {
    items.push({ chain: { name: c.name, ...(c.base ? { hook: 'output', type: c.base.split(' ')[1] } : {}) } });
    for (const r of c.rules) {
      const m = /socket cgroupv2 level \d+ "([^"]+)"/.exec(r);
      const right = m ? (c.name === opts.staleIn ? '4242' : m[1]) : undefined;
      items.push({ rule: { chain: c.name, expr: right ? [{ match: { op: '==', left: { socket: { key: 'cgroupv2' } }, right } }] : [] } });
    }
  }
  return JSON.stringify({ nftables: items });
}

test('verify: a faithful read-back has no problems; a missing set and a stale cgroup id are named', () => {
  const plan = buildPlan({ config: makeConfig(), ports });
  const model = buildModel(plan, { mode: 'active', cgroups: { nftPath: (g) => `switchyard/${g}`, level: () => 2 } });
  assert.deepEqual(verifyTable(model, parseListedTable(listing(model, {}))), []);
  const problems = verifyTable(model, parseListedTable(listing(model, { dropSet: 'captured6', staleIn: 'nat_out' })));
  assert.ok(problems.some((p) => p === 'set captured6 is missing'), problems.join('\n'));
  assert.ok(problems.some((p) => /nat_out .* cgroup id 4242, whose directory switchyard\/vpn was removed or re-created/.test(p)), problems.join('\n'));
});

test('parseListedTable rejects hostile or foreign output with a named error', () => {
  for (const bad of ['', 'not json', '[]', '{"nftables": 3}', '{"x": []}']) {
    assert.throws(() => parseListedTable(bad), (e: unknown) => isSwitchyardError(e) && e.code === 'SY_ERR_REDIRECT_VERIFY', bad);
  }
  // Odd items inside the array are skipped, not trusted.
  const t = parseListedTable('{"nftables": [null, 1, "x", {"set": {"name": 5}}, {"rule": {"chain": "c", "expr": {"a": [{"match": {"left": {"socket": {"key": "cgroupv2"}}, "right": 7}}]}}}]}');
  assert.equal(t.sets.size, 0);
  assert.deepEqual(t.rules, [{ chain: 'c', cgroupv2: ['7'] }]);
});

// win32 now gets the Windows backend (its refusals: test/windows/redirect-backend.test.ts).
test('index: platforms without a backend get a stub that fails clearly', async () => {
  for (const platform of ['darwin', 'freebsd'] as const) {
    const be = await createRedirectBackend({ platform });
    await assert.rejects(be.apply({} as never), (e: unknown) => isSwitchyardError(e) && e.code === 'SY_ERR_REDIRECT_UNAVAILABLE');
    await assert.rejects(be.addBindings([]), (e: unknown) => isSwitchyardError(e) && e.code === 'SY_ERR_REDIRECT_UNAVAILABLE');
    const st = await be.status();
    assert.equal(st.state, 'absent');
    assert.equal(st.problems.length, 1);
  }
});
