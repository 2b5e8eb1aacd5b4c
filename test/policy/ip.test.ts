// IPv4 text parsing (src/policy/ip.ts parseIPv4): strict dotted quad, no leading zeros, checked
// against a plain reference on hostile and random input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIPv4, parseIp, formatIPv4 } from '../../src/policy/ip.ts';
import { Rng } from './random.ts';

/** Reference: four decimal octets 0..255 without leading zeros, separated by dots; nothing else. */
function reference(s: string): number | null {
  const m = /^(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})$/.exec(s);
  if (!m) return null;
  const o = m.slice(1).map(Number);
  if (o.some((x) => x > 255)) return null;
  return ((o[0]! * 256 + o[1]!) * 256 + o[2]!) * 256 + o[3]!;
}

test('parseIPv4 on chosen cases', () => {
  const ok: [string, number][] = [['0.0.0.0', 0], ['255.255.255.255', 0xffffffff], ['1.2.3.4', 0x01020304], ['128.0.0.1', 0x80000001], ['10.200.30.255', 0x0ac81eff], ['100.64.0.9', 0x64400009]];
  for (const [s, v] of ok) assert.equal(parseIPv4(s), v, s);
  const bad = ['', '1.2.3', '1.2.3.4.', '.1.2.3.4', '1..2.3', '01.2.3.4', '1.2.3.04', '1.2.3.256', '256.1.1.1', '1.2.3.4 ', ' 1.2.3.4', '1.2.3.-4', '1.2.3.4/8', '1.2.3.1000', '1000.2.3.4',
    '1.2.3.a', 'a.b.c.d', '1,2,3,4', '1.2.3.4.5', '999.999.999.999', '00.0.0.0', '0.0.0.00', '1.2.3.٤', '１.2.3.4', '1.2.3.4\0', '::1', '::ffff:1.2.3.4', '1.2.3.4:80'];
  for (const s of bad) assert.equal(parseIPv4(s), null, JSON.stringify(s));
});

test('parseIPv4 agrees with the reference on random and mutated input', () => {
  const r = new Rng(5);
  const alphabet = '0123456789.....x:- ';
  let valid = 0;
  for (let k = 0; k < 200_000; k++) {
    let s: string;
    const kind = r.int(3);
    if (kind === 0) {
      // A valid address, maybe mutated at one position.
      s = formatIPv4(Math.floor(r.next() * 2 ** 32));
      if (r.chance(0.5)) {
        const at = r.int(s.length + 1);
        const op = r.int(3);
        const ch = alphabet[r.int(alphabet.length)]!;
        s = op === 0 ? s.slice(0, at) + ch + s.slice(at) : op === 1 ? s.slice(0, at) + s.slice(at + 1) : s.slice(0, at) + ch + s.slice(at + 1);
      }
    } else if (kind === 1) {
      s = Array.from({ length: 4 }, () => String(r.int(300)).padStart(r.chance(0.1) ? 2 : 0, '0')).join('.');
    } else {
      s = Array.from({ length: r.int(17) }, () => alphabet[r.int(alphabet.length)]!).join('');
    }
    const want = reference(s);
    assert.equal(parseIPv4(s), want, JSON.stringify(s));
    if (want !== null) {
      valid++;
      assert.deepEqual(parseIp(s), { family: 4, v4: want });
    }
  }
  assert.ok(valid > 50_000, `enough valid addresses were tried (${valid})`);
});
