// The HMAC key that authenticates persisted revisions, the store state and audit events. The
// daemon generates it once (32 random bytes) in its state directory, owner-only. A key file that
// others can read or write is refused: it would let them forge revisions (service mode) or it
// means the setup is not what we think (user mode). See docs/store.md for the threat model.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, fstatSync, linkSync, mkdirSync, openSync, readSync, unlinkSync, writeSync, fsyncSync, constants } from 'node:fs';
import { join } from 'node:path';
import { StoreError } from '../errors.ts';
import { fsyncDir } from './atomic.ts';

export const KEY_FILE = 'hmac.key';
export const KEY_BYTES = 32;

export interface KeyOptions {
  /** Check mode and owner (POSIX). The daemon turns this off only where modes mean nothing (Windows ACLs). */
  checkPerms?: boolean;
  /** Expected owner; default the process uid. */
  uid?: number;
}

export class HmacKey {
  readonly #key: Buffer;
  constructor(key: Buffer) {
    if (key.length !== KEY_BYTES) throw new StoreError('SY_ERR_STORE_KEY_INVALID', `key must be ${KEY_BYTES} bytes, got ${key.length}`);
    this.#key = Buffer.from(key);
  }
  /** HMAC-SHA256 of `domain` and `data`; the domain keeps a revision MAC from passing as a state MAC. */
  mac(domain: string, data: string): string {
    return createHmac('sha256', this.#key).update(domain).update('\0').update(data).digest('hex');
  }
  verify(domain: string, data: string, mac: unknown): boolean {
    if (typeof mac !== 'string' || !/^[0-9a-f]{64}$/.test(mac)) return false;
    return timingSafeEqual(Buffer.from(this.mac(domain, data), 'hex'), Buffer.from(mac, 'hex'));
  }
}

function readKey(path: string, opts: KeyOptions): Buffer {
  const fd = openSync(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new StoreError('SY_ERR_STORE_KEY_INVALID', `${path} is not a regular file`);
    if (opts.checkPerms !== false) {
      if ((st.mode & 0o077) !== 0) {
        throw new StoreError('SY_ERR_STORE_KEY_PERMS', `${path} has mode ${(st.mode & 0o777).toString(8)}; it must be 600 (owner only)`);
      }
      const uid = opts.uid ?? process.getuid?.();
      if (uid !== undefined && st.uid !== uid) throw new StoreError('SY_ERR_STORE_KEY_PERMS', `${path} is owned by uid ${st.uid}, not ${uid}`);
    }
    if (st.size !== KEY_BYTES) throw new StoreError('SY_ERR_STORE_KEY_INVALID', `${path} holds ${st.size} bytes, expected ${KEY_BYTES}`);
    const buf = Buffer.alloc(KEY_BYTES);
    let off = 0;
    while (off < KEY_BYTES) {
      const n = readSync(fd, buf, off, KEY_BYTES - off, off);
      if (n === 0) throw new StoreError('SY_ERR_STORE_KEY_INVALID', `${path} is shorter than its size`);
      off += n;
    }
    return buf;
  } finally {
    closeSync(fd);
  }
}

/**
 * Loads the key from `<stateDir>/hmac.key`, creating it (and the directory, 0700) if absent.
 * Creation writes a temporary file with mode 0600 and links it into place, so a concurrent
 * starter never sees a half-written key and the first one wins.
 */
export function loadOrCreateKey(stateDir: string, opts: KeyOptions = {}): { key: HmacKey; created: boolean } {
  const path = join(stateDir, KEY_FILE);
  try {
    return { key: new HmacKey(readKey(path, opts)), created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      if (err instanceof StoreError) throw err;
      throw new StoreError('SY_ERR_STORE_IO', `cannot read ${path}: ${(err as Error).message}`, err);
    }
  }
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const tmp = join(stateDir, `.${KEY_FILE}.${process.pid}.tmp`);
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    writeSync(fd, randomBytes(KEY_BYTES));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  let created = true;
  try {
    linkSync(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new StoreError('SY_ERR_STORE_IO', `cannot create ${path}: ${(err as Error).message}`, err);
    created = false; // someone else won the race; use theirs
  } finally {
    unlinkSync(tmp);
  }
  fsyncDir(stateDir);
  return { key: new HmacKey(readKey(path, opts)), created };
}
