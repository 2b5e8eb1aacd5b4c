// Address-in-prefix tests for the mixed inbound's allow-from list.
import net from 'node:net';
import type { Cidr } from '../policy/types.ts';
import { ipv6Bytes } from '../egress/socks5-wire.ts';

function bytesOf(ip: string): Buffer | undefined {
  const fam = net.isIP(ip);
  if (fam === 4) return Buffer.from(ip.split('.').map(Number));
  if (fam === 6) return ipv6Bytes(ip);
  return undefined;
}

/** Unwraps IPv4-mapped IPv6 (::ffff:a.b.c.d), as dual-stack sockets report IPv4 peers. */
export function unmapV4(ip: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m ? m[1]! : ip;
}

export function cidrContains(c: Cidr, ip: string): boolean {
  const a = bytesOf(unmapV4(ip));
  const n = bytesOf(c.address);
  if (!a || !n || a.length !== n.length) return false;
  let bits = c.prefix;
  for (let i = 0; i < a.length && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((a[i]! & mask) !== (n[i]! & mask)) return false;
  }
  return true;
}

export function isLoopbackAddress(ip: string): boolean {
  const a = unmapV4(ip);
  return a === '::1' || (net.isIP(a) === 4 && a.startsWith('127.'));
}
