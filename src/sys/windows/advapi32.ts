// advapi32.dll — raw declarations and safe wrappers: is this process elevated, and whose token is it.
import koffi from 'koffi';
import './types.ts';
import { OsCallError } from '../../errors.ts';
import { lazyLibrary, ok } from './load.ts';
import { closeHandle, kernel32, lastError, openProcessForQuery } from './kernel32.ts';
import {
  ERROR_FILE_NOT_FOUND,
  ERROR_MORE_DATA,
  ERROR_NO_MORE_ITEMS,
  ERROR_SUCCESS,
  HKEY_LOCAL_MACHINE,
  KEY_ALL_ACCESS,
  KEY_READ,
  KEY_WOW64_64KEY,
  REG_OPTION_NON_VOLATILE,
  TOKEN_QUERY,
  TokenElevation,
  TokenGroups,
  TokenUser,
} from './constants.ts';
import { SID_AND_ATTRIBUTES, TOKEN_GROUPS, TOKEN_USER } from './types.ts';

export const advapi32 = lazyLibrary('advapi32.dll', (lib) => ({
  // https://learn.microsoft.com/windows/win32/api/processthreadsapi/nf-processthreadsapi-openprocesstoken
  OpenProcessToken: lib.func('int32_t __stdcall OpenProcessToken(HANDLE ProcessHandle, uint32_t DesiredAccess, _Out_ HANDLE *TokenHandle)'),
  // https://learn.microsoft.com/windows/win32/api/securitybaseapi/nf-securitybaseapi-gettokeninformation
  GetTokenInformation: lib.func('int32_t __stdcall GetTokenInformation(HANDLE TokenHandle, uint32_t TokenInformationClass, _Out_ uint8_t *TokenInformation, uint32_t TokenInformationLength, _Out_ uint32_t *ReturnLength)'),
  // https://learn.microsoft.com/windows/win32/api/sddl/nf-sddl-convertsidtostringsidw
  ConvertSidToStringSidW: lib.func('int32_t __stdcall ConvertSidToStringSidW(void *Sid, _Out_ void **StringSid)'),
  // https://learn.microsoft.com/windows/win32/api/namedpipeapi/nf-namedpipeapi-impersonatenamedpipeclient
  ImpersonateNamedPipeClient: lib.func('int32_t __stdcall ImpersonateNamedPipeClient(HANDLE hNamedPipe)'),
  // https://learn.microsoft.com/windows/win32/api/securitybaseapi/nf-securitybaseapi-reverttoself
  RevertToSelf: lib.func('int32_t __stdcall RevertToSelf()'),
  // https://learn.microsoft.com/windows/win32/api/processthreadsapi/nf-processthreadsapi-openthreadtoken
  OpenThreadToken: lib.func('int32_t __stdcall OpenThreadToken(HANDLE ThreadHandle, uint32_t DesiredAccess, int32_t OpenAsSelf, _Out_ HANDLE *TokenHandle)'),
  // https://learn.microsoft.com/windows/win32/api/sddl/nf-sddl-convertstringsecuritydescriptortosecuritydescriptorw
  ConvertStringSecurityDescriptorToSecurityDescriptorW: lib.func('int32_t __stdcall ConvertStringSecurityDescriptorToSecurityDescriptorW(const char16_t *StringSecurityDescriptor, uint32_t StringSDRevision, _Out_ void **SecurityDescriptor, void *SecurityDescriptorSize)'),
  // https://learn.microsoft.com/windows/win32/api/winbase/nf-winbase-lookupaccountnamew
  LookupAccountNameW: lib.func('int32_t __stdcall LookupAccountNameW(const char16_t *lpSystemName, const char16_t *lpAccountName, _Out_ uint8_t *Sid, _Inout_ uint32_t *cbSid, _Out_ uint8_t *ReferencedDomainName, _Inout_ uint32_t *cchReferencedDomainName, _Out_ uint32_t *peUse)'),
}));

function withToken<T>(fn: (token: unknown) => T, process?: unknown): T {
  const k = kernel32.get();
  const a = advapi32.get();
  const out: unknown[] = [null];
  if (!ok(a.OpenProcessToken(process ?? k.GetCurrentProcess(), TOKEN_QUERY, out) as number)) {
    throw new OsCallError('SY_ERR_WIN_CALL', 'OpenProcessToken', lastError());
  }
  try {
    return fn(out[0]);
  } finally {
    k.CloseHandle(out[0]);
  }
}

function tokenInfo(token: unknown, cls: number, size: number): Buffer {
  const buf = Buffer.alloc(size);
  const ret = [0];
  if (!ok(advapi32.get().GetTokenInformation(token, cls, buf, size, ret) as number)) {
    throw new OsCallError('SY_ERR_WIN_CALL', 'GetTokenInformation', lastError(), `class ${cls}`);
  }
  return buf;
}

/** True when the process token is elevated (Administrator with UAC consent, or LocalSystem). */
export function isElevated(): boolean {
  return withToken((t) => tokenInfo(t, TokenElevation, 4).readUInt32LE(0) !== 0);
}

function sidText(sid: unknown): string {
  const out: unknown[] = [null];
  if (!ok(advapi32.get().ConvertSidToStringSidW(sid, out) as number)) {
    throw new OsCallError('SY_ERR_WIN_CALL', 'ConvertSidToStringSidW', lastError());
  }
  try {
    return koffi.decode(out[0], 'char16_t', -1) as string;
  } finally {
    kernel32.get().LocalFree(out[0]);
  }
}

function userSidOf(t: unknown): string {
  const buf = tokenInfo(t, TokenUser, 256);
  const user = koffi.decode(buf, TOKEN_USER) as { User: { Sid: unknown } };
  return sidText(user.User.Sid);
}

/** The process user's SID as text (S-1-5-18 for LocalSystem). */
export function currentUserSid(): string {
  return withToken(userSidOf);
}

/** What a token says about its holder, for the control permission classes. */
export interface TokenFacts {
  /** The user's SID (S-1-5-18 = LocalSystem). */
  sid: string;
  elevated: boolean;
  /** Group SIDs with their SE_GROUP_* attributes (deny-only groups count for nothing). */
  groups: { sid: string; attributes: number }[];
}

const MAX_GROUPS = 1024;

/** Group SIDs of a token; the count is checked against the buffer before each entry is read. */
function groupsOf(t: unknown): TokenFacts['groups'] {
  const size = [0];
  advapi32.get().GetTokenInformation(t, TokenGroups, null, 0, size);
  const len = size[0]!;
  if (len < 8 || len > 1 << 20) throw new OsCallError('SY_ERR_WIN_CALL', 'GetTokenInformation', lastError(), `TokenGroups size ${len}`);
  const buf = tokenInfo(t, TokenGroups, len);
  const count = buf.readUInt32LE(0);
  const entry = koffi.sizeof(SID_AND_ATTRIBUTES);
  const first = koffi.offsetof(TOKEN_GROUPS, 'Groups');
  if (count > MAX_GROUPS || first + count * entry > len) throw new OsCallError('SY_ERR_WIN_CALL', 'GetTokenInformation', undefined, `TokenGroups count ${count} does not fit ${len} bytes`);
  const out: TokenFacts['groups'] = [];
  for (let i = 0; i < count; i++) {
    const g = koffi.decode(buf, first + i * entry, SID_AND_ATTRIBUTES) as { Sid: unknown; Attributes: number };
    out.push({ sid: sidText(g.Sid), attributes: g.Attributes });
  }
  return out;
}

function factsOf(t: unknown): TokenFacts {
  return { sid: userSidOf(t), elevated: tokenInfo(t, TokenElevation, 4).readUInt32LE(0) !== 0, groups: groupsOf(t) };
}

/** Token facts of this process. */
export function currentTokenFacts(): TokenFacts {
  return withToken(factsOf);
}

/**
 * Token facts of another process (OpenProcess with PROCESS_QUERY_LIMITED_INFORMATION, then its
 * token). Undefined when the process is gone or its token cannot be read: callers refuse then.
 */
export function processTokenFacts(pid: number): TokenFacts | undefined {
  const h = openProcessForQuery(pid);
  if (h === null) return undefined;
  try {
    return withToken(factsOf, h);
  } catch {
    return undefined;
  } finally {
    closeHandle(h);
  }
}

/**
 * The user SID of another process (PROCESS_QUERY_LIMITED_INFORMATION, OpenProcessToken TOKEN_QUERY,
 * TokenUser): who owns a flow, for the control privacy filter. Undefined when the process is gone or
 * its token cannot be read (a protected process): the flow then has no known owner (hidden from
 * callers who are not privileged).
 */
export function processUserSid(pid: number): string | undefined {
  const h = openProcessForQuery(pid);
  if (h === null) return undefined;
  try {
    return withToken(userSidOf, h);
  } catch {
    return undefined;
  } finally {
    closeHandle(h);
  }
}

// ---------------------------------------------------------------- registry (winreg.h)
// HKEY parameters are declared intptr_t: the predefined keys are small negative numbers
// (HKEY_LOCAL_MACHINE = (HKEY)(LONG)0x80000002, sign-extended), and opened keys come back as
// pointer-sized integers through the out parameter.

export const advapi32Registry = lazyLibrary('advapi32.dll', (lib) => ({
  // https://learn.microsoft.com/windows/win32/api/winreg/nf-winreg-regopenkeyexw
  RegOpenKeyExW: lib.func('int32_t __stdcall RegOpenKeyExW(intptr_t hKey, const char16_t *lpSubKey, uint32_t ulOptions, uint32_t samDesired, _Out_ intptr_t *phkResult)'),
  // https://learn.microsoft.com/windows/win32/api/winreg/nf-winreg-regcreatekeyexw
  RegCreateKeyExW: lib.func('int32_t __stdcall RegCreateKeyExW(intptr_t hKey, const char16_t *lpSubKey, uint32_t Reserved, void *lpClass, uint32_t dwOptions, uint32_t samDesired, void *lpSecurityAttributes, _Out_ intptr_t *phkResult, _Out_ uint32_t *lpdwDisposition)'),
  // https://learn.microsoft.com/windows/win32/api/winreg/nf-winreg-regclosekey
  RegCloseKey: lib.func('int32_t __stdcall RegCloseKey(intptr_t hKey)'),
  // https://learn.microsoft.com/windows/win32/api/winreg/nf-winreg-regenumkeyexw
  RegEnumKeyExW: lib.func('int32_t __stdcall RegEnumKeyExW(intptr_t hKey, uint32_t dwIndex, _Out_ uint8_t *lpName, _Inout_ uint32_t *lpcchName, void *lpReserved, void *lpClass, void *lpcchClass, void *lpftLastWriteTime)'),
  // https://learn.microsoft.com/windows/win32/api/winreg/nf-winreg-regenumvaluew
  RegEnumValueW: lib.func('int32_t __stdcall RegEnumValueW(intptr_t hKey, uint32_t dwIndex, _Out_ uint8_t *lpValueName, _Inout_ uint32_t *lpcchValueName, void *lpReserved, _Out_ uint32_t *lpType, _Out_ uint8_t *lpData, _Inout_ uint32_t *lpcbData)'),
  // https://learn.microsoft.com/windows/win32/api/winreg/nf-winreg-regsetvalueexw
  RegSetValueExW: lib.func('int32_t __stdcall RegSetValueExW(intptr_t hKey, const char16_t *lpValueName, uint32_t Reserved, uint32_t dwType, const uint8_t *lpData, uint32_t cbData)'),
  // https://learn.microsoft.com/windows/win32/api/winreg/nf-winreg-regdeletevaluew
  RegDeleteValueW: lib.func('int32_t __stdcall RegDeleteValueW(intptr_t hKey, const char16_t *lpValueName)'),
  // https://learn.microsoft.com/windows/win32/api/winreg/nf-winreg-regdeletetreew
  RegDeleteTreeW: lib.func('int32_t __stdcall RegDeleteTreeW(intptr_t hKey, const char16_t *lpSubKey)'),
  // https://learn.microsoft.com/windows/win32/api/winreg/nf-winreg-regdeletekeyexw
  RegDeleteKeyExW: lib.func('int32_t __stdcall RegDeleteKeyExW(intptr_t hKey, const char16_t *lpSubKey, uint32_t samDesired, uint32_t Reserved)'),
}));

/** A registry value exactly as stored: type number and raw bytes (restored byte for byte). */
export interface RegValue {
  name: string;
  type: number;
  data: Buffer;
}

export interface RegKeyContent {
  values: RegValue[];
  subkeys: string[];
}

function regCheck(status: number, call: string, detail?: string): void {
  if (status !== ERROR_SUCCESS) throw new OsCallError('SY_ERR_WIN_CALL', call, status, detail);
}

function withKey<T>(path: string, write: boolean, fn: (hk: number | bigint) => T): T | null {
  const r = advapi32Registry.get();
  const out: (number | bigint)[] = [0];
  const st = write
    ? (r.RegCreateKeyExW(HKEY_LOCAL_MACHINE, path, 0, null, REG_OPTION_NON_VOLATILE, KEY_ALL_ACCESS | KEY_WOW64_64KEY, null, out, [0]) as number)
    : (r.RegOpenKeyExW(HKEY_LOCAL_MACHINE, path, 0, KEY_READ | KEY_WOW64_64KEY, out) as number);
  if (!write && st === ERROR_FILE_NOT_FOUND) return null;
  regCheck(st, write ? 'RegCreateKeyExW' : 'RegOpenKeyExW', `HKLM\\${path}`);
  try {
    return fn(out[0]!);
  } finally {
    r.RegCloseKey(out[0]!);
  }
}

/** Values and subkey names of HKLM\path, or null when the key does not exist. */
export function regReadKey(path: string): RegKeyContent | null {
  const r = advapi32Registry.get();
  return withKey(path, false, (hk) => {
    const subkeys: string[] = [];
    for (let i = 0; i < 4096; i++) {
      const name = Buffer.alloc(512);
      const len = [256];
      const st = r.RegEnumKeyExW(hk, i, name, len, null, null, null, null) as number;
      if (st === ERROR_NO_MORE_ITEMS) break;
      regCheck(st, 'RegEnumKeyExW', `HKLM\\${path}`);
      subkeys.push(name.toString('utf16le', 0, len[0]! * 2));
    }
    const values: RegValue[] = [];
    for (let i = 0; i < 4096; i++) {
      const name = Buffer.alloc(2 * 16384);
      const nameLen = [16384];
      const type = [0];
      let data = Buffer.alloc(4096);
      const dataLen = [data.length];
      let st = r.RegEnumValueW(hk, i, name, nameLen, null, type, data, dataLen) as number;
      if (st === ERROR_MORE_DATA) {
        data = Buffer.alloc(dataLen[0]!);
        nameLen[0] = 16384;
        st = r.RegEnumValueW(hk, i, name, nameLen, null, type, data, dataLen) as number;
      }
      if (st === ERROR_NO_MORE_ITEMS) break;
      regCheck(st, 'RegEnumValueW', `HKLM\\${path}`);
      values.push({ name: name.toString('utf16le', 0, nameLen[0]! * 2), type: type[0]!, data: Buffer.from(data.subarray(0, dataLen[0]!)) });
    }
    return { values, subkeys };
  });
}

/** Replaces HKLM\path with exactly `values` (the key is emptied first; subkeys are kept). */
export function regWriteKey(path: string, values: readonly RegValue[]): void {
  const r = advapi32Registry.get();
  withKey(path, true, (hk) => {
    const old = regReadKey(path);
    // Value names compare case-insensitively in the registry.
    for (const v of old?.values ?? []) {
      if (!values.some((w) => w.name.toLowerCase() === v.name.toLowerCase())) regCheck(r.RegDeleteValueW(hk, v.name) as number, 'RegDeleteValueW', v.name);
    }
    for (const v of values) regCheck(r.RegSetValueExW(hk, v.name, 0, v.type, v.data, v.data.length) as number, 'RegSetValueExW', `${v.name}`);
  });
}

/** Deletes HKLM\path with everything under it; a missing key is not an error. */
export function regDeleteKey(path: string): void {
  const st = advapi32Registry.get().RegDeleteTreeW(HKEY_LOCAL_MACHINE, path) as number;
  if (st === ERROR_FILE_NOT_FOUND) return;
  regCheck(st, 'RegDeleteTreeW', `HKLM\\${path}`);
  const st2 = advapi32Registry.get().RegDeleteKeyExW(HKEY_LOCAL_MACHINE, path, KEY_WOW64_64KEY, 0) as number;
  if (st2 !== ERROR_FILE_NOT_FOUND) regCheck(st2, 'RegDeleteKeyExW', `HKLM\\${path}`);
}

// ---------------------------------------------------------------- the control pipe's caller and DACL

/**
 * Token facts of the client at the other end of a server pipe instance, taken by impersonating it
 * (ImpersonateNamedPipeClient + OpenThreadToken, then RevertToSelf at once). The token is the one the
 * pipe captured for that connection, so — unlike a PID — it cannot be swapped for another process's by
 * exiting and letting the PID be reused. Needs at least one read from the pipe first (else
 * ERROR_CANNOT_IMPERSONATE). A client that connected with SECURITY_ANONYMOUS yields no token: throws.
 */
export function pipeClientTokenFacts(pipe: unknown): TokenFacts {
  const a = advapi32.get();
  const k = kernel32.get();
  if (!ok(a.ImpersonateNamedPipeClient(pipe) as number)) throw new OsCallError('SY_ERR_WIN_CALL', 'ImpersonateNamedPipeClient', lastError());
  const out: unknown[] = [null];
  let opened = false;
  let err = 0;
  try {
    // OpenAsSelf: the access check uses the daemon's own token (an identification-level client
    // token could not open anything).
    opened = ok(a.OpenThreadToken(k.GetCurrentThread(), TOKEN_QUERY, 1, out) as number);
    if (!opened) err = lastError();
  } finally {
    // Never go on running as the client: if the thread cannot return to the daemon's own token,
    // stop the process (the documented risk of a failed revert).
    if (!ok(a.RevertToSelf() as number)) {
      process.stderr.write('switchyard: RevertToSelf failed after impersonating a control client; aborting\n');
      process.abort();
    }
  }
  if (!opened) throw new OsCallError('SY_ERR_WIN_CALL', 'OpenThreadToken', err);
  try {
    return factsOf(out[0]);
  } finally {
    k.CloseHandle(out[0]);
  }
}

/** A self-relative security descriptor from SDDL, in LocalAlloc'd memory (free with kernel32 LocalFree). */
export function securityDescriptorFromSddl(sddl: string): unknown {
  const out: unknown[] = [null];
  if (!ok(advapi32.get().ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, 1 /* SDDL_REVISION_1 */, out, null) as number)) {
    throw new OsCallError('SY_ERR_WIN_CALL', 'ConvertStringSecurityDescriptorToSecurityDescriptorW', lastError(), sddl);
  }
  return out[0];
}

/** SID_NAME_USE values of a group: SidTypeGroup, SidTypeWellKnownGroup, SidTypeAlias (a local group). */
const GROUP_SID_TYPES = new Set([2, 4, 5]);

/**
 * The SID (text) of a local account name, or undefined when it does not exist. `group` asks for a
 * group (a user of that name does not count).
 */
export function accountSid(name: string, kind: 'group' | 'any' = 'any'): string | undefined {
  const a = advapi32.get();
  const sid = Buffer.alloc(68); // SECURITY_MAX_SID_SIZE
  const sidLen = [sid.length];
  const dom = Buffer.alloc(2 * 256);
  const domLen = [256];
  const use = [0];
  if (!ok(a.LookupAccountNameW(null, name, sid, sidLen, dom, domLen, use) as number)) return undefined;
  if (kind === 'group' && !GROUP_SID_TYPES.has(use[0]!)) return undefined;
  return sidText(sid);
}
