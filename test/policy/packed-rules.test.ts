// PackedRules (src/policy/packed-rules.ts): a compact rule list must read like the plain rules it
// replaces — the same fields, the same decisions and explanations (rule id and source line) — and
// refuse what it cannot hold.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compilePolicy, loadConfigFromString, PackedRules, plainRule, type AppPattern, type Cidr, type Config, type DomainPattern, type RuleConfig } from '../../src/policy/index.ts';
import { Rng, randomQuery, randomName } from './random.ts';

const HEAD = `version = 1
default = "direct"
[egress.vpn]
type = "socks5"
endpoint = "socks5://127.0.0.1:1488"
[egress.deny]
type = "block"
[[rule]]
egress = "vpn"
ports = [443]
network = "tcp"
`;

const EGRESSES = ['vpn', 'deny', 'direct', 'block'];
const CIDRS: Cidr[] = [
  { family: 4, address: '198.18.0.0', prefix: 15 },
  { family: 4, address: '198.18.1.0', prefix: 24 },
  { family: 6, address: '2001:db8::', prefix: 32 },
];

/** The same random one-pattern rules twice: packed, and as plain objects. */
function build(seed: number): { packed: Config; plain: Config } {
  const r = new Rng(seed);
  const base = loadConfigFromString(HEAD, 'p.toml');
  const domains = new PackedRules({ list: 'l1', file: '/lists/l1.txt' }, base.rules.length);
  const zen = domains.appCondition([{ kind: 'name', value: 'zen.exe' }]);
  // A second shared condition: the engine builds one app matcher per shared condition, so the
  // rules of each must keep their own (packed vs plain below, where no array is shared).
  const curlPaths: AppPattern[] = [{ kind: 'path', value: '/usr/bin/curl' }, { kind: 'name', value: 'tg' }];
  const curl = domains.appCondition(curlPaths);
  const plain: RuleConfig[] = [...base.rules];
  const n = 200 + r.int(200);
  for (let i = 0; i < n; i++) {
    const k = r.int(10);
    const p: DomainPattern = k < 6 ? { kind: 'suffix', value: randomName(r) } : k < 8 ? { kind: 'full', value: randomName(r) } : k < 9 ? { kind: 'keyword', value: r.pick(['ai', 'ma']) } : { kind: 'regexp', value: r.pick(['^a\\.', 'ru$']) };
    const egress = r.pick(EGRESSES);
    const app = r.int(10); // 0: zen, 1: curl, else none
    domains.addDomain(egress, p, i + 1, app === 0 ? zen : app === 1 ? curl : 0);
    const apps: AppPattern[] = app === 0 ? [{ kind: 'name', value: 'zen.exe' }] : app === 1 ? curlPaths.map((x) => ({ ...x })) : [];
    plain.push({ index: plain.length, name: null, egress, domains: [p], apps, cidrs: [], ports: [], network: null, origin: { list: 'l1', file: '/lists/l1.txt', line: i + 1 } });
  }
  const packedRules = [...base.rules, ...domains.rules()];
  const cidrs = new PackedRules({ list: 'l2' }, packedRules.length);
  for (let i = 0; i < 20; i++) {
    const c = r.pick(CIDRS);
    const egress = r.pick(EGRESSES);
    cidrs.addCidr(egress, c, i % 2 ? i + 1 : undefined);
    plain.push({ index: plain.length, name: null, egress, domains: [], apps: [], cidrs: [c], ports: [], network: null, origin: i % 2 ? { list: 'l2', line: i + 1 } : { list: 'l2' } });
  }
  packedRules.push(...cidrs.rules());
  return { packed: { ...base, rules: packedRules }, plain: { ...base, rules: plain } };
}

test('packed rules read like the plain rules they replace', () => {
  const { packed, plain } = build(1);
  assert.equal(packed.rules.length, plain.rules.length);
  for (let i = 0; i < plain.rules.length; i++) {
    assert.deepEqual(plainRule(packed.rules[i]!), plain.rules[i], `rule ${i}`);
    assert.deepEqual(JSON.parse(JSON.stringify(packed.rules[i])), JSON.parse(JSON.stringify(plain.rules[i])), `toJSON of rule ${i}`);
  }
});

test('decide and explain agree between packed and plain rules', () => {
  for (let seed = 1; seed <= 8; seed++) {
    const { packed, plain } = build(seed);
    const a = compilePolicy(packed);
    const b = compilePolicy(plain);
    const r = new Rng(100 + seed);
    for (let k = 0; k < 200; k++) {
      const q = randomQuery(r);
      assert.deepEqual(a.decide(q), b.decide(q), `seed ${seed} ${JSON.stringify(q)}`);
      const ea = a.explain(q);
      const eb = b.explain(q);
      assert.deepEqual(ea, eb, `seed ${seed} ${JSON.stringify(q)}`);
      if (ea.rule !== null && ea.rule.origin.list === 'l1') assert.ok(ea.rule.origin.line! >= 1, 'explain names the source line');
    }
  }
});

test('packed tables refuse misuse', () => {
  const t = new PackedRules({ list: 'x' }, 0);
  assert.throws(() => t.addDomain('vpn', { kind: 'suffix', value: 'a.b' }, 1, 7), /unknown app condition 7/);
  t.addDomain('vpn', { kind: 'suffix', value: 'a.b' }, 1);
  t.addDomain('vpn', { kind: 'suffix', value: 'c.b' });
  const rules = t.rules();
  assert.equal(t.rules(), rules, 'built once');
  assert.throws(() => t.addDomain('vpn', { kind: 'suffix', value: 'c.d' }), /add after rules\(\)/);
  assert.deepEqual({ ...rules[0] }, { index: 0 }, 'a spread copies only the index (documented)');
  assert.deepEqual(rules[1]!.origin, { list: 'x' });
  assert.equal(Object.isFrozen(rules[1]!.origin), true, 'the shared origin cannot be changed through one rule');
});
