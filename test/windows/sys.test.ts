// src/sys/windows on Linux: importing every DLL module works and calling fails with a clear
// SY_ERR_WIN_UNAVAILABLE (DLLs load lazily); the pure codecs (GUIDs, addresses, TCP/UDP tables,
// WINDIVERT_ADDRESS); and the FWPM_FILTER0 values wfp.ts builds, marshalled by koffi into a small C
// library built here for Linux x64 (same layout as Windows x64 for these explicit-width structs,
// which abi.test.ts checks against the real headers) that describes what it received.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import { OsCallError } from '../../src/errors.ts';
import { fwpuclnt } from '../../src/sys/windows/fwpuclnt.ts';
import { kernel32, processImagePath } from '../../src/sys/windows/kernel32.ts';
import { isElevated } from '../../src/sys/windows/advapi32.ts';
import { flushResolverCache } from '../../src/sys/windows/dnsapi.ts';
import { decodeTable, TableDecodeError, tcpTable } from '../../src/sys/windows/iphlpapi.ts';
import { windivertLibrary, decodeAddress, decodeSocketEvent, setOutbound } from '../../src/sys/windows/windivert.ts';
import { WfpEngine, filterToC, type AppIdBlob } from '../../src/sys/windows/wfp.ts';
import { guidBytes, guidFromStruct, guidToStruct, nameGuid, normalizeGuid } from '../../src/sys/windows/guid.ts';
import { bytesToIp, ipToBytes, toWindivertAddr, windivertAddr } from '../../src/sys/windows/addr.ts';
import { WINDIVERT_BITS, WINDIVERT_DATA_SOCKET, WINDIVERT_ADDRESS } from '../../src/sys/windows/types.ts';
import * as C from '../../src/sys/windows/constants.ts';
import { buildWfpPlan } from '../../src/redirect/windows/filter-plan.ts';
import { testConfig } from './helpers/config.ts';

const onWindows = process.platform === 'win32';

test('DLLs load lazily: importing works on Linux, calling says which DLL is unavailable', (t) => {
  if (onWindows) return t.skip('checks the non-Windows behaviour');
  assert.equal(fwpuclnt.loaded(), false);
  const unavailable = (fn: () => unknown, dll: RegExp) =>
    assert.throws(fn, (e: unknown) => e instanceof OsCallError && e.code === 'SY_ERR_WIN_UNAVAILABLE' && dll.test(e.message));
  unavailable(() => WfpEngine.open({ dynamic: true, name: 'x' }), /fwpuclnt\.dll/);
  unavailable(() => processImagePath(4), /kernel32\.dll/);
  unavailable(() => isElevated(), /kernel32\.dll|advapi32\.dll/);
  unavailable(() => flushResolverCache(), /dnsapi\.dll/);
  unavailable(() => tcpTable(4), /iphlpapi\.dll/);
  assert.equal(kernel32.loaded(), false, 'a failed load is not cached as loaded');
});

test('WinDivert: a missing windivertPath or file is SY_ERR_WIN_WINDIVERT_PATH', () => {
  const code = (fn: () => unknown) => assert.throws(fn, (e: unknown) => e instanceof OsCallError && e.code === 'SY_ERR_WIN_WINDIVERT_PATH');
  code(() => windivertLibrary(null));
  code(() => windivertLibrary(tmpdir()));
});

test('GUID text ↔ struct ↔ bytes', () => {
  const g = '{C38D57D1-05A7-4C33-904F-7FBCEEE60E82}';
  const s = guidToStruct(g);
  assert.deepEqual(s, { Data1: 0xc38d57d1, Data2: 0x05a7, Data3: 0x4c33, Data4: [0x90, 0x4f, 0x7f, 0xbc, 0xee, 0xe6, 0x0e, 0x82] });
  assert.equal(guidFromStruct(s), normalizeGuid(g));
  assert.equal(guidBytes(g).toString('hex'), 'd1578dc3a705334c904f7fbceee60e82');
  assert.throws(() => guidToStruct('c38d57d1-05a7-4c33-904f'), TypeError);
  assert.equal(nameGuid(g, 'a'), nameGuid(g.toLowerCase(), 'a'));
  assert.notEqual(nameGuid(g, 'a'), nameGuid(g, 'b'));
});

test('addresses: text ↔ bytes, and WinDivert host-order 128-bit form', () => {
  for (const a of ['198.18.0.1', '::', '::1', '2001:db8::1', 'fe80::1:2', '1:2:3:4:5:6:7:8', '2001:db8:0:0:1::']) {
    assert.equal(bytesToIp(ipToBytes(a)), a);
  }
  assert.equal(ipToBytes('::ffff:1.2.3.4').toString('hex'), '00000000000000000000ffff01020304');
  assert.equal(bytesToIp(ipToBytes('2001:0db8:0000:0000:0000:0000:0000:0001')), '2001:db8::1');
  assert.throws(() => ipToBytes('1.2.3'), TypeError);
  // ::ffff:198.18.0.1 as UINT32[4] host order: [0] = 0xc6120001, [1] = 0x0000ffff.
  const w = toWindivertAddr('198.18.0.1');
  assert.deepEqual([w.readUInt32LE(0), w.readUInt32LE(4), w.readUInt32LE(8), w.readUInt32LE(12)], [0xc6120001, 0xffff, 0, 0]);
  assert.deepEqual(windivertAddr(w), { family: 4, address: '198.18.0.1' });
  const w6 = toWindivertAddr('2001:db8::7');
  assert.equal(w6.readUInt32LE(12), 0x20010db8, 'most significant word last');
  assert.deepEqual(windivertAddr(w6), { family: 6, address: '2001:db8::7' });
});

test('WINDIVERT_ADDRESS codec: bitfields, interface, SOCKET event 5-tuple', () => {
  const b = Buffer.alloc(koffi.sizeof(WINDIVERT_ADDRESS));
  const bit = (n: keyof typeof WINDIVERT_BITS) => 2 ** WINDIVERT_BITS[n].shift;
  b.writeUInt32LE(C.WINDIVERT_LAYER_SOCKET + C.WINDIVERT_EVENT_SOCKET_CONNECT * 2 ** 8 + bit('Sniffed') + bit('Outbound') + bit('IPv6'), 8);
  const S = (f: string) => koffi.offsetof(WINDIVERT_ADDRESS, 'u') + koffi.offsetof(WINDIVERT_DATA_SOCKET, f);
  b.writeUInt32LE(4242, S('ProcessId'));
  toWindivertAddr('2001:db8::10').copy(b, S('LocalAddr'));
  toWindivertAddr('2001:db8:1::7').copy(b, S('RemoteAddr'));
  b.writeUInt16LE(50123, S('LocalPort'));
  b.writeUInt16LE(443, S('RemotePort'));
  b.writeUInt8(6, S('Protocol'));
  const a = decodeAddress(b);
  assert.deepEqual([a.layer, a.event, a.sniffed, a.outbound, a.loopback, a.ipv6], [3, 4, true, true, false, true]);
  assert.deepEqual(decodeSocketEvent(b), {
    event: 4,
    pid: 4242,
    protocol: 6,
    family: 6,
    localAddress: '2001:db8::10',
    localPort: 50123,
    remoteAddress: '2001:db8:1::7',
    remotePort: 443,
  });
  setOutbound(b, false);
  assert.equal(decodeAddress(b).outbound, false);
  assert.equal(decodeAddress(b).sniffed, true, 'other bits untouched');
  assert.throws(() => decodeAddress(Buffer.alloc(79)), RangeError);
});

function tcp4Table(rows: number[][]): Buffer {
  const b = Buffer.alloc(4 + rows.length * 24);
  b.writeUInt32LE(rows.length, 0);
  rows.forEach((r, i) => r.forEach((v, k) => b.writeUInt32LE(v >>> 0, 4 + i * 24 + k * 4)));
  return b;
}

test('TCP table decoding: ports in network order, addresses, PID; hostile sizes refused', () => {
  // dwState, dwLocalAddr (network order bytes c6 12 00 0a), dwLocalPort (0x50c3 → 50000), remote, port 443, pid
  const row = [C.MIB_TCP_STATE_SYN_SENT, 0x0a0012c6, 0x50c3, 0x070713c6, 0xbb01, 4242];
  const rows = decodeTable(tcp4Table([row]), 'tcp4');
  assert.deepEqual(rows, [{ family: 4, localAddress: '198.18.0.10', localPort: 50000, remoteAddress: '198.19.7.7', remotePort: 443, state: 3, pid: 4242 }]);
  const b6 = Buffer.alloc(4 + 56);
  b6.writeUInt32LE(1, 0);
  ipToBytes('2001:db8::10').copy(b6, 4);
  b6.writeUInt32LE(0x50c3, 4 + 20);
  ipToBytes('2001:db8:1::7').copy(b6, 4 + 24);
  b6.writeUInt32LE(0xbb01, 4 + 44);
  b6.writeUInt32LE(5, 4 + 48);
  b6.writeUInt32LE(77, 4 + 52);
  assert.deepEqual(decodeTable(b6, 'tcp6'), [{ family: 6, localAddress: '2001:db8::10', localPort: 50000, remoteAddress: '2001:db8:1::7', remotePort: 443, state: 5, pid: 77 }]);
  assert.throws(() => decodeTable(Buffer.alloc(3), 'tcp4'), TableDecodeError);
  const lying = tcp4Table([row]);
  lying.writeUInt32LE(2, 0);
  assert.throws(() => decodeTable(lying, 'tcp4'), TableDecodeError);
  lying.writeUInt32LE(0xffffffff, 0);
  assert.throws(() => decodeTable(lying, 'tcp4'), TableDecodeError);
  assert.throws(() => decodeTable(tcp4Table([row]), 'tcp4', 20), TableDecodeError, 'the size the call reported bounds the read');
  assert.deepEqual(decodeTable(tcp4Table([]), 'udp6'), []);
});

// ---------------------------------------------------------------- koffi marshalling of FWPM_FILTER0

const GCC = 'gcc';
const hasGcc = spawnSync(GCC, ['--version']).status === 0;
let dir = '';
let describe: ((f: unknown, out: Buffer, cap: number) => number) | undefined;
let blobPtr: unknown;

before(() => {
  if (!hasGcc) return;
  dir = mkdtempSync(join(tmpdir(), 'sy-marshal-'));
  const src = fileURLToPath(new URL('./c/fwpm_echo.c', import.meta.url));
  const so = join(dir, 'fwpm_echo.so');
  const r = spawnSync(GCC, ['-shared', '-fPIC', '-O1', '-o', so, src], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const lib = koffi.load(so);
  describe = lib.func('int sy_describe_filter(const FWPM_FILTER0 *f, _Out_ uint8_t *out, uint32_t cap)') as typeof describe;
  blobPtr = lib.func('void *sy_test_blob(void)')();
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function described(filter: Record<string, unknown>): string {
  const out = Buffer.alloc(4096);
  const n = describe!(filter, out, out.length);
  return out.toString('latin1', 0, n);
}

test('FWPM_FILTER0 from a plan marshals with nested conditions, unions and UTF-16 names', (t) => {
  if (!hasGcc) return t.skip('needs gcc');
  const plan = buildWfpPlan(testConfig(), { seenPaths: ['C:\\Program Files\\Zen\\zen.exe'] });
  const ids = { providerKey: plan.provider.key, sublayerKey: plan.sublayer.key, persistent: true };
  const appIds = new Map<string, AppIdBlob>();
  for (const f of [...plan.persistent, ...plan.dynamic]) for (const c of f.conditions) if (c.field === 'appId') appIds.set(c.path, { path: c.path, ptr: blobPtr });

  const smtp = plan.persistent.find((f) => f.name === 'switchyard: block no-smtp (IPv4)')!;
  assert.equal(
    described(filterToC(smtp, ids, appIds)),
    `key=${smtp.key} name=${smtp.name} flags=1 provider=${plan.provider.key} layer=${C.FWPM_LAYER_ALE_AUTH_CONNECT_V4} ` +
      `sublayer=${plan.sublayer.key} weight=1:12 action=0x1001 n=4` +
      ' [b235ae9a m=0 t=0x100 v4=c6336400/ffffff00]' + // 198.51.100.0/24, host order
      ' [c35a604d m=0 t=0x2 u16=25]' +
      ' [c35a604d m=5 t=0x102 range=2:465-2:587]' +
      ' [3971ef2b m=0 t=0x1 u8=6]',
  );

  const smtp6 = plan.persistent.find((f) => f.name === 'switchyard: block no-smtp (IPv6)')!;
  assert.match(described(filterToC(smtp6, ids, appIds)), / layer=4a72393b-319f-44bc-84c3-ba54dcb3b6b4 .* \[b235ae9a m=0 t=0x101 v6=20010db80bad00000000000000000000\/48\]/);

  const ks = plan.persistent.find((f) => f.name === 'switchyard: kill-switch: selected apps (IPv4)')!;
  assert.match(described(filterToC(ks, ids, appIds)), /weight=1:4 action=0x1001 n=2 \[d78e1e87 m=0 t=0xc blob=4:deadbeef\] \[d78e1e87 m=0 t=0xc blob=4:deadbeef\]$/);

  const loop = plan.persistent.find((f) => f.name === 'switchyard: loopback (IPv6)')!;
  assert.match(described(filterToC(loop, ids, appIds)), /weight=1:14 action=0x1002 n=1 \[632ce23b m=6 t=0x3 u32=0x1\]$/);

  const permit = plan.dynamic.find((f) => f.name.startsWith('switchyard: selected apps, TCP'))!;
  assert.match(described(filterToC(permit, { ...ids, persistent: false }, appIds)), /flags=0 .*action=0x1002/);
});

test('filterToC refuses bad input before any call', () => {
  const plan = buildWfpPlan(testConfig(), { seenPaths: ['C:\\Program Files\\Zen\\zen.exe'] });
  const ks = plan.persistent.find((f) => f.name.includes('kill-switch'))!;
  assert.throws(() => filterToC(ks, { providerKey: plan.provider.key, sublayerKey: plan.sublayer.key, persistent: true }, new Map()), /no app id/);
  assert.throws(() => filterToC({ ...ks, weight: 16 }, { providerKey: plan.provider.key, sublayerKey: plan.sublayer.key, persistent: true }, new Map()), RangeError);
});
