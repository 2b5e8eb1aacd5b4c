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
  // --- control ---
  SY_ERR_CONTROL_PERMISSION: 'the caller may not use this control method',
  SY_ERR_CONTROL_BAD_FRAME: 'a control message is malformed',
  SY_ERR_CONTROL_TOO_LARGE: 'a control message exceeds the size limit',
  SY_ERR_CONTROL_UNKNOWN_METHOD: 'the daemon has no such control method',
  SY_ERR_CONTROL_VERSION: 'the control protocol version does not match',
  SY_ERR_CONTROL_NOT_RUNNING: 'no daemon answers on the control endpoint',
  SY_ERR_CONTROL_IN_USE: 'another live daemon already answers on the control endpoint',
  SY_ERR_CONTROL_ENDPOINT: 'the control endpoint cannot be set up',
  SY_ERR_CONTROL_IDENTITY: "the caller's identity cannot be established",
  SY_ERR_CONTROL_BAD_PARAMS: "a control method's parameters are invalid",
  SY_ERR_CONTROL_TIMEOUT: 'the daemon did not answer in time',
  SY_ERR_CONTROL_CLOSED: 'the control connection closed before the answer',
  SY_ERR_CONTROL_BUSY: 'the control server has too many connections',
  SY_ERR_CONTROL_FAILED: 'a control method failed inside the daemon',
  // --- store ---
  SY_ERR_STORE_KEY_PERMS: 'the HMAC key file is readable or writable by others',
  SY_ERR_STORE_KEY_INVALID: 'the HMAC key file is not a valid key',
  SY_ERR_STORE_TAMPERED: 'a persisted revision or state failed its integrity check',
  SY_ERR_STORE_CORRUPT: 'a persisted store file cannot be parsed',
  SY_ERR_STORE_NOT_FOUND: 'no such revision',
  SY_ERR_STORE_STATE: 'the revision is not in a state that allows this',
  SY_ERR_STORE_CANONICAL: 'a value cannot be serialised canonically',
  SY_ERR_STORE_APPLY: 'activating a revision failed and was rolled back',
  SY_ERR_STORE_AUDIT: 'the audit log failed verification',
  SY_ERR_STORE_IO: 'a store file could not be read or written',
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

export function isSwitchyardError(err: unknown): err is SwitchyardError {
  return err instanceof SwitchyardError;
}

/** Control IPC failures; `code` travels in error replies so the CLI shows the daemon's code. */
export class ControlError extends SwitchyardError {
  constructor(code: Extract<ErrorCode, `SY_ERR_CONTROL${string}`>, message: string, cause?: unknown) {
    super(code, message, { cause });
  }
}

/** Policy store failures (revisions, integrity, audit). */
export class StoreError extends SwitchyardError {
  constructor(code: Extract<ErrorCode, `SY_ERR_STORE${string}`>, message: string, cause?: unknown) {
    super(code, message, { cause });
  }
}
