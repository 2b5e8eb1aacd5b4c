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
  SY_ERR_FRONT_SOCKET_CALL: 'a socket system call failed (call name and errno in the message)',
  SY_ERR_FRONT_LISTEN: 'a front-door listener could not start',
  SY_ERR_FRONT_HANDSHAKE: 'a SOCKS5 or HTTP proxy request was malformed, too large or too slow',
  SY_ERR_FRONT_SESSION_LIMIT: 'the session cap is reached; the flow was refused',
  SY_ERR_FRONT_IDENTITY: 'the original destination of a redirected flow could not be read',
  SY_ERR_EGRESS_UNKNOWN: 'a decision named an egress that is not configured',
  SY_ERR_EGRESS_BLOCKED: 'the flow was refused by policy (block egress)',
  SY_ERR_EGRESS_DOWN: 'the egress is down and has no fallback; the flow was refused (fail closed)',
  SY_ERR_EGRESS_RESOLVE: 'the destination name could not be resolved for the egress',
  SY_ERR_EGRESS_CONNECT: 'the egress could not reach the destination (refused, unreachable, timeout)',
  SY_ERR_EGRESS_PROXY: 'the upstream proxy failed, refused the request or broke its protocol',
  SY_ERR_EGRESS_UNSUPPORTED: 'the egress cannot carry this kind of flow (e.g. UDP through http)',
  SY_ERR_EGRESS_INTERFACE: 'the interface of an interface egress is missing or has no address',
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

// ---------------------------------------------------------------- front / egress

/** Why the egress layer refused or failed a flow; front maps it to a SOCKS reply byte / HTTP status. */
export type EgressFailure =
  | 'blocked'
  | 'down'
  | 'unknown-egress'
  | 'resolve'
  | 'timeout'
  | 'refused'
  | 'host-unreachable'
  | 'net-unreachable'
  | 'proxy'
  | 'unsupported'
  | 'interface';

export class EgressError extends SwitchyardError {
  readonly failure: EgressFailure;
  readonly egress: string;
  /** The upstream SOCKS5 proxy's own reply byte, when it sent one. */
  readonly upstreamReply: number | undefined;
  /** The egress's proxy itself could not be reached (not the destination behind it). */
  readonly proxyUnreachable: boolean;
  constructor(
    code: Extract<ErrorCode, `SY_ERR_EGRESS${string}`>,
    failure: EgressFailure,
    egress: string,
    message: string,
    options?: { cause?: unknown; upstreamReply?: number; proxyUnreachable?: boolean },
  ) {
    super(code, `egress ${egress}: ${message}`, { cause: options?.cause });
    this.failure = failure;
    this.egress = egress;
    this.upstreamReply = options?.upstreamReply;
    this.proxyUnreachable = options?.proxyUnreachable ?? false;
  }
}

/** A malformed, oversized or too slow SOCKS5/HTTP request; `reason` names the failed check. */
export class HandshakeError extends SwitchyardError {
  readonly reason: string;
  constructor(reason: string, message: string) {
    // Routine outcome of hostile or broken clients: a stack trace says nothing here and capturing
    // one was the largest cost of rejecting a malformed request (profiled), so none is taken.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super('SY_ERR_FRONT_HANDSHAKE', message);
    Error.stackTraceLimit = limit;
    this.reason = reason;
  }
}

export function isSwitchyardError(err: unknown): err is SwitchyardError {
  return err instanceof SwitchyardError;
}
