// The policy commands through the real CLI: exit codes, stdout/stderr content. Each broken config
// from issue 2 runs in a child process (→ one clear error naming what is wrong, exit code 2); the
// other cases call the same dispatcher in-process with stdout/stderr captured, because every
// `node --import tsx` start costs about a second on a busy machine.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RUNNER = fileURLToPath(new URL('./cli-runner.ts', import.meta.url));
const EXAMPLE = fileURLToPath(new URL('./fixtures/policy-router-example.toml', import.meta.url));
let dir = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'switchyard-policy-cli-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function spawnCli(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', RUNNER, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** The same dispatcher in-process; output captured (commands write only via process.std*.write). */
async function cli(...args: string[]) {
  let out = '';
  let err = '';
  const ow = process.stdout.write;
  const ew = process.stderr.write;
  // Only strings are ours: the test runner's own reports to the parent process are Buffers.
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
    if (typeof chunk !== 'string') return ow.call(process.stdout, chunk, ...rest);
    out += chunk;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
    if (typeof chunk !== 'string') return ew.call(process.stderr, chunk, ...rest);
    err += chunk;
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await main(args);
    return { code, out, err };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
}

function file(name: string, content: string | Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

const V1 = 'version = 1\n';
const broken: [string, string | Uint8Array, string, RegExp][] = [
  ['unknown-key.toml', `${V1}[inbound]\nmixed = "127.0.0.1:7890"\nmixxed = "127.0.0.1:7891"\n`, 'SY_ERR_CONFIG', /unknown-key\.toml:4: inbound\.mixxed: unknown key 'mixxed'/],
  ['bad-endpoint.toml', `${V1}[egress.vpn]\ntype = "socks5"\nendpoint = "socks5://127.0.0.1"\n`, 'SY_ERR_CONFIG', /bad-endpoint\.toml:4: egress\.vpn\.endpoint: bad endpoint: .*has no port/],
  ['undeclared.toml', `${V1}[[rule]]\negress = "vpn"\ndomains = ["chatgpt.com"]\n`, 'SY_ERR_CONFIG', /undeclared\.toml:3: rule\[0\]\.egress: egress 'vpn' is not declared/],
  ['huge.toml', new Uint8Array(10 * 1024 * 1024).fill(0x0a), 'SY_ERR_CONFIG_TOO_LARGE', /huge\.toml: config is 10485760 bytes; the limit is 1048576 bytes/],
  ['many-rules.toml', V1 + '[[rule]]\negress="direct"\nports=[443]\n'.repeat(10_001), 'SY_ERR_CONFIG_TOO_MANY_RULES', /many-rules\.toml:2: rule: 10001 rules; at most 10000/],
  ['latin1.toml', new Uint8Array([...new TextEncoder().encode(`${V1}# caf`), 0xe9, 0x0a]), 'SY_ERR_CONFIG_ENCODING', /latin1\.toml: not valid UTF-8 at byte offset 17 \(line 2/],
];

for (const [name, content, code, message] of broken) {
  test(`broken config ${name} → ${code}, exit 2`, async () => {
    const p = file(name, content);
    const runs = [spawnCli('check-config', p), await cli('explain', '--config', p, '--process', 'zen.exe')];
    if (name === 'unknown-key.toml') runs.push(spawnCli('explain', '--config', p, '--process', 'zen.exe'));
    for (const r of runs) {
      assert.equal(r.code, 2, r.err);
      assert.equal(r.out, '');
      assert.match(r.err, new RegExp(`^switchyard: ${code}: `));
      assert.match(r.err, message);
    }
    if (name === 'many-rules.toml') assert.ok(readFileSync(p).length < 1024 * 1024, 'a small file');
  });
}

test('explain on the policy-router-rs example, text and JSON', async () => {
  const t = await cli('explain', '--config', EXAMPLE, '--process', 'zen.exe', '--domain', 'youtube.com');
  assert.equal(t.code, 0, t.err);
  assert.match(t.out, /^config: file .*policy-router-example\.toml$/m);
  assert.match(t.out, /process zen\.exe, domain youtube\.com, tcp → egress proxy by rule#2 \(domain youtube\.com matches youtube\.com\)/);
  assert.match(t.out, /lost:\n  rule#4 → vpn \(app zen\.exe matches zen\.exe\): domain rules come before app rules/);
  assert.match(t.out, /notice: read as a policy-router-rs config/);
  const j = await cli('explain', '--config', EXAMPLE, '--process', 'zen.exe', '--domain', 'chatgpt.com', '--format', 'json');
  assert.equal(j.code, 0, j.err);
  const o = JSON.parse(j.out);
  assert.equal(o.egress, 'vpn');
  assert.equal(o.rule.id, 'rule#1');
  assert.ok(Array.isArray(o.candidates));
  assert.equal(o.candidates[0].egress, 'vpn');
  const d = JSON.parse((await cli('explain', '--config', EXAMPLE, '--process', 'notepad.exe', '--domain', 'example.org', '--format', 'json')).out);
  assert.equal(d.egress, 'direct');
  assert.equal(d.rule, null);
  assert.equal(d.stage, 'default');
  assert.deepEqual(d.candidates, []);
});

test('explain without --config uses the embedded default and says so', async () => {
  const r = await cli('explain', '--process', 'zen.exe', '--domain', 'youtube.com', '--ip', '203.0.113.5', '--port', '443');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^config: embedded default config/m);
  assert.match(r.out, /→ egress direct by the default/);
});

test('usage errors exit 2; --help exits 0', async () => {
  for (const args of [
    ['explain', '--bogus'],
    ['explain', '--port', '99999', '--process', 'x'],
    ['explain', '--ip', '1.2.3', '--process', 'x'],
    ['explain', '--network', 'sctp', '--process', 'x'],
    ['explain', '--format', 'yaml', '--process', 'x'],
    ['explain'],
    ['check-config'],
    ['config', 'frobnicate', 'x'],
  ]) {
    const r = await cli(...args);
    assert.equal(r.code, 2, `${args.join(' ')} → ${r.code} ${r.err}`);
    assert.match(r.err, /SY_ERR_USAGE/);
  }
  for (const c of ['explain', 'check-config', 'config']) {
    const r = await cli(c, '--help');
    assert.equal(r.code, 0);
    assert.match(r.out, /^usage: switchyard /);
  }
  const missing = await cli('check-config', join(dir, 'nope.toml'));
  assert.equal(missing.code, 2);
  assert.match(missing.err, /SY_ERR_CONFIG_READ: cannot read config .*nope\.toml: ENOENT/);
});

test('check-config accepts good configs; config convert writes a v1 file that decides the same', async () => {
  const ok = await cli('check-config', EXAMPLE);
  assert.equal(ok.code, 0, ok.err);
  assert.match(ok.out, /^ok: .*4 rules, 1 exempt entries, egresses vpn, proxy, direct, block; default direct/);
  const out = join(dir, 'converted.toml');
  const conv = await cli('config', 'convert', EXAMPLE, '--output', out);
  assert.equal(conv.code, 0, conv.err);
  assert.match(conv.err, /notice: read as a policy-router-rs config/);
  const text = readFileSync(out, 'utf8');
  assert.match(text, /^version = 1$/m);
  const check = await cli('check-config', out, '--format', 'json');
  assert.equal(check.code, 0, check.err);
  assert.deepEqual(JSON.parse(check.out).notices, []);
  for (const [proc, dom] of [['zen.exe', 'youtube.com'], ['zen.exe', 'chatgpt.com'], ['ciadpi.exe', 'youtube.com'], ['x', 'e.mail.ru']]) {
    const a = JSON.parse((await cli('explain', '--config', EXAMPLE, '--process', proc!, '--domain', dom!, '--format', 'json')).out);
    const b = JSON.parse((await cli('explain', '--config', out, '--process', proc!, '--domain', dom!, '--format', 'json')).out);
    assert.deepEqual([b.egress, b.stage, b.rule?.id], [a.egress, a.stage, a.rule?.id]);
  }
});
