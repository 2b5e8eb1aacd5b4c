// SOCKS Protocol Version 5 (RFC 1928) and its username/password sub-negotiation (RFC 1929):
// constants and the address codec shared by the server (src/front/socks5.ts) and the client
// used by socks5 egresses (src/egress/socks5-client.ts).
import net from 'node:net';
import { HandshakeError } from '../errors.ts';
import type { ByteReader } from './reader.ts';

export const SOCKS_VERSION = 0x05;
export const AUTH_VERSION = 0x01; // RFC 1929 sub-negotiation version

/** METHOD values (RFC 1928 §3). */
export const METHOD = { NO_AUTH: 0x00, GSSAPI: 0x01, USERPASS: 0x02, NO_ACCEPTABLE: 0xff } as const;
/** CMD values (RFC 1928 §4). */
export const CMD = { CONNECT: 0x01, BIND: 0x02, UDP_ASSOCIATE: 0x03 } as const;
/** ATYP values (RFC 1928 §4). */
export const ATYP = { IPV4: 0x01, DOMAIN: 0x03, IPV6: 0x04 } as const;
/** REP values (RFC 1928 §6). */
export const REP = {
  SUCCEEDED: 0x00,
  GENERAL_FAILURE: 0x01,
  NOT_ALLOWED: 0x02,
  NETWORK_UNREACHABLE: 0x03,
  HOST_UNREACHABLE: 0x04,
  CONNECTION_REFUSED: 0x05,
  TTL_EXPIRED: 0x06,
  COMMAND_NOT_SUPPORTED: 0x07,
  ADDRESS_TYPE_NOT_SUPPORTED: 0x08,
} as const;

/** A SOCKS address: an IP literal (family 4/6) or a domain name (family 0). */
export interface SocksAddress {
  host: string;
  port: number;
  family: 0 | 4 | 6;
}

/** Longest name a DOMAIN address may carry: its length is one octet. */
export const MAX_DOMAIN = 255;

/**
 *   +------+----------+----------+
 *   | ATYP | DST.ADDR | DST.PORT |
 *   +------+----------+----------+
 *   |  1   | Variable |    2     |
 *   +------+----------+----------+
 * DOMAIN: one length octet, then that many octets, no terminating NUL.
 */
export function encodeAddress(host: string, port: number): Buffer {
  const fam = net.isIP(host);
  let head: Buffer;
  if (fam === 4) head = Buffer.from([ATYP.IPV4, ...host.split('.').map(Number)]);
  else if (fam === 6) head = Buffer.concat([Buffer.from([ATYP.IPV6]), ipv6Bytes(host)]);
  else {
    const name = Buffer.from(host, 'utf8');
    if (name.length === 0 || name.length > MAX_DOMAIN) throw new HandshakeError('bad-domain', `domain length ${name.length} out of range`);
    head = Buffer.concat([Buffer.from([ATYP.DOMAIN, name.length]), name]);
  }
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port);
  return Buffer.concat([head, p]);
}

export function ipv6Bytes(host: string): Buffer {
  const out = Buffer.alloc(16);
  let text = host;
  const pct = text.indexOf('%');
  if (pct >= 0) text = text.slice(0, pct);
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex words first.
  const v4 = text.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    text = text.slice(0, -v4[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [left, right] = text.includes('::') ? text.split('::') : [text, undefined];
  const l = left ? left.split(':') : [];
  const r = right ? right.split(':') : [];
  const words = right === undefined ? l : [...l, ...Array(8 - l.length - r.length).fill('0'), ...r];
  for (let i = 0; i < 8; i++) out.writeUInt16BE(parseInt(words[i] ?? '0', 16) & 0xffff, i * 2);
  return out;
}

export function ipv6Text(b: Buffer): string {
  const words: string[] = [];
  for (let i = 0; i < 8; i++) words.push(b.readUInt16BE(i * 2).toString(16));
  return new URL(`http://[${words.join(':')}]/`).hostname.slice(1, -1);
}

/** Reads ATYP, DST.ADDR and DST.PORT from a handshake stream; names each malformed case. */
export async function readAddress(r: ByteReader): Promise<SocksAddress> {
  const atyp = await r.u8();
  let host: string;
  let family: 0 | 4 | 6;
  if (atyp === ATYP.IPV4) {
    const a = await r.read(4);
    host = `${a[0]}.${a[1]}.${a[2]}.${a[3]}`;
    family = 4;
  } else if (atyp === ATYP.IPV6) {
    host = ipv6Text(Buffer.from(await r.read(16)));
    family = 6;
  } else if (atyp === ATYP.DOMAIN) {
    const len = await r.u8();
    if (len === 0) throw new HandshakeError('bad-domain', 'empty domain name');
    host = decodeDomain(await r.read(len));
    family = 0;
  } else throw new HandshakeError('bad-atyp', `unknown address type 0x${atyp.toString(16)}`);
  const port = (await r.read(2)).readUInt16BE(0);
  return { host, port, family };
}

/** Parses the same address layout from a buffer (UDP request header); returns the byte count used. */
export function parseAddress(b: Buffer, at: number): { addr: SocksAddress; next: number } {
  const need = (n: number) => {
    if (at + n > b.length) throw new HandshakeError('short', 'truncated SOCKS address');
  };
  need(1);
  const atyp = b[at]!;
  let host: string;
  let family: 0 | 4 | 6;
  let p = at + 1;
  if (atyp === ATYP.IPV4) {
    need(1 + 4 + 2);
    host = `${b[p]}.${b[p + 1]}.${b[p + 2]}.${b[p + 3]}`;
    p += 4;
    family = 4;
  } else if (atyp === ATYP.IPV6) {
    need(1 + 16 + 2);
    host = ipv6Text(b.subarray(p, p + 16));
    p += 16;
    family = 6;
  } else if (atyp === ATYP.DOMAIN) {
    need(2);
    const len = b[p]!;
    if (len === 0) throw new HandshakeError('bad-domain', 'empty domain name');
    need(2 + len + 2);
    host = decodeDomain(b.subarray(p + 1, p + 1 + len));
    p += 1 + len;
    family = 0;
  } else throw new HandshakeError('bad-atyp', `unknown address type 0x${atyp.toString(16)}`);
  return { addr: { host, port: b.readUInt16BE(p), family }, next: p + 2 };
}

/** Domain names from the wire: printable ASCII hostname characters only, lower-cased. */
export function decodeDomain(b: Buffer): string {
  for (const c of b) {
    const ok = (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x2d || c === 0x2e || c === 0x5f;
    if (!ok) throw new HandshakeError('bad-domain', 'domain name has characters outside [A-Za-z0-9._-]');
  }
  const s = b.toString('latin1').toLowerCase();
  return s.endsWith('.') ? s.slice(0, -1) : s;
}
