// The DoH block list (src/redirect/doh.ts, doh-file.ts) and its place in the plan and the script.
// Traffic through the real daemon is in test/e2e-linux/doh-refresh.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUILTIN_DOH, DohListError, dohList, dohNameMatcher, parseDohList } from '../../src/redirect/doh.ts';
import { readDohList } from '../../src/redirect/doh-file.ts';
import { buildPlan } from '../../src/redirect/plan.ts';
import { dryRunScript } from '../../src/redirect/linux/nft-script.ts';
import { defaultConfig } from '../../src/policy/index.ts';

const ports = { groups: {}, captured: 60000, dns: 53 };

test('parseDohList: names, addresses, CIDRs, hosts-file lines, comments', () => {
  const l = parseDohList('# c\n\n  Doh.Example.  \n198.18.0.40\n2001:2::40/64 # tail\n198.18.0.41 a.example b.example\r\n');
  assert.deepEqual(l.names, ['doh.example', 'a.example', 'b.example']);
  assert.deepEqual(l.cidrs, [
    { family: 4, address: '198.18.0.40', prefix: 32 },
    { family: 6, address: '2001:2::40', prefix: 64 },
    { family: 4, address: '198.18.0.41', prefix: 32 },
  ]);
});

test('parseDohList: hostile lines are errors naming the line', () => {
  for (const [text, line] of [
    ['ok.example\n-bad.example', 2],
    ['1.2.3.4/33', 1],
    ['::1/129', 1],
    ['1.2.3.4/x', 1],
    ['1.2.3.4/8/8', 1],
    ['999.1.1.1', 1],
    ['a..b', 1],
    [`${'a'.repeat(64)}.example`, 1],
    ['x\n\n\nname\u0000.example', 4],
    ['https://dns.example/dns-query', 1],
  ] as const) {
    assert.throws(() => parseDohList(text), (e: unknown) => e instanceof DohListError && e.line === line, JSON.stringify(text));
  }
  assert.throws(() => parseDohList('a.example\nb.example\nc.example', 2), /more than 2 entries/);
});

test('dohList: built-in plus extra, duplicates removed', () => {
  const base = dohList(null);
  assert.equal(base.names.length, BUILTIN_DOH.names.length);
  assert.equal(base.cidrs.length, BUILTIN_DOH.addresses.length);
  const more = dohList(parseDohList('dns.google\n8.8.8.8\nextra.example\n198.18.0.40'));
  assert.equal(more.names.length, base.names.length + 1);
  assert.equal(more.cidrs.length, base.cidrs.length + 1);
});

test('dohNameMatcher: the name and its subdomains, any case, trailing dot; not look-alikes', () => {
  const m = dohNameMatcher(['dns.google', 'cloudflare-dns.com']);
  for (const n of ['dns.google', 'DNS.Google.', 'x.dns.google', 'mozilla.cloudflare-dns.com']) assert.equal(m(n), true, n);
  for (const n of ['google', 'xdns.google', 'dns.google.evil', 'cloudflare-dns.com.example', '']) assert.equal(m(n), false, n);
});

test('plan and script: no DoH sets unless block_doh; with it, TCP and UDP 443 to the set are refused', () => {
  const config = defaultConfig();
  config.enforce.enabled = true;
  const off = buildPlan({ config, ports });
  assert.equal('dohCidrs' in off, false, 'absent when off, so the plan (and the golden script) stay as they were');
  assert.doesNotMatch(dryRunScript(off), /doh/);
  config.enforce.blockDoh = true;
  const on = buildPlan({ config, ports });
  assert.equal(on.dohCidrs?.length, BUILTIN_DOH.addresses.length);
  const s = dryRunScript(on);
  assert.match(s, /set doh4 \{\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\tauto-merge\n\t\telements = \{ [^}]*\b1\.1\.1\.1,/);
  assert.match(s, /meta l4proto \{ tcp, udp \} th dport 443 ip daddr @doh4 goto deny/);
  assert.match(s, /meta l4proto \{ tcp, udp \} th dport 443 ip6 daddr @doh6 goto deny/);
  // The skeleton keeps refusing them.
  assert.match(dryRunScript(on, 'switchyard', 'skeleton'), /@doh4 goto deny/);
  const own = buildPlan({ config, ports, doh: dohList(parseDohList('198.18.0.40')) });
  assert.match(dryRunScript(own), /set doh4 \{[^}]*198\.18\.0\.40 \}/);
});

test('readDohList: off → null; file read and merged; unreadable or bad file → SY_ERR_REDIRECT_PLAN', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sy-doh-'));
  try {
    const config = defaultConfig();
    assert.equal(readDohList(config), null);
    config.enforce.blockDoh = true;
    assert.equal(readDohList(config)?.names.length, BUILTIN_DOH.names.length);
    const file = join(dir, 'list');
    writeFileSync(file, 'doh.example\n198.18.0.40\n');
    config.enforce.dohList = file;
    assert.ok(readDohList(config)?.names.includes('doh.example'));
    writeFileSync(file, 'doh.example\nnot a name!\n');
    assert.throws(() => readDohList(config), (e: any) => e.code === 'SY_ERR_REDIRECT_PLAN' && /line 2/.test(e.message));
    config.enforce.dohList = join(dir, 'missing');
    assert.throws(() => readDohList(config), (e: any) => e.code === 'SY_ERR_REDIRECT_PLAN' && /cannot be read/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('config: [enforce] block_doh and doh_list parse, default off', async () => {
  const { loadConfigFromString } = await import('../../src/policy/index.ts');
  const c = loadConfigFromString('version = 1\n[enforce]\nblock_doh = true\ndoh_list = "/etc/switchyard/doh.list"\n', 'test');
  assert.equal(c.enforce.blockDoh, true);
  assert.equal(c.enforce.dohList, '/etc/switchyard/doh.list');
  assert.equal(defaultConfig().enforce.blockDoh, false);
});
