// Config v1 loading: normalisation, and every kind of broken config → one clear ConfigError with
// its own code, naming the key path and line. Hostile inputs must fail cleanly, never crash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../src/errors.ts';
import { compilePolicy, loadConfigFromBytes, loadConfigFromString, limits } from '../../src/policy/index.ts';
import { firstInvalidUtf8 } from '../../src/policy/config/utf8.ts';
import { indexLines } from '../../src/policy/config/locate.ts';

const full = loadConfigFromBytes(readFileSync(new URL('./fixtures/full.toml', import.meta.url)), 'full.toml');

/** Asserts that loading fails with `code` and a message matching every regexp. */
function rejects(text: string | Uint8Array, code: string, ...patterns: RegExp[]): ConfigError {
  let err: unknown;
  try {
    if (typeof text === 'string') loadConfigFromString(text, 'c.toml');
    else loadConfigFromBytes(text, 'c.toml');
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  assert.equal(err.exitCode, 2);
  for (const p of patterns) assert.match(err.message, p);
  return err;
}

const V1 = 'version = 1\n';

test('the full sample loads with every key normalised', () => {
  assert.equal(full.default, 'vpn');
  assert.deepEqual(full.dns.listen, [{ host: '127.0.0.1', port: 1053 }, { host: '::1', port: 1053 }]);
  assert.equal(full.dns.blockAnswer, 'null');
  assert.deepEqual(full.inbound.auth, { username: 'me', password: 'secret' });
  assert.equal(full.enforce.lan, 'policy');
  const vpn = full.egress.vpn!;
  assert.ok(vpn.type === 'socks5');
  assert.deepEqual(vpn.auth, { username: 'user', password: 'p@ss' }); // percent-decoded
  assert.equal(vpn.fallback, 'backup');
  assert.ok(full.egress.backup?.type === 'http' && full.egress.backup.endpoint.host === '::1');
  assert.equal(full.egress.wan?.type, 'interface');
  assert.ok(full.egress.direct && full.egress.block, 'built-in egresses always exist');
  assert.deepEqual(full.rules[1]!.domains, [
    { kind: 'suffix', value: 'mail.ru' },
    { kind: 'suffix', value: 'xn--e1afmkfd.xn--p1ai' }, // Пример.РФ. → lower case, no dot, punycode
  ]);
  assert.deepEqual(full.rules[3]!.apps, [{ kind: 'glob', value: 'c:/games/**/*.exe' }, { kind: 'group', value: 'wan' }]);
  assert.deepEqual(full.rules[3]!.ports, [{ from: 443, to: 443 }, { from: 27000, to: 27100 }]);
  assert.equal(full.rules[0]!.origin.line, 72);
  assert.equal(full.egress.vpn!.line, 41);
});

test('defaults apply when sections are missing', () => {
  const c = loadConfigFromString(V1, 'min.toml');
  assert.equal(c.default, 'direct');
  assert.deepEqual(c.dns.listen, [{ host: '127.0.0.1', port: 1053 }]);
  assert.deepEqual(c.inbound.mixed, { host: '127.0.0.1', port: 7890 });
  assert.equal(c.enforce.enabled, false);
  assert.equal(c.enforce.lan, 'direct');
  assert.equal(c.control.group, 'switchyard');
  assert.deepEqual(Object.keys(c.egress).sort(), ['block', 'direct']);
});

test('app patterns: Windows paths are normalised so C:\\X\\ZEN.EXE matches zen.exe', () => {
  const p = compilePolicy(full);
  const c = loadConfigFromString(`${V1}[[rule]]\negress = "block"\napps = ["zen.exe", 'C:\\Tools\\App.EXE', "/usr/bin/curl", "/opt/**/tg"]\n`, 'a.toml');
  const q = compilePolicy(c);
  assert.equal(q.decide({ network: 'tcp', process: 'C:\\X\\ZEN.EXE' }).egress, 'block');
  assert.equal(q.decide({ network: 'tcp', exe: 'c:/tools/app.exe' }).egress, 'block');
  assert.equal(q.decide({ network: 'tcp', exe: 'C:\\TOOLS\\APP.EXE' }).egress, 'block');
  assert.equal(q.decide({ network: 'tcp', exe: '/usr/bin/curl' }).egress, 'block');
  assert.equal(q.decide({ network: 'tcp', exe: '/USR/BIN/CURL' }).egress, 'direct', 'Linux paths stay case-sensitive');
  assert.equal(q.decide({ network: 'tcp', exe: '/opt/a/b/tg' }).egress, 'block');
  assert.equal(p.decide({ network: 'udp', exe: 'C:\\Games\\Steam\\game.exe', port: 27015 }).egress, 'wan');
  assert.equal(p.decide({ network: 'tcp', exe: 'C:\\Games\\Steam\\game.exe', port: 27015 }).egress, 'vpn', 'network must match too');
});

test('unknown keys are named with path and line', () => {
  rejects(`${V1}colour = "red"\n`, 'SY_ERR_CONFIG', /c\.toml:2: colour: unknown key 'colour'/);
  rejects(`${V1}[dns]\nlisten = []\n\n  cache = { max_entries = 1, maxttl = 3 }\n`, 'SY_ERR_CONFIG', /c\.toml:5: dns\.cache\.maxttl: unknown key/);
  rejects(`${V1}[[rule]]\negress = "direct"\ndomains = ["a.com"]\n[[rule]]\negress = "direct"\ndomain = ["b.com"]\n`, 'SY_ERR_CONFIG', /c\.toml:7: rule\[1\]\.domain: unknown key 'domain'/);
  rejects(`${V1}[egress.vpn]\ntype = "socks5"\nendpoint = "socks5://127.0.0.1:1"\nhealth.target = "1.1.1.1:443"\nhealth.bogus = 1\n`, 'SY_ERR_CONFIG', /c\.toml:6: egress\.vpn\.health\.bogus: unknown key/);
});

test('wrong types name the expected type', () => {
  rejects(`${V1}[dns]\ntimeout_ms = "5s"\n`, 'SY_ERR_CONFIG', /c\.toml:3: dns\.timeout_ms: expected number, got string "5s"/);
  rejects(`${V1}[[rule]]\negress = "direct"\ndomains = "a.com"\n`, 'SY_ERR_CONFIG', /c\.toml:4: rule\[0\]\.domains: expected array/);
  rejects(`${V1}[enforce]\nlan = "maybe"\n`, 'SY_ERR_CONFIG', /c\.toml:3: enforce\.lan: must be one of "direct", "policy"/);
  rejects(`${V1}[[rule]]\ndomains = ["a.com"]\n`, 'SY_ERR_CONFIG', /rule\[0\]\.egress: required key is missing/);
});

test('bad endpoints and URLs', () => {
  const eg = (endpoint: string, type = 'socks5') => `${V1}[egress.x]\ntype = "${type}"\nendpoint = "${endpoint}"\n`;
  rejects(eg('socks5://127.0.0.1'), 'SY_ERR_CONFIG', /c\.toml:4: egress\.x\.endpoint: bad endpoint: .* has no port/);
  rejects(eg('http://127.0.0.1:8080'), 'SY_ERR_CONFIG', /egress\.x\.endpoint: .*scheme 'http:\/\/' is not socks5:\/\//);
  rejects(eg('socks5://127.0.0.1:70000'), 'SY_ERR_CONFIG', /port 70000 is not in 1\.\.65535/);
  rejects(eg('socks5://bad host:1080'), 'SY_ERR_CONFIG', /bad host/);
  rejects(eg('socks5://::1:1080'), 'SY_ERR_CONFIG', /egress\.x\.endpoint/);
  rejects(eg('127.0.0.1:1080'), 'SY_ERR_CONFIG', /not a URL like socks5:\/\/host:port/);
  rejects(`${V1}[egress.x]\ntype = "http"\n`, 'SY_ERR_CONFIG', /c\.toml:2: egress\.x\.endpoint: type http needs an endpoint/);
  rejects(`${V1}[egress.x]\ntype = "direct"\nendpoint = "socks5://1.2.3.4:5"\n`, 'SY_ERR_CONFIG', /c\.toml:4: egress\.x\.endpoint: 'endpoint' applies only to type socks5 or http/);
  rejects(`${V1}[dns]\nupstreams = ["quic://1.1.1.1"]\n`, 'SY_ERR_CONFIG', /c\.toml:3: dns\.upstreams\[0\]: scheme 'quic:\/\/'/);
  rejects(`${V1}[dns]\nlisten = ["localhost:53"]\n`, 'SY_ERR_CONFIG', /dns\.listen\[0\]: 'localhost' is not an IP address/);
  rejects(`${V1}[inbound]\nmixed = "127.0.0.1"\n`, 'SY_ERR_CONFIG', /inbound\.mixed: .*not host:port/);
  // Credentials in a bad URL are not echoed.
  const e = rejects(eg('socks5://user:hunter2@'), 'SY_ERR_CONFIG');
  assert.doesNotMatch(e.message, /hunter2/);
});

test('undeclared egress names', () => {
  rejects(`${V1}[[rule]]\negress = "vpn"\ndomains = ["a.com"]\n`, 'SY_ERR_CONFIG', /c\.toml:3: rule\[0\]\.egress: egress 'vpn' is not declared \(declared: direct, block; add \[egress\.vpn\]\)/);
  rejects(`${V1}default = "vpn"\n`, 'SY_ERR_CONFIG', /c\.toml:2: default: egress 'vpn' is not declared/);
  rejects(`${V1}[egress.a]\ntype = "socks5"\nendpoint = "socks5://1.2.3.4:5"\nfallback = "b"\n`, 'SY_ERR_CONFIG', /c\.toml:5: egress\.a\.fallback: egress 'b' is not declared/);
  rejects(`${V1}[egress.a]\ntype = "direct"\nfallback = "b"\n[egress.b]\ntype = "direct"\nfallback = "a"\n`, 'SY_ERR_CONFIG', /fallback chain loops/);
  rejects(`${V1}[egress.direct]\ntype = "socks5"\nendpoint = "socks5://1.2.3.4:5"\n`, 'SY_ERR_CONFIG', /built-in direct egress/);
});

test('patterns: empty, malformed, unsafe', () => {
  const dom = (d: string) => `${V1}[[rule]]\negress = "direct"\ndomains = [${JSON.stringify(d)}]\n`;
  rejects(dom(''), 'SY_ERR_CONFIG', /c\.toml:4: rule\[0\]\.domains\[0\]: empty domain name/);
  rejects(dom('a b.com'), 'SY_ERR_CONFIG', /whitespace/);
  rejects(dom('*.a.com'), 'SY_ERR_CONFIG', /no wildcards/);
  rejects(dom('a..com'), 'SY_ERR_CONFIG', /empty label/);
  rejects(dom('keyword:'), 'SY_ERR_CONFIG', /empty keyword/);
  rejects(dom('glob:a.com'), 'SY_ERR_CONFIG', /unknown pattern prefix 'glob:'/);
  rejects(dom('regexp:(a+)+$'), 'SY_ERR_CONFIG', /a repeated group may only be optional/);
  rejects(dom('regexp:(\\w*)*x'), 'SY_ERR_CONFIG', /a repeated group/);
  rejects(dom('regexp:(a)\\1'), 'SY_ERR_CONFIG', /backreferences/);
  rejects(dom('regexp:.*a.*a.*x'), 'SY_ERR_CONFIG', /more than 2 variable quantifiers/); // O(n^4): 1.6 s per test seen
  rejects(dom('regexp:.*.*x'), 'SY_ERR_CONFIG', /unanchored pattern/);
  rejects(dom('regexp:^(a|a)+x'), 'SY_ERR_CONFIG', /a repeated group may only be optional/);
  rejects(dom('regexp:^(a?){20}'), 'SY_ERR_CONFIG', /a repeated group/);
  rejects(dom('regexp:^(a|b)(c|d)(e|f)(g|h)'), 'SY_ERR_CONFIG', /more than 3 alternatives/);
  rejects(dom('regexp:(?<=a)b'), 'SY_ERR_CONFIG', /lookarounds/);
  for (const ok of ['^(.+\\.)?google\\.com$', '^(www|m|mobile)\\.', 'ru$', '^(?:ab){3}c', '^r[0-9]+---sn-[a-z0-9-]+\\.googlevideo\\.com$']) {
    assert.equal(loadConfigFromString(dom(`regexp:${ok}`), 'c.toml').rules[0]!.domains[0]!.kind, 'regexp', ok);
  }
  rejects(dom('regexp:(unclosed'), 'SY_ERR_CONFIG', /does not compile/);
  rejects(`${V1}[[rule]]\negress = "direct"\napps = ["relative/path/app"]\n`, 'SY_ERR_CONFIG', /must be absolute/);
  rejects(`${V1}[[rule]]\negress = "direct"\ncidrs = ["10.0.0.1/8"]\n`, 'SY_ERR_CONFIG', /host bits set: did you mean 10\.0\.0\.0\/8\?/);
  rejects(`${V1}[[rule]]\negress = "direct"\ncidrs = ["10.0.0.0/33"]\n`, 'SY_ERR_CONFIG', /over 32/);
  rejects(`${V1}[[rule]]\negress = "direct"\nports = ["90-80"]\n`, 'SY_ERR_CONFIG', /range start is above its end/);
  rejects(`${V1}[[rule]]\negress = "direct"\nports = [0]\n`, 'SY_ERR_CONFIG', /rule\[0\]\.ports\[0\]/);
  rejects(`${V1}[[rule]]\negress = "direct"\n`, 'SY_ERR_CONFIG', /a rule needs at least one condition/);
  rejects(`${V1}[[rule]]\negress = "direct"\ndomains = []\n`, 'SY_ERR_CONFIG', /empty list/);
  rejects(`${V1}[[rule]]\nname = "x"\negress = "direct"\nports = [1]\n[[rule]]\nname = "x"\negress = "direct"\nports = [2]\n`, 'SY_ERR_CONFIG', /c\.toml:7: rule\[1\]\.name: rule name 'x' is already used by rule\[0\]/);
});

test('several problems are listed together, each with its line', () => {
  const e = rejects(`${V1}[[rule]]\negress = "nope"\ndomains = ["ok.com",\n  "bad domain",\n  "regexp:(a+)+"]\n`, 'SY_ERR_CONFIG');
  assert.match(e.message, /3 problems/);
  assert.match(e.message, /c\.toml:3: rule\[0\]\.egress/);
  assert.match(e.message, /c\.toml:5: rule\[0\]\.domains\[1\]/);
  assert.match(e.message, /c\.toml:6: rule\[0\]\.domains\[2\]/);
  assert.equal(e.issues.length, 3);
  assert.deepEqual(e.issues[1], { path: 'rule[0].domains[1]', line: 5, message: "'bad domain' contains whitespace" });
});

test('limits each have their own code and message', () => {
  // 10 MB file
  const big = new Uint8Array(10 * 1024 * 1024).fill(0x23); // '#' comments
  rejects(big, 'SY_ERR_CONFIG_TOO_LARGE', /10485760 bytes; the limit is 1048576 bytes/);
  // too many rules in a small file
  const many = V1 + '[[rule]]\negress="direct"\nports=[1]\n'.repeat(limits.MAX_RULES + 1);
  assert.ok(many.length < 400_000);
  rejects(many, 'SY_ERR_CONFIG_TOO_MANY_RULES', /10001 rules; at most 10000/, /c\.toml:2: rule:/);
  // too many patterns in one list
  const pats = `${V1}[[rule]]\negress = "direct"\ndomains = [${'"a.b",'.repeat(limits.MAX_PATTERNS_PER_RULE + 1)}]\n`;
  rejects(pats, 'SY_ERR_CONFIG_TOO_MANY_PATTERNS', /rule\[0\]\.domains: 50001 entries; at most 50000/);
  // too many patterns in all
  const lists = `${V1}` + `[[rule]]\negress = "direct"\nports = [${'1,'.repeat(45_000)}]\n`.repeat(5);
  rejects(lists, 'SY_ERR_CONFIG_TOO_MANY_PATTERNS', /225000 patterns in all; at most 200000/);
  // pattern length
  rejects(`${V1}[[rule]]\negress = "direct"\ndomains = ["${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.${'e'.repeat(20)}.com"]\n`, 'SY_ERR_CONFIG_PATTERN_TOO_LONG', /c\.toml:4: rule\[0\]\.domains\[0\]: domain pattern longer than 253/);
  rejects(`${V1}[[rule]]\negress = "direct"\ndomains = ["regexp:${'a'.repeat(300)}"]\n`, 'SY_ERR_CONFIG_PATTERN_TOO_LONG', /regexp pattern longer than 256/);
  rejects(`${V1}[[rule]]\negress = "direct"\napps = ["/${'x'.repeat(5000)}"]\n`, 'SY_ERR_CONFIG_PATTERN_TOO_LONG', /app pattern longer than 4096/);
  // nesting
  rejects(`${V1}x = ${'['.repeat(100)}${']'.repeat(100)}\n`, 'SY_ERR_CONFIG_LIMIT', /nested deeper than 16 levels/);
  // egress count
  let eg = V1;
  for (let i = 0; i < 257; i++) eg += `[egress.e${i}]\ntype = "direct"\n`;
  rejects(eg, 'SY_ERR_CONFIG_LIMIT', /c\.toml:2: egress: 257 egresses; at most 256/);
});

test('invalid UTF-8 is reported with its byte offset', () => {
  const good = new TextEncoder().encode(`${V1}# комментарий\n`);
  const bad = new Uint8Array([...good, 0x23, 0x20, 0xc3, 0x28, 0x0a]);
  rejects(bad, 'SY_ERR_CONFIG_ENCODING', new RegExp(`not valid UTF-8 at byte offset ${good.length + 2} \\(line 3; bytes c3 28 0a\\)`));
  assert.equal(firstInvalidUtf8(new Uint8Array([0xe2, 0x82, 0xac])), -1); // €
  assert.equal(firstInvalidUtf8(new Uint8Array([0xf0, 0x9f, 0x98, 0x80])), -1); // 😀
  assert.equal(firstInvalidUtf8(new Uint8Array([0x41, 0xc0, 0x80])), 1); // overlong NUL
  assert.equal(firstInvalidUtf8(new Uint8Array([0xe0, 0x80, 0x80])), 0); // overlong
  assert.equal(firstInvalidUtf8(new Uint8Array([0xed, 0xa0, 0x80])), 0); // surrogate U+D800
  assert.equal(firstInvalidUtf8(new Uint8Array([0xf4, 0x90, 0x80, 0x80])), 0); // > U+10FFFF
  assert.equal(firstInvalidUtf8(new Uint8Array([0x41, 0x42, 0xe2, 0x82])), 2); // truncated
  assert.equal(firstInvalidUtf8(new Uint8Array([0x80])), 0); // stray continuation
  assert.equal(firstInvalidUtf8(new Uint8Array([0xff])), 0);
});

test('syntax errors and versions', () => {
  rejects(`${V1}a = \n`, 'SY_ERR_CONFIG_SYNTAX', /c\.toml:2:\d+: TOML syntax/);
  rejects(`${V1}[dns]\n[dns]\n`, 'SY_ERR_CONFIG_SYNTAX', /c\.toml:3/);
  rejects('default = "direct"\n', 'SY_ERR_CONFIG_VERSION', /missing `version = 1`/);
  rejects('version = 2\n', 'SY_ERR_CONFIG_VERSION', /c\.toml:1: version: 2 is not a supported config version/);
  rejects('version = "1"\n', 'SY_ERR_CONFIG_VERSION');
});

test('hostile inputs fail cleanly', () => {
  // A huge line (just under the size limit) in a string value.
  const huge = rejects(`${V1}default = "${'x'.repeat(1_000_000)}"\n`, 'SY_ERR_CONFIG', /c\.toml:2: default: egress 'x{64}… \(1000000 characters\)' is not declared/);
  assert.ok(huge.message.length < 500, 'the message does not echo a megabyte');
  // A huge line of a valid long list is accepted (limits permitting).
  const ok = loadConfigFromString(`${V1}[[rule]]\negress = "direct"\ndomains = [${Array.from({ length: 20_000 }, (_, i) => `"d${i}.example"`).join(',')}]\n`, 'c.toml');
  assert.equal(ok.rules[0]!.domains.length, 20_000);
  // Deep dotted tables are unknown keys, not a stack overflow.
  rejects(`${V1}[${Array.from({ length: 2000 }, (_, i) => `k${i}`).join('.')}]\n`, 'SY_ERR_CONFIG', /c\.toml:2: k0: unknown key 'k0'/);
  // Prototype keys.
  rejects(`${V1}[__proto__]\nx = 1\n`, 'SY_ERR_CONFIG_SYNTAX');
  rejects(`${V1}[egress.constructor]\ntype = "direct"\n`, 'SY_ERR_CONFIG_SYNTAX');
  // Control characters and odd Unicode.
  rejects(`${V1}default = "a\u0000b"\n`, 'SY_ERR_CONFIG_SYNTAX');
  const dom = (d: string) => `${V1}[[rule]]\negress = "direct"\ndomains = [${JSON.stringify(d)}]\n`;
  rejects(dom('exa\u202emple.com'), 'SY_ERR_CONFIG', /domains\[0\]/); // RTL override
  // UTS #46 maps a zero-width space away, as browsers do: the pattern is plain a.com.
  assert.equal(loadConfigFromString(dom('a\u200b.com'), 'c.toml').rules[0]!.domains[0]!.value, 'a.com');
  rejects(dom('a/b.com'), 'SY_ERR_CONFIG', /domains\[0\]/);
  const emoji = loadConfigFromString(dom('☃.example'), 'c.toml');
  assert.equal(emoji.rules[0]!.domains[0]!.value, 'xn--n3h.example');
  rejects(`${V1}[[rule]]\negress = "direct"\napps = ["a\\u0000b"]\n`, 'SY_ERR_CONFIG', /NUL/);
  // A BOM is accepted.
  assert.equal(loadConfigFromBytes(new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(V1)]), 'bom.toml').version, 1);
});

test('the key-path index finds lines in multi-line arrays, inline tables and quoted keys', () => {
  const src = [
    'version = 1', // 1
    '[egress."my vpn"]', // 2
    'type = "socks5"', // 3
    '[[rule]]', // 4
    'egress = "a"', // 5
    'domains = [', // 6
    '  "x", # comment with ] and "', // 7
    '  """multi', // 8
    'line""",', // 9
    '  "z",', // 10
    ']', // 11
    'apps = [ { a = 1 }, "q" ]', // 12
    '[[rule]]', // 13
    "name = 'b'", // 14
  ].join('\n');
  const idx = indexLines(src);
  assert.equal(idx.lineOf(['egress', 'my vpn', 'type']), 3);
  assert.equal(idx.lineOf(['rule', 0, 'domains', 0]), 7);
  assert.equal(idx.lineOf(['rule', 0, 'domains', 1]), 8);
  assert.equal(idx.lineOf(['rule', 0, 'domains', 2]), 10);
  assert.equal(idx.lineOf(['rule', 0, 'apps', 0, 'a']), 12);
  assert.equal(idx.lineOf(['rule', 1, 'name']), 14);
  assert.equal(idx.lineOf(['rule', 1, 'missing']), 13);
});
