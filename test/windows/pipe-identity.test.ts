// Control permission classes on Windows (src/control/identity-windows.ts): the pipe caller admitted
// by the default DACL, and the per-connection classification from token facts. The token reading
// itself (advapi32 TokenUser/TokenGroups/TokenElevation) and GetNamedPipeClientProcessId run under
// Wine in wine.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SID_ADMINISTRATORS, SID_LOCAL_SYSTEM, classifyWindowsToken, windowsPipeCaller } from '../../src/control/identity-windows.ts';
import { checkPermission, MethodRegistry } from '../../src/control/registry.ts';

const USER = 'S-1-5-21-1111-2222-3333-1001';
const OTHER = 'S-1-5-21-1111-2222-3333-1002';
const policy = { mode: 'service' as const, daemonSid: SID_LOCAL_SYSTEM, readUsers: [] as string[] };
const ENABLED = 0x4 | 0x1 | 0x2;
const DENY_ONLY = 0x10;

test('LocalSystem and an elevated Administrator are privileged', () => {
  assert.equal(classifyWindowsToken({ sid: SID_LOCAL_SYSTEM, elevated: true, groups: [] }, 4, policy).privileged, true);
  const c = classifyWindowsToken({ sid: USER, elevated: true, groups: [{ sid: SID_ADMINISTRATORS, attributes: ENABLED }] }, 5, policy);
  assert.deepEqual([c.privileged, c.reason, c.user, c.pid], [true, 'elevated member of Administrators', USER, 5]);
});

test('an Administrator without elevation (UAC filtered token: the group is deny-only) is not privileged', () => {
  const filtered = classifyWindowsToken({ sid: USER, elevated: false, groups: [{ sid: SID_ADMINISTRATORS, attributes: DENY_ONLY }] }, 6, policy);
  assert.equal(filtered.privileged, false);
  assert.equal(filtered.mayRead, true, 'read-only methods stay open when read_users is empty');
  // Elevated but the group is deny-only (a restricted token): still not privileged.
  assert.equal(classifyWindowsToken({ sid: USER, elevated: true, groups: [{ sid: SID_ADMINISTRATORS, attributes: DENY_ONLY }] }, 6, policy).privileged, false);
  assert.match(classifyWindowsToken({ sid: USER, elevated: false, groups: [{ sid: SID_ADMINISTRATORS, attributes: ENABLED }] }, 6, policy).reason, /not elevated/);
});

test('user mode: the daemon user is privileged, another user only reads (and only if read_users allows)', () => {
  const um = { mode: 'user' as const, daemonSid: USER, readUsers: [OTHER] };
  assert.equal(classifyWindowsToken({ sid: USER, elevated: false, groups: [] }, 7, um).privileged, true);
  const o = classifyWindowsToken({ sid: OTHER, elevated: false, groups: [] }, 8, um);
  assert.deepEqual([o.privileged, o.mayRead], [false, true]);
  const third = classifyWindowsToken({ sid: 'S-1-5-21-9-9-9-1003', elevated: false, groups: [] }, 9, um);
  assert.deepEqual([third.privileged, third.mayRead], [false, false]);
});

test('the pipe caller admitted by the default DACL may change state', () => {
  const reg = new MethodRegistry();
  reg.register({ name: 'x.change', permission: 'change', summary: 'test', handler: async () => 1 });
  const c = windowsPipeCaller('service');
  assert.equal(c.privileged, true);
  assert.match(c.reason, /default DACL/);
  assert.doesNotThrow(() => checkPermission(reg.get('x.change')!, c));
  const plain = classifyWindowsToken({ sid: USER, elevated: false, groups: [] }, 10, policy);
  assert.throws(() => checkPermission(reg.get('x.change')!, plain), (e: Error & { code?: string }) => e.code === 'SY_ERR_CONTROL_PERMISSION');
});
