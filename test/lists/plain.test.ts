// Plain lists: every entry kind from the fixture, hostile lines with their line numbers, limits,
// encoding, and the round trip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { conditions, expectError, fixture, parse, roundTrip } from './helpers.ts';

test('the fixture parses into every entry kind with its line', async () => {
  const p = await parse(fixture('plain.txt'), 'plain');
  assert.deepEqual(p.entries, [
    { line: 2, domain: { kind: 'suffix', value: 'example.com' } },
    { line: 3, domain: { kind: 'full', value: 'www.example.org' } },
    { line: 4, domain: { kind: 'suffix', value: 'sub.example.net' } },
    { line: 5, domain: { kind: 'keyword', value: 'tracker' } },
    { line: 6, domain: { kind: 'regexp', value: '^ad[0-9]+\\.example\\.com$' } },
    { line: 8, cidr: { family: 4, address: '192.0.2.0', prefix: 24 } },
    { line: 9, cidr: { family: 4, address: '198.51.100.7', prefix: 32 } },
    { line: 10, cidr: { family: 6, address: '2001:db8::', prefix: 32 } },
    { line: 11, domain: { kind: 'suffix', value: 'xn--bcher-kva.example' } },
  ]);
  assert.deepEqual(p.skipped, []);
});

test('CRLF line ends, a BOM and a missing final newline are fine', async () => {
  const p = await parse('\ufeffa.example\r\nb.example', 'plain');
  assert.deepEqual(conditions(p.entries), [{ domain: { kind: 'suffix', value: 'a.example' } }, { domain: { kind: 'suffix', value: 'b.example' } }]);
});

test('malformed lines are refused with their line number', async () => {
  const cases: [string, number, RegExp][] = [
    ['ok.example\n0.0.0.0 ads.example\n', 2, /whitespace/],
    ['ok.example\n\nbad_prefix:x.example\n', 3, /unknown prefix/],
    ['*.example.com\n', 1, /wildcards are not plain-list syntax/],
    ['a.example\nexa$mple.com\n', 2, /not a domain name/],
    ['10.0.0.0/33\n', 1, /prefix length/],
    ['300.1.1.1\n', 1, /not an IP address/],
    ['regexp:a(\n', 1, /does not compile/],
    ['keyword:has space\n', 1, /whitespace/],
    ['full:\n', 1, /empty domain/],
    ['a.example\n10.0.0\n', 2, /mistyped IP address/],
  ];
  for (const [text, line, re] of cases) await expectError(parse(text, 'plain'), 'SY_ERR_LIST_SYNTAX', line, re);
});

test('limits: line length, entries, file size; bad UTF-8 names the byte', async () => {
  await expectError(parse(`a.example\n${'b'.repeat(5000)}.example\n`, 'plain'), 'SY_ERR_LIST_LIMIT', 2, /4096-character limit/);
  await expectError(parse('a.example\nb.example\nc.example\n', 'plain', { limits: { maxEntries: 2 } }), 'SY_ERR_LIST_LIMIT', 3, /more than 2 entries/);
  await expectError(parse('a.example\n', 'plain', { limits: { maxBytes: 4 } }), 'SY_ERR_LIST_TOO_LARGE', undefined, /over the 4-byte limit/);
  const bytes = Buffer.concat([Buffer.from('a.example\n'), Buffer.from([0xff, 0xfe]), Buffer.from('\n')]);
  await expectError(parse(bytes as unknown as string, 'plain'), 'SY_ERR_LIST_ENCODING', undefined, /offset 10/);
});

test('round trip through plain', async () => {
  const p = await parse(fixture('plain.txt'), 'plain');
  const text = await roundTrip(p.entries, 'plain');
  assert.match(text, /^example\.com\nfull:www\.example\.org\n/);
});
