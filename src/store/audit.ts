// The audit log: append-only NDJSON, one canonical-JSON event per line. Each event carries the
// previous event's hash (`prev`) and its own (`hash` = sha256 of the canonical event without
// `hash`), so editing a line breaks the chain from there on. A chain alone cannot reveal a cut
// tail or a wholesale rewrite with recomputed hashes, so the number of events and the last hash
// (the anchor) live in the HMAC-protected store state; verification compares the file with it.
import { readFileSync } from 'node:fs';
import { StoreError } from '../errors.ts';
import { canonicalJson, sha256Hex } from './canonical.ts';

export const GENESIS_HASH = '0'.repeat(64);
/** Longest line accepted when reading the log back (events are small; this bounds a hostile file). */
export const MAX_AUDIT_LINE = 256 * 1024;

export interface Actor {
  user: string;
  uid: number | null;
}

export interface AuditInput {
  type: string;
  revision?: number;
  actor?: Actor;
  detail?: Record<string, unknown>;
}

export interface AuditEvent extends AuditInput {
  seq: number;
  time: string;
  prev: string;
  hash: string;
}

export interface AuditAnchor {
  count: number;
  head: string;
}

export function makeEvent(anchor: AuditAnchor, input: AuditInput, time: string): AuditEvent {
  const body: Omit<AuditEvent, 'hash'> = { ...input, seq: anchor.count + 1, time, prev: anchor.head };
  return { ...body, hash: sha256Hex(canonicalJson(body)) };
}

export function eventLine(e: AuditEvent): string {
  return canonicalJson(e) + '\n';
}

export interface AuditVerification {
  ok: boolean;
  /** Complete, well-formed events in the file. */
  count: number;
  /** Hash of the last good event. */
  head: string;
  /** What is wrong, in words, first problem first. */
  problems: string[];
  /** 1-based line of the first bad event, when the problem is inside the file. */
  firstBadLine?: number;
}

const EVENT_KEYS = new Set(['seq', 'time', 'type', 'revision', 'actor', 'detail', 'prev', 'hash']);

/** Checks one line's shape and hash; returns the event or a problem. */
function checkLine(line: string, n: number): AuditEvent | string {
  if (line.length > MAX_AUDIT_LINE) return `line ${n}: longer than ${MAX_AUDIT_LINE} bytes`;
  let e: unknown;
  try {
    e = JSON.parse(line);
  } catch {
    return `line ${n}: not JSON`;
  }
  if (e === null || typeof e !== 'object' || Array.isArray(e)) return `line ${n}: not an object`;
  const o = e as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!EVENT_KEYS.has(k)) return `line ${n}: unknown field '${k.slice(0, 32)}'`;
  if (typeof o['hash'] !== 'string' || typeof o['prev'] !== 'string' || typeof o['seq'] !== 'number' || typeof o['type'] !== 'string') {
    return `line ${n}: missing seq/type/prev/hash`;
  }
  const { hash, ...body } = o;
  let recomputed: string;
  try {
    recomputed = sha256Hex(canonicalJson(body));
  } catch {
    return `line ${n}: not canonical`;
  }
  if (recomputed !== hash) return `line ${n}: hash mismatch (the event was edited)`;
  return o as unknown as AuditEvent;
}

/** Verifies log text against the protected anchor. */
export function verifyAuditText(text: string, anchor: AuditAnchor): AuditVerification {
  const problems: string[] = [];
  const lines = text.split('\n');
  const tail = lines.pop(); // '' when the file ends with a newline
  let head = GENESIS_HASH;
  let count = 0;
  let firstBadLine: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const r = checkLine(lines[i]!, n);
    if (typeof r === 'string') {
      problems.push(r);
      firstBadLine = n;
      break;
    }
    if (r.seq !== n) {
      problems.push(`line ${n}: sequence number ${r.seq}, expected ${n} (events removed or reordered)`);
      firstBadLine = n;
      break;
    }
    if (r.prev !== head) {
      problems.push(`line ${n}: does not link to line ${n - 1} (events removed, inserted or edited)`);
      firstBadLine = n;
      break;
    }
    head = r.hash;
    count = n;
  }
  if (firstBadLine === undefined) {
    if (tail !== undefined && tail !== '') {
      problems.push(`line ${lines.length + 1}: incomplete last line`);
      firstBadLine = lines.length + 1;
    } else if (count < anchor.count) {
      problems.push(`the log has ${count} events but the protected state records ${anchor.count} (truncated or deleted)`);
    } else if (count > anchor.count) {
      problems.push(`the log has ${count} events but the protected state records ${anchor.count} (events appended by someone else, or the state was rolled back)`);
    } else if (head !== anchor.head) {
      problems.push('the last event differs from the protected state (the log was rewritten)');
    }
  }
  const out: AuditVerification = { ok: problems.length === 0, count, head, problems };
  if (firstBadLine !== undefined) out.firstBadLine = firstBadLine;
  return out;
}

export function readAuditText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw new StoreError('SY_ERR_STORE_IO', `cannot read ${path}: ${(err as Error).message}`, err);
  }
}
