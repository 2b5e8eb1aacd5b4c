// What the forwarder learns from an upstream's answer, computed once when it arrives: whether it
// answers the question we asked (ID and question bytes, 0x20 case included), where every TTL sits
// (so cache hits patch TTLs without decoding), how long it may be cached, and which addresses it
// binds to which names (A/AAAA along the CNAME chain, HTTPS/SVCB ipv4hint/ipv6hint).
import { CLASS_IN, FLAG, HEADER_LEN, RCODE, TYPE, WireError, formatIp, readName, walkMessage } from './wire.ts';
import type { RecordRef } from './wire.ts';

/** SvcParamKeys (RFC 9460 §14.3.2). */
export const SVC_KEY = { ipv4hint: 4, ech: 5, ipv6hint: 6 } as const;

export interface LearnedAddress {
  ip: string;
  family: 4 | 6;
  /** Seconds, as in the answer (before clamping). */
  ttl: number;
}

export interface Analysis {
  rcode: number;
  truncated: boolean;
  /** Offsets of every TTL field except OPT's (which holds flags, not a TTL). */
  ttlOffsets: number[];
  ttls: number[];
  /** Offset of the OPT record when it is the last record (so it can be cut for non-EDNS clients); else -1. */
  optStart: number;
  /** Positive: smallest answer TTL. Negative (NXDOMAIN/NODATA): min(SOA TTL, SOA MINIMUM); null when no SOA. */
  cacheTtl: number | null;
  negative: boolean;
  /** Asked name first, then each CNAME target in order. */
  chain: string[];
  addresses: LearnedAddress[];
  records: RecordRef[];
  qEnd: number;
}

/** Raised when an answer does not belong to the query we sent: the caller ignores it and keeps waiting. */
export class MismatchError extends Error {
  constructor(reason: string) {
    super(`answer rejected: ${reason}`);
    this.name = 'MismatchError';
  }
}

/**
 * Checks that `buf` answers `sent` (our query to the upstream): a response, same ID, exactly our
 * question bytes (so a different-case question is refused: 0x20). `checkId` is false for DoH,
 * where the ID is 0 by RFC 8484 and the HTTP exchange pairs question and answer.
 */
export function matchesQuery(buf: Uint8Array, sent: Uint8Array, sentQEnd: number, checkId = true): void {
  if (buf.length < HEADER_LEN) throw new MismatchError('shorter than a header');
  if (!(buf[2]! & 0x80)) throw new MismatchError('not a response');
  if (checkId && (buf[0] !== sent[0] || buf[1] !== sent[1])) throw new MismatchError('wrong ID');
  if (buf[4] !== 0 || buf[5] !== 1) throw new MismatchError('question count is not 1');
  if (buf.length < sentQEnd) throw new MismatchError('question cut short');
  for (let i = HEADER_LEN; i < sentQEnd; i++) {
    if (buf[i] !== sent[i]) throw new MismatchError('question differs (name, case, type or class)');
  }
}

function u32(buf: Uint8Array, o: number): number {
  return ((buf[o]! << 24) | (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!) >>> 0;
}

/**
 * An error reply without a question (some servers answer REFUSED/FORMERR that way) with our ID:
 * not an answer we can use or cache, but a reason to stop waiting. Returns its rcode, or -1.
 */
export function headerOnlyError(buf: Uint8Array, sent: Uint8Array): number {
  if (buf.length < HEADER_LEN || !(buf[2]! & 0x80)) return -1;
  if (buf[0] !== sent[0] || buf[1] !== sent[1]) return -1;
  if (buf[4] !== 0 || buf[5] !== 0) return -1;
  const rcode = buf[3]! & 0xf;
  return rcode === 0 ? -1 : rcode;
}

/** SOA rdata: MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM; returns MINIMUM. */
function soaMinimum(buf: Uint8Array, r: RecordRef): number {
  let p = readName(buf, r.rdOff).end;
  p = readName(buf, p).end;
  if (p + 20 > r.end) throw new WireError('SOA record too short');
  return u32(buf, p + 16);
}

/** Calls `fn` for each SvcParam (key, value offset, value length) of an SVCB/HTTPS record. */
export function forEachSvcParam(
  buf: Uint8Array,
  r: RecordRef,
  fn: (key: number, off: number, len: number, paramStart: number) => void,
): void {
  if (r.rdLen < 3) throw new WireError('SVCB record too short');
  let p = readName(buf, r.rdOff + 2).end;
  if (p > r.end) throw new WireError('SVCB target runs past its record');
  while (p < r.end) {
    if (p + 4 > r.end) throw new WireError('SvcParam header runs past its record');
    const key = (buf[p]! << 8) | buf[p + 1]!;
    const len = (buf[p + 2]! << 8) | buf[p + 3]!;
    if (p + 4 + len > r.end) throw new WireError('SvcParam value runs past its record');
    fn(key, p + 4, len, p);
    p += 4 + len;
  }
}

/** Analyses a response already known to answer our question (see matchesQuery). */
export function analyse(buf: Uint8Array, qname: string, qtype: number): Analysis {
  const w = walkMessage(buf);
  const rcode = w.header.flags & 0xf;
  const truncated = (w.header.flags & FLAG.TC) !== 0;
  const ttlOffsets: number[] = [];
  const ttls: number[] = [];
  let optStart = -1;
  for (let i = 0; i < w.records.length; i++) {
    const r = w.records[i]!;
    if (r.type === TYPE.OPT) {
      if (i === w.records.length - 1 && r.section === 2) optStart = r.nameOff;
      continue;
    }
    ttlOffsets.push(r.ttlOff);
    ttls.push(r.ttl);
  }

  // Follow the CNAME chain from the asked name through the answer section (bounded, loop-safe).
  const answers = w.records.filter((r) => r.section === 0 && r.klass === CLASS_IN);
  const owners = answers.map((r) => readName(buf, r.nameOff).name);
  const chain = [qname];
  const inChain = new Set(chain);
  for (let hop = 0; hop < 16; hop++) {
    const cur = chain[chain.length - 1]!;
    const i = answers.findIndex((r, k) => r.type === TYPE.CNAME && owners[k] === cur);
    if (i < 0) break;
    const target = readName(buf, answers[i]!.rdOff).name;
    if (inChain.has(target)) break;
    chain.push(target);
    inChain.add(target);
  }

  const addresses: LearnedAddress[] = [];
  let minAnswerTtl = Infinity;
  let hasData = false;
  for (let k = 0; k < answers.length; k++) {
    const r = answers[k]!;
    if (!inChain.has(owners[k]!)) continue;
    if (r.type === qtype || r.type === TYPE.CNAME) minAnswerTtl = Math.min(minAnswerTtl, r.ttl);
    if (r.type === qtype) hasData = true;
    if (r.type === TYPE.A && r.rdLen === 4) addresses.push({ ip: formatIp(buf, r.rdOff, 4), family: 4, ttl: r.ttl });
    else if (r.type === TYPE.AAAA && r.rdLen === 16) addresses.push({ ip: formatIp(buf, r.rdOff, 16), family: 6, ttl: r.ttl });
    else if (r.type === TYPE.HTTPS || r.type === TYPE.SVCB) {
      forEachSvcParam(buf, r, (key, off, len) => {
        if (key === SVC_KEY.ipv4hint && len % 4 === 0) {
          for (let o = off; o < off + len; o += 4) addresses.push({ ip: formatIp(buf, o, 4), family: 4, ttl: r.ttl });
        } else if (key === SVC_KEY.ipv6hint && len % 16 === 0) {
          for (let o = off; o < off + len; o += 16) addresses.push({ ip: formatIp(buf, o, 16), family: 6, ttl: r.ttl });
        }
      });
    }
  }
  // Any answer data at all (e.g. a qtype=ANY answer) counts as positive.
  if (!hasData && answers.some((r) => r.type !== TYPE.CNAME)) hasData = true;
  if (!hasData && qtype === TYPE.CNAME && chain.length > 1) hasData = true;

  let negative = false;
  let cacheTtl: number | null = null;
  if (rcode === RCODE.NXDOMAIN || (rcode === RCODE.NOERROR && !hasData)) {
    negative = true;
    const soa = w.records.find((r) => r.section === 1 && r.type === TYPE.SOA);
    if (soa) cacheTtl = Math.min(soa.ttl, soaMinimum(buf, soa));
  } else if (rcode === RCODE.NOERROR) {
    cacheTtl = Number.isFinite(minAnswerTtl) ? minAnswerTtl : 0;
  }
  return { rcode, truncated, ttlOffsets, ttls, optStart, cacheTtl, negative, chain, addresses, records: w.records, qEnd: w.qEnd };
}
