// listsToRules: [[list]] definitions → one RuleConfig per unique entry with {list, file, line},
// dedupe across lists, conflicts, a failed list contributing nothing, definition checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { listsToRules, validateListDef, type ListDef } from '../../src/lists/index.ts';
import { ListError } from '../../src/errors.ts';
import { FIXTURES } from './helpers.ts';

const files: Record<string, string> = {
  '/l/a.txt': 'a.example\nshared.example\n10.0.0.0/8\na.example\n',
  '/l/b.txt': 'shared.example\nb.example\n10.0.0.0/8\n',
  '/l/bad.txt': 'ok.example\nnot a line\n',
  '/l/nrr.txt': '--- Domains\nads.example +block\nv.example\n--- Windows\napp.exe\n--- Linux\napp\n',
};
const reader = async (p: string): Promise<string> => {
  const f = files[p];
  if (f === undefined) throw new Error(`ENOENT: ${p}`);
  return f;
};

test('one rule per unique entry, origins name list, file and line, indexes continue the config\'s', async () => {
  const defs: ListDef[] = [
    { name: 'a', path: '/l/a.txt', format: 'plain', egress: 'vpn' },
    { name: 'b', path: '/l/b.txt', format: 'plain', egress: 'vpn' },
  ];
  const r = await listsToRules(defs, reader, { startIndex: 5 });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.rules.map((x) => [x.index, x.egress, x.domains[0]?.value ?? x.cidrs[0]?.address, x.origin]), [
    [5, 'vpn', 'a.example', { list: 'a', file: '/l/a.txt', line: 1 }],
    [6, 'vpn', 'shared.example', { list: 'a', file: '/l/a.txt', line: 2 }],
    [7, 'vpn', '10.0.0.0', { list: 'a', file: '/l/a.txt', line: 3 }],
    [8, 'vpn', 'b.example', { list: 'b', file: '/l/b.txt', line: 2 }],
  ]);
  assert.deepEqual(r.counts, { entries: 7, unique: 4, duplicates: 3, skipped: 0, disabled: 0 });
  assert.deepEqual(r.lists.map((l) => [l.name, l.entries, l.loaded, l.duplicates]), [['a', 4, 3, 1], ['b', 3, 1, 2]]);
  assert.deepEqual(r.conflicts, [], 'same egress: duplicates, not conflicts');
  const rule = r.rules[0]!;
  assert.deepEqual([rule.name, rule.apps, rule.cidrs, rule.ports, rule.network], [null, [], [], [], null]);
});

test('the same entry sent to two egresses: the first list wins and the conflict is reported', async () => {
  const r = await listsToRules([
    { name: 'a', path: '/l/a.txt', format: 'plain', egress: 'vpn' },
    { name: 'b', path: '/l/b.txt', format: 'plain', egress: 'dpi' },
  ], reader);
  assert.deepEqual(r.conflicts.map((c) => [c.pattern, c.kept.list, c.kept.egress, c.dropped.list, c.dropped.line, c.dropped.egress]), [
    ['suffix shared.example', 'a', 'vpn', 'b', 1, 'dpi'],
    ['cidr 10.0.0.0/8', 'a', 'vpn', 'b', 3, 'dpi'],
  ]);
});

test('a failing list contributes nothing and is reported; the others still load', async () => {
  const r = await listsToRules([
    { name: 'a', path: '/l/a.txt', format: 'plain', egress: 'vpn' },
    { name: 'bad', path: '/l/bad.txt', format: 'plain', egress: 'vpn' },
    { name: 'gone', path: '/l/missing.txt', format: 'plain', egress: 'vpn' },
    { name: 'b', path: '/l/b.txt', format: 'plain', egress: 'vpn' },
  ], reader);
  assert.deepEqual(r.errors.map((e) => [e.code, e.list, e.line]), [['SY_ERR_LIST_SYNTAX', 'bad', 2], ['SY_ERR_LIST_READ', 'gone', undefined]]);
  assert.ok(!r.rules.some((x) => x.origin.list === 'bad'), 'no half list');
  assert.ok(r.rules.some((x) => x.domains[0]?.value === 'b.example'));
  assert.ok(!r.rules.some((x) => x.domains[0]?.value === 'ok.example'));
});

test('a failed list does not leave its entries marked as seen', async () => {
  files['/l/bad2.txt'] = 'only-in-bad.example\nbroken line\n';
  files['/l/c.txt'] = 'only-in-bad.example\n';
  const r = await listsToRules([
    { name: 'bad2', path: '/l/bad2.txt', format: 'plain', egress: 'vpn' },
    { name: 'c', path: '/l/c.txt', format: 'plain', egress: 'vpn' },
  ], reader);
  assert.equal(r.errors.length, 1);
  assert.deepEqual(r.rules.map((x) => [x.domains[0]!.value, x.origin.list]), [['only-in-bad.example', 'c']]);
});

test('+block entries take the block egress; platform filters NetRuleRouter app sections', async () => {
  const all = await listsToRules([{ name: 'n', path: '/l/nrr.txt', format: 'netrulerouter', egress: 'vpn' }], reader);
  assert.deepEqual(all.rules.map((x) => [x.egress, x.domains[0]?.value ?? x.apps[0]?.value]), [['block', 'ads.example'], ['vpn', 'v.example'], ['vpn', 'app.exe'], ['vpn', 'app']]);
  const linux = await listsToRules([{ name: 'n', path: '/l/nrr.txt', format: 'netrulerouter', egress: 'vpn' }], reader, { platform: 'linux' });
  assert.deepEqual(linux.rules.map((x) => x.domains[0]?.value ?? x.apps[0]?.value), ['ads.example', 'v.example', 'app']);
});

test('v2fly includes resolve next to the list file; relative paths use baseDir', async () => {
  const r = await listsToRules([{ name: 'geo', path: 'v2fly/main', format: 'v2fly', egress: 'vpn', attrs: ['cn'] }], (p) => readFile(p), { baseDir: FIXTURES });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.rules.map((x) => [x.domains[0]!.value, x.origin.file, x.origin.line]), [
    ['google.com', 'google', 1],
    ['gstatic.com', 'gstatic', 1],
    ['www.example.net', join(FIXTURES, 'v2fly/main'), 6],
  ]);
});

test('the total entry limit across lists', async () => {
  const r = await listsToRules([
    { name: 'a', path: '/l/a.txt', format: 'plain', egress: 'vpn' },
    { name: 'b', path: '/l/b.txt', format: 'plain', egress: 'vpn' },
  ], reader, { maxTotalEntries: 3 });
  assert.deepEqual(r.errors.map((e) => [e.code, e.list]), [['SY_ERR_LIST_LIMIT', 'b']]);
  assert.equal(r.rules.length, 3);
});

test('list definitions are checked', async () => {
  const bad: [Partial<ListDef>, RegExp][] = [
    [{ name: '', path: '/x', format: 'plain', egress: 'v' }, /list name/],
    [{ name: '../x', path: '/x', format: 'plain', egress: 'v' }, /list name/],
    [{ name: 'x', format: 'plain', egress: 'v' }, /exactly one of path and url/],
    [{ name: 'x', path: '/x', url: 'https://a/b', format: 'plain', egress: 'v' }, /exactly one of path and url/],
    [{ name: 'x', url: 'http://a/b', format: 'plain', egress: 'v' }, /https/],
    [{ name: 'x', path: '/x', format: 'hosts', egress: 'v' }, /format 'hosts'/],
    [{ name: 'x', path: '/x', format: 'plain', egress: '' }, /egress is required/],
    [{ name: 'x', path: '/x', format: 'plain', egress: 'nope' }, /not declared/],
    [{ name: 'x', path: '/x', format: 'plain', egress: 'v', attrs: ["cn"] }, /format = "v2fly" only/],
    [{ name: 'x', url: 'https://a/b', format: 'plain', egress: 'v', sha256: 'abc' }, /64 hex/],
    [{ name: 'x', path: '/x', format: 'plain', egress: 'v', unsupported: 'ignore' as 'skip' }, /unsupported/],
    [{ name: 'x', path: '/x', format: 'plain', egress: 'v', maxBytes: 10 }, /url lists only/],
    [{ name: 'x', url: 'https://a/b', format: 'plain', egress: 'v', maxBytes: -1 }, /positive integer/],
    [{ name: 'x', url: 'https://a/b', format: 'plain', egress: 'v', via: 'tor' }, /via egress 'tor' is not declared/],
  ];
  for (const [def, re] of bad) {
    assert.throws(() => validateListDef(def as ListDef, new Set(['v', 'direct', 'block'])), (e: unknown) => e instanceof ListError && e.code === 'SY_ERR_LIST_DEF' && re.test(e.message), JSON.stringify(def));
  }
  const dup = await listsToRules([
    { name: 'a', path: '/l/a.txt', format: 'plain', egress: 'v' },
    { name: 'a', path: '/l/b.txt', format: 'plain', egress: 'v' },
  ], reader);
  assert.match(dup.errors[0]!.message, /used twice/);
});

test('granularity list: destination-only entries share one rule per list and egress; lines kept aside', async () => {
  files['/l/g.txt'] = 'a.example\n10.0.0.0/8\nb.example\nshared.example\n';
  files['/l/nrr2.txt'] = '--- Domains\nads.example +block\nv.example\n--- Linux\napp\n';
  const r = await listsToRules([
    { name: 'a', path: '/l/a.txt', format: 'plain', egress: 'vpn' },
    { name: 'g', path: '/l/g.txt', format: 'plain', egress: 'dpi' },
    { name: 'n', path: '/l/nrr2.txt', format: 'netrulerouter', egress: 'vpn' },
  ], reader, { granularity: 'list', startIndex: 2 });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.rules.map((x) => [x.index, x.egress, x.domains.map((d) => d.value), x.cidrs.map((c) => c.address), x.apps.map((a) => a.value), x.origin]), [
    [2, 'vpn', ['a.example', 'shared.example'], [], [], { list: 'a', file: '/l/a.txt' }],
    [3, 'vpn', [], ['10.0.0.0'], [], { list: 'a', file: '/l/a.txt' }],
    [4, 'dpi', ['b.example'], [], [], { list: 'g', file: '/l/g.txt' }],
    [5, 'vpn', [], [], ['app'], { list: 'n', file: '/l/nrr2.txt', line: 5 }], // apps stay one rule per entry
    [6, 'block', ['ads.example'], [], [], { list: 'n', file: '/l/nrr2.txt' }],
    [7, 'vpn', ['v.example'], [], [], { list: 'n', file: '/l/nrr2.txt' }],
  ]);
  assert.deepEqual([...r.patternLines.get(2)!.domains], [1, 2]);
  assert.deepEqual([...r.patternLines.get(3)!.cidrs], [3]);
  assert.deepEqual([...r.patternLines.get(4)!.domains], [3]);
  assert.deepEqual(r.counts, { entries: 11, unique: 7, duplicates: 4, skipped: 0, disabled: 0 });
  assert.deepEqual(r.conflicts.map((c) => [c.pattern, c.kept.list, c.dropped.list, c.dropped.line]), [['suffix a.example', 'a', 'g', 1], ['cidr 10.0.0.0/8', 'a', 'g', 2], ['suffix shared.example', 'a', 'g', 4]]);
});

test('granularity auto (default): small lists one rule per entry in file order, big lists grouped', async () => {
  files['/l/big.txt'] = 'n1.example\nn2.example\n192.0.2.0/24\nn3.example\nn4.example\n';
  files['/l/mixed.txt'] = '--- Domains\nm1.example\n--- Linux\nmapp\n--- Domains\nm2.example\n';
  const r = await listsToRules([
    { name: 'mixed', path: '/l/mixed.txt', format: 'netrulerouter', egress: 'vpn' },
    { name: 'big', path: '/l/big.txt', format: 'plain', egress: 'vpn' },
    { name: 'dup', path: '/l/mixed.txt', format: 'netrulerouter', egress: 'dpi' },
  ], reader, { groupAbove: 3 });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.rules.map((x) => [x.domains.map((d) => d.value).join(',') || x.cidrs.map((c) => c.address).join(',') || x.apps[0]?.value, x.origin.line ?? '-']), [
    ['m1.example', 2], ['mapp', 4], ['m2.example', 6], // file order kept
    ['n1.example,n2.example,n3.example,n4.example', '-'], ['192.0.2.0', '-'], // 4 > 3: grouped
  ]);
  // The third list repeats the first with another egress: conflicts name the kept lines.
  assert.deepEqual(r.conflicts.map((c) => [c.kept.line, c.dropped.line]), [[2, 2], [4, 4], [6, 6]]);
});
