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
  SY_ERR_CONFIG_VERSION: 'the config has no supported `version`',
  SY_ERR_CONFIG_TOO_MANY_RULES: 'the config has more rules than allowed',
  SY_ERR_CONFIG_TOO_MANY_PATTERNS: 'a rule or the whole config has more patterns than allowed',
  SY_ERR_CONFIG_PATTERN_TOO_LONG: 'a pattern is longer than allowed',
  // --- policy ---
  // --- dns ---
  // --- front / egress ---
  // --- redirect / sys ---
  // --- control ---
  // --- store ---
  // --- lists ---
  SY_ERR_LIST_SYNTAX: 'a rule list has a malformed line',
  SY_ERR_LIST_UNSUPPORTED: 'a rule list uses a field, rule type or version switchyard does not support',
  SY_ERR_LIST_TOO_LARGE: 'a rule list file exceeds the size limit',
  SY_ERR_LIST_LIMIT: 'a rule list exceeds a line-length, entry-count or include-depth limit',
  SY_ERR_LIST_ENCODING: 'a rule list is not valid UTF-8',
  SY_ERR_LIST_INCLUDE: 'a v2fly include is missing, malformed or forms a cycle',
  SY_ERR_LIST_READ: 'a rule list could not be read',
  SY_ERR_LIST_DEF: 'a [[list]] definition is invalid (name, source, format, egress)',
  SY_ERR_LIST_EXPORT: 'a list entry cannot be written in the requested format',
  SY_ERR_LIST_FETCH: 'fetching a remote list failed (network, HTTP status, redirect, timeout)',
  SY_ERR_LIST_FETCH_TLS: 'a remote list server failed certificate verification',
  SY_ERR_LIST_FETCH_TOO_LARGE: 'a remote list exceeds the download size limit',
  SY_ERR_LIST_FETCH_HASH: 'a remote list does not match its pinned sha256',
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

/** Where a list problem sits: the list name, the file (or included list) and the 1-based line. */
export interface ListLocation {
  list?: string;
  file?: string;
  line?: number;
}

/**
 * A rule-list problem. Input errors (syntax, limits, unsupported) exit with 2 like config errors;
 * fetch errors exit with 1. The message already names list, file and line; the fields repeat them
 * for programs.
 */
export class ListError extends SwitchyardError {
  readonly list: string | undefined;
  readonly file: string | undefined;
  readonly line: number | undefined;
  constructor(code: Extract<ErrorCode, `SY_ERR_LIST${string}`>, message: string, where: ListLocation = {}, cause?: unknown) {
    const prefix = [
      where.list === undefined ? null : `list '${where.list}'`,
      where.file === undefined ? null : where.file,
      where.line === undefined ? null : `line ${where.line}`,
    ].filter((x) => x !== null).join(' ');
    super(code, prefix ? `${prefix}: ${message}` : message, {
      cause,
      exitCode: code.startsWith('SY_ERR_LIST_FETCH') || code === 'SY_ERR_LIST_READ' ? 1 : 2,
    });
    this.list = where.list;
    this.file = where.file;
    this.line = where.line;
  }
}

export function isSwitchyardError(err: unknown): err is SwitchyardError {
  return err instanceof SwitchyardError;
}
