// Local accounts for caller checks: user names from /etc/passwd, groups from /etc/group, and a
// live process's supplementary groups from /proc/PID/status. Read fresh per connection (small
// files; an admin who adds someone to the group should not have to restart the daemon).
//
// NSS sources other than files (LDAP, sssd) are not consulted: a member listed only there is
// still recognised through the caller's supplementary groups, which the kernel reports in
// /proc/PID/status whatever NSS said at login.
import { readFileSync } from 'node:fs';

export interface AccountFiles {
  passwd: string;
  group: string;
  /** Directory holding PID/status (tests may point elsewhere). */
  proc: string;
}

export const SYSTEM_ACCOUNT_FILES: AccountFiles = { passwd: '/etc/passwd', group: '/etc/group', proc: '/proc' };

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

function readLines(path: string): string[] {
  try {
    return readFileSync(path, 'utf8').split('\n');
  } catch {
    return [];
  }
}

function parseId(s: string | undefined): number | undefined {
  if (s === undefined || !/^\d{1,10}$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 0xffffffff ? n : undefined;
}

export function lookupGroup(name: string, files: AccountFiles = SYSTEM_ACCOUNT_FILES): GroupEntry | undefined {
  for (const line of readLines(files.group)) {
    const f = line.split(':');
    if (f.length < 4 || f[0] !== name) continue;
    const gid = parseId(f[2]);
    if (gid === undefined) continue;
    return { name, gid, members: (f[3] ?? '').split(',').filter((m) => m !== '') };
  }
  return undefined;
}

export function userName(uid: number, files: AccountFiles = SYSTEM_ACCOUNT_FILES): string | undefined {
  for (const line of readLines(files.passwd)) {
    const f = line.split(':');
    if (f.length >= 3 && parseId(f[2]) === uid && f[0]) return f[0];
  }
  return undefined;
}

/** Supplementary groups of a live process; empty if it is gone or unreadable. */
export function processGroups(pid: number, files: AccountFiles = SYSTEM_ACCOUNT_FILES): number[] {
  if (!Number.isSafeInteger(pid) || pid <= 0) return [];
  for (const line of readLines(`${files.proc}/${pid}/status`)) {
    if (!line.startsWith('Groups:')) continue;
    return line
      .slice('Groups:'.length)
      .trim()
      .split(/\s+/)
      .map((s) => parseId(s))
      .filter((n): n is number => n !== undefined);
  }
  return [];
}
