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
  SY_ERR_DNS_INTERFACE: 'the interface a name must be resolved through is missing, down, or its sockets could not be bound to it',
  SY_ERR_DNS_FAST_PATH: 'the Linux UDP fast path (batched syscalls in a worker) could not start or stopped',
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
  SY_ERR_REDIRECT_UNAVAILABLE: 'no OS backend for this platform, or it cannot start here',
  SY_ERR_REDIRECT_PLAN: 'the redirect plan cannot be built from the config',
  SY_ERR_REDIRECT_NFT: 'nft refused the ruleset or could not run',
  SY_ERR_REDIRECT_VERIFY: 'the installed ruleset differs from the plan when read back',
  SY_ERR_REDIRECT_CGROUP: 'a cgroup operation failed or the cgroup v2 layout is unusable',
  SY_ERR_REDIRECT_CANARY: 'a canary process in a group did not reach its transparent port',
  SY_ERR_REDIRECT_WATCHER: 'the process watcher could not start or failed',
  SY_ERR_REDIRECT_SYSTEM_DNS: 'switchyard could not make itself the system resolver, or undo it',
  SY_ERR_SYS_NETLINK: 'a netlink socket call failed',
  SY_ERR_SYS_LIBNFTABLES: 'libnftables could not be loaded or refused a command',
  SY_ERR_SYS_FANOTIFY: 'a fanotify call failed (the watcher then uses the proc connector)',
  SY_ERR_WIN_UNAVAILABLE: 'a Windows DLL could not be loaded (not on Windows, or the file is missing)',
  SY_ERR_WIN_CALL: 'a Win32 call failed',
  SY_ERR_WIN_NOT_ADMIN: 'enforcement on Windows needs an elevated (Administrator) process',
  SY_ERR_WIN_WFP: 'a Windows Filtering Platform call failed; the transaction was aborted',
  SY_ERR_WIN_WFP_UNSUPPORTED: 'the Windows Filtering Platform is not available on this system',
  SY_ERR_WIN_WINDIVERT: 'a WinDivert call failed',
  SY_ERR_WIN_WINDIVERT_PATH: 'enforce.windivertPath is missing or does not hold WinDivert.dll and WinDivert64.sys',
  SY_ERR_WIN_NOT_REFLECTED: 'a connection reached a Windows transparent listener without a NAT entry; refused',
  SY_ERR_WIN_NRPT: 'the Windows NRPT rule for the system resolver cannot be set or restored',
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
  // --- daemon ---
  SY_ERR_DAEMON_RELOAD: 'the new config was refused; the running policy stays',
  SY_ERR_DAEMON_ENFORCE: 'enforcement was asked for but the OS backend cannot run it; the daemon refuses to start unenforced',
  SY_ERR_DAEMON_NO_FLOW: 'no live flow has that id',
  SY_ERR_DAEMON_STOPPING: 'the daemon is stopping',
  SY_ERR_DAEMON_SERVICE: 'installing or removing the system service failed',
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

/** Windows: a transparent listener's peer that the reflector did not send there (no NAT entry). */
export class NotReflectedError extends SwitchyardError {
  readonly peer: string;
  constructor(peer: string) {
    super('SY_ERR_WIN_NOT_REFLECTED', `transparent listener: peer ${peer} has no NAT entry (not a reflected connection); refused`);
    this.peer = peer;
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

/** DNS forwarder errors (src/dns): upstream failures, timeouts, hook failures, listen errors. */
export class DnsError extends SwitchyardError {
  constructor(code: Extract<ErrorCode, `SY_ERR_DNS${string}`>, message: string, cause?: unknown) {
    super(code, message, { cause });
  }
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

/** Daemon life cycle, reload and service errors (src/daemon). */
export class DaemonError extends SwitchyardError {
  constructor(code: Extract<ErrorCode, `SY_ERR_DAEMON${string}`>, message: string, cause?: unknown) {
    super(code, message, { cause });
  }
}

/** Windows system DNS (NRPT rule) failures. */
export class NrptError extends SwitchyardError {
  constructor(message: string, cause?: unknown) {
    super('SY_ERR_WIN_NRPT', message, { cause });
  }
}
