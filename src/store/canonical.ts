// Canonical JSON: one byte sequence per value, so hashes and HMACs do not depend on key order or
// whitespace. Object keys sorted by UTF-16 code units, no whitespace, strings and finite numbers
// as JSON.stringify writes them (shortest round-trip form, as in RFC 8785 for the numbers we
// store). Anything JSON cannot represent exactly is refused rather than silently changed:
// undefined (in arrays), non-finite numbers, bigint, functions, symbols, cycles, and non-plain
// objects (Map, Date, class instances).
import { createHash } from 'node:crypto';
import { StoreError } from '../errors.ts';

export function canonicalJson(value: unknown): string {
  const out: string[] = [];
  write(value, out, new Set(), '$');
  return out.join('');
}

function write(v: unknown, out: string[], seen: Set<object>, at: string): void {
  switch (typeof v) {
    case 'string':
      out.push(JSON.stringify(v));
      return;
    case 'boolean':
      out.push(v ? 'true' : 'false');
      return;
    case 'number':
      if (!Number.isFinite(v)) throw new StoreError('SY_ERR_STORE_CANONICAL', `${at}: non-finite number`);
      out.push(Object.is(v, -0) ? '0' : JSON.stringify(v));
      return;
    case 'object': {
      if (v === null) {
        out.push('null');
        return;
      }
      if (seen.has(v)) throw new StoreError('SY_ERR_STORE_CANONICAL', `${at}: cycle`);
      seen.add(v);
      if (Array.isArray(v)) {
        out.push('[');
        v.forEach((item, i) => {
          if (i > 0) out.push(',');
          if (item === undefined) throw new StoreError('SY_ERR_STORE_CANONICAL', `${at}[${i}]: undefined`);
          write(item, out, seen, `${at}[${i}]`);
        });
        out.push(']');
      } else {
        const proto = Object.getPrototypeOf(v);
        if (proto !== Object.prototype && proto !== null) {
          throw new StoreError('SY_ERR_STORE_CANONICAL', `${at}: not a plain object`);
        }
        const keys = Object.keys(v).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort();
        out.push('{');
        keys.forEach((k, i) => {
          if (i > 0) out.push(',');
          out.push(JSON.stringify(k), ':');
          write((v as Record<string, unknown>)[k], out, seen, `${at}.${k}`);
        });
        out.push('}');
      }
      seen.delete(v);
      return;
    }
    default:
      throw new StoreError('SY_ERR_STORE_CANONICAL', `${at}: ${typeof v} cannot be stored`);
  }
}

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Content hash of a value: sha256 of its canonical JSON. */
export function contentHash(value: unknown): string {
  return sha256Hex(canonicalJson(value));
}
