// Clash/mihomo rule-provider payloads: domain (wildcards), ipcidr and classical behaviours, YAML
// and text, hostile YAML, unsupported rule types, and round trips.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { conditions, expectError, fixture, parse, roundTrip } from './helpers.ts';

const domainEntries = [
  { domain: { kind: 'suffix', value: 'example.com' } },
  { domain: { kind: 'regexp', value: '^.+\\.cdn\\.example\\.net$' } },
  { domain: { kind: 'regexp', value: '^[^.]+\\.one\\.example\\.org$' } },
  { domain: { kind: 'regexp', value: '^xbox\\.[^.]+\\.microsoft\\.com$' } },
  { domain: { kind: 'full', value: 'www.example.org' } },
];

test('domain behaviour, YAML and text give the same entries; lines point at the items', async () => {
  const y = await parse(fixture('clash-domain.yaml'), 'clash-domain');
  const t = await parse(fixture('clash-domain.txt'), 'clash-domain');
  assert.deepEqual(conditions(y.entries), domainEntries);
  assert.deepEqual(conditions(t.entries), domainEntries);
  assert.deepEqual(y.entries.map((e) => e.line), [3, 4, 5, 6, 7]);
  assert.deepEqual(t.entries.map((e) => e.line), [2, 3, 4, 5, 6]);
});

test('the wildcard regexps match as Clash documents', async () => {
  const [, dot, star, mid] = (await parse(fixture('clash-domain.txt'), 'clash-domain')).entries.map((e) => new RegExp(e.domain!.value));
  assert.ok(dot!.test('a.cdn.example.net') && dot!.test('a.b.cdn.example.net') && !dot!.test('cdn.example.net'));
  assert.ok(star!.test('a.one.example.org') && !star!.test('a.b.one.example.org') && !star!.test('one.example.org'));
  assert.ok(mid!.test('xbox.live.microsoft.com') && !mid!.test('xbox.a.b.microsoft.com'));
});

test('ipcidr behaviour', async () => {
  const p = await parse(fixture('clash-ipcidr.yaml'), 'clash-ipcidr');
  assert.deepEqual(conditions(p.entries), [
    { cidr: { family: 4, address: '192.0.2.0', prefix: 24 } },
    { cidr: { family: 6, address: '2001:db8::', prefix: 32 } },
    { cidr: { family: 4, address: '198.51.100.7', prefix: 32 } },
  ]);
});

test('classical behaviour: every supported type, YAML and text alike', async () => {
  const expected = [
    { domain: { kind: 'full', value: 'www.example.org' } },
    { domain: { kind: 'suffix', value: 'example.com' } },
    { domain: { kind: 'keyword', value: 'tracker' } },
    { domain: { kind: 'regexp', value: '^ad[0-9]+\\.example\\.com$' } },
    { cidr: { family: 4, address: '192.0.2.0', prefix: 24 } },
    { cidr: { family: 6, address: '2001:db8::', prefix: 32 } },
    { apps: [{ kind: 'name', value: 'telegram.exe' }] },
    { apps: [{ kind: 'path', value: '/usr/bin/curl' }] },
    { ports: [{ from: 8443, to: 8443 }] },
    { ports: [{ from: 1000, to: 2000 }] },
  ];
  assert.deepEqual(conditions((await parse(fixture('clash-classical.yaml'), 'clash-classical')).entries), expected);
  assert.deepEqual(conditions((await parse(fixture('clash-classical.txt'), 'clash-classical')).entries), expected);
});

test('classical: unsupported types are errors, or skipped and counted', async () => {
  const text = 'payload:\n  - DOMAIN,a.example\n  - GEOIP,CN\n  - SRC-IP-CIDR,10.0.0.0/8\n  - AND,((DOMAIN,x.example),(NETWORK,UDP))\n  - IP-CIDR,10.0.0.0/8,src\n  - MATCH\n';
  await expectError(parse(text, 'clash-classical'), 'SY_ERR_LIST_UNSUPPORTED', 3, /GEOIP is not supported/);
  const p = await parse(text, 'clash-classical', { unsupported: 'skip' });
  assert.deepEqual(conditions(p.entries), [{ domain: { kind: 'full', value: 'a.example' } }]);
  assert.deepEqual(p.skipped.map((s) => s.line), [3, 4, 5, 6, 7]);
});

test('classical: malformed lines name their line', async () => {
  const cases: [string, number, RegExp][] = [
    ['DOMAIN,a.example\nDOMAIN\n', 2, /needs a value/],
    ['IP-CIDR,2001:db8::/32\n', 1, /holds an IPv6 address/],
    ['IP-CIDR6,10.0.0.0/8\n', 1, /holds an IPv4 address/],
    ['DOMAIN,a.example,no-resolve\n', 1, /unknown parameter/],
    ['DST-PORT,http\n', 1, /not a port number/],
    ['PROCESS-PATH,curl\n', 1, /not an absolute path/],
    ['what is this\n', 1, /not a TYPE,VALUE rule/],
  ];
  for (const [text, line, re] of cases) await expectError(parse(text, 'clash-classical'), 'SY_ERR_LIST_SYNTAX', line, re);
});

test('hostile or unsupported YAML is refused by name, with the line', async () => {
  const cases: [string, number, RegExp][] = [
    ["payload:\n  - 'a.example'\n  - &x 'b.example'\n", 3, /anchors/],
    ["payload:\n  - *x\n", 2, /aliases/],
    ["payload:\n  - !!str a.example\n", 2, /tags/],
    ["payload:\n  - |\n    a.example\n", 2, /block scalars/],
    ["payload:\n  - 'a.example\n", 2, /unterminated/],
    ["payload:\n  - a.example\n    b.example\n", 3, /multi-line/],
    ["payload:\n  - a.example\n   - b.example\n", 3, /line up/],
    ["payload:\n  - key: value\n", 2, /mapping/],
    ["payload:\n  - - a.example\n", 2, /nested sequences/],
    ["payload:\n  -\n", 2, /empty sequence item/],
    ["payload:\n  - a.example\nrules:\n  - x\n", 3, /only 'payload'/],
    ["payload:\n\t- a.example\n", 2, /tab/],
    ['payload: {a: b}\n', 1, /must be a sequence/],
    ['payload: [a.example, [b]]\n', 1, /nested flow/],
    ['payload: "x"\n', 1, /must be a sequence/],
  ];
  for (const [text, line, re] of cases) await expectError(parse(text, 'clash-domain'), 'SY_ERR_LIST_SYNTAX', line, re);
});

test('YAML niceties that real providers use: ---, comments, quotes, flow sequence, empty payload', async () => {
  const p = await parse("# header\n---\npayload: # the list\n  # a comment\n  - \"+.a.example\" # trailing\n  - 'it''s.example'\n", 'clash-domain').catch((e: Error) => e);
  assert.ok(p instanceof Error && /not a domain/.test(p.message), 'a quote inside a domain is still not a domain');
  const q = await parse("---\npayload:\n  - \"+.a.example\" # trailing\n  - '\\u0062.example'\n", 'clash-domain').catch((e: Error) => e);
  assert.ok(q instanceof Error, 'single quotes do not process escapes');
  const r = await parse('payload: [\'+.a.example\', "b.example", c.example]\n', 'clash-domain');
  assert.deepEqual(r.entries.map((e) => e.domain!.value), ['a.example', 'b.example', 'c.example']);
  assert.equal((await parse('payload: []\n', 'clash-domain')).entries.length, 0);
  const s = await parse('payload:\n- "\\x2b.d.example"\n', 'clash-domain');
  assert.deepEqual(conditions(s.entries), [{ domain: { kind: 'suffix', value: 'd.example' } }]);
});

test('round trips: domain and ipcidr and classical, YAML and text', async () => {
  const d = (await parse(fixture('clash-domain.yaml'), 'clash-domain')).entries;
  const yaml = await roundTrip(d, 'clash-domain');
  assert.match(yaml, /^payload:\n  - '\+\.example\.com'\n  - '\.cdn\.example\.net'\n/);
  await roundTrip(d, 'clash-domain', { clashSyntax: 'text' });
  await roundTrip((await parse(fixture('clash-ipcidr.yaml'), 'clash-ipcidr')).entries, 'clash-ipcidr');
  const c = (await parse(fixture('clash-classical.yaml'), 'clash-classical')).entries;
  await roundTrip(c, 'clash-classical');
  const text = await roundTrip(c, 'clash-classical', { clashSyntax: 'text' });
  assert.equal(text, fixture('clash-classical.txt').split('\n').filter((l) => !l.startsWith('#')).join('\n').replace('Telegram.exe', 'telegram.exe').replace(',no-resolve', ''));
});
