// Alerts of the policy store: what it raises, and the wording of each kind. An alert lives in the
// protected state (src/store/store.ts), so raising or reviewing one is part of the same state
// write as the change that caused it; these helpers only edit the state copy being committed.
//
// Kinds:
//   tamper           a revision or state.json failed its integrity check (fallback taken)
//   high-risk        a candidate classified high-risk (src/store/risk.ts)
//   non-interactive  a candidate made by a watcher or script rather than a person
//   apply-failed     an activation failed and was rolled back
//   audit            the audit log failed verification on open
import type { Provenance } from './store.ts';

export type AlertKind = 'tamper' | 'high-risk' | 'non-interactive' | 'apply-failed' | 'audit';

export interface Alert {
  id: number;
  kind: AlertKind;
  message: string;
  revision?: number;
  time: string;
  reviewed: boolean;
  reviewedBy?: string;
}

/** The part of the store's state that holds alerts. */
export interface AlertState {
  alerts: Alert[];
  nextAlert: number;
}

/** Adds an unreviewed alert to `st` and returns it. */
export function raiseAlert(st: AlertState, kind: AlertKind, message: string, time: string, revision?: number): Alert {
  const a: Alert = { id: st.nextAlert++, kind, message, time, reviewed: false };
  if (revision !== undefined) a.revision = revision;
  st.alerts.push(a);
  return a;
}

/** Unreviewed alerts, or all with `all`. */
export function listAlerts(st: AlertState, opts: { all?: boolean } = {}): Alert[] {
  return st.alerts.filter((a) => opts.all || !a.reviewed);
}

export function findAlert(st: AlertState, id: number): Alert | undefined {
  return st.alerts.find((x) => x.id === id);
}

/** Is the same alert already raised and not reviewed? (The audit check on open runs every start.) */
export function isOpen(st: AlertState, kind: AlertKind, message: string): boolean {
  return st.alerts.some((a) => a.kind === kind && !a.reviewed && a.message === message);
}

export function markReviewed(st: AlertState, id: number, user: string): void {
  const x = findAlert(st, id)!;
  x.reviewed = true;
  x.reviewedBy = user;
}

/** The message of each alert the store raises. */
export const alertText = {
  revisionTampered: (n: number, problem: string, fallback: number | null) =>
    `revision #${n} failed its integrity check (${problem}); ${fallback !== null ? `fell back to last-known-good #${fallback}` : 'no trusted revision left'}`,
  stateTampered: (problem: string, used: string, auditEvents: number) => `${problem}; using ${used}; the audit log was re-anchored at event ${auditEvents}`,
  highRisk: (n: number, reasons: string[]) => `revision #${n} is high-risk: ${reasons.join('; ')}`,
  nonInteractive: (n: number, p: Provenance) => `revision #${n} came from ${p.channel}${p.source ? ` (${p.source})` : ''} without a person asking`,
  applyFailed: (n: number, step: string, message: string, restored: boolean) =>
    `activating revision #${n} failed at ${step}: ${message}${restored ? '' : ' (restoring the previous state ALSO failed)'}`,
  auditFailed: (problems: string[]) => `audit log failed verification: ${problems.join('; ')}`,
};
