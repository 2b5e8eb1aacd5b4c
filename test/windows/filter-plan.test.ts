// The WFP filter plan for a config, as data (src/redirect/windows/filter-plan.ts), and the connection
// classifier (classify.ts) the reflector asks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildWfpPlan, WEIGHT, resolveApp, type WfpPlan } from '../../src/redirect/windows/filter-plan.ts';
import { makeClassifier, anyAppSelection } from '../../src/redirect/windows/classify.ts';
import { WFP_PROVIDER_GUID, WFP_SUBLAYER_GUID, WFP_SUBLAYER_WEIGHT } from '../../src/ids.ts';
import { nameGuid } from '../../src/sys/windows/guid.ts';
import type { Decision, FlowQuery, Policy } from '../../src/policy/types.ts';
import type { WfpFilterSpec } from '../../src/sys/windows/wfp.ts';
import { testConfig } from './helpers/config.ts';

const SEEN = ['C:\\Program Files\\Zen\\zen.exe', 'C:\\Games\\Foo\\bin\\foo.exe', 'C:\\Other\\x.exe'];
const ZEN = SEEN[0]!;
const FOO = SEEN[1]!;
const TG = 'C:\\Apps\\Telegram\\Telegram.exe';
const SINGBOX = 'C:\\Program Files\\sing-box\\sing-box.exe';
const SELF = 'C:\\switchyard\\node.exe';

const row = (f: WfpFilterSpec) => `${f.layer} ${f.action} ${f.weight} ${f.name.replace(/^switchyard: /, '').replace(/ \(IPv[46]\)$/, '')}`;
const find = (fs: WfpFilterSpec[], name: string, layer: 'v4' | 'v6') => {
  const f = fs.find((x) => x.name === `switchyard: ${name} (IPv${layer === 'v4' ? 4 : 6})`);
  assert.ok(f, `${name} ${layer}`);
  return f;
};
const apps = (f: WfpFilterSpec) => f.conditions.flatMap((c) => (c.field === 'appId' ? [c.path] : []));

function plan(over: Parameters<typeof testConfig>[0] = {}, seen: string[] = SEEN): WfpPlan {
  return buildWfpPlan(testConfig(over), { seenPaths: seen, selfExe: SELF });
}

test('provider and sublayer come from src/ids.ts', () => {
  const p = plan();
  assert.equal(`{${p.provider.key}}`, WFP_PROVIDER_GUID);
  assert.equal(`{${p.sublayer.key}}`, WFP_SUBLAYER_GUID);
  assert.equal(p.sublayer.weight, WFP_SUBLAYER_WEIGHT);
  assert.ok(p.provider.persistent && p.sublayer.persistent);
});

test('selected mode: the whole plan, as data', () => {
  const p = plan();
  assert.deepEqual(p.persistent.map(row).sort(), [
    'v4 block 12 block no-smtp',
    'v4 block 12 block rule#5',
    'v4 block 4 kill-switch: selected apps',
    'v4 permit 13 lan',
    'v4 permit 14 loopback',
    'v4 permit 15 exempt apps',
    'v4 permit 15 exempt destinations',
    'v6 block 12 block no-smtp',
    'v6 block 12 block rule#5',
    'v6 block 4 kill-switch: selected apps',
    'v6 permit 13 lan',
    'v6 permit 14 loopback',
    'v6 permit 15 exempt apps',
  ]);
  assert.deepEqual(p.dynamic.map(row).sort(), ['v4 permit 8 selected apps, TCP', 'v4 permit 9 self', 'v6 permit 8 selected apps, TCP', 'v6 permit 9 self']);
  assert.deepEqual(p.waitingForPath, []);
  for (const layer of ['v4', 'v6'] as const) {
    // Kill-switch block and permit name the same apps, in the same sublayer: selected = apps of rules
    // whose egress is neither direct (incl. direct-type `home`) nor block; a group pattern has no WFP form.
    const ks = find(p.persistent, 'kill-switch: selected apps', layer);
    const permit = find(p.dynamic, 'selected apps, TCP', layer);
    assert.deepEqual(apps(ks), [TG, FOO, ZEN]);
    assert.deepEqual(apps(permit), apps(ks));
    assert.deepEqual(permit.conditions.at(-1), { field: 'protocol', protocol: 6 }, 'permit is TCP only: UDP of selected apps stays blocked');
    assert.equal(ks.conditions.length, 3, 'the kill-switch blocks every protocol');
    assert.ok(permit.weight > ks.weight);
    assert.deepEqual(apps(find(p.persistent, 'exempt apps', layer)), [SINGBOX]);
    assert.deepEqual(apps(find(p.dynamic, 'self', layer)), [SELF]);
    assert.deepEqual(find(p.persistent, 'loopback', layer).conditions, [{ field: 'loopback' }]);
  }
  // Block rule with CIDRs of both families, ports and protocol: one filter per family.
  assert.deepEqual(find(p.persistent, 'block no-smtp', 'v4').conditions, [
    { field: 'remoteAddress', cidr: { family: 4, address: '198.51.100.0', prefix: 24 } },
    { field: 'remotePort', from: 25, to: 25 },
    { field: 'remotePort', from: 465, to: 587 },
    { field: 'protocol', protocol: 6 },
  ]);
  assert.deepEqual(find(p.persistent, 'block no-smtp', 'v6').conditions[0], { field: 'remoteAddress', cidr: { family: 6, address: '2001:db8:bad::', prefix: 48 } });
  // Exempt destinations only exist for the family they are in.
  assert.ok(!p.persistent.some((f) => f.name === 'switchyard: exempt destinations (IPv6)'));
  // Domain rules have no WFP filter (DNS and the front door enforce them).
  assert.ok(!p.persistent.some((f) => /rule#(3|8)\b/.test(f.name)));
});

test('weights: exempt > loopback > lan > block > self > selected > kill-switch, all within 0..15', () => {
  assert.ok(WEIGHT.exempt > WEIGHT.loopback && WEIGHT.loopback > WEIGHT.lan && WEIGHT.lan > WEIGHT.block);
  assert.ok(WEIGHT.block > WEIGHT.essentials && WEIGHT.essentials > WEIGHT.self && WEIGHT.self > WEIGHT.selected && WEIGHT.selected > WEIGHT.killSwitch);
  const p = plan({ mode: 'all' });
  for (const f of [...p.persistent, ...p.dynamic]) assert.ok(Number.isInteger(f.weight) && f.weight >= 0 && f.weight <= 15, f.name);
});

test('filter keys are stable, unique, and derived from the provider GUID and the name', () => {
  const a = plan();
  const b = plan();
  const keys = [...a.persistent, ...a.dynamic].map((f) => f.key);
  assert.deepEqual(keys, [...b.persistent, ...b.dynamic].map((f) => f.key));
  assert.equal(new Set(keys).size, keys.length);
  for (const f of [...a.persistent, ...a.dynamic]) assert.equal(f.key, nameGuid(WFP_PROVIDER_GUID, f.name));
  assert.match(keys[0]!, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

test('apps known only by name or glob wait for a path; their filters appear when it is seen', () => {
  const before = plan({}, []);
  assert.deepEqual(before.waitingForPath, ['glob:C:\\Games\\**\\*.exe', 'name:zen.exe']);
  assert.deepEqual(apps(find(before.persistent, 'kill-switch: selected apps', 'v4')), [TG]);
  const after = plan({}, [ZEN.toUpperCase()]);
  assert.deepEqual(after.waitingForPath, ['glob:C:\\Games\\**\\*.exe']);
  assert.ok(apps(find(after.persistent, 'kill-switch: selected apps', 'v4')).includes(ZEN.toUpperCase()));
});

test('a block rule whose apps are not resolved yet gets no filter (never an unconditional block)', () => {
  const p = buildWfpPlan(
    testConfig({ rules: [{ index: 0, name: null, domains: [], apps: [{ kind: 'name', value: 'evil.exe' }], cidrs: [], ports: [], network: null, origin: {}, egress: 'block' }] }),
    {},
  );
  assert.ok(!p.persistent.some((f) => f.action === 'block'));
  assert.deepEqual(p.waitingForPath, ['name:evil.exe']);
  for (const f of [...p.persistent, ...p.dynamic]) if (f.action === 'block') assert.ok(f.conditions.length > 0);
});

test('mode "all": everyone is blocked unless the daemon runs (TCP permitted), DHCP stays open', () => {
  const p = plan({ mode: 'all' });
  for (const layer of ['v4', 'v6'] as const) {
    const ks = find(p.persistent, 'kill-switch: everyone', layer);
    assert.deepEqual([ks.action, ks.weight, ks.conditions], ['block', WEIGHT.killSwitch, []]);
    assert.deepEqual(find(p.dynamic, 'selected: everyone, TCP', layer).conditions, [{ field: 'protocol', protocol: 6 }]);
    const dhcp = find(p.persistent, 'essentials (DHCP)', layer);
    assert.equal(dhcp.action, 'permit');
    assert.deepEqual(dhcp.conditions[1], { field: 'remotePort', ...(layer === 'v4' ? { from: 67, to: 68 } : { from: 546, to: 547 }) });
  }
});

test('lan = "policy": no LAN permit', () => {
  assert.ok(!plan({ lan: 'policy' }).persistent.some((f) => f.name.includes(': lan')));
});

test('resolveApp: names and globs match case-insensitively, either slash', () => {
  assert.deepEqual(resolveApp({ kind: 'name', value: 'zen.exe' }, ['C:/PROGRAMS/ZEN.EXE', 'C:\\x\\zenx.exe']), ['C:/PROGRAMS/ZEN.EXE']);
  assert.deepEqual(resolveApp({ kind: 'glob', value: 'c:\\games\\*\\*.exe' }, ['C:\\Games\\A\\a.exe', 'C:\\Games\\A\\B\\b.exe']), ['C:\\Games\\A\\a.exe']);
  assert.deepEqual(resolveApp({ kind: 'glob', value: 'c:\\games\\**\\*.exe' }, ['C:\\Games\\A\\B\\b.exe']), ['C:\\Games\\A\\B\\b.exe']);
  assert.equal(resolveApp({ kind: 'group', value: 'x' }, SEEN), null);
});

// ---------------------------------------------------------------- classifier

function stubPolicy(config = testConfig()): Policy & { asked: FlowQuery[] } {
  const asked: FlowQuery[] = [];
  const decide = (q: FlowQuery): Decision => {
    asked.push(q);
    if (q.exe === SINGBOX) return { egress: 'direct', stage: 'exempt', rule: null, matched: [] };
    if (q.ip?.startsWith('192.168.')) return { egress: 'direct', stage: 'lan', rule: null, matched: [] };
    if (q.process === 'zen.exe') return { egress: 'proxy', stage: 'app', rule: null, matched: [] };
    if (q.process === 'bad.exe') return { egress: 'block', stage: 'app', rule: null, matched: [] };
    return { egress: config.default, stage: 'default', rule: null, matched: [] };
  };
  return {
    config,
    asked,
    decide,
    explain: (q) => ({ ...decide(q), query: q, candidates: [] }),
    projectDomain: () => ({ egresses: ['direct'], uniform: true, egress: 'direct', rule: null }),
  };
}

const T = (ip = '198.19.7.7', port = 443) => ({ family: 4 as const, localAddress: '198.18.0.10', localPort: 50000, remoteAddress: ip, remotePort: port });
const PATHS: Record<number, string> = { 10: ZEN, 11: SINGBOX, 12: 'C:\\Apps\\bad.exe', 13: 'C:\\Other\\x.exe' };

function classifier(policy: Policy, captured: Record<string, string> = {}) {
  return makeClassifier({
    policy,
    ownPid: 1,
    exemptPids: () => new Set([2]),
    imagePath: (pid) => PATHS[pid],
    capturedGroup: (ip) => captured[ip],
  });
}

test('classifier: selected app reflects to its egress group; exempt, own, LAN pass; block blocks', () => {
  const policy = stubPolicy();
  const c = classifier(policy, { '198.19.9.9': 'proxy' });
  assert.deepEqual(c(10, T()), { action: 'reflect', group: 'proxy' });
  assert.equal(policy.asked[0]?.process, 'zen.exe');
  assert.equal(policy.asked[0]?.exe, ZEN);
  assert.deepEqual(c(11, T()), { action: 'pass' }, 'exempt by policy');
  assert.deepEqual(c(1, T()), { action: 'pass' }, 'own PID');
  assert.deepEqual(c(2, T()), { action: 'pass' }, 'exempt PID (supervised core)');
  assert.deepEqual(c(10, T('192.168.1.5')), { action: 'pass' }, 'LAN');
  assert.deepEqual(c(12, T()), { action: 'block' });
  assert.deepEqual(c(13, T()), { action: 'pass' }, 'unselected app to an uncaptured destination');
  assert.deepEqual(c(13, T('198.19.9.9')), { action: 'reflect', group: 'proxy' }, 'captured destination');
});

test('classifier without a PID: captured → reflect; apps selectable → block (fail closed); else pass', () => {
  const c = classifier(stubPolicy(), { '198.19.9.9': 'proxy' });
  assert.deepEqual(c(undefined, T('198.19.9.9')), { action: 'reflect', group: 'proxy' });
  assert.deepEqual(c(undefined, T()), { action: 'block' });
  const cfg = testConfig({ rules: [] });
  assert.equal(anyAppSelection(cfg), false);
  assert.deepEqual(classifier(stubPolicy(cfg))(undefined, T()), { action: 'pass' });
  assert.deepEqual(classifier(stubPolicy(testConfig({ mode: 'all', rules: [] })))(undefined, T()), { action: 'block' });
});

test('classifier in mode "all": even a direct decision is reflected (the front door relays it)', () => {
  const c = classifier(stubPolicy(testConfig({ mode: 'all' })));
  assert.deepEqual(c(13, T()), { action: 'reflect', group: 'direct' });
});

test('a path rule from a parsed config file reaches WFP as a Win32 path', async () => {
  const { loadConfigFromString } = await import('../../src/policy/index.ts');
  const cfg = loadConfigFromString('version = 1\n[egress.vpn]\ntype = "socks5"\nendpoint = "socks5://127.0.0.1:1080"\n[[rule]]\negress = "vpn"\napps = ["C:\\\\Apps\\\\Telegram\\\\Telegram.exe"]\n', 'test');
  const pattern = cfg.rules[0]!.apps[0]!;
  assert.equal(pattern.kind, 'path');
  // The parser stores the path with `/`; the plan must hand WFP backslashes.
  assert.ok(pattern.value.includes('/'));
  const [path] = resolveApp(pattern, []) ?? [];
  assert.equal(path?.toLowerCase(), 'c:\\apps\\telegram\\telegram.exe');
});
