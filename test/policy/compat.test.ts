// policy-router-rs's config format, read as it is: the cases from issue 2's "Done means".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { compilePolicy, configToToml, loadConfigFromBytes, loadConfigFromString } from '../../src/policy/index.ts';

const file = new URL('./fixtures/policy-router-example.toml', import.meta.url);
const config = loadConfigFromBytes(readFileSync(file), 'policy-router-example.toml');
const policy = compilePolicy(config);

test('it is read with a notice', () => {
  assert.match(config.notices[0]!, /policy-router-rs/);
  assert.equal(config.default, 'direct');
  assert.equal(config.egress.vpn?.type, 'socks5'); // its `singbox` type is a SOCKS5 egress
  assert.deepEqual(config.egress.vpn?.type === 'socks5' && config.egress.vpn.endpoint, { host: '127.0.0.1', port: 1488 });
});

test('zen.exe + youtube.com → proxy', () => {
  assert.equal(policy.decide({ network: 'tcp', process: 'zen.exe', domain: 'youtube.com' }).egress, 'proxy');
  assert.equal(policy.decide({ network: 'tcp', process: 'zen.exe', domain: 'r1---sn-abc.googlevideo.com' }).egress, 'proxy');
});

test('zen.exe + chatgpt.com → vpn', () => {
  const d = policy.decide({ network: 'tcp', process: 'zen.exe', domain: 'chatgpt.com' });
  assert.equal(d.egress, 'vpn');
  assert.equal(d.stage, 'domain');
});

test('zen.exe, unknown domain → vpn by its app rule; a Windows path names the same app', () => {
  assert.equal(policy.decide({ network: 'tcp', process: 'zen.exe', domain: 'unknown.example' }).egress, 'vpn');
  assert.equal(policy.decide({ network: 'tcp', process: 'C:\\Program Files\\Zen\\ZEN.EXE' }).egress, 'vpn');
});

test('ciadpi.exe → direct, even for a domain that has a rule (exempt)', () => {
  assert.equal(policy.decide({ network: 'tcp', process: 'ciadpi.exe' }).egress, 'direct');
  const d = policy.decide({ network: 'tcp', process: 'ciadpi.exe', domain: 'youtube.com' });
  assert.equal(d.egress, 'direct');
  assert.equal(d.stage, 'exempt');
});

test('unknown app and domain → default', () => {
  const d = policy.decide({ network: 'tcp', process: 'notepad.exe', domain: 'unknown.example' });
  assert.equal(d.egress, 'direct');
  assert.equal(d.stage, 'default');
  assert.equal(d.rule, null);
});

test('`ru` under vpn, `mail.ru` under direct → mail.ru goes direct (most specific wins)', () => {
  assert.equal(policy.decide({ network: 'tcp', process: 'zen.exe', domain: 'e.mail.ru' }).egress, 'direct');
  assert.equal(policy.decide({ network: 'tcp', process: 'zen.exe', domain: 'mail.ru' }).egress, 'direct');
  assert.equal(policy.decide({ network: 'tcp', process: 'zen.exe', domain: 'yandex.ru' }).egress, 'vpn');
  const ex = policy.explain({ network: 'tcp', domain: 'e.mail.ru' });
  assert.ok(ex.candidates.some((c) => c.egress === 'vpn' && /more specific/.test(c.lostBecause)), JSON.stringify(ex));
});

test('IDN and leading-dot patterns of that format work', () => {
  assert.equal(policy.decide({ network: 'tcp', process: 'zen.exe', domain: 'пример.рф' }).egress, 'direct');
  assert.equal(policy.decide({ network: 'tcp', process: 'zen.exe', domain: 'nas.lan' }).egress, 'direct');
});

test('the [[rules]] array form of later versions is read too', () => {
  const c = loadConfigFromString(
    `[defaults]
egress = "vpn"
[egress.vpn]
type = "singbox"
endpoint = "socks5://127.0.0.1:1488"
[egress.direct]
type = "direct"
[[rules]]
egress = "direct"
domain = "example.com"
[[rules]]
egress = "direct"
app = "zen.exe"
name = "zen"
[[rules]]
egress = "vpn"
dst_ip_cidr = ["198.18.0.0/15"]
`,
    'array.toml',
  );
  const p = compilePolicy(c);
  assert.equal(p.decide({ network: 'tcp', domain: 'www.example.com' }).egress, 'direct');
  assert.equal(p.decide({ network: 'tcp', process: 'zen.exe' }).rule?.id, 'zen');
  assert.equal(p.decide({ network: 'tcp', ip: '198.19.1.1' }).stage, 'cidr');
});

test('errors in that format name its own key paths and lines', () => {
  assert.throws(
    () => loadConfigFromString('[defaults]\negress = "vpn"\n[rules.domain]\nvpn = ["a.com"]\n', 'bad.toml'),
    (e: Error) => /bad\.toml:2: defaults\.egress: egress 'vpn' is not declared/.test(e.message),
  );
  assert.throws(
    () => loadConfigFromString('[defaults]\negress = "direct"\n[rules.domain]\ndirect = [\n "ok.com",\n "@file:lists/x.txt"]\n', 'inc.toml'),
    (e: Error) => /inc\.toml:6: rules\.domain\.direct\[1\]: .*@file: includes are not read/.test(e.message),
  );
  assert.throws(
    () => loadConfigFromString('[defaults]\negress = "direct"\n[egress.x]\ntype = "wireguard"\n[rules.app]\n', 'type.toml'),
    (e: Error) => /type\.toml:4: egress\.x\.type/.test(e.message),
  );
});

test('convert writes a v1 config that decides the same', () => {
  const v1 = loadConfigFromString(configToToml(config), 'converted.toml');
  assert.deepEqual(v1.notices, []);
  const again = compilePolicy(v1);
  for (const process of ['zen.exe', 'ciadpi.exe', 'telegram.exe', 'other', undefined]) {
    for (const domain of ['youtube.com', 'chatgpt.com', 'e.mail.ru', 'yandex.ru', 'x.xn--p1ai', 'nas.lan', 'example.org', undefined]) {
      const q = { network: 'tcp' as const, ...(process ? { process } : {}), ...(domain ? { domain } : {}) };
      const a = policy.decide(q);
      const b = again.decide(q);
      assert.deepEqual([b.egress, b.stage, b.rule?.id ?? null], [a.egress, a.stage, a.rule?.id ?? null], JSON.stringify(q));
    }
  }
});
