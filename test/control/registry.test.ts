// The privacy filter of private control methods (src/control/registry.ts applyPrivacy, ownedBy) with
// injected callers: a Unix caller is matched by uid, a Windows pipe caller (uid -1) by its user SID;
// own entries shown, others' and unknown owners' hidden, privileged callers see all; shapes it
// cannot filter fail closed. The server applying it per call: server.test.ts (Unix, as nobody) and
// test/windows/pipe-identity.test.ts (pipe callers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyPrivacy, MethodRegistry, ownedBy, type MethodSpec } from '../../src/control/registry.ts';
import type { Caller } from '../../src/control/auth.ts';

const ME = 'S-1-5-21-10-20-30-1001';
const YOU = 'S-1-5-21-10-20-30-1002';

function caller(over: Partial<Caller>): Caller {
  return { uid: 1000, gid: 1000, pid: 1, user: 'u', groups: [], privileged: false, mayRead: true, reason: 'test', ...over };
}
const unixMe = caller({});
const winMe = caller({ uid: -1, gid: -1, user: ME, sid: ME });
const winAdmin = caller({ uid: -1, gid: -1, user: YOU, sid: YOU, privileged: true });

const conns: MethodSpec = new MethodRegistry()
  .register({
    name: 'conns',
    permission: 'read',
    summary: 'test',
    privacy: { items: 'flows', ownerOf: (f) => (f as { uid?: number | null }).uid ?? undefined, ownerSidOf: (f) => (f as { sid?: string | null }).sid ?? undefined },
    handler: () => null,
  })
  .get('conns')!;

const flows = [
  { id: 'a', uid: 1000, sid: null },
  { id: 'b', uid: 1001, sid: null },
  { id: 'c', uid: null, sid: ME },
  { id: 'd', uid: null, sid: YOU },
  { id: 'e', uid: null, sid: null },
  { id: 'f', uid: null, sid: ME.toLowerCase() },
  { id: 'g', uid: -1, sid: null },
];
const ids = (r: unknown) => (r as { flows: { id: string }[] }).flows.map((f) => f.id);

test('a Unix caller sees the flows of its uid; a Windows caller those of its SID; unknown owners are nobody\'s', () => {
  assert.deepEqual(ids(applyPrivacy(conns, { total: 7, flows }, unixMe)), ['a']);
  assert.deepEqual(ids(applyPrivacy(conns, { total: 7, flows }, winMe)), ['c', 'f'], 'SIDs compare case-insensitively; uid -1 matches nothing');
  assert.equal((applyPrivacy(conns, { total: 7, flows }, winMe) as { total: number }).total, 7, 'other fields kept');
});

test('privileged callers (root, an elevated Administrator) see every flow', () => {
  assert.deepEqual(ids(applyPrivacy(conns, { flows }, winAdmin)), ['a', 'b', 'c', 'd', 'e', 'f', 'g']);
  assert.deepEqual(ids(applyPrivacy(conns, { flows }, caller({ uid: 0, privileged: true }))).length, 7);
});

test('ownedBy: a SID caller never matches by uid, a uid caller never by SID; -1 and undefined match nothing', () => {
  assert.equal(ownedBy(winMe, -1, undefined), false);
  assert.equal(ownedBy(winMe, 1000, YOU), false);
  assert.equal(ownedBy(winMe, undefined, ME), true);
  assert.equal(ownedBy(unixMe, 1000, YOU), true);
  assert.equal(ownedBy(unixMe, undefined, ME), false);
  assert.equal(ownedBy(caller({ uid: -1 }), -1, null), false);
  assert.equal(ownedBy(unixMe, null, null), false);
});

test('a private result of a shape the filter cannot read fails closed', () => {
  assert.throws(() => applyPrivacy(conns, { flows: 'x' }, winMe), /lacks array field/);
  assert.throws(() => applyPrivacy(conns, null, winMe), /lacks array field/);
});
