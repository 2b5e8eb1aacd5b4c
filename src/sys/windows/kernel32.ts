// kernel32.dll — raw declarations (one line each, with documentation) and safe wrappers: process
// image path by PID, current PID, last error. Loaded on first call (load.ts).
import koffi from 'koffi';
import './types.ts';
import { OsCallError } from '../../errors.ts';
import { lazyLibrary, ok } from './load.ts';
import {
  ERROR_INSUFFICIENT_BUFFER,
  ERROR_PIPE_CONNECTED,
  PIPE_ACCESS_DUPLEX,
  PIPE_READMODE_BYTE,
  PIPE_REJECT_REMOTE_CLIENTS,
  PIPE_TYPE_BYTE,
  PIPE_UNLIMITED_INSTANCES,
  PIPE_WAIT,
  PROCESS_QUERY_LIMITED_INFORMATION,
} from './constants.ts';

/** INVALID_HANDLE_VALUE = (HANDLE)-1. */
const INVALID_HANDLE_ADDRESS = 0xffff_ffff_ffff_ffffn;

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
  // https://learn.microsoft.com/windows/win32/api/winbase/nf-winbase-getnamedpipeclientprocessid
  GetNamedPipeClientProcessId: lib.func('int32_t __stdcall GetNamedPipeClientProcessId(HANDLE Pipe, _Out_ uint32_t *ClientProcessId)'),
  // https://learn.microsoft.com/windows/win32/api/winbase/nf-winbase-createnamedpipew
  CreateNamedPipeW: lib.func('HANDLE __stdcall CreateNamedPipeW(const char16_t *lpName, uint32_t dwOpenMode, uint32_t dwPipeMode, uint32_t nMaxInstances, uint32_t nOutBufferSize, uint32_t nInBufferSize, uint32_t nDefaultTimeOut, _In_ SECURITY_ATTRIBUTES *lpSecurityAttributes)'),
  // https://learn.microsoft.com/windows/win32/api/namedpipeapi/nf-namedpipeapi-connectnamedpipe
  ConnectNamedPipe: lib.func('int32_t __stdcall ConnectNamedPipe(HANDLE hNamedPipe, void *lpOverlapped)'),
  // https://learn.microsoft.com/windows/win32/api/fileapi/nf-fileapi-createfilew
  CreateFileW: lib.func('HANDLE __stdcall CreateFileW(const char16_t *lpFileName, uint32_t dwDesiredAccess, uint32_t dwShareMode, void *lpSecurityAttributes, uint32_t dwCreationDisposition, uint32_t dwFlagsAndAttributes, void *hTemplateFile)'),
  // https://learn.microsoft.com/windows/win32/api/fileapi/nf-fileapi-readfile (synchronous only: lpOverlapped NULL, on a PIPE_NOWAIT handle)
  ReadFile: lib.func('int32_t __stdcall ReadFile(HANDLE hFile, _Out_ uint8_t *lpBuffer, uint32_t nNumberOfBytesToRead, _Out_ uint32_t *lpNumberOfBytesRead, void *lpOverlapped)'),
  // https://learn.microsoft.com/windows/win32/api/fileapi/nf-fileapi-writefile (synchronous only, as ReadFile)
  WriteFile: lib.func('int32_t __stdcall WriteFile(HANDLE hFile, const uint8_t *lpBuffer, uint32_t nNumberOfBytesToWrite, _Out_ uint32_t *lpNumberOfBytesWritten, void *lpOverlapped)'),
  // https://learn.microsoft.com/windows/win32/api/namedpipeapi/nf-namedpipeapi-setnamedpipehandlestate
  SetNamedPipeHandleState: lib.func('int32_t __stdcall SetNamedPipeHandleState(HANDLE hNamedPipe, _In_ uint32_t *lpMode, void *lpMaxCollectionCount, void *lpCollectDataTimeout)'),
  // https://learn.microsoft.com/windows/win32/api/winbase/nf-winbase-getnamedpipehandlestatew
  GetNamedPipeHandleStateW: lib.func('int32_t __stdcall GetNamedPipeHandleStateW(HANDLE hNamedPipe, void *lpState, _Out_ uint32_t *lpCurInstances, void *lpMaxCollectionCount, void *lpCollectDataTimeout, void *lpUserName, uint32_t nMaxUserNameSize)'),
  // https://learn.microsoft.com/windows/win32/api/processthreadsapi/nf-processthreadsapi-getcurrentthread
  GetCurrentThread: lib.func('HANDLE __stdcall GetCurrentThread()'),
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

/** The PID of the client at the other end of a server-side pipe handle. */
export function pipeClientPid(pipe: unknown): number {
  const out = [0];
  if (!ok(kernel32.get().GetNamedPipeClientProcessId(pipe, out) as number)) {
    throw new OsCallError('SY_ERR_WIN_CALL', 'GetNamedPipeClientProcessId', lastError());
  }
  return out[0]!;
}

/**
 * A server instance of a byte pipe that refuses remote clients, default security (see
 * docs/windows.md for what that admits). For the pipe-identity check and its test; the control
 * server itself is Node's (libuv's) pipe server.
 */
export function createPipeInstance(name: string): unknown {
  const h = kernel32.get().CreateNamedPipeW(name, PIPE_ACCESS_DUPLEX, PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS, PIPE_UNLIMITED_INSTANCES, 4096, 4096, 0, null);
  if (isNull(h) || koffi.address(h) === INVALID_HANDLE_ADDRESS) throw new OsCallError('SY_ERR_WIN_CALL', 'CreateNamedPipeW', lastError(), name);
  return h;
}

/** Waits for (or confirms) a client on a server instance; a client that came first is fine. */
export function connectPipe(pipe: unknown): void {
  if (ok(kernel32.get().ConnectNamedPipe(pipe, null) as number)) return;
  const err = lastError();
  if (err !== ERROR_PIPE_CONNECTED) throw new OsCallError('SY_ERR_WIN_CALL', 'ConnectNamedPipe', err);
}

/** Opens a process for querying its token (PROCESS_QUERY_LIMITED_INFORMATION), or null when denied/gone. */
export function openProcessForQuery(pid: number): unknown | null {
  const h = kernel32.get().OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
  return isNull(h) ? null : h;
}

export function closeHandle(h: unknown): void {
  kernel32.get().CloseHandle(h);
}
