// `dns system on|off` on Windows as a pure plan + executor (src/redirect/windows/nrpt.ts,
// system-dns.ts) against an in-memory registry: the rule's exact bytes ([MS-GPNRPT] 2.2.2), which
// table it goes to, and that off puts back exactly what was there (byte for byte, other rules
// untouched). The real registry (koffi → advapi32 under Wine) is in wine.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NRPT_LOCAL, NRPT_POLICY, decodeMultiSz, nrptRuleValues, nrptServer, planOff, planOn, type RegistryIo } from '../../src/redirect/windows/nrpt.ts';
import { fileState, nrptSystemDns } from '../../src/redirect/windows/system-dns.ts';
import type { RegKeyContent, RegValue } from '../../src/sys/windows/advapi32.ts';
import { NRPT_RULE_GUID } from '../../src/ids.ts';

const PARENTS = [NRPT_LOCAL, NRPT_POLICY].map((t) => t.slice(0, t.lastIndexOf('\\')));

/**
 * HKLM in memory: keys by case-insensitive path; subkeys are derived from the paths below. Like
 * RegCreateKeyExW, a write creates the missing keys above it (the tables' parents exist already).
 */
class MemRegistry implements RegistryIo {
  keys = new Map<string, { path: string; values: RegValue[] }>(PARENTS.map((p) => [p.toLowerCase(), { path: p, values: [] }]));
  writes = 0;
  read(path: string): RegKeyContent | null {
    const k = this.keys.get(path.toLowerCase());
    const prefix = `${path.toLowerCase()}\\`;
    const subs = new Set<string>();
    for (const [lk, v] of this.keys) if (lk.startsWith(prefix)) subs.add(v.path.slice(prefix.length).split('\\')[0]!);
    if (!k && subs.size === 0) return null;
    return { values: (k?.values ?? []).map((v) => ({ ...v, data: Buffer.from(v.data) })), subkeys: [...subs] };
  }
  write(path: string, values: readonly RegValue[]): void {
    this.writes++;
    for (let i = path.indexOf('\\'); i > 0; i = path.indexOf('\\', i + 1)) {
      const up = path.slice(0, i);
      if (PARENTS.some((p) => up.length > p.length && up.toLowerCase().startsWith(p.toLowerCase())) && !this.keys.has(up.toLowerCase())) this.keys.set(up.toLowerCase(), { path: up, values: [] });
    }
    this.keys.set(path.toLowerCase(), { path, values: values.map((v) => ({ ...v, data: Buffer.from(v.data) })) });
  }
  remove(path: string): void {
    this.writes++;
    for (const lk of [...this.keys.keys()]) if (lk === path.toLowerCase() || lk.startsWith(`${path.toLowerCase()}\\`)) this.keys.delete(lk);
  }
  snapshot(): string {
    return JSON.stringify([...this.keys.entries()].sort().map(([k, v]) => [k, v.values.map((x) => [x.name, x.type, x.data.toString('hex')])]));
  }
}

function rig(reg = new MemRegistry()) {
  const dir = mkdtempSync(join(tmpdir(), 'sy-nrpt-'));
  let flushes = 0;
  const sys = nrptSystemDns(dir, { reg, state: fileState(dir), flush: () => void flushes++ });
  return { reg, dir, sys, flushes: () => flushes, done: () => rmSync(dir, { recursive: true, force: true }) };
}

const OURS_LOCAL = `${NRPT_LOCAL}\\${NRPT_RULE_GUID}`;
const u16 = (s: string) => Buffer.from(s, 'utf16le').toString('hex');

test('the rule bytes: Version 1, Name "." as REG_MULTI_SZ, ConfigOptions 8, GenericDNSServers, IPSECCARestriction ""', () => {
  const v = Object.fromEntries(nrptRuleValues('127.0.0.1').map((x) => [x.name, [x.type, x.data.toString('hex')]]));
  assert.deepEqual(v, {
    Version: [4, '01000000'],
    Name: [7, u16('.\0\0')],
    ConfigOptions: [4, '08000000'],
    GenericDNSServers: [1, u16('127.0.0.1\0')],
    IPSECCARestriction: [1, u16('\0')],
  });
});

test('on → off on a machine without NRPT rules: written to the local table, then nothing left', () => {
  const r = rig();
  const before = r.reg.snapshot();
  const on = r.sys.on('127.0.0.1');
  assert.deepEqual({ on: on.on, key: on.key, server: on.server, intact: on.intact }, { on: true, key: OURS_LOCAL, server: '127.0.0.1', intact: true });
  assert.deepEqual(on.warnings, []);
  assert.equal(r.flushes(), 1);
  const off = r.sys.off();
  assert.equal(off.on, false);
  assert.equal(r.reg.snapshot(), before);
  assert.equal(r.flushes(), 2);
  assert.equal(fileState(r.dir).load(), null, 'the save is gone');
  r.done();
});

test('the table key created by on is removed by off when nothing else is in it, kept when it is', () => {
  const r = rig();
  const before = r.reg.snapshot();
  r.sys.on('127.0.0.1');
  assert.ok(r.reg.keys.has(NRPT_LOCAL.toLowerCase()), 'on created the table key');
  r.reg.write(`${NRPT_LOCAL}\\{dddddddd-0000-0000-0000-000000000004}`, [{ name: 'Name', type: 7, data: Buffer.from('.y\0\0', 'utf16le') }]);
  r.sys.off();
  assert.ok(r.reg.keys.has(NRPT_LOCAL.toLowerCase()), 'another rule appeared meanwhile: the table stays');
  r.reg.remove(`${NRPT_LOCAL}\\{dddddddd-0000-0000-0000-000000000004}`);
  r.sys.on('127.0.0.1');
  r.sys.off();
  assert.notEqual(r.reg.snapshot(), before, 'the table existed before this on, so it stays');
  r.done();
});

test('what was in our key before is restored byte for byte; other rules are never touched', () => {
  const reg = new MemRegistry();
  reg.write(OURS_LOCAL, [
    { name: 'Version', type: 4, data: Buffer.from('02000000', 'hex') },
    { name: 'Odd', type: 3, data: Buffer.from([0, 1, 2, 255]) },
  ]);
  reg.write(`${NRPT_LOCAL}\\{11111111-2222-3333-4444-555555555555}`, [{ name: 'Name', type: 7, data: Buffer.from('.corp.example\0\0', 'utf16le') }]);
  const r = rig(reg);
  const before = reg.snapshot();
  r.sys.on('127.0.0.1');
  assert.notEqual(reg.snapshot(), before);
  r.sys.off();
  assert.equal(reg.snapshot(), before);
  r.done();
});

test('a second on keeps the first save; a new server is recorded; off still restores the original', () => {
  const r = rig();
  const before = r.reg.snapshot();
  r.sys.on('127.0.0.1');
  const s2 = r.sys.on('::1');
  assert.equal(s2.server, '::1');
  assert.equal(fileState(r.dir).load()!.previous, null, 'the first save (key absent) is kept');
  r.sys.off();
  assert.equal(r.reg.snapshot(), before);
  r.done();
});

test('Group Policy NRPT rules exist: the rule goes into the policy table (local rules would be ignored), with a warning', () => {
  const reg = new MemRegistry();
  reg.write(`${NRPT_POLICY}\\{aaaaaaaa-0000-0000-0000-000000000001}`, [{ name: 'Name', type: 7, data: Buffer.from('.corp.example\0\0', 'utf16le') }]);
  const p = planOn(reg, null, '127.0.0.1');
  const write = p.steps.find((s) => s.op === 'write');
  assert.ok(write && write.op === 'write' && write.key === `${NRPT_POLICY}\\${NRPT_RULE_GUID}`);
  assert.ok(p.warnings.some((w) => /policy refresh/.test(w)));
});

test('another rule for "." is reported as a conflict', () => {
  const reg = new MemRegistry();
  reg.write(`${NRPT_LOCAL}\\{bbbbbbbb-0000-0000-0000-000000000002}`, [{ name: 'Name', type: 7, data: Buffer.from('.\0\0', 'utf16le') }]);
  const p = planOn(reg, null, '127.0.0.1');
  assert.ok(p.warnings.some((w) => w.includes('{bbbbbbbb-0000-0000-0000-000000000002}')));
});

test('off with the state directory lost: our rule is removed by its GUID; nothing else', () => {
  const reg = new MemRegistry();
  reg.write(OURS_LOCAL, nrptRuleValues('127.0.0.1'));
  reg.write(`${NRPT_LOCAL}\\{cccccccc-0000-0000-0000-000000000003}`, [{ name: 'Name', type: 7, data: Buffer.from('.x\0\0', 'utf16le') }]);
  const p = planOff(reg, null);
  assert.deepEqual(p.steps, [{ op: 'delete', key: OURS_LOCAL }, { op: 'flush' }]);
  assert.deepEqual(planOff(new MemRegistry(), null).steps, [], 'nothing of ours: nothing to do, no flush');
});

test('off after someone changed the rule: restores anyway and says so', () => {
  const r = rig();
  r.sys.on('127.0.0.1');
  r.reg.write(OURS_LOCAL, nrptRuleValues('10.9.9.9'));
  assert.equal(r.sys.status().intact, true, 'a well-formed rule for another server');
  r.reg.write(OURS_LOCAL, [{ name: 'Name', type: 7, data: Buffer.from('.\0\0', 'utf16le') }]);
  assert.equal(r.sys.status().intact, false);
  const off = r.sys.off();
  assert.ok(off.warnings.some((w) => /changed since switchyard wrote it/.test(w)));
  assert.equal(r.reg.read(OURS_LOCAL), null);
  r.done();
});

test('the forwarder address: a port-53 listener, loopback preferred, wildcards reached on loopback; else a clear error', () => {
  assert.equal(nrptServer([{ host: '192.168.1.2', port: 53 }, { host: '127.0.0.1', port: 53 }]), '127.0.0.1');
  assert.equal(nrptServer([{ host: '0.0.0.0', port: 53 }]), '127.0.0.1');
  assert.equal(nrptServer([{ host: '::', port: 53 }]), '::1');
  assert.equal(nrptServer([{ host: '192.168.1.2', port: 53 }]), '192.168.1.2');
  assert.throws(() => nrptServer([{ host: '127.0.0.1', port: 5353 }]), (e: Error & { code?: string }) => e.code === 'SY_ERR_WIN_NRPT' && /port 53/.test(e.message));
  assert.throws(() => planOn(new MemRegistry(), null, 'localhost'), /not an IP address/);
});

test('hostile bytes: REG_MULTI_SZ of odd length or without terminators; a corrupt save file is refused', () => {
  assert.deepEqual(decodeMultiSz(Buffer.from([0x2e, 0x00, 0x41])), ['.']);
  assert.deepEqual(decodeMultiSz(Buffer.alloc(0)), []);
  assert.deepEqual(decodeMultiSz(Buffer.from('a\0b', 'utf16le')), ['a', 'b']);
  const dir = mkdtempSync(join(tmpdir(), 'sy-nrpt-'));
  writeFileSync(join(dir, 'nrpt-saved.json'), '{"version":2}');
  assert.throws(() => fileState(dir).load(), (e: Error & { code?: string }) => e.code === 'SY_ERR_WIN_NRPT');
  writeFileSync(join(dir, 'nrpt-saved.json'), '{"vers');
  assert.throws(() => fileState(dir).load(), (e: Error & { code?: string }) => e.code === 'SY_ERR_WIN_NRPT');
  rmSync(dir, { recursive: true, force: true });
});
