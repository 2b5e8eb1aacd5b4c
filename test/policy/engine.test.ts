// The decision order and tie-breaks of the engine, explain() and projectDomain().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compilePolicy, loadConfigFromString, type FlowQuery, type Policy } from '../../src/policy/index.ts';

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
[egress.wan]
type = "interface"
interface = "eth0"
`;

function policy(rules: string, extra = ''): Policy {
  return compilePolicy(loadConfigFromString(BASE + extra + rules, 't.toml'));
}
const tcp = (q: Omit<FlowQuery, 'network'>): FlowQuery => ({ network: 'tcp', ...q });

test('exempt apps go direct even when a domain rule matches', () => {
  const p = policy('[[exempt]]\napps = ["ciadpi.exe"]\n[[rule]]\negress = "dpi"\ndomains = ["youtube.com"]\n');
  const d = p.decide(tcp({ process: 'ciadpi.exe', domain: 'youtube.com' }));
  assert.deepEqual([d.egress, d.stage, d.rule?.id], ['direct', 'exempt', 'exempt#1']);
  assert.equal(p.decide(tcp({ process: 'zen.exe', domain: 'youtube.com' })).egress, 'dpi');
  const ex = p.explain(tcp({ process: 'ciadpi.exe', domain: 'youtube.com' }));
  assert.equal(ex.candidates.length, 1);
  assert.match(ex.candidates[0]!.lostBecause, /exempt flows always go direct/);
});

test('exempt users and [enforce] exempt_users', () => {
  const p = policy('[[exempt]]\nusers = ["proxy"]\n[[rule]]\negress = "vpn"\nports = [443]\n', '[enforce]\nexempt_users = ["backup"]\n');
  assert.equal(p.decide(tcp({ user: 'proxy', port: 443 })).stage, 'exempt');
  assert.equal(p.decide(tcp({ user: 'backup', port: 443 })).rule?.id, 'enforce.exempt_users');
  assert.equal(p.decide(tcp({ user: 'alice', port: 443 })).egress, 'vpn');
});

test('LAN destinations go direct unless [enforce] lan = "policy"', () => {
  const rules = '[[rule]]\negress = "vpn"\napps = ["zen.exe"]\n';
  const p = policy(rules);
  for (const ip of ['127.0.0.1', '10.1.2.3', '172.20.0.1', '192.168.1.10', '169.254.1.1', '::1', 'fe80::1', 'fd00::5', '::ffff:192.168.1.1']) {
    const d = p.decide(tcp({ process: 'zen.exe', ip }));
    assert.deepEqual([d.egress, d.stage], ['direct', 'lan'], ip);
  }
  for (const ip of ['172.32.0.1', '198.18.0.1', '8.8.8.8', '2001:db8::1', '100.64.0.1']) assert.equal(p.decide(tcp({ process: 'zen.exe', ip })).egress, 'vpn', ip);
  const q = policy(rules, '[enforce]\nlan = "policy"\n');
  assert.equal(q.decide(tcp({ process: 'zen.exe', ip: '192.168.1.10' })).egress, 'vpn');
});

test('block rules win over more specific non-block rules', () => {
  const p = policy('[[rule]]\negress = "direct"\ndomains = ["full:ads.example.com"]\n[[rule]]\negress = "deny"\ndomains = ["example.com"]\n[[rule]]\negress = "block"\napps = ["bad.exe"]\n');
  const d = p.decide(tcp({ domain: 'ads.example.com' }));
  assert.deepEqual([d.egress, d.stage], ['deny', 'block']);
  assert.equal(p.decide(tcp({ process: 'bad.exe', domain: 'ok.org' })).egress, 'block');
  const ex = p.explain(tcp({ domain: 'ads.example.com' }));
  assert.match(ex.candidates[0]!.lostBecause, /blocks \(block rules come first\)/);
});

test('domain specificity: full > longer suffix > shorter suffix > keyword/regexp', () => {
  const p = policy(`[[rule]]
egress = "vpn"
domains = ["keyword:tube", "regexp:^www\\\\."]
[[rule]]
egress = "dpi"
domains = ["com"]
[[rule]]
egress = "vpn"
domains = ["youtube.com"]
[[rule]]
egress = "direct"
domains = ["full:www.youtube.com"]
`);
  assert.equal(p.decide(tcp({ domain: 'www.youtube.com' })).egress, 'direct');
  assert.equal(p.decide(tcp({ domain: 'm.youtube.com' })).egress, 'vpn');
  assert.equal(p.decide(tcp({ domain: 'youtube.com' })).egress, 'vpn');
  assert.equal(p.decide(tcp({ domain: 'other.com' })).egress, 'dpi');
  assert.equal(p.decide(tcp({ domain: 'youtube.org' })).egress, 'vpn'); // keyword
  assert.equal(p.decide(tcp({ domain: 'www.example.org' })).egress, 'vpn'); // regexp
  assert.equal(p.decide(tcp({ domain: 'notyoutube.com' })).egress, 'dpi', 'suffixes match whole labels only');
  const ex = p.explain(tcp({ domain: 'www.youtube.com' }));
  assert.deepEqual(ex.candidates.map((c) => c.rule.id), ['rule#3', 'rule#2', 'rule#1']);
  assert.match(ex.candidates[0]!.lostBecause, /'full:www\.youtube\.com' is more specific than 'youtube\.com'/);
});

test('equal specificity: more conditions wins, then the earlier rule', () => {
  const p = policy(`[[rule]]
egress = "vpn"
domains = ["example.com"]
[[rule]]
egress = "dpi"
domains = ["example.com"]
apps = ["zen.exe"]
[[rule]]
egress = "direct"
domains = ["example.com"]
`);
  assert.equal(p.decide(tcp({ process: 'zen.exe', domain: 'a.example.com' })).egress, 'dpi');
  assert.equal(p.decide(tcp({ process: 'curl', domain: 'a.example.com' })).egress, 'vpn');
  const ex = p.explain(tcp({ process: 'zen.exe', domain: 'a.example.com' }));
  assert.match(ex.candidates[0]!.lostBecause, /rule#2 has more conditions \(2 > 1\)/);
  const ex2 = p.explain(tcp({ process: 'curl', domain: 'a.example.com' }));
  assert.match(ex2.candidates[0]!.lostBecause, /rule#1 comes earlier/);
});

test('a rule with several kinds belongs to its most specific stage and needs all conditions', () => {
  const p = policy(`[[rule]]
egress = "dpi"
apps = ["zen.exe"]
cidrs = ["198.18.0.0/15"]
[[rule]]
egress = "vpn"
domains = ["example.com"]
ports = [443]
network = "tcp"
[[rule]]
egress = "deny"
apps = ["zen.exe"]
ports = [25]
`);
  const a = p.decide(tcp({ process: 'zen.exe', ip: '198.18.0.5' }));
  assert.deepEqual([a.egress, a.stage], ['dpi', 'cidr']);
  assert.equal(p.decide(tcp({ process: 'curl', ip: '198.18.0.5' })).egress, 'direct');
  assert.equal(p.decide(tcp({ domain: 'example.com', port: 443 })).egress, 'vpn');
  assert.equal(p.decide(tcp({ domain: 'example.com', port: 80 })).egress, 'direct');
  assert.equal(p.decide({ network: 'udp', domain: 'example.com', port: 443 }).egress, 'direct');
  assert.equal(p.decide(tcp({ process: 'zen.exe', port: 25 })).egress, 'deny');
  const d = p.decide(tcp({ domain: 'example.com', port: 443 }));
  assert.deepEqual(d.matched.map((m) => m.condition), ['domain', 'port', 'network']);
});

test('CIDR: longest prefix wins, IPv4 and IPv6, mapped addresses', () => {
  const p = policy(`[[rule]]
egress = "vpn"
cidrs = ["198.18.0.0/15", "2001:db8::/32"]
[[rule]]
egress = "dpi"
cidrs = ["198.18.1.0/24", "2001:db8:1::/48"]
[[rule]]
egress = "direct"
cidrs = ["198.18.1.7"]
`);
  assert.equal(p.decide(tcp({ ip: '198.18.1.7' })).egress, 'direct');
  assert.equal(p.decide(tcp({ ip: '198.18.1.8' })).egress, 'dpi');
  assert.equal(p.decide(tcp({ ip: '198.19.0.1' })).egress, 'vpn');
  assert.equal(p.decide(tcp({ ip: '::ffff:198.18.1.8' })).egress, 'dpi');
  assert.equal(p.decide(tcp({ ip: '2001:db8:1::9' })).egress, 'dpi');
  assert.equal(p.decide(tcp({ ip: '2001:db8:2::9' })).egress, 'vpn');
  assert.equal(p.decide(tcp({ ip: '2001:db9::1' })).egress, 'direct');
  assert.equal(p.decide(tcp({ ip: 'not-an-ip' })).stage, 'default');
  const ex = p.explain(tcp({ ip: '198.18.1.7' }));
  assert.deepEqual(ex.matched, [{ condition: 'cidr', pattern: '198.18.1.7/32', value: '198.18.1.7' }]);
  assert.match(ex.candidates[0]!.lostBecause, /198\.18\.1\.7\/32 is a longer prefix than 198\.18\.1\.0\/24/);
});

test('app stage: path > name > glob > group', () => {
  const p = policy(`[[rule]]
egress = "vpn"
apps = ["group:vpn"]
[[rule]]
egress = "dpi"
apps = ["/usr/bin/*"]
[[rule]]
egress = "wan"
apps = ["curl"]
[[rule]]
egress = "direct"
apps = ["/usr/bin/curl"]
`);
  assert.equal(p.decide(tcp({ exe: '/usr/bin/curl', group: 'vpn' })).egress, 'direct');
  assert.equal(p.decide(tcp({ exe: '/usr/local/bin/curl', group: 'vpn' })).egress, 'wan');
  assert.equal(p.decide(tcp({ exe: '/usr/bin/wget', group: 'vpn' })).egress, 'dpi');
  assert.equal(p.decide(tcp({ exe: '/opt/wget', group: 'vpn' })).egress, 'vpn');
});

test('query names are normalised like patterns', () => {
  const p = policy('[[rule]]\negress = "vpn"\ndomains = ["пример.рф", "example.com"]\n');
  assert.equal(p.decide(tcp({ domain: 'WWW.Example.COM.' })).egress, 'vpn');
  assert.equal(p.decide(tcp({ domain: 'почта.пример.рф' })).egress, 'vpn');
  assert.equal(p.decide(tcp({ domain: 'xn--e1afmkfd.xn--p1ai' })).egress, 'vpn');
  assert.equal(p.decide(tcp({ domain: '' })).egress, 'direct');
});

test('decide() and explain() return the same decision', () => {
  const p = policy('[[rule]]\negress = "vpn"\ndomains = ["a.com"]\napps = ["zen.exe"]\n[[rule]]\negress = "dpi"\napps = ["zen.exe"]\n');
  for (const q of [tcp({ process: 'zen.exe', domain: 'x.a.com' }), tcp({ process: 'zen.exe' }), tcp({ domain: 'a.com' })]) {
    const { query, candidates, ...rest } = p.explain(q);
    assert.deepEqual(rest, p.decide(q));
    assert.equal(query, q);
    assert.ok(Array.isArray(candidates));
  }
});

test('projectDomain: uniform when one unconditional domain rule decides', () => {
  const p = policy(`[[rule]]
egress = "dpi"
domains = ["youtube.com"]
[[rule]]
egress = "vpn"
domains = ["chatgpt.com"]
apps = ["zen.exe"]
[[rule]]
egress = "deny"
domains = ["ads.example"]
`);
  assert.deepEqual(p.projectDomain('www.youtube.com'), { egresses: ['dpi'], uniform: true, egress: 'dpi', rule: p.decide(tcp({ domain: 'youtube.com' })).rule });
  const g = p.projectDomain('chatgpt.com');
  assert.deepEqual([g.egresses, g.uniform, g.egress], [['vpn', 'direct'], false, null]);
  assert.deepEqual(p.projectDomain('x.ads.example').egresses, ['deny']);
  const other = p.projectDomain('example.org');
  assert.deepEqual([other.egresses, other.uniform, other.egress, other.rule], [['direct'], true, 'direct', null]);
});

test('projectDomain: app, CIDR and port rules make names non-uniform', () => {
  const p = policy('[[rule]]\negress = "vpn"\napps = ["zen.exe"]\n[[rule]]\negress = "block"\nports = [25]\n[[rule]]\negress = "dpi"\ndomains = ["youtube.com"]\n');
  assert.deepEqual(p.projectDomain('example.org').egresses.sort(), ['block', 'direct', 'vpn']);
  // A domain rule still loses to a block rule on port 25: block stays possible.
  assert.deepEqual(p.projectDomain('youtube.com').egresses.sort(), ['block', 'dpi']);
});

test('hostile queries are decided without throwing', () => {
  const p = policy('[[rule]]\negress = "vpn"\ndomains = ["example.com", "keyword:ex", "regexp:^a"]\n[[rule]]\negress = "wan"\ncidrs = ["198.18.0.0/15"]\n[[rule]]\negress = "dpi"\napps = ["/opt/**/x", "z*"]\n');
  const weird: FlowQuery[] = [
    tcp({ domain: 'a'.repeat(1_000_000) + '.example.com' }),
    tcp({ domain: Array.from({ length: 300 }, () => 'a').join('.') + '.example.com' }),
    tcp({ domain: '\u202e\u0000\ud800..' }),
    tcp({ domain: '.' }),
    tcp({ domain: '....example.com' }),
    tcp({ ip: '999.1.1.1' }),
    tcp({ ip: '::ffff:999.1.1.1' }),
    tcp({ ip: '[::1' }),
    tcp({ ip: '1:2:3:4:5:6:7:8:9' }),
    tcp({ exe: '/'.repeat(10_000) }),
    tcp({ process: '\\\\\\', exe: 'C:' }),
    tcp({ port: -1 }),
    { network: 'udp' },
  ];
  for (const q of weird) {
    const d = p.decide(q);
    assert.equal(typeof d.egress, 'string');
    assert.deepEqual(p.explain(q).egress, d.egress);
  }
  assert.equal(p.decide(weird[0]!).egress, 'vpn', 'a huge name still matches its suffix');
  assert.equal(p.decide(weird[1]!).egress, 'vpn');
});
