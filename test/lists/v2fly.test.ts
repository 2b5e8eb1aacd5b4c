// v2fly domain-list-community sources: every rule type, attributes, includes with @attr/@-attr
// filters, list-level filters, cycles and depth, unknown prefixes, and the round trip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { conditions, expectError, fixture, parse, roundTrip, v2flyReader } from './helpers.ts';

test('the fixture resolves includes with attribute filters, in file order', async () => {
  const p = await parse(fixture('v2fly/main'), 'v2fly', { readInclude: v2flyReader, file: 'v2fly/main' });
  assert.deepEqual(p.entries, [
    // include:google @cn → google.com (@cn) and, through google's include:gstatic, gstatic.com (@cn)
    { line: 1, source: 'google', domain: { kind: 'suffix', value: 'google.com' }, attrs: ['cn'] },
    { line: 1, source: 'gstatic', domain: { kind: 'suffix', value: 'gstatic.com' }, attrs: ['cn'] },
    // include:ads @-skip → ads.example.com only
    { line: 1, source: 'ads', domain: { kind: 'suffix', value: 'ads.example.com' }, attrs: ['ads'] },
    { line: 4, domain: { kind: 'suffix', value: 'example.com' } },
    { line: 5, domain: { kind: 'suffix', value: 'example.org' }, attrs: ['ads'] },
    { line: 6, domain: { kind: 'full', value: 'www.example.net' }, attrs: ['cn', 'ads'] },
    { line: 7, domain: { kind: 'keyword', value: 'tracker' } },
    { line: 8, domain: { kind: 'regexp', value: '^x[0-9]\\.example\\.com$' } },
  ]);
});

test('a list-level filter (geosite:main@ads) keeps only matching entries', async () => {
  const p = await parse(fixture('v2fly/main'), 'v2fly', { readInclude: v2flyReader, attrs: ['ads', '-cn'] });
  assert.deepEqual(conditions(p.entries).map((e) => (e as { domain: { value: string } }).domain.value), ['ads.example.com', 'example.org']);
});

test('an include cycle is refused with the chain, at the line that closes it', async () => {
  const e = await expectError(parse(fixture('v2fly/cycle-a'), 'v2fly', { readInclude: v2flyReader, file: 'v2fly/cycle-a' }), 'SY_ERR_LIST_INCLUDE', 1, /cycle-a -> cycle-b -> cycle-c -> cycle-a/);
  assert.equal(e.file, 'cycle-c', 'the error names the file holding the closing include');
});

test('a list including itself, a missing include, unsafe names and too-deep nesting', async () => {
  await expectError(parse('include:self\n', 'v2fly', { readInclude: async () => 'include:self\n', file: '/data/self' }), 'SY_ERR_LIST_INCLUDE', 1, /self -> self/);
  await expectError(parse('a.example\ninclude:nope\n', 'v2fly', { readInclude: v2flyReader }), 'SY_ERR_LIST_INCLUDE', 2, /could not be read/);
  await expectError(parse('include:../../etc/passwd\n', 'v2fly', { readInclude: v2flyReader }), 'SY_ERR_LIST_INCLUDE', 1, /not a list name/);
  await expectError(parse('include:x\n', 'v2fly'), 'SY_ERR_LIST_INCLUDE', 1, /cannot be resolved/);
  // l0 includes l1 includes l2 …: the 17th level is refused.
  const chain = (name: string): Promise<string> => Promise.resolve(`${name}.example\ninclude:l${Number(name.slice(1)) + 1}\n`);
  await expectError(parse('include:l1\n', 'v2fly', { readInclude: chain }), 'SY_ERR_LIST_LIMIT', 2, /deeper than 16/);
});

test('includes that multiply entries stop at the entry limit', async () => {
  const fan = (name: string): Promise<string> => {
    const depth = Number(name.slice(1));
    return Promise.resolve(depth >= 12 ? 'x.example\n' : Array.from({ length: 4 }, () => `include:f${depth + 1}`).join('\n') + '\n');
  };
  // 4^7 = 16384 > 10000 by the 4th include line of an f5 file.
  const e = await expectError(parse('include:f1\n', 'v2fly', { readInclude: fan, limits: { maxEntries: 10000 } }), 'SY_ERR_LIST_LIMIT', 3, /more than 10000 entries/);
  assert.equal(e.file, 'f5');
});

test('malformed lines are refused with their line number', async () => {
  const cases: [string, number, RegExp][] = [
    ['a.example\nregex:^a$\n', 2, /'regexp:'/],
    ['ext:geosite.dat:cn\n', 1, /unknown rule type 'ext:'/],
    ['a.example @\n', 1, /not an attribute/],
    ['a.example cn\n', 1, /not an attribute/],
    ['include:google @\n', 1, /not an attribute filter/],
    ['include:google &x\n', 1, /affiliations/],
    ['domain:bad..name\n', 1, /not a domain name/],
    ['full:a.example\nkeyword:\n', 2, /keyword ''/],
  ];
  for (const [text, line, re] of cases) await expectError(parse(text, 'v2fly', { readInclude: v2flyReader }), 'SY_ERR_LIST_SYNTAX', line, re);
});

test('round trip through v2fly keeps attributes', async () => {
  const p = await parse(fixture('v2fly/main'), 'v2fly', { readInclude: v2flyReader });
  const text = await roundTrip(p.entries, 'v2fly');
  assert.match(text, /^domain:google\.com @cn$/m);
  assert.match(text, /^full:www\.example\.net @cn @ads$/m);
});
