// Lazy DLL loading for the Windows bindings. Importing any src/sys/windows module must work on Linux
// (the tests import them to check struct layouts and to build plans), so nothing calls koffi.load at
// import time: each DLL module wraps its declarations in `lazyLibrary`, and the first call loads the
// DLL and declares every function. A DLL that cannot be loaded raises SY_ERR_WIN_UNAVAILABLE then, and
// again on every later call (no half-declared module is cached).
import koffi from 'koffi';
import { OsCallError } from '../../errors.ts';

export type KoffiLibrary = ReturnType<typeof koffi.load>;

export interface LazyLibrary<T> {
  /** Loads the DLL on first use and returns its declared functions. */
  get(): T;
  /** True once the DLL was loaded. */
  loaded(): boolean;
}

/**
 * `path` is a DLL name searched the Windows way (system32 first for system DLLs) or a full path
 * (WinDivert.dll from enforce.windivertPath).
 */
export function lazyLibrary<T>(path: string | (() => string), declare: (lib: KoffiLibrary) => T): LazyLibrary<T> {
  let value: T | undefined;
  return {
    get(): T {
      if (value !== undefined) return value;
      const file = typeof path === 'function' ? path() : path;
      let lib: KoffiLibrary;
      try {
        lib = koffi.load(file);
      } catch (err) {
        throw new OsCallError('SY_ERR_WIN_UNAVAILABLE', `load ${file}`, undefined, (err as Error).message);
      }
      value = declare(lib);
      return value;
    },
    loaded: () => value !== undefined,
  };
}

/** Win32 status as the documentation prints it: 0x80320009, 0x6E4. */
export function hex(status: number): string {
  return `0x${(status >>> 0).toString(16).toUpperCase()}`;
}

/** koffi returns BOOL as a number; Win32 says non-zero is TRUE. */
export function ok(b: number | boolean): boolean {
  return typeof b === 'boolean' ? b : b !== 0;
}
