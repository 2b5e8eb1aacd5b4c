// IPv4/IPv6 + TCP parsing and the two reflection rewrites, on raw packets as WinDivert hands them
// over (starting at the IP header). Pure; every read is bounds-checked and every refusal is named.
//
// Reflection (the technique of WinDivert's streamdump example): an outbound packet of the app,
//   app A:a → server S:s            becomes the inbound packet   S:a → A:L   (L = listener port)
// so the transparent listener on A:L accepts a connection from "S:a"; and the listener's replies,
//   listener A:L → S:a              become the inbound packets   S:s → A:a
// which the app takes for the server's. Swapping addresses leaves the pseudo-header sum unchanged,
// but the port changes, so both checksums are recomputed (the IPv4 header one too, for safety).
import { bytesToIp } from '../../sys/windows/addr.ts';

/*
 IPv4 header (RFC 791)                     IPv6 header (RFC 8200)
  0                   1                   2                   3
  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 +-------+-------+---------------+-------------------------------+   +-------+---------------+---------------------------------------+
 |Version|  IHL  |Type of Service|          Total Length         |   |Version| Traffic Class |              Flow Label               |
 +-------+-------+---------------+-----+-------------------------+   +-------+-------+-------+-------+---------------+---------------+
 |         Identification        |Flags|      Fragment Offset    |   |         Payload Length        |  Next Header  |   Hop Limit   |
 +---------------+---------------+-----+-------------------------+   +-------------------------------+---------------+---------------+
 |  Time to Live |    Protocol   |         Header Checksum       |   |              Source Address (16 bytes, offset 8)              |
 +---------------+---------------+-------------------------------+   +---------------------------------------------------------------+
 |                 Source Address (offset 12)                    |   |           Destination Address (16 bytes, offset 24)           |
 +---------------------------------------------------------------+   +---------------------------------------------------------------+
 |              Destination Address (offset 16)                  |
 +---------------------------------------------------------------+

 TCP header (RFC 9293): SrcPort(0,2) DstPort(2,2) Seq(4,4) Ack(8,4) DataOffset:4|Rsv:4 (12) Flags (13)
 Window(14,2) Checksum(16,2) Urgent(18,2) [options]
*/

export const IPPROTO_TCP = 6;
const IPV6_EXT = { HOPOPTS: 0, ROUTING: 43, FRAGMENT: 44, ESP: 50, AH: 51, NONE: 59, DSTOPTS: 60 } as const;
/** More extension headers than any sane packet carries; a longer chain is refused. */
export const MAX_EXT_HEADERS = 8;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

export type ParseFailure =
  | 'truncated-ip'
  | 'bad-version'
  | 'bad-ihl'
  | 'bad-length'
  | 'fragment'
  | 'not-tcp'
  | 'ext-header-truncated'
  | 'ext-header-chain-too-long'
  | 'routing-header-active'
  | 'esp'
  | 'truncated-tcp'
  | 'bad-tcp-offset';

export interface TcpPacket {
  family: 4 | 6;
  /** Offset of the source address; the destination follows it directly (v4 +4, v6 +16). */
  addrOffset: number;
  addrLen: 4 | 16;
  /** IPv4 header length (for its checksum); 40 for IPv6. */
  ipHeaderLen: number;
  /** Offset of the TCP header (after any IPv6 extension headers). */
  tcpOffset: number;
  /** TCP header + payload length (the pseudo-header's length field). */
  tcpLength: number;
  /** Total length the IP header claims (trailing bytes beyond it are ignored). */
  totalLength: number;
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  flags: number;
}

export type ParseResult = { ok: true; pkt: TcpPacket } | { ok: false; reason: ParseFailure };

const fail = (reason: ParseFailure): ParseResult => ({ ok: false, reason });

export function parseTcp(b: Uint8Array): ParseResult {
  if (b.length < 1) return fail('truncated-ip');
  const version = b[0]! >> 4;
  let family: 4 | 6;
  let tcpOffset: number;
  let totalLength: number;
  let ipHeaderLen: number;
  let addrOffset: number;
  let addrLen: 4 | 16;
  if (version === 4) {
    if (b.length < 20) return fail('truncated-ip');
    ipHeaderLen = (b[0]! & 0x0f) * 4;
    if (ipHeaderLen < 20) return fail('bad-ihl');
    totalLength = (b[2]! << 8) | b[3]!;
    if (totalLength < ipHeaderLen || totalLength > b.length) return fail('bad-length');
    const frag = ((b[6]! << 8) | b[7]!) & 0x3fff; // MF flag + fragment offset
    if (frag !== 0) return fail('fragment');
    if (b[9] !== IPPROTO_TCP) return fail('not-tcp');
    family = 4;
    tcpOffset = ipHeaderLen;
    addrOffset = 12;
    addrLen = 4;
  } else if (version === 6) {
    if (b.length < 40) return fail('truncated-ip');
    totalLength = 40 + ((b[4]! << 8) | b[5]!);
    if (totalLength > b.length) return fail('bad-length');
    ipHeaderLen = 40;
    family = 6;
    addrOffset = 8;
    addrLen = 16;
    let next = b[6]!;
    let off = 40;
    for (let n = 0; ; n++) {
      if (next === IPPROTO_TCP) break;
      if (n >= MAX_EXT_HEADERS) return fail('ext-header-chain-too-long');
      if (next === IPV6_EXT.ESP) return fail('esp');
      if (next === IPV6_EXT.NONE) return fail('not-tcp');
      let len: number;
      if (next === IPV6_EXT.HOPOPTS || next === IPV6_EXT.DSTOPTS || next === IPV6_EXT.ROUTING) {
        if (off + 8 > totalLength) return fail('ext-header-truncated');
        len = (b[off + 1]! + 1) * 8;
        // An active routing header changes the destination the checksum covers (the final one):
        // outbound TCP never carries one, so we refuse rather than guess.
        if (next === IPV6_EXT.ROUTING && b[off + 3]! !== 0) return fail('routing-header-active');
      } else if (next === IPV6_EXT.FRAGMENT) {
        if (off + 8 > totalLength) return fail('ext-header-truncated');
        const fo = (b[off + 2]! << 8) | b[off + 3]!;
        if ((fo & 0xfff9) !== 0) return fail('fragment'); // offset != 0 or M set: not an atomic fragment
        len = 8;
      } else if (next === IPV6_EXT.AH) {
        if (off + 8 > totalLength) return fail('ext-header-truncated');
        len = (b[off + 1]! + 2) * 4;
      } else {
        return fail('not-tcp');
      }
      if (off + len > totalLength) return fail('ext-header-truncated');
      next = b[off]!;
      off += len;
    }
    tcpOffset = off;
  } else {
    return fail('bad-version');
  }
  if (tcpOffset + 20 > totalLength) return fail('truncated-tcp');
  const dataOffset = (b[tcpOffset + 12]! >> 4) * 4;
  if (dataOffset < 20 || tcpOffset + dataOffset > totalLength) return fail('bad-tcp-offset');
  return {
    ok: true,
    pkt: {
      family,
      addrOffset,
      addrLen,
      ipHeaderLen,
      tcpOffset,
      tcpLength: totalLength - tcpOffset,
      totalLength,
      src: bytesToIp(b.subarray(addrOffset, addrOffset + addrLen)),
      dst: bytesToIp(b.subarray(addrOffset + addrLen, addrOffset + 2 * addrLen)),
      srcPort: (b[tcpOffset]! << 8) | b[tcpOffset + 1]!,
      dstPort: (b[tcpOffset + 2]! << 8) | b[tcpOffset + 3]!,
      flags: b[tcpOffset + 13]!,
    },
  };
}

/** One's-complement sum of 16-bit big-endian words (an odd last byte is padded with zero). */
function sum16(b: Uint8Array, start: number, end: number, acc = 0): number {
  let s = acc;
  let i = start;
  for (; i + 1 < end; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (i < end) s += b[i]! << 8;
  return s;
}

function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** Recomputes the IPv4 header checksum (if v4) and the TCP checksum, in place. */
export function fixChecksums(b: Uint8Array, p: TcpPacket): void {
  if (p.family === 4) {
    b[10] = 0;
    b[11] = 0;
    const c = ~fold(sum16(b, 0, p.ipHeaderLen)) & 0xffff;
    b[10] = c >> 8;
    b[11] = c & 0xff;
  }
  const t = p.tcpOffset;
  b[t + 16] = 0;
  b[t + 17] = 0;
  // Pseudo-header: source, destination, protocol and TCP length (RFC 9293 §3.1, RFC 8200 §8.1).
  let s = sum16(b, p.addrOffset, p.addrOffset + 2 * p.addrLen);
  s += IPPROTO_TCP + (p.tcpLength & 0xffff) + Math.floor(p.tcpLength / 0x10000);
  s = sum16(b, t, t + p.tcpLength, s);
  const c = ~fold(s) & 0xffff;
  b[t + 16] = c >> 8;
  b[t + 17] = c & 0xff;
}

function swapAddresses(b: Uint8Array, p: TcpPacket): void {
  const a = p.addrOffset;
  const n = p.addrLen;
  for (let i = 0; i < n; i++) {
    const x = b[a + i]!;
    b[a + i] = b[a + n + i]!;
    b[a + n + i] = x;
  }
}

function writePort(b: Uint8Array, off: number, port: number): void {
  b[off] = port >> 8;
  b[off + 1] = port & 0xff;
}

/**
 * App → server packet to listener: S:a → A:L. Returns a new buffer (trimmed to the IP total length);
 * the input is not modified.
 */
export function reflectToListener(packet: Uint8Array, p: TcpPacket, listenerPort: number): Buffer {
  const b = Buffer.from(packet.subarray(0, p.totalLength));
  swapAddresses(b, p);
  writePort(b, p.tcpOffset + 2, listenerPort);
  fixChecksums(b, p);
  return b;
}

/** Listener → "S:a" reply to the app: S:s → A:a, `origPort` being s. New buffer, input unchanged. */
export function reflectToApp(packet: Uint8Array, p: TcpPacket, origPort: number): Buffer {
  const b = Buffer.from(packet.subarray(0, p.totalLength));
  swapAddresses(b, p);
  writePort(b, p.tcpOffset, origPort);
  fixChecksums(b, p);
  return b;
}
