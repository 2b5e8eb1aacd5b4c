// Value normalisation shared by every format: domains (case, trailing dot, IDN), addresses
// (canonical text, host bits), ports, apps, and the wildcard ⇄ regexp mapping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValueError, appAny, appName, appPath, normalizeDomain, parseCidr, portRange, regexp, regexpToWildcard, wildcardToRegexp } from '../../src/lists/normalize.ts';

test('domains: lower case, trailing dot dropped, IDN to punycode', () => {
  assert.equal(normalizeDomain('WWW.Example.COM.'), 'www.example.com');
  assert.equal(normalizeDomain('bücher.de'), 'xn--bcher-kva.de');
  assert.equal(normalizeDomain('_dmarc.example.com'), '_dmarc.example.com');
  assert.equal(normalizeDomain('пример.рф'), 'xn--e1afmkfd.xn--p1ai');
});

test('domains: hostile and malformed names are refused', () => {
  for (const bad of ['', '.', 'a..b', 'exa mple.com', 'a/b.com', 'a:b', 'x'.repeat(64) + '.com', ('a'.repeat(60) + '.').repeat(5) + 'com', 'ex\u0000ample.com', '*.example.com']) {
    assert.throws(() => normalizeDomain(bad), ValueError, JSON.stringify(bad));
  }
});

test('CIDRs: canonical text, bare addresses, host bits cleared and reported', () => {
  assert.deepEqual(parseCidr('192.0.2.0/24'), { cidr: { family: 4, address: '192.0.2.0', prefix: 24 }, masked: false });
  assert.deepEqual(parseCidr('10.1.2.3/8'), { cidr: { family: 4, address: '10.0.0.0', prefix: 8 }, masked: true });
  assert.deepEqual(parseCidr('198.51.100.7').cidr, { family: 4, address: '198.51.100.7', prefix: 32 });
  assert.deepEqual(parseCidr('2001:DB8:0:0:0:0:0:1').cidr, { family: 6, address: '2001:db8::1', prefix: 128 });
  assert.deepEqual(parseCidr('2001:db8:0:1:0:0:0:0/64').cidr, { family: 6, address: '2001:db8:0:1::', prefix: 64 });
  assert.deepEqual(parseCidr('::ffff:192.0.2.1/128').cidr, { family: 6, address: '::ffff:c000:201', prefix: 128 });
  assert.deepEqual(parseCidr('::/0').cidr, { family: 6, address: '::', prefix: 0 });
  assert.deepEqual(parseCidr('2001:0:0:1:0:0:0:1').cidr.address, '2001:0:0:1::1', 'the first longest zero run is compressed');
  for (const bad of ['1.2.3', '1.2.3.4/33', '256.1.1.1', '01.2.3.4', '1.2.3.4/', '1.2.3.4/08', 'fe80::1%eth0', '2001:db8::/129', '::g', '1.2.3.4/-1']) {
    assert.throws(() => parseCidr(bad), ValueError, bad);
  }
});

test('ports and ranges', () => {
  assert.deepEqual(portRange('443', '-'), { from: 443, to: 443 });
  assert.deepEqual(portRange('1000-2000', '-'), { from: 1000, to: 2000 });
  assert.deepEqual(portRange(':3000', ':'), { from: 1, to: 3000 });
  assert.deepEqual(portRange('4000:', ':'), { from: 4000, to: 65535 });
  for (const bad of ['0', '65536', '2000-1000', 'http', '-5', '1-', '99999999']) assert.throws(() => portRange(bad, '-'), ValueError, bad);
});

test('apps: names lower-cased, Windows paths lower-cased with backslashes, POSIX paths kept, globs', () => {
  assert.deepEqual(appName('Telegram.EXE'), { kind: 'name', value: 'telegram.exe' });
  assert.deepEqual(appPath('C:/Program Files/App/App.exe'), { kind: 'path', value: 'c:/program files/app/app.exe' });
  assert.deepEqual(appPath('/usr/bin/Curl'), { kind: 'path', value: '/usr/bin/Curl' });
  assert.deepEqual(appAny('/opt/*/bin/x'), { kind: 'glob', value: '/opt/*/bin/x' });
  assert.deepEqual(appAny('chrome*'), { kind: 'glob', value: 'chrome*' });
  assert.throws(() => appName('bin/curl'), ValueError);
  assert.throws(() => appPath('curl'), ValueError);
});

test('regexps must compile; wildcards map to canonical regexps and back', () => {
  assert.throws(() => regexp('(?i)x'), ValueError, 'Go-only syntax is refused, not silently misread');
  assert.throws(() => regexp('a('), ValueError);
  assert.throws(() => regexp('a'.repeat(300)), ValueError);
  assert.throws(() => regexp('^(a+)+$'), /repeated group/, 'the config\'s backtracking check applies to lists too');
  const cases: [string, string][] = [
    ['.example.com', '^.+\\.example\\.com$'],
    ['*.example.com', '^[^.]+\\.example\\.com$'],
    ['xbox.*.microsoft.com', '^xbox\\.[^.]+\\.microsoft\\.com$'],
  ];
  for (const [w, re] of cases) {
    assert.deepEqual(wildcardToRegexp(w), { kind: 'regexp', value: re });
    assert.equal(regexpToWildcard(re), w);
    const r = new RegExp(re);
    assert.ok(!r.test('example.com') || w.startsWith('xbox'));
  }
  assert.ok(new RegExp(wildcardToRegexp('.example.com').value).test('a.b.example.com'));
  assert.ok(!new RegExp(wildcardToRegexp('*.example.com').value).test('a.b.example.com'));
  assert.equal(regexpToWildcard('^www\\.example\\.com$'), null, 'an anchored name without a wildcard is not a wildcard');
  assert.equal(regexpToWildcard('^ad[0-9]+\\.example\\.com$'), null);
  assert.throws(() => wildcardToRegexp('a*b.example.com'), ValueError);
  assert.deepEqual(wildcardToRegexp('*.123.Example.COM').value, '^[^.]+\\.123\\.example\\.com$', 'numeric inner labels are fine');
  assert.deepEqual(wildcardToRegexp('*.bücher.de').value, '^[^.]+\\.xn--bcher-kva\\.de$');
  assert.throws(() => wildcardToRegexp('*.example.123'), ValueError);
});
