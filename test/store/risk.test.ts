// Risk classification and the diff describer, table-driven over hand-built configs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffConfigs, describeDiff } from '../../src/store/diff.ts';
import { classifyRisk, FEW_NAMES, MASS_CHANGE, type RiskLevel } from '../../src/store/risk.ts';
import type { Config } from '../../src/policy/types.ts';
import { baseConfig, addRule, edit, rule } from './helpers/config.ts';

const base = baseConfig();
const full = (v: string) => ({ kind: 'full' as const, value: v });
const suffix = (v: string) => ({ kind: 'suffix' as const, value: v });

const cases: { name: string; after: Config; level: RiskLevel; reason?: RegExp }[] = [
  { name: 'nothing changed', after: edit(base, () => {}), level: 'low', reason: /no policy change/ },
  { name: 'line numbers and source only', after: edit(base, (c) => { c.rules[0]!.origin = { line: 99 }; c.source = '/other.toml'; }), level: 'low', reason: /no policy change/ },
  { name: 'one exact name', after: addRule(base, 'vpn', { domains: [full('one.example')] }), level: 'low', reason: /1 exact name added/ },
  { name: `${FEW_NAMES} exact names`, after: addRule(base, 'vpn', { domains: Array.from({ length: FEW_NAMES }, (_, i) => full(`n${i}.example`)) }), level: 'low' },
  { name: `${FEW_NAMES + 1} exact names`, after: addRule(base, 'vpn', { domains: Array.from({ length: FEW_NAMES + 1 }, (_, i) => full(`n${i}.example`)) }), level: 'medium', reason: /exact names added/ },
  { name: 'a suffix', after: addRule(base, 'vpn', { domains: [suffix('new.example')] }), level: 'medium', reason: /1 suffix domain pattern added/ },
  { name: 'a keyword', after: addRule(base, 'vpn', { domains: [{ kind: 'keyword', value: 'tube' }] }), level: 'medium', reason: /keyword/ },
  { name: 'a CIDR', after: addRule(base, 'vpn', { cidrs: [{ family: 4, address: '192.0.2.0', prefix: 24 }] }), level: 'medium', reason: /cidr/ },
  { name: 'an app rule', after: addRule(base, 'vpn', { apps: [{ kind: 'name', value: 'curl' }] }), level: 'medium', reason: /app/ },
  { name: 'a new block of an exact name stays low', after: addRule(base, 'block', { domains: [full('tracker.example')] }), level: 'low' },
  { name: 'removing a non-block entry', after: edit(base, (c) => { c.rules.splice(2, 1); }), level: 'medium', reason: /removed/ },
  { name: 'removing a block rule', after: edit(base, (c) => { c.rules.splice(1, 1); }), level: 'high', reason: /block entry removed/ },
  { name: 'unblocking an entry', after: edit(base, (c) => { c.rules[1]!.egress = 'direct'; }), level: 'high', reason: /unblocked/ },
  { name: 'removing an exemption', after: edit(base, (c) => { c.exempt = []; }), level: 'high', reason: /exemptions removed: app name:sing-box/ },
  { name: 'adding an exempt user', after: edit(base, (c) => { c.enforce.exemptUsers = ['alice']; }), level: 'high', reason: /exemptions added/ },
  { name: 'default change', after: edit(base, (c) => { c.default = 'vpn'; }), level: 'high', reason: /default egress changes from direct to vpn/ },
  { name: 'rerouting an existing destination', after: edit(base, (c) => { c.rules[0]!.egress = 'direct'; }), level: 'high', reason: /2 existing destinations rerouted/ },
  { name: 'redefining an egress endpoint', after: edit(base, (c) => { (c.egress['vpn'] as { endpoint: { port: number } }).endpoint.port = 9999; }), level: 'high', reason: /egresses redefined: vpn/ },
  { name: 'removing an egress', after: edit(base, (c) => { delete c.egress['vpn']; }), level: 'high', reason: /egresses removed: vpn/ },
  { name: 'enforcement settings', after: edit(base, (c) => { c.enforce.enabled = true; }), level: 'high', reason: /\[enforce\]/ },
  { name: 'control group', after: edit(base, (c) => { c.control.group = 'users'; }), level: 'high', reason: /\[control\]/ },
  { name: 'dns settings', after: edit(base, (c) => { c.dns.timeoutMs = 5000; }), level: 'medium', reason: /\[dns\]/ },
  { name: 'a new egress', after: edit(base, (c) => { c.egress['dpi'] = { ...structuredClone(c.egress['vpn']!), name: 'dpi' }; }), level: 'medium', reason: /egresses added: dpi/ },
  {
    name: `mass change: ${MASS_CHANGE + 1} exact names`,
    after: addRule(base, 'vpn', { domains: Array.from({ length: MASS_CHANGE + 1 }, (_, i) => full(`m${i}.example`)) }),
    level: 'high',
    reason: /mass change/,
  },
  {
    name: 'a 10k-rule import',
    after: edit(base, (c) => { for (let i = 0; i < 10_000; i++) c.rules.push(rule(c.rules.length, 'block', { domains: [full(`x${i}.example`)] })); }),
    level: 'high',
    reason: /mass change: 10000/,
  },
  {
    name: 'same pattern with an app condition is a different destination',
    after: addRule(base, 'direct', { domains: [suffix('youtube.com')], apps: [{ kind: 'name', value: 'curl' }] }),
    level: 'medium',
  },
];

for (const c of cases) {
  test(`risk: ${c.name} → ${c.level}`, () => {
    const r = classifyRisk(diffConfigs(base, c.after));
    assert.equal(r.level, c.level, r.reasons.join('; '));
    if (c.reason) assert.ok(r.reasons.some((x) => c.reason!.test(x)), `reasons: ${r.reasons.join('; ')}`);
  });
}

test('a shadowed duplicate does not count: the first rule for a pattern decides', () => {
  const after = addRule(base, 'direct', { domains: [suffix('youtube.com')] }); // later rule, same key
  const d = diffConfigs(base, after);
  assert.equal(d.changedEntries, 0);
});

test('diff describer lists each kind of change', () => {
  const after = edit(base, (c) => {
    c.default = 'vpn';
    c.rules[0]!.egress = 'direct';
    c.rules.splice(1, 1);
    c.rules.push(rule(9, 'vpn', { domains: [full('new.example')] }));
    c.exempt = [];
    c.enforce.exemptUsers = ['bob'];
    c.dns.timeoutMs = 1;
  });
  assert.deepEqual(describeDiff(diffConfigs(base, after)), [
    'default: direct -> vpn',
    '~ domain suffix youtube.com: vpn -> direct (rule#1)',
    '~ domain full api.example.org: vpn -> direct (rule#1)',
    '+ domain full new.example -> vpn (rule#10)',
    '- domain suffix ads.example (was -> block, rule#2)',
    '+ exempt user bob',
    '- exempt app name:sing-box',
    '~ [dns] changed',
  ]);
  assert.deepEqual(describeDiff(diffConfigs(base, base)), ['no policy change']);
});

test('a first revision is judged as everything added', () => {
  const r = classifyRisk(diffConfigs(null, base));
  assert.equal(r.level, 'high'); // it adds an exemption
  assert.ok(r.reasons.some((x) => /exemptions added/.test(x)));
});

test('what activates at once: low risk, asked for by a person, from the CLI or its config file', async () => {
  const { activatesAtOnce } = await import('../../src/store/risk.ts');
  const low = { level: 'low' as const, reasons: [] };
  const medium = { level: 'medium' as const, reasons: [] };
  const table: [typeof low | typeof medium, string, boolean, boolean][] = [
    [low, 'file', true, true],
    [low, 'cli', true, true],
    [medium, 'file', true, false],
    [low, 'file', false, false], // the file watcher
    [low, 'import', true, false],
    [low, 'linked', true, false],
  ];
  for (const [risk, channel, interactive, want] of table) assert.equal(activatesAtOnce(risk, { channel, interactive }), want, `${risk.level} ${channel} ${interactive}`);
});
