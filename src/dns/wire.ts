// DNS wire format (RFC 1035 §4): the bounded reader the forwarder uses on untrusted bytes, from
// clients and from upstreams. We parse only what we need and never re-encode a whole message
// (dns-packet does not compress names), so forwarded answers stay byte-for-byte the upstream's.
//
//                                 1  1  1  1  1  1
//   0  1  2  3  4  5  6  7  8  9  0  1  2  3  4  5
// +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
// |                      ID                       |
// |QR|   Opcode  |AA|TC|RD|RA| Z|AD|CD|   RCODE   |
// |                    QDCOUNT                    |
// |                    ANCOUNT                    |
// |                    NSCOUNT                    |
// |                    ARCOUNT                    |
// +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//
// Every read checks bounds first; every failure throws a WireError naming what was wrong.

export const HEADER_LEN = 12;
export const MAX_NAME_LEN = 255;
export const MAX_LABEL_LEN = 63;

export const TYPE = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  SVCB: 64,
  HTTPS: 65,
  ANY: 255,
} as const;

export const CLASS_IN = 1;

export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
} as const;

/** Header flag bits (the 16-bit flags word). */
export const FLAG = {
  QR: 0x8000,
  AA: 0x0400,
  TC: 0x0200,
  RD: 0x0100,
  RA: 0x0080,
  AD: 0x0020,
  CD: 0x0010,
} as const;

/** DO bit in the OPT record's TTL field (RFC 3225). */
export const EDNS_DO = 0x8000;

export class WireError extends Error {
  readonly reason: string;
  constructor(reason: string) {
    super(`malformed DNS message: ${reason}`);
    this.name = 'WireError';
    this.reason = reason;
  }
}

function need(buf: Uint8Array, off: number, n: number, what: string): void {
  if (off < 0 || off + n > buf.length) throw new WireError(`${what} runs past the end (offset ${off})`);
}

/**
 * Skips the name at `off` (following no pointers) and returns the offset just after it in place.
 * Checks label types and the length of the in-place part; pointers are validated by readName.
 */
export function skipName(buf: Uint8Array, off: number): number {
  let p = off;
  let total = 0;
  for (;;) {
    need(buf, p, 1, 'name label length');
    const len = buf[p]!;
    if (len === 0) return p + 1;
    if ((len & 0xc0) === 0xc0) {
      need(buf, p, 2, 'name pointer');
      return p + 2;
    }
    if ((len & 0xc0) !== 0) throw new WireError(`reserved label type 0x${len.toString(16)}`);
    total += len + 1;
    if (total > MAX_NAME_LEN) throw new WireError('name longer than 255 bytes');
    need(buf, p + 1, len, 'name label');
    p += len + 1;
  }
}

/** Appends one label's text to `out`: lower-cased printable ASCII, anything else as \DDD (RFC 4343). */
function labelText(buf: Uint8Array, start: number, len: number): string {
  let s = '';
  for (let i = start; i < start + len; i++) {
    let c = buf[i]!;
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    if (c > 0x20 && c < 0x7f && c !== 0x2e && c !== 0x5c) s += String.fromCharCode(c);
    else s += '\\' + c.toString().padStart(3, '0');
  }
  return s;
}

export interface NameRead {
  /** Lower-cased, no trailing dot; '' for the root. */
  name: string;
  /** Offset just after the name where it sits (after its first pointer, if any). */
  end: number;
}

/**
 * Reads a possibly compressed name. Pointers must point strictly backwards (no loops) and the
 * decompressed name may not exceed 255 bytes.
 */
export function readName(buf: Uint8Array, off: number): NameRead {
  let p = off;
  let end = -1;
  let total = 0;
  let name = '';
  let hops = 0;
  for (;;) {
    need(buf, p, 1, 'name label length');
    const len = buf[p]!;
    if (len === 0) {
      if (end < 0) end = p + 1;
      return { name, end };
    }
    if ((len & 0xc0) === 0xc0) {
      need(buf, p, 2, 'name pointer');
      const target = ((len & 0x3f) << 8) | buf[p + 1]!;
      if (target >= p) throw new WireError('name pointer does not point backwards');
      if (++hops > 127) throw new WireError('too many name pointers');
      if (end < 0) end = p + 2;
      p = target;
      continue;
    }
    if ((len & 0xc0) !== 0) throw new WireError(`reserved label type 0x${len.toString(16)}`);
    total += len + 1;
    if (total > MAX_NAME_LEN) throw new WireError('name longer than 255 bytes');
    need(buf, p + 1, len, 'name label');
    const label = labelText(buf, p + 1, len);
    name = name === '' ? label : name + '.' + label;
    p += len + 1;
  }
}

export interface Header {
  id: number;
  flags: number;
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
}

export function readHeader(buf: Uint8Array): Header {
  need(buf, 0, HEADER_LEN, 'header');
  return {
    id: (buf[0]! << 8) | buf[1]!,
    flags: (buf[2]! << 8) | buf[3]!,
    qdcount: (buf[4]! << 8) | buf[5]!,
    ancount: (buf[6]! << 8) | buf[7]!,
    nscount: (buf[8]! << 8) | buf[9]!,
    arcount: (buf[10]! << 8) | buf[11]!,
  };
}

export interface Query {
  id: number;
  flags: number;
  /** Lower-cased, escaped, no trailing dot; computed on first use (the cache-hit path never needs it). */
  readonly name: string;
  qtype: number;
  qclass: number;
  /** Offset just after the question (12 + name + 4). */
  qEnd: number;
  /** The client sent an OPT record. */
  edns: boolean;
  /** Largest UDP answer the client accepts (512 without EDNS). */
  udpSize: number;
  dnssecOk: boolean;
  /**
   * Cache key: the question's wire bytes with ASCII lower-cased (name, type, class), plus the DO
   * bit; built on first use (a cache hit finds its entry by `hash` and compares bytes instead).
   */
  readonly key: string;
  /** FNV-1a (32 bits) of the key's bytes: the cache's fast index. */
  hash: number;
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a over `bytes` — equal to `Query.hash` when `bytes` are the query's key bytes. */
export function keyHash(bytes: Uint8Array): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, FNV_PRIME);
  return h >>> 0;
}

class ParsedQuery implements Query {
  id: number;
  flags: number;
  qtype: number;
  qclass: number;
  qEnd: number;
  edns: boolean;
  udpSize: number;
  dnssecOk: boolean;
  hash: number;
  #buf: Uint8Array;
  #name: string | null = null;
  #key: string | null = null;
  constructor(buf: Uint8Array, id: number, flags: number, qtype: number, qclass: number, qEnd: number, edns: boolean, udpSize: number, dnssecOk: boolean, hash: number) {
    this.#buf = buf;
    this.id = id;
    this.flags = flags;
    this.qtype = qtype;
    this.qclass = qclass;
    this.qEnd = qEnd;
    this.edns = edns;
    this.udpSize = udpSize;
    this.dnssecOk = dnssecOk;
    this.hash = hash;
  }
  get name(): string {
    if (this.#name === null) this.#name = readName(this.#buf, HEADER_LEN).name;
    return this.#name;
  }
  get key(): string {
    if (this.#key === null) {
      const klen = this.qEnd - HEADER_LEN;
      for (let i = 0; i < klen; i++) {
        const c = this.#buf[HEADER_LEN + i]!;
        keyScratch[i] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
      }
      keyScratch[klen] = this.dnssecOk ? 1 : 0;
      this.#key = keyScratch.toString('latin1', 0, klen + 1);
    }
    return this.#key;
  }
}

// Scratch space for building cache keys (a question is at most 255 + 4 bytes, plus the DO byte).
const keyScratch = Buffer.alloc(HEADER_LEN + MAX_NAME_LEN + 8);

/**
 * Parses a client's query: exactly one question with an uncompressed name, and an optional OPT
 * record in the additional section. Throws WireError with the reason on anything else. This is
 * the cache-hit path's only parse, so it is written as one bounded loop without allocations
 * besides the result (the key string is made only when asked for).
 */
export function parseQuery(buf: Uint8Array): Query {
  const n = buf.length;
  if (n < HEADER_LEN) throw new WireError(`header runs past the end (offset 0)`);
  const flags = (buf[2]! << 8) | buf[3]!;
  if (flags & FLAG.QR) throw new WireError('a response, not a query');
  const qdcount = (buf[4]! << 8) | buf[5]!;
  if (qdcount !== 1) throw new WireError(`question count ${qdcount}, expected 1`);
  let p = HEADER_LEN;
  let total = 0;
  for (;;) {
    if (p >= n) throw new WireError(`name label length runs past the end (offset ${p})`);
    const len = buf[p]!;
    if (len === 0) break;
    if ((len & 0xc0) === 0xc0) throw new WireError('compressed name in the question');
    if (len & 0xc0) throw new WireError(`reserved label type 0x${len.toString(16)}`);
    total += len + 1;
    if (total > MAX_NAME_LEN) throw new WireError('name longer than 255 bytes');
    if (p + 1 + len > n) throw new WireError(`name label runs past the end (offset ${p + 1})`);
    p += len + 1;
  }
  const nameEnd = p + 1;
  if (nameEnd + 4 > n) throw new WireError(`question type and class runs past the end (offset ${nameEnd})`);
  const qtype = (buf[nameEnd]! << 8) | buf[nameEnd + 1]!;
  const qclass = (buf[nameEnd + 2]! << 8) | buf[nameEnd + 3]!;
  const qEnd = nameEnd + 4;
  let edns = false;
  let udpSize = 512;
  let dnssecOk = false;
  const an = (buf[6]! << 8) | buf[7]!;
  const ns = (buf[8]! << 8) | buf[9]!;
  const rest = an + ns + ((buf[10]! << 8) | buf[11]!);
  if (rest > 0) {
    if (rest > 64) throw new WireError('too many records in a query');
    p = qEnd;
    for (let i = 0; i < rest; i++) {
      p = skipName(buf, p);
      need(buf, p, 10, 'record header');
      const type = (buf[p]! << 8) | buf[p + 1]!;
      const rdlen = (buf[p + 8]! << 8) | buf[p + 9]!;
      need(buf, p + 10, rdlen, 'record data');
      if (type === TYPE.OPT && i >= an + ns) {
        if (edns) throw new WireError('more than one OPT record');
        edns = true;
        udpSize = Math.max(512, (buf[p + 2]! << 8) | buf[p + 3]!);
        dnssecOk = (((buf[p + 6]! << 8) | buf[p + 7]!) & EDNS_DO) !== 0;
      }
      p += 10 + rdlen;
    }
  }
  // Key: lower-cased question bytes (ASCII only, RFC 4343) and the DO bit. Only its hash is made
  // here; the string is built if a miss needs it.
  let h = FNV_OFFSET;
  for (let i = HEADER_LEN; i < qEnd; i++) {
    const c = buf[i]!;
    h = Math.imul(h ^ (c >= 0x41 && c <= 0x5a ? c | 0x20 : c), FNV_PRIME);
  }
  h = Math.imul(h ^ (dnssecOk ? 1 : 0), FNV_PRIME) >>> 0;
  return new ParsedQuery(buf, (buf[0]! << 8) | buf[1]!, flags, qtype, qclass, qEnd, edns, udpSize, dnssecOk, h);
}

export interface RecordRef {
  /** 0 answer, 1 authority, 2 additional. */
  section: 0 | 1 | 2;
  nameOff: number;
  type: number;
  klass: number;
  ttlOff: number;
  ttl: number;
  rdOff: number;
  rdLen: number;
  end: number;
}

export interface Walked {
  header: Header;
  qEnd: number;
  records: RecordRef[];
}

/** Walks a whole response: question (any count) and every record, with each record's offsets. */
export function walkMessage(buf: Uint8Array, maxRecords = 1024): Walked {
  const header = readHeader(buf);
  let p = HEADER_LEN;
  for (let i = 0; i < header.qdcount; i++) {
    p = skipName(buf, p);
    need(buf, p, 4, 'question type and class');
    p += 4;
  }
  const qEnd = p;
  const total = header.ancount + header.nscount + header.arcount;
  if (total > maxRecords) throw new WireError(`too many records (${total})`);
  const records: RecordRef[] = [];
  for (let i = 0; i < total; i++) {
    const nameOff = p;
    p = skipName(buf, p);
    need(buf, p, 10, 'record header');
    const type = (buf[p]! << 8) | buf[p + 1]!;
    const klass = (buf[p + 2]! << 8) | buf[p + 3]!;
    const ttl = ((buf[p + 4]! << 24) | (buf[p + 5]! << 16) | (buf[p + 6]! << 8) | buf[p + 7]!) >>> 0;
    const rdLen = (buf[p + 8]! << 8) | buf[p + 9]!;
    need(buf, p + 10, rdLen, 'record data');
    const section = i < header.ancount ? 0 : i < header.ancount + header.nscount ? 1 : 2;
    records.push({ section, nameOff, type, klass, ttlOff: p + 4, ttl, rdOff: p + 10, rdLen, end: p + 10 + rdLen });
    p += 10 + rdLen;
  }
  if (p !== buf.length) throw new WireError(`${buf.length - p} trailing bytes`);
  return { header, qEnd, records };
}

/** Formats 4 or 16 address bytes as text; IPv6 in RFC 5952 form (as Node prints socket addresses). */
export function formatIp(buf: Uint8Array, off: number, len: 4 | 16): string {
  if (len === 4) return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((buf[off + 2 * i]! << 8) | buf[off + 2 * i + 1]!);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]): string => a.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}
