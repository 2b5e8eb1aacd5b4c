// sing-box rule-set source JSON: every supported field, versions, single values for arrays,
// unsupported fields and logical rules (error, or skip the whole rule), JSON errors with lines,
// and the round trip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { conditions, expectError, fixture, parse, roundTrip } from './helpers.ts';

const ports = [{ from: 443, to: 443 }, { from: 8443, to: 8443 }, { from: 1000, to: 2000 }, { from: 1, to: 99 }, { from: 60000, to: 65535 }];

test('the fixture: every supported field, each destination its own entry with the rule\'s other conditions', async () => {
  const p = await parse(fixture('singbox.json'), 'singbox');
  assert.deepEqual(p.entries, [
    { line: 5, domain: { kind: 'full', value: 'www.example.org' } },
    { line: 6, domain: { kind: 'suffix', value: 'example.com' } },
    { line: 6, domain: { kind: 'regexp', value: '^.+\\.cdn\\.example\\.net$' } },
    { line: 7, domain: { kind: 'keyword', value: 'tracker' } },
    { line: 8, domain: { kind: 'regexp', value: '^ad[0-9]+\\.example\\.com$' } },
    { line: 11, ports, network: 'tcp', cidr: { family: 4, address: '192.0.2.0', prefix: 24 } },
    { line: 11, ports, network: 'tcp', cidr: { family: 6, address: '2001:db8::1', prefix: 128 } },
    { line: 16, apps: [{ kind: 'name', value: 'telegram.exe' }, { kind: 'name', value: 'curl' }] },
    { line: 21, apps: [{ kind: 'path', value: '/usr/bin/mpv' }], domain: { kind: 'suffix', value: 'video.example' } },
  ]);
});

test('versions 1–4 load; others are refused', async () => {
  for (const v of [1, 2, 3, 4]) {
    const p = await parse(`{"version": ${v}, "rules": [{"domain": "a.example"}]}`, 'singbox');
    assert.equal(p.entries.length, 1);
  }
  await expectError(parse('{"version": 5, "rules": []}', 'singbox'), 'SY_ERR_LIST_UNSUPPORTED', 1, /version 5/);
  await expectError(parse('{"rules": []}', 'singbox'), 'SY_ERR_LIST_SYNTAX', 1, /missing "version"/);
  await expectError(parse('{"version": "3", "rules": []}', 'singbox'), 'SY_ERR_LIST_SYNTAX', 1, /must be an integer/);
});

test('unsupported fields and logical rules: an error by default, a skipped rule with unsupported = skip', async () => {
  const text = [
    '{',
    '  "version": 3,',
    '  "rules": [',
    '    {"domain": ["a.example"]},',
    '    {"domain_suffix": ["b.example"], "source_ip_cidr": ["10.0.0.0/8"]},',
    '    {"type": "logical", "mode": "and", "rules": []},',
    '    {"ip_cidr": ["192.0.2.1"], "invert": true},',
    '    {"process_name": ["x"], "process_path": ["/usr/bin/x"]},',
    '    {"domain": "c.example", "wifi_ssid": "home"}',
    '  ]',
    '}',
  ].join('\n');
  await expectError(parse(text, 'singbox'), 'SY_ERR_LIST_UNSUPPORTED', 5, /"source_ip_cidr" is not supported/);
  const p = await parse(text, 'singbox', { unsupported: 'skip' });
  // Skipping drops whole rules: b.example must NOT load without its source condition.
  assert.deepEqual(conditions(p.entries), [{ domain: { kind: 'full', value: 'a.example' } }]);
  assert.deepEqual(p.skipped.map((s) => s.line), [5, 6, 7, 8, 9]);
  assert.match(p.skipped[1]!.reason, /logical/);
  assert.match(p.skipped[2]!.reason, /invert/);
  assert.match(p.skipped[3]!.reason, /process_name together with process_path/);
  assert.ok(p.notices.some((n) => /5 unsupported entries skipped/.test(n)));
});

test('wrong types and bad values name their line', async () => {
  const cases: [string, number, RegExp][] = [
    ['{"version": 1, "rules": {}}', 1, /"rules" must be an array/],
    ['{"version": 1,\n "rules": [\n  "a.example"]}', 3, /a rule must be an object/],
    ['{"version": 1,\n "rules": [{\n  "domain": [1]}]}', 3, /must hold strings, not a number/],
    ['{"version": 1,\n "rules": [{\n  "port": ["443"]}]}', 3, /must hold numbers/],
    ['{"version": 1,\n "rules": [{\n  "port": [70000]}]}', 3, /outside 1..65535/],
    ['{"version": 1,\n "rules": [{\n  "port_range": ["9:1"]}]}', 3, /backwards/],
    ['{"version": 1,\n "rules": [{\n  "ip_cidr": ["1.2.3.4/40"]}]}', 3, /prefix length/],
    ['{"version": 1,\n "rules": [{\n  "network": "icmp"}]}', 3, /"tcp" or "udp"/],
    ['{"version": 1,\n "rules": [{}]}', 2, /would match everything/],
    ['{"version": 1, "rules": [], "extra": 1}', 1, /unknown top-level key/],
    ['{"version": 1,\n "rules": [{"type": "weird"}]}', 2, /unknown rule type/],
  ];
  for (const [text, line, re] of cases) await expectError(parse(text, 'singbox'), 'SY_ERR_LIST_SYNTAX', line, re);
});

test('JSON syntax errors, duplicate keys, depth and string limits', async () => {
  await expectError(parse('{"version": 1,\n "rules": [\n  {"domain": "a"},\n ]\n}', 'singbox'), 'SY_ERR_LIST_SYNTAX', 4, /JSON/);
  await expectError(parse('{"version": 1, "version": 2, "rules": []}', 'singbox'), 'SY_ERR_LIST_SYNTAX', 1, /duplicate key "version"/);
  await expectError(parse('{"version": 1, "rules": [{"domain": "a\nb"}]}', 'singbox'), 'SY_ERR_LIST_SYNTAX', 1, /control character/);
  await expectError(parse('{"version": 1, "rules": []} x', 'singbox'), 'SY_ERR_LIST_SYNTAX', 1, /trailing/);
  await expectError(parse('['.repeat(100) + ']'.repeat(100), 'singbox'), 'SY_ERR_LIST_LIMIT', 1, /nesting deeper than 32/);
  await expectError(parse(`{"version": 1, "rules": [{"domain": "${'a'.repeat(5000)}"}]}`, 'singbox'), 'SY_ERR_LIST_LIMIT', 1, /longer than 4096/);
  await expectError(parse('{"version": 1, "rules": [{"domain": "\\q"}]}', 'singbox'), 'SY_ERR_LIST_SYNTAX', 1, /bad escape/);
});

test('a minified rule-set (one long line) is not refused by the line limit', async () => {
  const domains = Array.from({ length: 2000 }, (_, i) => `d${i}.example`);
  const p = await parse(JSON.stringify({ version: 3, rules: [{ domain_suffix: domains }] }), 'singbox');
  assert.equal(p.entries.length, 2000);
});

test('round trip through singbox, and entries grouped by shared conditions', async () => {
  const p = await parse(fixture('singbox.json'), 'singbox');
  const text = await roundTrip(p.entries, 'singbox');
  const doc = JSON.parse(text) as { version: number; rules: Record<string, unknown>[] };
  assert.equal(doc.version, 3);
  assert.deepEqual(doc.rules[0]!.domain_suffix, ['example.com', '.cdn.example.net']);
  assert.deepEqual(doc.rules[1], { ip_cidr: ['192.0.2.0/24', '2001:db8::1/128'], port: [443, 8443], port_range: ['1000:2000', '1:99', '60000:65535'], network: ['tcp'] });
});
