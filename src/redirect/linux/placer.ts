// Decides and performs one placement: the process's executable against the watch rules, then a
// write of its pid into the group's cgroup.procs. Shared by the netlink worker (at exec) and the
// /proc rescan (backstop). A process already anywhere under switchyard's root is left alone: it was
// placed by us or explicitly (`switchyard exec`).
import { readlinkSync, readdirSync, writeFileSync } from 'node:fs';
import { groupFor, type CompiledRule } from './app-match.ts';
import { cgroupOf } from './cgroups.ts';

export interface PlacerConfig {
  /** group → its cgroup.procs file. */
  procs: Record<string, string>;
  /** Our root as /proc/PID/cgroup shows it, e.g. `/switchyard`. */
  rootPath: string;
}

export interface Placement {
  pid: number;
  group: string;
  exe: string;
  /** cgroup it was in before. */
  from: string;
}

export function placeOne(pid: number, rules: CompiledRule[], cfg: PlacerConfig): Placement | null {
  let exe: string;
  try {
    exe = readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return null; // gone, or a kernel thread
  }
  return placeAs(pid, exe, rules, cfg);
}

/**
 * Places `pid` as if it ran `exe` — the fanotify worker's case: at an exec permission event the
 * process still runs its old image (/proc/PID/exe is the caller's), and the event names the new one.
 */
export function placeAs(pid: number, exe: string, rules: CompiledRule[], cfg: PlacerConfig): Placement | null {
  const group = groupFor(rules, exe);
  if (group === null) return null;
  const procs = cfg.procs[group];
  if (procs === undefined) return null;
  const from = cgroupOf(pid);
  if (from === null || from === cfg.rootPath || from.startsWith(cfg.rootPath + '/')) return null;
  try {
    writeFileSync(procs, `${pid}\n`);
  } catch {
    return null; // exited meanwhile
  }
  return { pid, group, exe, from };
}

/** Every process now running, checked once. */
export function rescanAll(rules: CompiledRule[], cfg: PlacerConfig, self = process.pid): Placement[] {
  const out: Placement[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === self) continue;
    const p = placeOne(pid, rules, cfg);
    if (p) out.push(p);
  }
  return out;
}
