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
  SY_ERR_REDIRECT_UNAVAILABLE: 'no OS backend for this platform, or it cannot start here',
  SY_ERR_REDIRECT_PLAN: 'the redirect plan cannot be built from the config',
  SY_ERR_REDIRECT_NFT: 'nft refused the ruleset or could not run',
  SY_ERR_REDIRECT_VERIFY: 'the installed ruleset differs from the plan when read back',
  SY_ERR_REDIRECT_CGROUP: 'a cgroup operation failed or the cgroup v2 layout is unusable',
  SY_ERR_REDIRECT_CANARY: 'a canary process in a group did not reach its transparent port',
  SY_ERR_REDIRECT_WATCHER: 'the process watcher could not start or failed',
  SY_ERR_SYS_NETLINK: 'a netlink socket call failed',
  SY_ERR_SYS_LIBNFTABLES: 'libnftables could not be loaded or refused a command',
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

// --- redirect / sys -----------------------------------------------------------------------------

type RedirectCode = Extract<ErrorCode, `SY_ERR_REDIRECT${string}` | `SY_ERR_SYS${string}`>;

/** An OS backend failure; the caller fails closed (keeps or installs the skeleton). */
export class RedirectError extends SwitchyardError {
  constructor(code: RedirectCode, message: string, cause?: unknown) {
    super(code, message, { cause });
  }
}

export class RedirectPlanError extends RedirectError {
  constructor(message: string) {
    super('SY_ERR_REDIRECT_PLAN', message);
  }
}

export class RedirectUnavailableError extends RedirectError {
  constructor(message: string) {
    super('SY_ERR_REDIRECT_UNAVAILABLE', message);
  }
}

export function isSwitchyardError(err: unknown): err is SwitchyardError {
  return err instanceof SwitchyardError;
}
