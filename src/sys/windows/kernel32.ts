// kernel32.dll — raw declarations (one line each, with documentation) and safe wrappers: process
// image path by PID, current PID, last error. Loaded on first call (load.ts).
import koffi from 'koffi';
import './types.ts';
import { OsCallError } from '../../errors.ts';
import { lazyLibrary, ok } from './load.ts';
import { ERROR_INSUFFICIENT_BUFFER, PROCESS_QUERY_LIMITED_INFORMATION } from './constants.ts';

export const kernel32 = lazyLibrary('kernel32.dll', (lib) => ({
  // https://learn.microsoft.com/windows/win32/api/errhandlingapi/nf-errhandlingapi-getlasterror
  GetLastError: lib.func('uint32_t __stdcall GetLastError()'),
  // https://learn.microsoft.com/windows/win32/api/processthreadsapi/nf-processthreadsapi-getcurrentprocessid
  GetCurrentProcessId: lib.func('uint32_t __stdcall GetCurrentProcessId()'),
  // https://learn.microsoft.com/windows/win32/api/processthreadsapi/nf-processthreadsapi-getcurrentprocess
  GetCurrentProcess: lib.func('HANDLE __stdcall GetCurrentProcess()'),
  // https://learn.microsoft.com/windows/win32/api/processthreadsapi/nf-processthreadsapi-openprocess
  OpenProcess: lib.func('HANDLE __stdcall OpenProcess(uint32_t dwDesiredAccess, int32_t bInheritHandle, uint32_t dwProcessId)'),
  // https://learn.microsoft.com/windows/win32/api/handleapi/nf-handleapi-closehandle
  CloseHandle: lib.func('int32_t __stdcall CloseHandle(HANDLE hObject)'),
  // https://learn.microsoft.com/windows/win32/api/winbase/nf-winbase-queryfullprocessimagenamew
  QueryFullProcessImageNameW: lib.func('int32_t __stdcall QueryFullProcessImageNameW(HANDLE hProcess, uint32_t dwFlags, _Out_ uint8_t *lpExeName, _Inout_ uint32_t *lpdwSize)'),
  // https://learn.microsoft.com/windows/win32/api/winbase/nf-winbase-localfree
  LocalFree: lib.func('void * __stdcall LocalFree(void *hMem)'),
}));

/** GetLastError right after a failed call (koffi makes no Win32 call in between on the same thread). */
export function lastError(): number {
  return kernel32.get().GetLastError() as number;
}

export function currentPid(): number {
  return kernel32.get().GetCurrentProcessId() as number;
}

function isNull(h: unknown): boolean {
  return h === null || koffi.address(h) === 0n;
}

/**
 * Full image path of a process (`C:\Program Files\...\app.exe`), or undefined when the process is
 * gone or protected (access denied): callers treat an unknown exe as "not matched by path".
 */
export function processImagePath(pid: number): string | undefined {
  const k = kernel32.get();
  const h = k.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
  if (isNull(h)) return undefined;
  try {
    for (let chars = 512; chars <= 32768; chars *= 4) {
      const buf = Buffer.alloc(chars * 2);
      const size = [chars];
      if (ok(k.QueryFullProcessImageNameW(h, 0, buf, size) as number)) return buf.toString('utf16le', 0, size[0]! * 2);
      const err = lastError();
      if (err !== ERROR_INSUFFICIENT_BUFFER) return undefined;
    }
    throw new OsCallError('SY_ERR_WIN_CALL', 'QueryFullProcessImageNameW', ERROR_INSUFFICIENT_BUFFER, 'path longer than 32768 characters');
  } finally {
    k.CloseHandle(h);
  }
}
