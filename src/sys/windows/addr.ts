// IP address text ↔ network-order bytes, and the formats Windows APIs use for addresses. Pure.
import { isIPv4, isIPv6 } from 'node:net';

/** Network-order bytes (4 or 16) of a valid address; throws TypeError for anything else. */
export function ipToBytes(text: string): Buffer {
  if (isIPv4(text)) return Buffer.from(text.split('.').map(Number));
  if (!isIPv6(text)) throw new TypeError(`not an IP address: ${JSON.stringify(text)}`);
  let s = text;
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct);
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex words.
  const lastColon = s.lastIndexOf(':');
  const last = s.slice(lastColon + 1);
  if (last.includes('.')) {
    const b = last.split('.').map(Number);
    s = `${s.slice(0, lastColon + 1)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  let words: number[];
  const dbl = s.indexOf('::');
  if (dbl >= 0) {
    const left = parse(s.slice(0, dbl));
    const right = parse(s.slice(dbl + 2));
    words = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  } else {
    words = parse(s);
  }
  const out = Buffer.alloc(16);
  words.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

/** Canonical text (RFC 5952 for IPv6) of 4 or 16 network-order bytes. */
export function bytesToIp(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) throw new TypeError(`address of ${b.length} bytes`);
  const w: number[] = [];
  for (let i = 0; i < 16; i += 2) w.push((b[i]! << 8) | b[i + 1]!);
  // Longest run of two or more zero words becomes '::' (first one on a tie).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(w);
  return `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

/**
 * WinDivert's FLOW/SOCKET addresses: UINT32[4] "in host byte order", i.e. the 128-bit address as one
 * little-endian number — the 16 bytes in memory are the network-order bytes reversed. IPv4 appears as
 * ::ffff:a.b.c.d. Returns the family and canonical text.
 */
export function windivertAddr(raw16: Uint8Array): { family: 4 | 6; address: string } {
  if (raw16.length !== 16) throw new TypeError('WinDivert address is 16 bytes');
  const net = Buffer.from(raw16).reverse();
  const mapped = net.subarray(0, 10).every((x) => x === 0) && net[10] === 0xff && net[11] === 0xff;
  if (mapped) return { family: 4, address: bytesToIp(net.subarray(12)) };
  return { family: 6, address: bytesToIp(net) };
}

/** Inverse of windivertAddr (IPv4 becomes ::ffff:a.b.c.d). */
export function toWindivertAddr(address: string): Buffer {
  const b = ipToBytes(address);
  const net = Buffer.alloc(16);
  if (b.length === 4) {
    net[10] = 0xff;
    net[11] = 0xff;
    b.copy(net, 12);
  } else b.copy(net);
  return net.reverse();
}

export function isLoopback(address: string): boolean {
  if (isIPv4(address)) return address.startsWith('127.');
  return address === '::1';
}
