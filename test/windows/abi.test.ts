// Layout test for every koffi struct in src/sys/windows/types.ts: sizeof and each field offset as
// koffi computes them (on Linux x64) must equal what the x64 Windows compiler computes from the real
// headers. We compile a generated C file with `x86_64-w64-mingw32-gcc -S` (no linking, no Wine) and
// read the numbers back from the assembly, where a `const unsigned long long[]` appears as `.quad`
// lines. WinDivert's structs are checked against test/windows/c/windivert.h, written from WinDivert's
// documentation, including the position of every WINDIVERT_ADDRESS bitfield.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import koffi, { type TypeObject } from 'koffi';
import { ALL_STRUCTS, WINDIVERT_BITS } from '../../src/sys/windows/types.ts';
import { WIN_CONSTANTS, WINDIVERT_CONSTANTS } from '../../src/sys/windows/constants.ts';

const GCC = 'x86_64-w64-mingw32-gcc';
const hasGcc = spawnSync(GCC, ['--version']).status === 0;
const HEADER_DIR = fileURLToPath(new URL('./c/', import.meta.url));

/**
 * koffi field → C member designator where they differ: koffi needs a name for C's anonymous unions
 * (and has no bitfields), so those fields are matched to the union's first member.
 */
const C_MEMBER: Record<string, Record<string, string>> = {
  FWP_VALUE0: { value: 'uint8' },
  FWP_CONDITION_VALUE0: { value: 'uint8' },
  FWPM_ACTION0: { value: 'filterType' },
  FWPM_FILTER0: { context: 'rawContext' },
  WINDIVERT_ADDRESS: { u: 'Network', Bits: '' }, // Bits: bitfield word, checked separately below
};

/**
 * FWPM_SUBLAYER0.flags is UINT32 in Microsoft's fwpmtypes.h and its documentation but UINT16 in
 * mingw-w64's; we follow Microsoft (the offsets around it are the same either way, checked above).
 */
const KNOWN_WIDTH_SPLIT = new Set(['FWPM_SUBLAYER0.flags']);

/** C type name for each koffi struct name, where they differ. */
const C_TYPE: Record<string, string> = {};

interface Probe {
  label: string;
  expr: string;
  koffi: number;
}

function probes(): Probe[] {
  const out: Probe[] = [];
  for (const s of ALL_STRUCTS) {
    const ctype = C_TYPE[s.name] ?? s.name;
    if (!s.prefix) out.push({ label: `sizeof(${s.name})`, expr: `sizeof(${ctype})`, koffi: koffi.sizeof(s.type) });
    const info = koffi.type(s.type) as unknown as {
      members: Record<string, { name: string; offset: number; type: TypeObject }>;
    };
    for (const m of Object.values(info.members)) {
      const mapped = C_MEMBER[s.name]?.[m.name];
      const cm = mapped ?? m.name;
      if (cm === '') continue;
      out.push({ label: `${s.name}.${m.name}`, expr: `offsetof(${ctype}, ${cm})`, koffi: koffi.offsetof(s.type, m.name) });
      // Field width too (a uint16 where C has a uint32 can keep every offset right and still be wrong),
      // except where koffi's field stands for a whole anonymous union, and the one known header split.
      if (mapped === undefined && !KNOWN_WIDTH_SPLIT.has(`${s.name}.${m.name}`)) {
        out.push({ label: `sizeof ${s.name}.${m.name}`, expr: `sizeof(((${ctype} *)0)->${cm})`, koffi: koffi.sizeof(m.type) });
      }
    }
  }
  for (const [name, value] of Object.entries({ ...WIN_CONSTANTS, ...WINDIVERT_CONSTANTS })) {
    out.push({ label: name, expr: `(unsigned long long)(unsigned int)(${name})`, koffi: value >>> 0 });
  }
  return out;
}

const BIT_NAMES = Object.keys(WINDIVERT_BITS) as (keyof typeof WINDIVERT_BITS)[];

function cSource(list: Probe[]): string {
  const lines = [
    '#define WIN32_LEAN_AND_MEAN',
    '#define _WIN32_WINNT 0x0A00',
    '#include <winsock2.h>',
    '#include <ws2tcpip.h>',
    '#include <windows.h>',
    '#include <stddef.h>',
    '#include <fwpmu.h>',
    '#include <iphlpapi.h>',
    '#include "windivert.h"',
    'const unsigned long long sy_probe[] = {',
    ...list.map((p) => `  ${p.expr}, /* ${p.label} */`),
    '};',
  ];
  // One WINDIVERT_ADDRESS per bitfield with that field set to all ones; reading the 32-bit word at
  // offset 8 back from the assembly gives the field's mask, hence its position and width.
  for (const b of BIT_NAMES) {
    lines.push(`const WINDIVERT_ADDRESS sy_bit_${b} = { .${b} = ${(2 ** WINDIVERT_BITS[b].width - 1) >>> 0}u };`);
  }
  return lines.join('\n') + '\n';
}

/** Bytes of one global's initializer, from the assembler directives that follow its label. */
function globalBytes(asm: string, symbol: string): Buffer {
  const lines = asm.split('\n');
  const start = lines.findIndex((l) => l.trim() === `${symbol}:`);
  assert.ok(start >= 0, `symbol ${symbol} not found in the assembly`);
  const bytes: number[] = [];
  for (let i = start + 1; i < lines.length; i++) {
    const m = /^\s*\.(quad|long|value|word|short|byte|zero|space)\s+(.+)$/.exec(lines[i]!);
    if (!m) break;
    const [, dir, arg] = m;
    const width = { quad: 8, long: 4, value: 2, word: 2, short: 2, byte: 1 }[dir as 'quad'];
    if (dir === 'zero' || dir === 'space') {
      for (let k = 0; k < Number(arg); k++) bytes.push(0);
      continue;
    }
    for (const part of arg!.split(',')) {
      let v = BigInt.asUintN(64, BigInt(part.trim()));
      for (let k = 0; k < width; k++) {
        bytes.push(Number(v & 0xffn));
        v >>= 8n;
      }
    }
  }
  return Buffer.from(bytes);
}

let dir = '';
let list: Probe[] = [];
let values: bigint[] = [];
let asm = '';

before(() => {
  if (!hasGcc) return;
  dir = mkdtempSync(join(tmpdir(), 'sy-abi-'));
  list = probes();
  writeFileSync(join(dir, 'abi.c'), cSource(list));
  execFileSync(GCC, ['-S', '-O0', '-I', HEADER_DIR, '-o', join(dir, 'abi.s'), join(dir, 'abi.c')], { stdio: 'pipe' });
  asm = readFileSync(join(dir, 'abi.s'), 'utf8');
  const bytes = globalBytes(asm, 'sy_probe');
  values = [];
  for (let o = 0; o + 8 <= bytes.length; o += 8) values.push(bytes.readBigUInt64LE(o));
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('every koffi struct size and field offset matches the x64 Windows headers', (t) => {
  if (!hasGcc) return t.skip(`needs ${GCC} (Debian gcc-mingw-w64-x86-64)`);
  assert.equal(values.length, list.length, 'one value per probe');
  const wrong: string[] = [];
  list.forEach((p, i) => {
    if (BigInt(p.koffi) !== values[i]) wrong.push(`${p.label}: koffi ${p.koffi}, C ${values[i]}`);
  });
  assert.deepEqual(wrong, []);
  // The figure the issue names, checked explicitly too.
  const filter = list.findIndex((p) => p.label === 'sizeof(FWPM_FILTER0)');
  assert.equal(values[filter], 200n);
});

test('the probe list covers every struct and every field', (t) => {
  if (!hasGcc) return t.skip(`needs ${GCC}`);
  for (const s of ALL_STRUCTS) {
    assert.ok(list.some((p) => p.label.startsWith(`${s.name}.`)), `${s.name} has field probes`);
  }
  assert.ok(list.length > 150, `only ${list.length} probes`);
});

test('WINDIVERT_ADDRESS bitfield positions match the documented header', (t) => {
  if (!hasGcc) return t.skip(`needs ${GCC}`);
  for (const b of BIT_NAMES) {
    const bytes = globalBytes(asm, `sy_bit_${b}`);
    assert.equal(bytes.length, 80, `sy_bit_${b} is one WINDIVERT_ADDRESS`);
    const word = bytes.readUInt32LE(8);
    const { shift, width } = WINDIVERT_BITS[b];
    const mask = ((2 ** width - 1) * 2 ** shift) >>> 0;
    assert.equal(word, mask, `${b}: C sets 0x${word.toString(16)}, we expect 0x${mask.toString(16)}`);
    // Nothing outside the bitfield word changed.
    assert.ok(bytes.subarray(0, 8).every((x) => x === 0) && bytes.subarray(12).every((x) => x === 0), b);
  }
});
