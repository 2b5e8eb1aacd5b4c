// A sealed record: one JSON file `{"mac": HMAC(purpose, canonical body), "<field>": body}`, written
// canonically. The store's revisions and state, and the daemon's list of imported sources, are
// sealed with the store key; the purpose string keeps a MAC of one kind from passing as another.
import { canonicalJson } from './canonical.ts';
import type { HmacKey } from './key.ts';

/** The file text of a sealed `body` under `field`. */
export function seal(key: HmacKey, purpose: string, field: string, body: unknown): string {
  return canonicalJson({ mac: key.mac(purpose, canonicalJson(body)), [field]: body });
}

/** Why a sealed file was refused: `no <field> record` when the field is missing or not an object. */
export type UnsealProblem = 'not JSON' | `no ${string} record` | 'not canonical data' | 'HMAC mismatch';

/** Parses a sealed file and checks its MAC; the body is returned unchecked beyond being an object. */
export function unseal<T extends object>(text: string, key: HmacKey, purpose: string, field: string): { value: T } | { problem: UnsealProblem } {
  let file: Record<string, unknown> | null;
  try {
    file = JSON.parse(text) as Record<string, unknown> | null;
  } catch {
    return { problem: 'not JSON' };
  }
  const value = file?.[field];
  if (value === undefined || value === null || typeof value !== 'object') return { problem: `no ${field} record` };
  let canon: string;
  try {
    canon = canonicalJson(value);
  } catch {
    return { problem: 'not canonical data' };
  }
  if (!key.verify(purpose, canon, file!['mac'])) return { problem: 'HMAC mismatch' };
  return { value: value as T };
}
