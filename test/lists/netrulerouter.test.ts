// NetRuleRouter rules text: sections, `*.` suffixes, disabled `#` lines, +block, errors, round trip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { conditions, expectError, fixture, parse, roundTrip } from './helpers.ts';

test('the fixture: every section, suffix syntax, +block, disabled lines counted', async () => {
  const p = await parse(fixture('netrulerouter.txt'), 'netrulerouter');
  assert.deepEqual(p.entries, [
    { line: 2, domain: { kind: 'full', value: 'youtube.com' } },
    { line: 3, domain: { kind: 'suffix', value: 'googlevideo.com' } },
    { line: 6, domain: { kind: 'full', value: 'ads.example.com' }, block: true },
    { line: 9, cidr: { family: 4, address: '203.0.113.0', prefix: 24 } },
    { line: 10, cidr: { family: 6, address: '2001:db8::', prefix: 48 } },
    { line: 13, apps: [{ kind: 'name', value: 'telegram.exe' }], platform: 'windows' },
    { line: 14, apps: [{ kind: 'path', value: 'c:/program files/example app/app.exe' }], platform: 'windows' },
    { line: 17, apps: [{ kind: 'name', value: 'firefox' }], platform: 'linux' },
    { line: 18, apps: [{ kind: 'path', value: '/usr/bin/curl' }], platform: 'linux', block: true },
  ]);
  assert.equal(p.disabled, 1, '# old.example.com is a disabled rule; the prose comment is not');
});

test('malformed input names its line', async () => {
  const cases: [string, number, RegExp][] = [
    ['youtube.com\n', 1, /before any section header/],
    ['--- Domains\na.example\n--- Apps\n', 3, /unknown section/],
    ['--- Domains\na.example +allow\n', 2, /one entry a line/],
    ['--- Domains\n*.*.example.com\n', 2, /not a domain name/],
    ['--- IP\n10.0.0.0/99\n', 2, /prefix length/],
    ['--- Linux\nbin/curl\n', 2, /is a path/],
  ];
  for (const [text, line, re] of cases) await expectError(parse(text, 'netrulerouter'), 'SY_ERR_LIST_SYNTAX', line, re);
});

test('section names are case-insensitive', async () => {
  const p = await parse('---   domains\na.example\n--- ip\n192.0.2.1\n', 'netrulerouter');
  assert.equal(p.entries.length, 2);
});

test('round trip through netrulerouter', async () => {
  const p = await parse(fixture('netrulerouter.txt'), 'netrulerouter');
  const text = await roundTrip(p.entries, 'netrulerouter');
  assert.match(text, /^--- Domains\nyoutube\.com\n\*\.googlevideo\.com\nads\.example\.com \+block\n\n--- IP\n/);
  assert.deepEqual(conditions((await parse(text, 'netrulerouter')).entries), conditions(p.entries));
});
