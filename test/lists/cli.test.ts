// `switchyard lists convert`, run as a process: conversions between every format pair that can
// hold the fixture, round trips through files, errors with line numbers and exit codes, --help.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, v2flyReader } from './helpers.ts';
import { exportList, parseList, type ListFormat } from '../../src/lists/index.ts';

const ROOT = join(FIXTURES, '..', '..', '..');
const tmp = mkdtempSync(join(tmpdir(), 'sy-lists-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function cli(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', "import('./src/cli/main.ts').then(async (m) => { process.exitCode = await m.main(process.argv.slice(1)); })", ...args], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

// Many invocations in one child process (process start-up dominates on a loaded machine): each
// runs main() with stdout/stderr captured, and the child prints the results as JSON.
const BATCH = `
const m = await import('./src/cli/main.ts');
const runs = JSON.parse(process.argv[1]);
const results = [];
const realOut = process.stdout.write.bind(process.stdout);
const realErr = process.stderr.write.bind(process.stderr);
for (const args of runs) {
  let out = '', err = '';
  process.stdout.write = (c) => { out += c; return true; };
  process.stderr.write = (c) => { err += c; return true; };
  let code;
  try { code = await m.main(args); } finally { process.stdout.write = realOut; process.stderr.write = realErr; }
  results.push({ code, out, err });
}
realOut(JSON.stringify(results));
`;
function cliBatch(runs: string[][]): { code: number; out: string; err: string }[] {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', BATCH, JSON.stringify(runs)], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { code: number; out: string; err: string }[];
}

test('--help and usage errors', () => {
  const [h, h2, u, f] = cliBatch([
    ['lists', '--help'],
    ['lists', 'convert', '--help'],
    ['lists', 'convert', join(FIXTURES, 'plain.txt'), '--from', 'hosts'],
    ['lists', 'frobnicate'],
  ]);
  assert.equal(h!.code, 0);
  assert.match(h!.out, /switchyard lists convert FILE --from FORMAT/);
  assert.equal(h2!.code, 0);
  assert.equal(u!.code, 2);
  assert.match(u!.err, /SY_ERR_USAGE: --from: 'hosts' is not one of plain, v2fly/);
  assert.equal(f!.code, 2);
});

test('a round trip through files: plain → sing-box → plain gives the same list', () => {
  const sb = join(tmp, 'plain.json');
  const a = cli('lists', 'convert', join(FIXTURES, 'plain.txt'), '--from', 'plain', '--to', 'singbox', '--out', sb);
  assert.equal(a.code, 0, a.err);
  assert.match(a.err, /9 entries \(plain\), 9 written as singbox/);
  const b = cli('lists', 'convert', sb, '--from', 'singbox', '--to', 'plain');
  assert.equal(b.code, 0, b.err);
  // Same entries; sing-box groups by kind, so compare as sets.
  const original = cli('lists', 'convert', join(FIXTURES, 'plain.txt'), '--from', 'plain', '--to', 'plain').out;
  assert.deepEqual(b.out.trim().split('\n').sort(), original.trim().split('\n').sort());
});

test('every format converts to itself and back unchanged (second pass is a fixed point)', async () => {
  const cases: [string, string, string[]][] = [
    ['plain.txt', 'plain', []],
    ['v2fly/main', 'v2fly', []],
    ['singbox.json', 'singbox', []],
    ['clash-domain.yaml', 'clash-domain', []],
    ['clash-domain.txt', 'clash-domain', ['--clash-syntax', 'text']],
    ['clash-ipcidr.yaml', 'clash-ipcidr', []],
    ['clash-classical.yaml', 'clash-classical', []],
    ['netrulerouter.txt', 'netrulerouter', []],
  ];
  const results = cliBatch(cases.map(([file, fmt, extra]) => ['lists', 'convert', join(FIXTURES, file), '--from', fmt, '--to', fmt, ...extra]));
  for (const [i, [file, fmt, extra]] of cases.entries()) {
    const one = results[i]!;
    assert.equal(one.code, 0, `${file}: ${one.err}`);
    // The second pass in-process (one process start-up per format is enough to test the CLI).
    const again = await parseList(one.out, fmt as ListFormat, { list: 'again', readInclude: v2flyReader });
    assert.equal(exportList(again.entries, fmt as ListFormat, extra.length ? { clashSyntax: 'text' } : {}), one.out, `${file} is a fixed point after one pass`);
  }
});

test('cross-format: v2fly (with includes) → Clash domain YAML; NetRuleRouter → clash-classical refuses +block with the line', () => {
  const r = cli('lists', 'convert', join(FIXTURES, 'v2fly/google'), '--from', 'v2fly', '--to', 'clash-domain');
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, "payload:\n  - '+.google.com'\n  - 'www.google.com'\n  - '+.gstatic.com'\n");
  const n = cli('lists', 'convert', join(FIXTURES, 'netrulerouter.txt'), '--from', 'netrulerouter', '--to', 'clash-classical');
  assert.equal(n.code, 2);
  assert.match(n.err, /SY_ERR_LIST_EXPORT: .*netrulerouter\.txt line 6: cannot write full ads\.example\.com \+block as clash-classical/);
});

test('parse errors exit 2 with file and line; --unsupported skip counts; --format json', () => {
  const bad = join(tmp, 'bad.txt');
  writeFileSync(bad, 'a.example\n\nnot valid\n');
  const r = cli('lists', 'convert', bad, '--from', 'plain');
  assert.equal(r.code, 2);
  assert.match(r.err, /SY_ERR_LIST_SYNTAX: list '.*bad\.txt' .*bad\.txt line 3: 'not valid' holds whitespace/);

  const cls = join(tmp, 'cls.txt');
  writeFileSync(cls, 'DOMAIN,a.example\nGEOIP,CN\n');
  const j = cli('lists', 'convert', cls, '--from', 'clash-classical', '--to', 'plain', '--unsupported', 'skip', '--format', 'json');
  assert.equal(j.code, 0, j.err);
  const doc = JSON.parse(j.out) as { entries: number; skipped: { line: number; reason: string }[]; output: string };
  assert.equal(doc.entries, 1);
  assert.deepEqual(doc.skipped.map((s) => s.line), [2]);
  assert.equal(doc.output, 'full:a.example\n');
});

test('--dedupe and a check without --to', () => {
  const dup = join(tmp, 'dup.txt');
  writeFileSync(dup, 'a.example\nb.example\na.example\n');
  const d = cli('lists', 'convert', dup, '--from', 'plain', '--to', 'plain', '--dedupe');
  assert.equal(d.out, 'a.example\nb.example\n');
  assert.match(d.err, /1 duplicates dropped/);
  const c = cli('lists', 'convert', dup, '--from', 'plain');
  assert.equal(c.code, 0);
  assert.equal(c.out, '');
  assert.match(c.err, /3 entries \(plain\)/);
  assert.equal(readFileSync(dup, 'utf8'), 'a.example\nb.example\na.example\n');
});
