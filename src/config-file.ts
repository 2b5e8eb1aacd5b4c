// The I/O half of config loading: reads a file (bounded) and hands the bytes to the pure loader.
import { openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { ConfigError } from './errors.ts';
import { loadConfigFromBytes } from './policy/config/load.ts';
import { MAX_CONFIG_BYTES } from './policy/config/limits.ts';
import type { Config } from './policy/types.ts';

/**
 * Reads at most MAX_CONFIG_BYTES + 1 bytes, so a huge file (or /dev/zero) is rejected as too
 * large without being read whole.
 */
export function readConfigBytes(path: string): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ConfigError('SY_ERR_CONFIG_READ', `cannot read config ${path}: ${err.code ?? err.message}`, [], e);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new ConfigError('SY_ERR_CONFIG_READ', `cannot read config ${path}: it is a directory`);
    if (st.isFile() && st.size > MAX_CONFIG_BYTES) {
      throw new ConfigError('SY_ERR_CONFIG_TOO_LARGE', `${path}: config is ${st.size} bytes; the limit is ${MAX_CONFIG_BYTES} bytes (1 MiB) — put big rule sets in lists`);
    }
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n === buf.length) break;
    }
    return buf.subarray(0, n);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError('SY_ERR_CONFIG_READ', `cannot read config ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, [], e);
  } finally {
    closeSync(fd);
  }
}

export function loadConfigFile(path: string): Config {
  return loadConfigFromBytes(readConfigBytes(path), path);
}
