// Caller identity on the Windows named pipe.
//
// Why not per connection: the control server is Node's pipe server (libuv), and Node gives no access
// to an accepted pipe's HANDLE (`socket._handle.fd` is -1 on Windows; libuv's handle is not exposed),
// so GetNamedPipeClientProcessId cannot be called on a connection. What the connection does prove is
// that the pipe's security descriptor let the client open it for writing. libuv creates every pipe
// instance with CreateNamedPipeW(..., lpSecurityAttributes = NULL), i.e. the DEFAULT descriptor,
// which grants full control to LocalSystem, Administrators (an elevated token: UAC leaves the group
// deny-only in a filtered one) and the creator owner, and only READ to Everyone and Anonymous. A
// client without write access cannot send a request (libuv's client falls back to a read-only open),
// so every caller that can speak is LocalSystem, an elevated Administrator, or the daemon's own
// account — all of them privileged by the rules of docs/control.md. That is what windowsPipeCaller
// returns. Consequence: on Windows there is no read-only class yet — ordinary users cannot reach the
// daemon at all (`[control] read_users` has no effect; the daemon says so).
//
// The per-connection path, for when read-only users are wanted: the token facts of a client PID
// (advapi32 processTokenFacts: TokenUser / TokenGroups / TokenElevation) classified by
// classifyWindowsToken below. Its PID must come from a pipe instance switchyard creates itself
// (kernel32 createPipeInstance + connectPipe + pipeClientPid, all checked under Wine), e.g. a second
// "proof" pipe the client connects to with a nonce the server sent on the main connection. Not wired.
import type { Caller } from './auth.ts';
import type { RunMode } from '../paths.ts';
import type { TokenFacts } from '../sys/windows/advapi32.ts';

export const SID_LOCAL_SYSTEM = 'S-1-5-18';
export const SID_ADMINISTRATORS = 'S-1-5-32-544';
const SE_GROUP_ENABLED = 0x4;
const SE_GROUP_USE_FOR_DENY_ONLY = 0x10;

/** Every caller the default pipe DACL lets write: privileged (see the file comment). */
export function windowsPipeCaller(mode: RunMode): Caller {
  return {
    uid: 0,
    gid: 0,
    pid: 0,
    user: undefined,
    groups: [],
    privileged: true,
    mayRead: true,
    reason:
      mode === 'user'
        ? 'admitted for writing by the pipe\'s default DACL: the daemon\'s user, an elevated Administrator or LocalSystem'
        : 'admitted for writing by the pipe\'s default DACL: an elevated Administrator or LocalSystem',
  };
}

/**
 * Permission class from a client's token: LocalSystem, an elevated token holding an enabled
 * Administrators group, or (user mode) the daemon's own user are privileged; any other local user
 * may read when `readUsers` is empty or lists its SID or `*`.
 */
export function classifyWindowsToken(
  t: TokenFacts,
  pid: number,
  policy: { mode: RunMode; daemonSid: string; readUsers: readonly string[] },
): Caller {
  const admin = t.groups.some(
    (g) => g.sid === SID_ADMINISTRATORS && (g.attributes & SE_GROUP_ENABLED) !== 0 && (g.attributes & SE_GROUP_USE_FOR_DENY_ONLY) === 0,
  );
  let privileged = false;
  let reason = 'not LocalSystem, not an elevated Administrator, not the daemon user';
  if (t.sid === SID_LOCAL_SYSTEM) {
    privileged = true;
    reason = 'LocalSystem';
  } else if (t.elevated && admin) {
    privileged = true;
    reason = 'elevated member of Administrators';
  } else if (policy.mode === 'user' && t.sid === policy.daemonSid) {
    privileged = true;
    reason = 'the daemon user';
  } else if (admin && !t.elevated) {
    reason = 'member of Administrators, but not elevated';
  }
  const mayRead = privileged || policy.readUsers.length === 0 || policy.readUsers.includes('*') || policy.readUsers.includes(t.sid);
  return { uid: 0, gid: 0, pid, user: t.sid, groups: [], privileged, mayRead, reason };
}
