// The embedded default config: identical to config/default.toml, valid, unprivileged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { compilePolicy, defaultConfig, DEFAULT_CONFIG_TOML, loadConfigFromString } from '../../src/policy/index.ts';

test('the embedded copy equals config/default.toml (rerun tools/gen-default-config.ts after edits)', () => {
  assert.equal(DEFAULT_CONFIG_TOML, readFileSync(new URL('../../config/default.toml', import.meta.url), 'utf8'));
});

test('the default works unprivileged and changes nothing', () => {
  const c = defaultConfig();
  assert.equal(c.source, 'embedded');
  assert.deepEqual(c.dns.listen, [{ host: '127.0.0.1', port: 1053 }]);
  assert.deepEqual(c.inbound.mixed, { host: '127.0.0.1', port: 7890 });
  assert.equal(c.enforce.enabled, false);
  assert.equal(c.enforce.lan, 'direct');
  for (const hp of [...c.dns.listen, c.inbound.mixed!]) assert.ok(hp.port >= 1024, 'no privileged ports');
  assert.equal(compilePolicy(c).decide({ network: 'tcp', process: 'zen.exe', domain: 'youtube.com' }).egress, 'direct');
});

test('its commented examples (VPN core, DPI-bypass proxy) are valid when uncommented', () => {
  const uncommented = DEFAULT_CONFIG_TOML.split('\n')
    .map((l) => (/^# (\[|[a-z_]+ = |\[\[)/.test(l) ? l.slice(2) : l))
    .join('\n');
  const c = loadConfigFromString(uncommented, 'uncommented.toml');
  assert.ok(c.egress.vpn?.type === 'socks5' && c.egress.dpi?.type === 'socks5');
  assert.equal(c.egress.dpi.obfuscatesOnly, true);
  const p = compilePolicy(c);
  assert.equal(p.decide({ network: 'tcp', process: 'zen.exe', domain: 'www.youtube.com' }).egress, 'dpi');
  assert.equal(p.decide({ network: 'tcp', process: 'zen.exe', domain: 'chatgpt.com' }).egress, 'vpn');
  assert.equal(p.decide({ network: 'tcp', process: 'ciadpi.exe', domain: 'www.youtube.com' }).egress, 'direct');
  assert.equal(p.decide({ network: 'tcp', process: 'zen.exe', domain: 'e.mail.ru' }).egress, 'direct');
});
