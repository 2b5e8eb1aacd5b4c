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
  SY_ERR_DNS_UPSTREAM_URL: 'a DNS upstream URL is invalid',
  SY_ERR_DNS_UPSTREAM: 'a DNS upstream failed or gave an unusable answer',
  SY_ERR_DNS_TIMEOUT: 'a DNS upstream did not answer in time',
  SY_ERR_DNS_NO_UPSTREAM: 'no usable DNS upstream for this name',
  SY_ERR_DNS_LISTEN: 'the DNS listener could not bind its address',
  SY_ERR_DNS_HOOK: 'the DNS binding hook failed',
  SY_ERR_DNS_BLOCKED: 'the name is blocked by policy',
  SY_ERR_DNS_NOT_FOUND: 'the name does not exist or has no address',
  // --- front / egress ---
  // --- redirect / sys ---
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

export function isSwitchyardError(err: unknown): err is SwitchyardError {
  return err instanceof SwitchyardError;
}

/** DNS forwarder errors (src/dns): upstream failures, timeouts, hook failures, listen errors. */
export class DnsError extends SwitchyardError {
  constructor(code: Extract<ErrorCode, `SY_ERR_DNS${string}`>, message: string, cause?: unknown) {
    super(code, message, { cause });
  }
}
