// advapi32.dll — raw declarations and safe wrappers: is this process elevated, and whose token is it.
import koffi from 'koffi';
import './types.ts';
import { OsCallError } from '../../errors.ts';
import { lazyLibrary, ok } from './load.ts';
import { kernel32, lastError } from './kernel32.ts';
import { TOKEN_QUERY, TokenElevation, TokenUser } from './constants.ts';
import { TOKEN_USER } from './types.ts';

export const advapi32 = lazyLibrary('advapi32.dll', (lib) => ({
  // https://learn.microsoft.com/windows/win32/api/processthreadsapi/nf-processthreadsapi-openprocesstoken
  OpenProcessToken: lib.func('int32_t __stdcall OpenProcessToken(HANDLE ProcessHandle, uint32_t DesiredAccess, _Out_ HANDLE *TokenHandle)'),
  // https://learn.microsoft.com/windows/win32/api/securitybaseapi/nf-securitybaseapi-gettokeninformation
  GetTokenInformation: lib.func('int32_t __stdcall GetTokenInformation(HANDLE TokenHandle, uint32_t TokenInformationClass, _Out_ uint8_t *TokenInformation, uint32_t TokenInformationLength, _Out_ uint32_t *ReturnLength)'),
  // https://learn.microsoft.com/windows/win32/api/sddl/nf-sddl-convertsidtostringsidw
  ConvertSidToStringSidW: lib.func('int32_t __stdcall ConvertSidToStringSidW(void *Sid, _Out_ void **StringSid)'),
}));

function withToken<T>(fn: (token: unknown) => T): T {
  const k = kernel32.get();
  const a = advapi32.get();
  const out: unknown[] = [null];
  if (!ok(a.OpenProcessToken(k.GetCurrentProcess(), TOKEN_QUERY, out) as number)) {
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

/** The process user's SID as text (S-1-5-18 for LocalSystem). */
export function currentUserSid(): string {
  return withToken((t) => {
    const buf = tokenInfo(t, TokenUser, 256);
    const user = koffi.decode(buf, TOKEN_USER) as { User: { Sid: unknown } };
    const out: unknown[] = [null];
    if (!ok(advapi32.get().ConvertSidToStringSidW(user.User.Sid, out) as number)) {
      throw new OsCallError('SY_ERR_WIN_CALL', 'ConvertSidToStringSidW', lastError());
    }
    try {
      return koffi.decode(out[0], 'char16_t', -1) as string;
    } finally {
      kernel32.get().LocalFree(out[0]);
    }
  });
}
