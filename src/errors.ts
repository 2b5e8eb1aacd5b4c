// One home for every error switchyard raises on purpose. Each class carries a stable `code`
// (SY_ERR_*) that scripts may match on; docs/errors.md documents every code and
// test/errors.test.ts keeps the two in step. Codes never change meaning once released.
//
// Sections are grouped by area so that parallel work adds lines in separate places.

export class SwitchyardError extends Error {
  readonly code: ErrorCode;
  /** Process exit code the CLI uses when this error ends a command. */
  readonly exitCode: number;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; exitCode?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = options?.exitCode ?? 1;
  }
}

/** Every code, with a one-line summary. Add new codes here and in docs/errors.md. */
export const ERROR_CODES = {
  // --- general / CLI ---
  SY_ERR_USAGE: 'bad command-line usage',
  SY_ERR_INTERNAL: 'an internal invariant failed (a bug)',
  // --- config ---
  SY_ERR_CONFIG: 'the config is invalid',
  SY_ERR_CONFIG_TOO_LARGE: 'the config file exceeds the size limit',
  SY_ERR_CONFIG_LIMIT: 'the config exceeds a count or length limit',
  SY_ERR_CONFIG_ENCODING: 'the config file is not valid UTF-8',
  SY_ERR_CONFIG_SYNTAX: 'the config file is not valid TOML',
  SY_ERR_CONFIG_READ: 'the config file could not be read',
  // --- policy ---
  // --- dns ---
  // --- front / egress ---
  // --- redirect / sys ---
  SY_ERR_WIN_UNAVAILABLE: 'a Windows DLL could not be loaded (not on Windows, or the file is missing)',
  SY_ERR_WIN_CALL: 'a Win32 call failed',
  SY_ERR_WIN_NOT_ADMIN: 'enforcement on Windows needs an elevated (Administrator) process',
  SY_ERR_WIN_WFP: 'a Windows Filtering Platform call failed; the transaction was aborted',
  SY_ERR_WIN_WFP_UNSUPPORTED: 'the Windows Filtering Platform is not available on this system',
  SY_ERR_WIN_WINDIVERT: 'a WinDivert call failed',
  SY_ERR_WIN_WINDIVERT_PATH: 'enforce.windivertPath is missing or does not hold WinDivert.dll and WinDivert64.sys',
  SY_ERR_WIN_NOT_REFLECTED: 'a connection reached a Windows transparent listener without a NAT entry; refused',
  // --- control ---
  // --- store ---
  // --- lists ---
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class UsageError extends SwitchyardError {
  constructor(message: string) {
    super('SY_ERR_USAGE', message, { exitCode: 2 });
  }
}

export class InternalError extends SwitchyardError {
  constructor(message: string, cause?: unknown) {
    super('SY_ERR_INTERNAL', message, { cause });
  }
}

/** Where in a config file a problem sits: dotted key path and, when known, the line. */
export interface ConfigLocation {
  path: string;
  line?: number;
}

/** Config problems exit with 2, as usage errors do: the input is wrong, not the program. */
export class ConfigError extends SwitchyardError {
  readonly issues: readonly (ConfigLocation & { message: string })[];
  constructor(
    code: Extract<ErrorCode, `SY_ERR_CONFIG${string}`>,
    message: string,
    issues: readonly (ConfigLocation & { message: string })[] = [],
    cause?: unknown,
  ) {
    super(code, message, { exitCode: 2, cause });
    this.issues = issues;
  }
}

/** Wraps a failed OS call with its name and errno, so logs say which call failed and why. */
export class OsCallError extends SwitchyardError {
  readonly call: string;
  readonly errno: number | undefined;
  constructor(code: ErrorCode, call: string, errno: number | undefined, detail?: string) {
    super(code, `${call} failed${errno === undefined ? '' : ` (errno ${errno})`}${detail ? `: ${detail}` : ''}`);
    this.call = call;
    this.errno = errno;
  }
}

/** Windows: a transparent listener's peer that the reflector did not send there (no NAT entry). */
export class NotReflectedError extends SwitchyardError {
  readonly peer: string;
  constructor(peer: string) {
    super('SY_ERR_WIN_NOT_REFLECTED', `transparent listener: peer ${peer} has no NAT entry (not a reflected connection); refused`);
    this.peer = peer;
  }
}

export function isSwitchyardError(err: unknown): err is SwitchyardError {
  return err instanceof SwitchyardError;
}
