// projectDomain(name, { capture: true }): what the OS backend's captured sets need — rules with an
// app condition (groups redirect those apps) or a CIDR condition (static sets redirect those
// addresses) are left out. Bug it guards against: one app rule (`apps = ["group:vpn"]`) made every
// name's projection include `vpn`, so every resolved address was captured and sent through the
// front door (and refused by the skeleton after a stop).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compilePolicy, loadConfigFromString } from '../../src/policy/index.ts';

const policy = compilePolicy(
  loadConfigFromString(
    `version = 1
default = "direct"
[egress.vpn]
type = "socks5"
endpoint = "socks5://127.0.0.1:1081"
[egress.dpi]
type = "socks5"
endpoint = "socks5://127.0.0.1:1082"
[[rule]]
egress = "vpn"
apps = ["group:vpn", "firefox"]
[[rule]]
egress = "dpi"
apps = ["telegram"]
domains = ["t.example"]
[[rule]]
egress = "vpn"
domains = ["cap.example"]
[[rule]]
egress = "dpi"
ports = [8443]
[[rule]]
egress = "vpn"
cidrs = ["198.18.0.0/24"]
`,
    't.toml',
  ),
);

test('capture projection: app and CIDR rules left out; domain and port rules still count', () => {
  assert.ok(policy.projectDomain('plain.example').egresses.includes('vpn'), 'the full projection counts the app rule');
  assert.deepEqual(policy.projectDomain('plain.example', { capture: true }).egresses.sort(), ['direct', 'dpi'], 'app and CIDR rules gone, port rule kept');
  assert.deepEqual(policy.projectDomain('cap.example', { capture: true }).egresses, ['vpn']);
  // The app+domain rule does not decide unselected flows: they fall through to the default (and
  // the port rule, which may match any app).
  assert.deepEqual(policy.projectDomain('t.example', { capture: true }).egresses.sort(), ['direct', 'dpi']);
  assert.deepEqual(policy.projectDomain('t.example', { capture: true }).uniform, false);
  assert.ok(policy.projectDomain('t.example').egresses.includes('dpi'));
});
