// IP address and CIDR parsing without I/O, strict: dotted-quad IPv4 without leading zeros, IPv6 per
// RFC 4291 text forms (with an embedded IPv4 tail), no zone ids. IPv4-mapped IPv6 addresses
// (::ffff:a.b.c.d, as dual-stack sockets report IPv4 peers) are treated as the IPv4 address.
import type { Cidr } from './types.ts';

export type ParsedIp = { family: 4; v4: number } | { family: 6; words: Uint16Array };

export function parseIPv4(s: string): number | null {
  // Hand-rolled: this runs for every flow that carries an address (no split, no regexp). Octet
  // by octet, up to three digits each; every read is bounds-checked first (a read past the end
  // would give NaN, and V8 makes such reads slow).
  const n = s.length;
  if (n < 7 || n > 15) return null;
  let v = 0;
  let i = 0;
  for (let part = 0; part < 4; part++) {
    if (part !== 0) {
      if (i >= n || s.charCodeAt(i) !== 46) return null; // '.'
      i++;
    }
    if (i >= n) return null;
    let d = s.charCodeAt(i++) - 48;
    if (d < 0 || d > 9) return null;
    let o = d;
    if (i < n) {
      d = s.charCodeAt(i) - 48;
      if (d >= 0 && d <= 9) {
        if (o === 0) return null; // leading zero
        o = o * 10 + d;
        i++;
        if (i < n) {
          d = s.charCodeAt(i) - 48;
          if (d >= 0 && d <= 9) {
            o = o * 10 + d;
            if (o > 255) return null;
            i++;
          }
        }
      }
    }
    v = (v << 8) | o;
  }
  return i === n ? v >>> 0 : null;
}

export function parseIPv6(s: string): Uint16Array | null {
  if (s.length < 2 || s.length > 45 || s.includes('%')) return null;
  const words = new Uint16Array(8);
  let head = s;
  let tail = '';
  const dbl = s.indexOf('::');
  if (dbl >= 0) {
    if (s.indexOf('::', dbl + 1) >= 0) return null;
    head = s.slice(0, dbl);
    tail = s.slice(dbl + 2);
  }
  const parseGroups = (part: string, allowV4Tail: boolean): number[] | null => {
    if (part === '') return [];
    const groups = part.split(':');
    const out: number[] = [];
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      if (allowV4Tail && i === groups.length - 1 && g.includes('.')) {
        const v4 = parseIPv4(g);
        if (v4 === null) return null;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const h = parseGroups(head, dbl < 0);
  const t = parseGroups(tail, true);
  if (h === null || t === null) return null;
  if (dbl < 0) {
    if (h.length !== 8) return null;
    words.set(h);
  } else {
    if (h.length + t.length > 7) return null;
    words.set(h, 0);
    words.set(t, 8 - t.length);
  }
  return words;
}

/** Parses an address as a flow query carries it; IPv4-mapped IPv6 becomes IPv4. */
export function parseIp(s: string): ParsedIp | null {
  const v4 = parseIPv4(s);
  if (v4 !== null) return { family: 4, v4 };
  if (!s.includes(':')) return null;
  let text = s;
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  const words = parseIPv6(text);
  if (words === null) return null;
  if (words[0] === 0 && words[1] === 0 && words[2] === 0 && words[3] === 0 && words[4] === 0 && words[5] === 0xffff) {
    return { family: 4, v4: ((words[6]! << 16) | words[7]!) >>> 0 };
  }
  return { family: 6, words };
}

export function formatIPv4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** RFC 5952 canonical text: lower case, longest run of zero groups (≥ 2) compressed. */
export function formatIPv6(w: Uint16Array): string {
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = (a: number, b: number) => Array.from(w.subarray(a, b), (x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

/** The 32 hex digits of an IPv6 address: the key space for IPv6 prefix lookups. */
export function ipv6Hex(w: Uint16Array): string {
  let s = '';
  for (let i = 0; i < 8; i++) s += w[i]!.toString(16).padStart(4, '0');
  return s;
}

/** Masks `hex` (32 digits) to `prefix` bits and returns the shortest string key for that prefix. */
export function ipv6PrefixKey(hex: string, prefix: number): string {
  const full = prefix >> 2;
  const rest = prefix & 3;
  if (rest === 0) return hex.slice(0, full);
  const nib = parseInt(hex[full]!, 16) & (0xf << (4 - rest)) & 0xf;
  return hex.slice(0, full) + nib.toString(16);
}

export function v4Mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Parses `a.b.c.d/n`, `x::/n`, or a bare address (a /32 or /128). Returns an error text on failure. */
export function parseCidr(s: string): Cidr | string {
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  const lenText = slash < 0 ? null : s.slice(slash + 1);
  if (lenText !== null && !/^(0|[1-9][0-9]{0,2})$/.test(lenText)) return `bad prefix length '${lenText}'`;
  const v4 = parseIPv4(addr);
  if (v4 !== null) {
    const prefix = lenText === null ? 32 : Number(lenText);
    if (prefix > 32) return `prefix length ${prefix} is over 32 for IPv4`;
    const net = (v4 & v4Mask(prefix)) >>> 0;
    if (net !== v4) return `host bits set: did you mean ${formatIPv4(net)}/${prefix}?`;
    return { family: 4, address: formatIPv4(net), prefix };
  }
  const w = parseIPv6(addr);
  if (w === null) return `'${addr}' is not an IPv4 or IPv6 address`;
  const prefix = lenText === null ? 128 : Number(lenText);
  if (prefix > 128) return `prefix length ${prefix} is over 128 for IPv6`;
  const masked = new Uint16Array(8);
  for (let i = 0; i < 8; i++) {
    const bits = Math.max(0, Math.min(16, prefix - i * 16));
    masked[i] = bits === 0 ? 0 : w[i]! & ((0xffff << (16 - bits)) & 0xffff);
  }
  if (masked.some((x, i) => x !== w[i])) return `host bits set: did you mean ${formatIPv6(masked)}/${prefix}?`;
  return { family: 6, address: formatIPv6(masked), prefix };
}

export function cidrText(c: Cidr): string {
  return `${c.address}/${c.prefix}`;
}

/** Does `ip` lie in `c`? (Used for small per-rule lists; the engine indexes big ones.) */
export function cidrContains(c: Cidr, ip: ParsedIp): boolean {
  if (c.family !== ip.family) return false;
  if (ip.family === 4) {
    const m = v4Mask(c.prefix);
    return ((ip.v4 & m) >>> 0) === parseIPv4(c.address);
  }
  const net = parseIPv6(c.address)!;
  return ipv6PrefixKey(ipv6Hex(ip.words), c.prefix) === ipv6PrefixKey(ipv6Hex(net), c.prefix);
}

/** isLanAddress for an IPv4 address as a number (no ParsedIp needed). */
export function isLanV4(v4: number): boolean {
  const a = v4 >>> 24;
  const b = (v4 >>> 16) & 255;
  return a === 127 || a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 169 && b === 254);
}

/**
 * Loopback and LAN destinations that `[enforce] lan = "direct"` keeps off proxies:
 * 127.0.0.0/8, 10/8, 172.16/12, 192.168/16, 169.254/16 (link-local), ::1, fe80::/10, fc00::/7 (ULA).
 */
export function isLanAddress(ip: ParsedIp): boolean {
  if (ip.family === 4) return isLanV4(ip.v4);
  const w = ip.words;
  if (w[0] === 0 && w[1] === 0 && w[2] === 0 && w[3] === 0 && w[4] === 0 && w[5] === 0 && w[6] === 0 && w[7] === 1) return true;
  return (w[0]! & 0xffc0) === 0xfe80 || (w[0]! & 0xfe00) === 0xfc00;
}
