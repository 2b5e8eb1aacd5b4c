// Who is calling on the Windows control pipe, and what the pipe lets in (docs/control.md "Windows").
//
// The daemon serves the pipe itself (src/sys/windows/pipe-host.ts + pipe-worker.ts: its own instances,
// served by one worker thread with synchronous calls in non-blocking pipe mode) instead of through
// node:net, because only then does it hold each connection's HANDLE. Per connection, in the worker:
//   - the client's PID: GetNamedPipeClientProcessId (logged; never used to decide anything, since a
//     PID can be reused once its process exits);
//   - the client's token: ImpersonateNamedPipeClient after the first bytes arrive, OpenThreadToken,
//     RevertToSelf — the token the pipe captured for THIS connection, so no PID race and no relay:
//     nothing the client says is trusted, and a token cannot be handed to another connection;
//   - then on the main thread, its class from those token facts (classifyWindowsToken): LocalSystem, an elevated token with an
//     enabled Administrators group, an enabled member of the control group, or (user mode) the daemon's
//     own user → privileged; others read only when `read_users` allows; anything unreadable → refused.
// And for everyone, before any of that: the pipe's DACL (pipeSddl) decides who can open it at all,
// and PIPE_REJECT_REMOTE_CLIENTS plus a deny ACE for NETWORK keep remote callers out.
import type { Caller } from './auth.ts';
import type { RunMode } from '../paths.ts';
import type { TokenFacts } from '../sys/windows/advapi32.ts';
import type { ControlConnection, PipeListen } from './server.ts';
import type { Logger } from '../log.ts';
import { ControlError, OsCallError } from '../errors.ts';

export const SID_LOCAL_SYSTEM = 'S-1-5-18';
export const SID_ADMINISTRATORS = 'S-1-5-32-544';
export const SID_AUTHENTICATED_USERS = 'S-1-5-11';
export const SID_NETWORK = 'S-1-5-2';
const SE_GROUP_ENABLED = 0x4;
const SE_GROUP_USE_FOR_DENY_ONLY = 0x10;

/**
 * Access granted to callers who may connect without being able to manage the pipe: FILE_GENERIC_READ
 * (0x120089) | FILE_WRITE_DATA (0x2) | FILE_WRITE_ATTRIBUTES (0x100). Deliberately NOT GENERIC_WRITE:
 * that includes FILE_APPEND_DATA, which on a pipe is FILE_CREATE_PIPE_INSTANCE — the right to add a
 * server instance of our name and so answer our clients.
 */
export const PIPE_CLIENT_ACCESS = 0x12018b;

export interface WindowsPolicy {
  mode: RunMode;
  /** The daemon's own user SID (user mode: privileged on its own daemon). */
  daemonSid: string;
  /** SID of `[control] group` when that local group exists. */
  groupSid?: string | undefined;
  /** `[control] read_users` resolved to SIDs (`*` kept). Empty: anyone the DACL lets in may read. */
  readUsers: readonly string[];
}

function enabled(t: TokenFacts, sid: string): boolean {
  return t.groups.some((g) => g.sid === sid && (g.attributes & SE_GROUP_ENABLED) !== 0 && (g.attributes & SE_GROUP_USE_FOR_DENY_ONLY) === 0);
}

/**
 * Permission class from a client's token. Privileged: LocalSystem; an elevated token holding an
 * enabled Administrators group; a token holding the control group enabled; (user mode) the daemon's
 * own user. Any other user may read when `readUsers` is empty or lists its SID or `*`.
 */
export function classifyWindowsToken(t: TokenFacts, pid: number, policy: WindowsPolicy): Caller {
  const admin = enabled(t, SID_ADMINISTRATORS);
  let privileged = false;
  let reason = 'not LocalSystem, not an elevated Administrator, not in the control group, not the daemon user';
  if (t.sid === SID_LOCAL_SYSTEM) {
    privileged = true;
    reason = 'LocalSystem';
  } else if (t.elevated && admin) {
    privileged = true;
    reason = 'elevated member of Administrators';
  } else if (policy.groupSid !== undefined && enabled(t, policy.groupSid)) {
    privileged = true;
    reason = 'member of the control group';
  } else if (policy.mode === 'user' && t.sid === policy.daemonSid) {
    privileged = true;
    reason = 'the daemon user';
  } else if (t.groups.some((g) => g.sid === SID_ADMINISTRATORS)) {
    reason = 'member of Administrators, but not elevated';
  }
  const mayRead = privileged || policy.readUsers.length === 0 || policy.readUsers.includes('*') || policy.readUsers.includes(t.sid);
  return { uid: -1, gid: -1, pid, user: t.sid, sid: t.sid, groups: [], privileged, mayRead, reason };
}

const SID_RE = /^S-1-\d+(-\d+){1,15}$/;

/**
 * The pipe's security descriptor (SDDL), mirroring the Unix socket's modes (docs/control.md):
 * protected DACL; NETWORK denied everything (first: deny ACEs win); LocalSystem and Administrators full
 * control (a UAC-filtered admin token holds Administrators deny-only, so only elevated ones match);
 * user mode: the daemon's user full control, nobody else; service mode: the control group and, when
 * `read_users` is set, Authenticated Users may connect with PIPE_CLIENT_ACCESS (the server then
 * checks each call). Nobody but SY/BA/the owner gets FILE_CREATE_PIPE_INSTANCE.
 */
export function pipeSddl(policy: WindowsPolicy): string {
  const ace = (allow: boolean, mask: string, sid: string) => {
    if (!SID_RE.test(sid)) throw new ControlError('SY_ERR_CONTROL_ENDPOINT', `not a SID: ${sid.slice(0, 80)}`);
    return `(${allow ? 'A' : 'D'};;${mask};;;${sid})`;
  };
  const client = `0x${PIPE_CLIENT_ACCESS.toString(16)}`;
  const aces = [ace(false, 'GA', SID_NETWORK), ace(true, 'GA', SID_LOCAL_SYSTEM), ace(true, 'GA', SID_ADMINISTRATORS)];
  if (policy.mode === 'user') aces.push(ace(true, 'GA', policy.daemonSid));
  else {
    if (policy.groupSid !== undefined) aces.push(ace(true, client, policy.groupSid));
    if (policy.readUsers.length > 0) aces.push(ace(true, client, SID_AUTHENTICATED_USERS));
  }
  return `D:P${aces.join('')}`;
}

/** `read_users` entries (names, SIDs, `*`) → SIDs; a name that does not resolve is dropped and reported. */
export function resolveReadUsers(entries: readonly string[], lookup: (name: string) => string | undefined): { sids: string[]; unknown: string[] } {
  const sids: string[] = [];
  const unknown: string[] = [];
  for (const e of entries) {
    if (e === '*' || SID_RE.test(e)) sids.push(e);
    else {
      const sid = lookup(e);
      if (sid === undefined) unknown.push(e);
      else sids.push(sid);
    }
  }
  // Nothing resolved from a non-empty list must not widen "only these users" to "everyone".
  if (entries.length > 0 && sids.length === 0) sids.push('S-1-0-0' /* Nobody: matches no token */);
  return { sids, unknown };
}

export interface WindowsPipeSettings {
  mode: RunMode;
  /** `[control] group` (a local group name). */
  group: string;
  /** `[control] read_users`. */
  readUsers: readonly string[];
  /** A connection must send its first bytes within this time, or it is closed unidentified. */
  identifyTimeoutMs?: number;
  /** Connections not yet identified, at most (beyond: closed at once). */
  maxUnidentified?: number;
  /** Pipe instances kept waiting for clients. */
  listeners?: number;
  /** Tests under Wine (one user only): replaces the token facts read from the pipe. */
  tokenOverride?: (facts: TokenFacts, pid: number) => TokenFacts;
}

/** What a listener resolved at start, for the log and the tests. */
export interface WindowsPipeState {
  policy: WindowsPolicy;
  sddl: string;
  unknownReadUsers: string[];
}

/**
 * The ControlServer's `listenPipe` for Windows (see the file comment). Loads the Windows bindings
 * only when called, so importing this module stays harmless on Linux.
 */
export function windowsPipeListener(settings: WindowsPipeSettings, onState?: (s: WindowsPipeState) => void): PipeListen {
  return async (endpoint, accept, log) => {
    const host = await import('../sys/windows/pipe-host.ts');
    const adv = await import('../sys/windows/advapi32.ts');
    const daemonSid = adv.currentUserSid();
    const groupSid = settings.mode === 'service' ? adv.accountSid(settings.group, 'group') : undefined;
    const { sids, unknown } = resolveReadUsers(settings.mode === 'service' ? settings.readUsers : [], (n) => adv.accountSid(n));
    if (unknown.length > 0) log?.warn({ unknown }, '[control] read_users names no local account; ignored');
    if (settings.mode === 'user' && settings.readUsers.length > 0) log?.warn('[control] read_users has no effect in user mode: only the daemon user can open its pipe');
    const policy: WindowsPolicy = { mode: settings.mode, daemonSid, groupSid, readUsers: sids };
    const sddl = pipeSddl(policy);
    onState?.({ policy, sddl, unknownReadUsers: unknown });

    const server = new host.PipeServer({
      name: endpoint,
      sddl,
      ...(settings.listeners !== undefined ? { listeners: settings.listeners } : {}),
      identifyTimeoutMs: settings.identifyTimeoutMs ?? 10_000,
      maxUnidentified: settings.maxUnidentified ?? 128,
      onWarning: (err) => log?.warn({ err }, 'control pipe error'),
      onDropped: (pid, reason) => log?.info({ pid, reason }, 'control client closed before it was identified'),
      // The worker serving every instance died: it is restarted with a backoff; past too many deaths
      // the daemon runs without a control pipe (stop it with Ctrl+C / the service manager).
      onRestart: (err, deaths, delayMs) => log?.warn({ err, deaths, delayMs }, 'control pipe worker died; restarting it'),
      onFailed: (err, deaths) => log?.error({ err, deaths, endpoint }, 'control pipe worker died too often; no control pipe until the daemon restarts'),
      onConnection: (stream, pid, facts) => {
        let caller: Caller | Error;
        if (facts instanceof Error) {
          // Fail closed: no token, no class — the server answers SY_ERR_CONTROL_IDENTITY and closes.
          caller = new ControlError('SY_ERR_CONTROL_IDENTITY', `cannot identify the caller (pid ${pid}): ${facts.message}`, facts);
        } else {
          try {
            caller = classifyWindowsToken(settings.tokenOverride ? settings.tokenOverride(facts, pid) : facts, pid, policy);
          } catch (err) {
            caller = new ControlError('SY_ERR_CONTROL_IDENTITY', `cannot classify the caller (pid ${pid}): ${(err as Error).message}`, err);
          }
        }
        accept(stream as unknown as ControlConnection, caller);
      },
    });
    try {
      await server.listen();
    } catch (err) {
      if (err instanceof OsCallError && /already exists/.test(err.message)) {
        throw new ControlError('SY_ERR_CONTROL_IN_USE', `${endpoint} already exists: another daemon, or another program holding the name; refusing to share it`, err);
      }
      throw new ControlError('SY_ERR_CONTROL_ENDPOINT', `cannot create ${endpoint}: ${(err as Error).message}`, err);
    }
    log?.debug({ endpoint, sddl, pid: process.pid }, 'control pipe listening');
    return { close: () => server.close() };
  };
}
