// The implicit rule `group:NAME → NAME` that compilePolicy adds per egress: a program the OS
// backend put into group NAME (`switchyard exec --egress NAME`) takes egress NAME when no
// configured rule decides its flow; it ranks below every configured rule, explain() names it as
// implicit (with the [egress.NAME] line), and projectDomain() leaves it out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compilePolicy, loadConfigFromString, type FlowQuery, type Policy } from '../../src/policy/index.ts';
import { main } from '../../src/cli/main.ts';

const BASE = `version = 1
default = "direct"
[egress.vpn]
type = "socks5"
endpoint = "socks5://127.0.0.1:1488"
[egress.dpi]
type = "socks5"
endpoint = "socks5://127.0.0.1:1080"
[egress.deny]
type = "block"
`;

function policy(rules = '', extra = ''): Policy {
  return compilePolicy(loadConfigFromString(BASE + extra + rules, 'g.toml'));
}
const tcp = (q: Omit<FlowQuery, 'network'>): FlowQuery => ({ network: 'tcp', ...q });

test('a flow from group NAME takes egress NAME with no rule naming the group', () => {
  const p = policy();
  const d = p.decide(tcp({ process: 'curl', group: 'vpn', domain: 'example.org', ip: '203.0.113.9', port: 443 }));
  assert.equal(d.egress, 'vpn');
  assert.equal(d.stage, 'app');
  assert.equal(d.rule?.implicit, true);
  assert.equal(d.rule?.index, -1);
  assert.equal(d.rule?.id, 'implicit rule: group vpn → egress vpn');
  assert.deepEqual(d.rule?.origin, { file: 'g.toml', line: 3 }, 'origin: the [egress.vpn] table');
  assert.deepEqual(d.matched, [{ condition: 'group', pattern: 'group:vpn', value: 'vpn' }]);
  assert.equal(p.decide(tcp({ group: 'dpi' })).egress, 'dpi');
  // A block egress's group is blocked; the built-ins have implicit rules too.
  assert.equal(p.decide(tcp({ group: 'deny' })).egress, 'deny');
  assert.equal(p.decide(tcp({ group: 'block' })).egress, 'block');
  assert.equal(p.decide(tcp({ group: 'direct' })).rule?.implicit, true);
  // No group, or a group that is no egress: the default, as before.
  for (const q of [tcp({ process: 'curl' }), tcp({ group: 'nope' }), tcp({ group: '__proto__' }), tcp({ group: 'VPN' })]) {
    const x = p.decide(q);
    assert.deepEqual([x.egress, x.stage, x.rule], ['direct', 'default', null], JSON.stringify(q));
  }
});

test('every configured rule outranks the implicit rule; exempt and LAN come first', () => {
  const p = policy(`[[exempt]]
apps = ["ciadpi"]
[[rule]]
egress = "dpi"
domains = ["youtube.com"]
[[rule]]
egress = "direct"
cidrs = ["198.18.0.0/15"]
[[rule]]
egress = "dpi"
apps = ["firefox"]
[[rule]]
egress = "deny"
ports = [25]
[[rule]]
egress = "direct"
network = "udp"
`);
  const cases: [FlowQuery, string, string][] = [
    [tcp({ group: 'vpn', domain: 'www.youtube.com' }), 'dpi', 'domain'],
    [tcp({ group: 'vpn', ip: '198.18.3.4' }), 'direct', 'cidr'],
    [tcp({ group: 'vpn', process: 'firefox' }), 'dpi', 'app'],
    [tcp({ group: 'vpn', port: 25 }), 'deny', 'block'],
    [{ network: 'udp', group: 'vpn' }, 'direct', 'other'],
    [tcp({ group: 'vpn', process: 'ciadpi', domain: 'example.org' }), 'direct', 'exempt'],
    [tcp({ group: 'vpn', ip: '127.0.0.1' }), 'direct', 'lan'],
    [tcp({ group: 'vpn', domain: 'example.org', ip: '203.0.113.9', port: 443, process: 'curl' }), 'vpn', 'app'],
  ];
  for (const [q, egress, stage] of cases) {
    const d = p.decide(q);
    assert.deepEqual([d.egress, d.stage], [egress, stage], JSON.stringify(q));
    assert.equal(d.rule?.implicit === true, stage === 'app' && egress === 'vpn', JSON.stringify(q));
    const ex = p.explain(q);
    assert.deepEqual({ egress: ex.egress, stage: ex.stage, rule: ex.rule, matched: ex.matched }, d, 'explain agrees with decide');
    if (d.rule?.implicit !== true) {
      // The implicit rule still matched: it is the last candidate, and says why it lost.
      const last = ex.candidates[ex.candidates.length - 1]!;
      assert.equal(last.rule.implicit, true, JSON.stringify(ex.candidates));
      assert.equal(last.egress, 'vpn');
      if (stage !== 'exempt' && stage !== 'lan') assert.match(last.lostBecause, /implicit group rules rank below every configured rule/);
    }
  }
});

test('an explicit group rule for the same group wins over the implicit one', () => {
  const p = policy('[[rule]]\negress = "dpi"\napps = ["group:vpn"]\n');
  const d = p.decide(tcp({ group: 'vpn' }));
  assert.deepEqual([d.egress, d.rule?.id, d.rule?.implicit], ['dpi', 'rule#1', undefined]);
  const ex = p.explain(tcp({ group: 'vpn' }));
  assert.deepEqual(ex.candidates.map((c) => [c.rule.id, c.egress]), [['implicit rule: group vpn → egress vpn', 'vpn']]);
});

test('projectDomain leaves the implicit rules out (the group redirects its own flows)', () => {
  const p = policy('[[rule]]\negress = "dpi"\ndomains = ["youtube.com"]\n');
  assert.deepEqual(p.projectDomain('example.org'), { egresses: ['direct'], uniform: true, egress: 'direct', rule: null });
  assert.deepEqual(p.projectDomain('youtube.com').egresses, ['dpi']);
  assert.deepEqual(p.projectDomain('example.org', { capture: true }).egresses, ['direct']);
});

test('switchyard explain --group says the rule is implicit and names the egress line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-implicit-'));
  try {
    const path = join(dir, 'c.toml');
    writeFileSync(path, BASE);
    let out = '';
    const ow = process.stdout.write;
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
      if (typeof chunk !== 'string') return ow.call(process.stdout, chunk, ...rest);
      out += chunk;
      return true;
    }) as typeof process.stdout.write;
    let code: number;
    try {
      code = await main(['explain', '--config', path, '--process', 'curl', '--group', 'vpn', '--domain', 'example.org']);
    } finally {
      process.stdout.write = ow;
    }
    assert.equal(code, 0, out);
    assert.match(out, /→ egress vpn by implicit rule: group vpn → egress vpn \(group group:vpn/);
    assert.ok(out.includes(`[${path}:3]`), out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
