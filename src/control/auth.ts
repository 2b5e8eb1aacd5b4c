// Who may call what. The peer's uid/gid/pid come from the kernel (SO_PEERCRED), never from the
// message. A caller is *privileged* (may use state-changing methods and see every user's
// flows) when it is root, the daemon's own uid in user mode, or a member of the control group
// (primary gid, supplementary groups of the calling process, or listed in /etc/group).
// Read-only methods are open to whoever can open the socket, unless `readUsers` narrows them.
import type { RunMode } from '../paths.ts';
import { type AccountFiles, SYSTEM_ACCOUNT_FILES, lookupGroup, processGroups, userName } from './accounts.ts';

export interface PeerIdentity {
  uid: number;
  gid: number;
  pid: number;
}

export interface Caller extends PeerIdentity {
  /** Account name when /etc/passwd knows the uid. */
  user: string | undefined;
  /** Supplementary groups of the calling process at connect time (plus the primary gid). */
  groups: number[];
  /** May use state-changing methods and see all users' entries of private methods. */
  privileged: boolean;
  /** May use read-only methods. */
  mayRead: boolean;
  /** Why `privileged` is what it is, for logs at debug and for error messages. */
  reason: string;
  /** Windows: the caller's user SID (uid/gid are then -1: there is no Unix id to match). */
  sid?: string;
}

export interface AccessPolicy {
  mode: RunMode;
  /** The daemon's uid (user mode: that user is privileged on its own daemon). */
  daemonUid: number;
  /** Control group name (`[control] group`, default `switchyard`). */
  group: string;
  /** `[control] read_users`: empty = anyone who can open the socket; `*` = any local user. */
  readUsers: readonly string[];
  files?: AccountFiles;
}

export function classifyCaller(id: PeerIdentity, policy: AccessPolicy): Caller {
  const files = policy.files ?? SYSTEM_ACCOUNT_FILES;
  const user = userName(id.uid, files);
  const groups = [...new Set([id.gid, ...processGroups(id.pid, files)])];
  let privileged = false;
  let reason = 'not root, not the daemon user, not in the control group';
  if (id.uid === 0) {
    privileged = true;
    reason = 'root';
  } else if (policy.mode === 'user' && id.uid === policy.daemonUid) {
    privileged = true;
    reason = 'the daemon user';
  } else {
    const g = lookupGroup(policy.group, files);
    if (g !== undefined && (groups.includes(g.gid) || (user !== undefined && g.members.includes(user)))) {
      privileged = true;
      reason = `member of group ${policy.group}`;
    }
  }
  const mayRead =
    privileged ||
    policy.readUsers.length === 0 ||
    policy.readUsers.includes('*') ||
    (user !== undefined && policy.readUsers.includes(user)) ||
    policy.readUsers.includes(String(id.uid));
  return { ...id, user, groups, privileged, mayRead, reason };
}
