// Crash-safe file replacement: write a temporary file in the same directory, fsync it, rename
// it over the target (atomic on POSIX and on NTFS via MoveFileEx), fsync the directory so the
// rename itself is durable. After a crash the target holds either the old or the new bytes,
// never a mix. `failPoint` lets tests stop at each step (and crash tests SIGKILL there).
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync, constants } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { StoreError } from '../errors.ts';

export type FailPoint = (name: string) => void;

export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, constants.O_RDONLY | (constants.O_DIRECTORY ?? 0));
    fsyncSync(fd);
  } catch {
    // Windows cannot open directories; NTFS journals the rename itself.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export function writeFileAtomic(path: string, data: string | Buffer, opts: { mode?: number; failPoint?: FailPoint; label?: string } = {}): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  const label = opts.label ?? basename(path);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, opts.mode ?? 0o600);
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    opts.failPoint?.(`${label}:written`);
    renameSync(tmp, path);
    fsyncDir(dir);
    opts.failPoint?.(`${label}:renamed`);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      /* not there */
    }
    if (err instanceof StoreError) throw err;
    if ((err as { injected?: boolean }).injected) throw err;
    throw new StoreError('SY_ERR_STORE_IO', `cannot write ${path}: ${(err as Error).message}`, err);
  }
}
