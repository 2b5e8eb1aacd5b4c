// Messages switchyard writes itself: queries to upstreams (random ID, 0x20-randomised name, our own
// OPT) and small local answers (errors, blocked names, static hosts). Everything else that leaves
// the forwarder is an upstream's bytes with only the ID, the question's case, TTLs and (when the
// client sent no OPT) a trailing OPT record changed.
import { randomFillSync } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { CLASS_IN, EDNS_DO, FLAG, HEADER_LEN, TYPE } from './wire.ts';
import type { Query } from './wire.ts';

/** UDP payload size we advertise, to upstreams and to clients (the DNS flag day 2020 value). */
export const OUR_UDP_SIZE = 1232;

// Random bytes come from a pool refilled from the CSPRNG, so IDs and case bits cost no syscall each.
const pool = Buffer.alloc(4096);
let poolPos = pool.length;
function randomByte(): number {
  if (poolPos >= pool.length) {
    randomFillSync(pool);
    poolPos = 0;
  }
  return pool[poolPos++]!;
}
export function randomId(): number {
  return (randomByte() << 8) | randomByte();
}

export interface OutQuery {
  buf: Buffer;
  qEnd: number;
}

/**
 * Our query for the client's question: random ID, RD (and CD when the client set it), the name
 * with each letter's case randomised (0x20, draft-vixie-dnsext-dns0x20), OPT with our size and DO.
 */
export function buildUpstreamQuery(client: Uint8Array, q: Query, randomCase = true): OutQuery {
  const buf = Buffer.alloc(q.qEnd + 11);
  const id = randomId();
  buf.writeUInt16BE(id, 0);
  buf.writeUInt16BE(FLAG.RD | (q.flags & FLAG.CD), 2);
  buf.writeUInt16BE(1, 4);
  buf.writeUInt16BE(1, 10);
  buf.set(client.subarray(HEADER_LEN, q.qEnd), HEADER_LEN);
  if (randomCase) {
    // Walk the labels (uncompressed: parseQuery checked) and flip letters at random.
    let p = HEADER_LEN;
    let bits = 0;
    let nbits = 0;
    while (buf[p] !== 0) {
      const len = buf[p]!;
      for (let i = p + 1; i <= p + len; i++) {
        const c = buf[i]! | 0x20;
        if (c >= 0x61 && c <= 0x7a) {
          if (nbits === 0) {
            bits = randomByte();
            nbits = 8;
          }
          buf[i] = bits & 1 ? c & ~0x20 : c;
          bits >>= 1;
          nbits--;
        }
      }
      p += len + 1;
    }
  }
  writeOpt(buf, q.qEnd, OUR_UDP_SIZE, q.dnssecOk);
  return { buf, qEnd: q.qEnd };
}

/** A plain query for `name` (used by the egress resolver and bootstrap), with a random ID. */
export function buildNameQuery(name: string, qtype: number): OutQuery {
  const labels = name === '' ? [] : name.split('.');
  const nameLen = labels.reduce((n, l) => n + 1 + Buffer.byteLength(l), 1);
  if (nameLen > 255 || labels.some((l) => l.length === 0 || Buffer.byteLength(l) > 63)) {
    throw new RangeError(`not a valid DNS name: ${JSON.stringify(name)}`);
  }
  const qEnd = HEADER_LEN + nameLen + 4;
  const buf = Buffer.alloc(qEnd + 11);
  buf.writeUInt16BE(randomId(), 0);
  buf.writeUInt16BE(FLAG.RD, 2);
  buf.writeUInt16BE(1, 4);
  buf.writeUInt16BE(1, 10);
  let p = HEADER_LEN;
  for (const l of labels) {
    const n = buf.write(l, p + 1, 'latin1');
    buf[p] = n;
    p += n + 1;
  }
  buf[p++] = 0;
  buf.writeUInt16BE(qtype, p);
  buf.writeUInt16BE(CLASS_IN, p + 2);
  writeOpt(buf, qEnd, OUR_UDP_SIZE, false);
  return { buf, qEnd };
}

function writeOpt(buf: Buffer, at: number, size: number, dnssecOk: boolean): void {
  buf[at] = 0; // root name
  buf.writeUInt16BE(TYPE.OPT, at + 1);
  buf.writeUInt16BE(size, at + 3);
  buf.writeUInt32BE(dnssecOk ? EDNS_DO : 0, at + 5);
  buf.writeUInt16BE(0, at + 9);
}

export interface LocalRecord {
  type: number;
  ttl: number;
  rdata: Buffer;
}

/**
 * A local answer to a parsed query: the client's question echoed (its case too), records owned by
 * the question name (a pointer to offset 12), and an OPT when the client sent one.
 */
export function buildLocalAnswer(client: Uint8Array, q: Query, rcode: number, records: LocalRecord[] = [], aa = false): Buffer {
  const rrLen = records.reduce((n, r) => n + 12 + r.rdata.length, 0);
  const buf = Buffer.alloc(q.qEnd + rrLen + (q.edns ? 11 : 0));
  buf.writeUInt16BE(q.id, 0);
  buf.writeUInt16BE(FLAG.QR | (aa ? FLAG.AA : 0) | (q.flags & (FLAG.RD | FLAG.CD)) | FLAG.RA | (rcode & 0xf), 2);
  buf.writeUInt16BE(1, 4);
  buf.writeUInt16BE(records.length, 6);
  buf.writeUInt16BE(q.edns ? 1 : 0, 10);
  buf.set(client.subarray(HEADER_LEN, q.qEnd), HEADER_LEN);
  let p = q.qEnd;
  for (const r of records) {
    buf.writeUInt16BE(0xc000 | HEADER_LEN, p);
    buf.writeUInt16BE(r.type, p + 2);
    buf.writeUInt16BE(CLASS_IN, p + 4);
    buf.writeUInt32BE(r.ttl >>> 0, p + 6);
    buf.writeUInt16BE(r.rdata.length, p + 10);
    r.rdata.copy(buf, p + 12);
    p += 12 + r.rdata.length;
  }
  if (q.edns) writeOpt(buf, p, OUR_UDP_SIZE, q.dnssecOk);
  return buf;
}

/** An error answer when only the header could be read: same ID and opcode, no sections. */
export function buildHeaderOnlyError(client: Uint8Array, rcode: number): Buffer | null {
  if (client.length < HEADER_LEN) return null;
  const buf = Buffer.alloc(HEADER_LEN);
  buf[0] = client[0]!;
  buf[1] = client[1]!;
  const flags = (client[2]! << 8) | client[3]!;
  buf.writeUInt16BE(FLAG.QR | (flags & 0x7800) | (flags & FLAG.RD) | FLAG.RA | (rcode & 0xf), 2);
  return buf;
}

/** The answer that tells a UDP client to retry over TCP: header with TC, question only. */
export function buildTruncated(client: Uint8Array, q: Query, answerFlags: number): Buffer {
  const buf = Buffer.alloc(q.qEnd);
  buf.writeUInt16BE(q.id, 0);
  buf.writeUInt16BE((answerFlags | FLAG.QR | FLAG.TC) & 0xffff, 2);
  buf.writeUInt16BE(1, 4);
  buf.set(client.subarray(HEADER_LEN, q.qEnd), HEADER_LEN);
  return buf;
}

/** rdata for an address literal, or null when it is not one of `family`. */
export function addressRdata(ip: string): { type: number; rdata: Buffer } | null {
  if (isIPv4(ip)) return { type: TYPE.A, rdata: Buffer.from(ip.split('.').map((x) => Number(x))) };
  if (isIPv6(ip)) return { type: TYPE.AAAA, rdata: ipv6Bytes(ip) };
  return null;
}

/** 16 bytes of an IPv6 literal (accepts :: and an embedded dotted quad). */
export function ipv6Bytes(ip: string): Buffer {
  let text = ip;
  const out = Buffer.alloc(16);
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  let tail: number[] = [];
  if (dotted) {
    const b = dotted[1]!.split('.').map(Number);
    tail = [(b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!];
    text = text.slice(0, -dotted[1]!.length) + '0:0';
  }
  const [head, rest] = text.includes('::') ? text.split('::') : [text, null];
  const hs = head ? head.split(':').filter((x) => x !== '') : [];
  const rs = rest ? rest.split(':').filter((x) => x !== '') : [];
  const groups = rest === null ? hs : [...hs, ...Array(8 - hs.length - rs.length).fill('0'), ...rs];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16) & 0xffff, i * 2));
  if (tail.length) {
    out.writeUInt16BE(tail[0]!, 12);
    out.writeUInt16BE(tail[1]!, 14);
  }
  return out;
}
