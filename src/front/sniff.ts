// Learns a transparent flow's domain from the client's first bytes: the TLS ClientHello's
// server_name (RFC 8446 §4.1.2, RFC 6066 §3) or an HTTP/1 request's Host header. The ClientHello
// may span several TLS records and TCP segments, so records are reassembled up to a cap. A
// ClientHello carrying encrypted_client_hello (0xfe0d) names only the ECH *outer* (public) name:
// it is reported but must not be taken as the domain.
//
// The wait is bounded: a server-first protocol (SMTP, SSH) sends nothing, and after the bound the
// flow proceeds without a sniffed name.
import type net from 'node:net';

export const TLS_HANDSHAKE = 0x16;
export const HANDSHAKE_CLIENT_HELLO = 0x01;
export const EXT_SERVER_NAME = 0x0000;
export const EXT_ENCRYPTED_CLIENT_HELLO = 0xfe0d;
/** Largest ClientHello reassembled (post-quantum key shares make them large; 64 KiB is ample). */
export const MAX_CLIENT_HELLO = 64 * 1024;
/** Largest TLS record payload allowed by RFC 8446 (2^14 plus expansion for older versions). */
export const MAX_RECORD = 16384 + 2048;
export const MAX_HTTP_HEAD = 8 * 1024;

export type SniffResult =
  | { kind: 'need-more' }
  | { kind: 'none'; why: string }
  | { kind: 'tls'; sni: string | null; ech: boolean }
  | { kind: 'http'; host: string | null };

const HOST_RE = /^[a-z0-9_]([a-z0-9_-]{0,62})?(\.[a-z0-9_]([a-z0-9_-]{0,62})?)*$/;

function cleanHost(h: string): string | null {
  let s = h.trim().toLowerCase();
  if (s.endsWith('.')) s = s.slice(0, -1);
  return s.length > 0 && s.length <= 253 && HOST_RE.test(s) ? s : null;
}

/**
 * TLS record layer:
 *   struct { ContentType type; ProtocolVersion legacy_record_version; uint16 length;
 *            opaque fragment[length]; } TLSPlaintext;
 * Returns the concatenated handshake bytes, or a verdict when the records are not TLS.
 */
function handshakeBytes(buf: Buffer): { bytes: Buffer; complete: boolean } | SniffResult {
  const parts: Buffer[] = [];
  let at = 0;
  let total = 0;
  while (at < buf.length) {
    if (buf.length - at < 5) return { bytes: Buffer.concat(parts), complete: false };
    if (buf[at] !== TLS_HANDSHAKE) return parts.length ? { bytes: Buffer.concat(parts), complete: true } : { kind: 'none', why: 'not a TLS handshake record' };
    if (buf[at + 1] !== 0x03) return { kind: 'none', why: 'bad TLS record version' };
    const len = buf.readUInt16BE(at + 3);
    if (len === 0 || len > MAX_RECORD) return { kind: 'none', why: 'bad TLS record length' };
    const end = Math.min(at + 5 + len, buf.length);
    parts.push(buf.subarray(at + 5, end));
    total += end - at - 5;
    if (total > MAX_CLIENT_HELLO + 4) return { kind: 'none', why: 'ClientHello larger than the cap' };
    at = at + 5 + len;
  }
  return { bytes: Buffer.concat(parts), complete: false };
}

/**
 *   struct {
 *       ProtocolVersion legacy_version;            2
 *       Random random;                             32
 *       opaque legacy_session_id<0..32>;           1 + n
 *       CipherSuite cipher_suites<2..2^16-2>;      2 + n
 *       opaque legacy_compression_methods<1..2^8-1>; 1 + n
 *       Extension extensions<8..2^16-1>;           2 + n   (each: type 2, length 2, data)
 *   } ClientHello;
 */
export function parseClientHelloBody(b: Buffer): SniffResult {
  let p = 0;
  const need = (n: number) => p + n <= b.length;
  if (!need(2 + 32 + 1)) return { kind: 'none', why: 'ClientHello too short' };
  p += 2 + 32;
  const sid = b[p]!;
  if (sid > 32) return { kind: 'none', why: 'bad session id length' };
  p += 1;
  if (!need(sid + 2)) return { kind: 'none', why: 'truncated session id' };
  p += sid;
  const cs = b.readUInt16BE(p);
  p += 2;
  if (cs < 2 || cs % 2 !== 0 || !need(cs + 1)) return { kind: 'none', why: 'bad cipher suites' };
  p += cs;
  const comp = b[p]!;
  p += 1;
  if (comp < 1 || !need(comp)) return { kind: 'none', why: 'bad compression methods' };
  p += comp;
  if (p === b.length) return { kind: 'tls', sni: null, ech: false }; // no extensions at all
  if (!need(2)) return { kind: 'none', why: 'truncated extensions length' };
  const extLen = b.readUInt16BE(p);
  p += 2;
  if (!need(extLen)) return { kind: 'none', why: 'truncated extensions' };
  const end = p + extLen;
  let sni: string | null = null;
  let ech = false;
  while (p < end) {
    if (p + 4 > end) return { kind: 'none', why: 'truncated extension header' };
    const type = b.readUInt16BE(p);
    const len = b.readUInt16BE(p + 2);
    p += 4;
    if (p + len > end) return { kind: 'none', why: 'truncated extension' };
    if (type === EXT_ENCRYPTED_CLIENT_HELLO) ech = true;
    if (type === EXT_SERVER_NAME) {
      // struct { NameType name_type; HostName name<1..2^16-1>; } ServerName; list<1..2^16-1>
      let q = p;
      if (len < 2) return { kind: 'none', why: 'bad server_name extension' };
      const listLen = b.readUInt16BE(q);
      q += 2;
      const listEnd = q + listLen;
      if (listEnd > p + len) return { kind: 'none', why: 'bad server_name list' };
      while (q + 3 <= listEnd) {
        const nameType = b[q]!;
        const nameLen = b.readUInt16BE(q + 1);
        q += 3;
        if (q + nameLen > listEnd) return { kind: 'none', why: 'bad server_name entry' };
        if (nameType === 0 && sni === null) {
          const n = cleanHost(b.subarray(q, q + nameLen).toString('latin1'));
          sni = n && !/^\d+\.\d+\.\d+\.\d+$/.test(n) ? n : null;
        }
        q += nameLen;
      }
    }
    p += len;
  }
  return { kind: 'tls', sni, ech };
}

export function parseTls(buf: Buffer): SniffResult {
  const hs = handshakeBytes(buf);
  if ('kind' in hs) return hs;
  const b = hs.bytes;
  if (b.length < 4) return hs.complete ? { kind: 'none', why: 'short handshake' } : { kind: 'need-more' };
  if (b[0] !== HANDSHAKE_CLIENT_HELLO) return { kind: 'none', why: 'first handshake message is not ClientHello' };
  const len = (b[1]! << 16) | (b[2]! << 8) | b[3]!;
  if (len > MAX_CLIENT_HELLO) return { kind: 'none', why: 'ClientHello larger than the cap' };
  if (b.length < 4 + len) return hs.complete ? { kind: 'none', why: 'ClientHello cut short' } : { kind: 'need-more' };
  return parseClientHelloBody(b.subarray(4, 4 + len));
}

const HTTP_METHOD = /^(GET|POST|PUT|HEAD|DELETE|OPTIONS|PATCH|TRACE|PROPFIND|CONNECT) /;

export function parseHttp(buf: Buffer): SniffResult {
  const headText = buf.subarray(0, MAX_HTTP_HEAD).toString('latin1');
  if (headText.length < 8) return /^[A-Z]{1,8}$/.test(headText) || HTTP_METHOD.test(headText) ? { kind: 'need-more' } : { kind: 'none', why: 'not HTTP' };
  if (!HTTP_METHOD.test(headText)) return { kind: 'none', why: 'not HTTP' };
  const end = headText.indexOf('\r\n\r\n');
  if (end < 0) return buf.length >= MAX_HTTP_HEAD ? { kind: 'none', why: 'HTTP head larger than the cap' } : { kind: 'need-more' };
  for (const line of headText.slice(0, end).split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).toLowerCase() === 'host') {
      let v = line.slice(colon + 1).trim();
      if (v.startsWith('[')) return { kind: 'http', host: null }; // IP literal: no name to learn
      const pc = v.lastIndexOf(':');
      if (pc >= 0) v = v.slice(0, pc);
      // An IP literal names no domain.
      if (/^\d+\.\d+\.\d+\.\d+$/.test(v)) return { kind: 'http', host: null };
      return { kind: 'http', host: cleanHost(v) };
    }
  }
  return { kind: 'http', host: null };
}

/** Classifies the bytes seen so far. */
export function classify(buf: Buffer): SniffResult {
  if (buf.length === 0) return { kind: 'need-more' };
  if (buf[0] === TLS_HANDSHAKE) return parseTls(buf);
  return parseHttp(buf);
}

export interface Sniffed {
  /** Every byte read from the client; the relay sends these upstream first. */
  chunks: Buffer[];
  result: SniffResult;
  /** True when the bound expired before a verdict (e.g. a server-first protocol). */
  timedOut: boolean;
  /** The client already half-closed (its FIN was consumed here; the relay must pass it on). */
  ended: boolean;
}

/** Reads the client's first bytes until a verdict, the cap, EOF or `boundMs`; leaves the socket paused. */
export function sniff(socket: net.Socket, boundMs: number): Promise<Sniffed> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    let ended = false;
    const finish = (result: SniffResult, timedOut = false) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.pause();
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      resolve({ chunks, result, timedOut, ended });
    };
    const onData = (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      const r = classify(chunks.length === 1 ? c : Buffer.concat(chunks, size));
      if (r.kind !== 'need-more') finish(r);
      else if (size > MAX_CLIENT_HELLO + 5 * 8) finish({ kind: 'none', why: 'first bytes exceed the sniff cap' });
    };
    const onEnd = () => {
      ended = true;
      const r = size ? classify(Buffer.concat(chunks, size)) : { kind: 'none' as const, why: 'client closed' };
      finish(r.kind === 'need-more' ? { kind: 'none', why: 'client closed mid-handshake' } : r);
    };
    const timer = setTimeout(() => finish({ kind: 'none', why: 'no verdict within the bound' }, true), boundMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.resume();
  });
}
