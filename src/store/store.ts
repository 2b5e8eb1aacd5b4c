// The policy store: immutable numbered revisions, the HMAC-protected state that says which one
// is active, and the audit log anchored in that state. docs/store.md describes the model.
//
// On disk (under <stateDir>/store, 0700):
//   revisions/<n>.json   {"mac":…,"revision":{n,hash,parent,provenance,risk,config,createdAt}}
//   state.json           {"mac":…,"state":{active,lastKnownGood,revisions:{n:{state,hash,…}},alerts,audit:{count,head,tail}}}
//   state.prev.json      the state before the last commit (fallback if state.json fails its MAC)
//   audit.ndjson         the audit log
//
// THE COMMIT POINT is the rename of state.json. Every change (new revision, activation,
// rejection, alert) is one state write; its audit events are written into the state (`tail`)
// first and appended to audit.ndjson after, so a crash between the two is repaired on open by
// appending the tail — the state and the log never disagree after recovery.
import { linkSync, mkdirSync, openSync, closeSync, writeSync, fsyncSync, readFileSync, unlinkSync, ftruncateSync, statSync, constants } from 'node:fs';
import { join } from 'node:path';
import { StoreError, isSwitchyardError } from '../errors.ts';
import { contentHash, sha256Hex } from './canonical.ts';
import { type FailPoint, writeFileAtomic, fsyncDir } from './atomic.ts';
import { seal, unseal } from './sealed.ts';
import type { HmacKey } from './key.ts';
import {
  type Actor,
  type AuditAnchor,
  type AuditEvent,
  type AuditInput,
  type AuditVerification,
  GENESIS_HASH,
  eventLine,
  makeEvent,
  readAuditText,
  verifyAuditText,
} from './audit.ts';
import type { RiskAssessment } from './risk.ts';
import { type Alert, type AlertKind, type AlertState, alertText, findAlert, isOpen, listAlerts, markReviewed, raiseAlert } from './alerts.ts';

export type { Alert, AlertKind } from './alerts.ts';

export type RevisionState = 'pending' | 'active' | 'last-known-good' | 'rejected' | 'superseded';
export type Channel = 'cli' | 'file' | 'import' | 'linked';

export interface Provenance {
  channel: Channel;
  /** Path of the config file or imported list; null when typed at the CLI. */
  source: string | null;
  /** sha256 of the source bytes as read. */
  sourceSha256: string | null;
  user: string;
  uid: number | null;
  /** ISO time the candidate was made. */
  time: string;
  /** A person asked for it at a terminal (`switchyard reload`), as opposed to a watcher or script. */
  interactive: boolean;
  note?: string;
}

/** Immutable once written. */
export interface Revision {
  n: number;
  /** sha256 of the canonical config: the content hash. */
  hash: string;
  /** The active revision when this one was made (what its diff/risk is against). */
  parent: number | null;
  provenance: Provenance;
  risk: RiskAssessment | null;
  config: unknown;
  createdAt: string;
}

export interface RevisionEntry {
  state: RevisionState;
  hash: string;
  reason?: string;
  changedAt: string;
}

interface StateBody extends AlertState {
  format: 1;
  /** Commit counter. */
  seq: number;
  nextRevision: number;
  active: number | null;
  lastKnownGood: number | null;
  revisions: Record<string, RevisionEntry>;
  audit: { count: number; head: string; tail: AuditEvent[] };
}

const MAC_STATE = 'switchyard/state/v1';
const MAC_REVISION = 'switchyard/revision/v1';
/** A revision file larger than this is refused unread (configs are limited to 1 MiB as TOML). */
const MAX_REVISION_FILE = 16 * 1024 * 1024;

export interface StoreOptions {
  key: HmacKey;
  /** Clock, for tests. */
  now?: () => Date;
  /** Called at named points; tests throw or SIGKILL there. */
  failPoint?: FailPoint;
}

export interface OpenReport {
  /** Alerts raised while opening (tamper, audit). */
  raised: Alert[];
  /** Audit events replayed from the state into the log after a crash. */
  repairedAuditEvents: number;
}

function freshState(): StateBody {
  return {
    format: 1,
    seq: 0,
    nextRevision: 1,
    active: null,
    lastKnownGood: null,
    revisions: {},
    alerts: [],
    nextAlert: 1,
    audit: { count: 0, head: GENESIS_HASH, tail: [] },
  };
}

export class PolicyStore {
  readonly dir: string;
  readonly #key: HmacKey;
  readonly #now: () => Date;
  readonly #fail: FailPoint;
  #state: StateBody = freshState();
  openReport: OpenReport = { raised: [], repairedAuditEvents: 0 };

  private constructor(dir: string, opts: StoreOptions) {
    this.dir = dir;
    this.#key = opts.key;
    this.#now = opts.now ?? (() => new Date());
    this.#fail = opts.failPoint ?? (() => {});
  }

  get statePath(): string {
    return join(this.dir, 'state.json');
  }
  get auditPath(): string {
    return join(this.dir, 'audit.ndjson');
  }
  revisionPath(n: number): string {
    return join(this.dir, 'revisions', `${n}.json`);
  }

  /** Opens (or creates) the store in `<stateDir>/store`, verifying and repairing as described above. */
  static open(stateDir: string, opts: StoreOptions): PolicyStore {
    const dir = join(stateDir, 'store');
    mkdirSync(join(dir, 'revisions'), { recursive: true, mode: 0o700 });
    const s = new PolicyStore(dir, opts);
    s.#load();
    return s;
  }

  // ------------------------------------------------------------------ reading

  get active(): number | null {
    return this.#state.active;
  }
  get lastKnownGood(): number | null {
    return this.#state.lastKnownGood;
  }
  entry(n: number): RevisionEntry | undefined {
    return this.#state.revisions[String(n)];
  }
  list(): ({ n: number } & RevisionEntry)[] {
    return Object.entries(this.#state.revisions)
      .map(([n, e]) => ({ n: Number(n), ...e }))
      .sort((a, b) => a.n - b.n);
  }
  alerts(opts: { all?: boolean } = {}): Alert[] {
    return listAlerts(this.#state, opts);
  }
  get auditAnchor(): AuditAnchor {
    return { count: this.#state.audit.count, head: this.#state.audit.head };
  }

  /** Reads a revision and checks its HMAC, its content hash and the hash the state recorded. */
  get(n: number): Revision {
    const entry = this.entry(n);
    if (entry === undefined) throw new StoreError('SY_ERR_STORE_NOT_FOUND', `no revision #${n}`);
    const path = this.revisionPath(n);
    let text: string;
    try {
      if (statSync(path).size > MAX_REVISION_FILE) throw new StoreError('SY_ERR_STORE_TAMPERED', `revision #${n}: file too large`);
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if (isSwitchyardError(err)) throw err;
      throw new StoreError('SY_ERR_STORE_TAMPERED', `revision #${n}: cannot read ${path}: ${(err as Error).message}`, err);
    }
    const sealed = unseal<Revision>(text, this.#key, MAC_REVISION, 'revision');
    if ('problem' in sealed) throw new StoreError('SY_ERR_STORE_TAMPERED', `revision #${n}: ${sealed.problem === 'not JSON' ? 'file is not JSON' : sealed.problem}`);
    const rev = sealed.value;
    if (rev.n !== n) throw new StoreError('SY_ERR_STORE_TAMPERED', `revision #${n}: file holds revision #${String(rev.n)}`);
    if (contentHash(rev.config) !== rev.hash || rev.hash !== entry.hash) {
      throw new StoreError('SY_ERR_STORE_TAMPERED', `revision #${n}: content hash mismatch`);
    }
    return rev;
  }

  /**
   * The active revision, verified. If it fails verification it is rejected, a tamper alert is
   * raised and audited, and last-known-good becomes active (if it verifies; else none: the
   * daemon then fails closed). Returns what is active afterwards.
   */
  resolveActive(): { revision: Revision | null; fellBackFrom: number | null } {
    const n = this.#state.active;
    if (n === null) return { revision: null, fellBackFrom: null };
    try {
      return { revision: this.get(n), fellBackFrom: null };
    } catch (err) {
      if (!isSwitchyardError(err) || err.code !== 'SY_ERR_STORE_TAMPERED') throw err;
      const lkg = this.#state.lastKnownGood;
      let fallback: Revision | null = null;
      let lkgProblem: string | null = null;
      if (lkg !== null) {
        try {
          fallback = this.get(lkg);
        } catch (e2) {
          lkgProblem = (e2 as Error).message;
        }
      }
      this.#commit(
        (st, at) => {
          st.revisions[String(n)] = { ...st.revisions[String(n)]!, state: 'rejected', reason: `integrity check failed: ${err.message}`, changedAt: at };
          this.#alert(st, 'tamper', alertText.revisionTampered(n, err.message, fallback ? fallback.n : null), n);
          if (lkg !== null && fallback === null) {
            st.revisions[String(lkg)] = { ...st.revisions[String(lkg)]!, state: 'rejected', reason: `integrity check failed: ${lkgProblem}`, changedAt: at };
          }
          st.active = fallback ? fallback.n : null;
          st.lastKnownGood = null;
          if (fallback) st.revisions[String(fallback.n)] = { ...st.revisions[String(fallback.n)]!, state: 'active', changedAt: at };
        },
        [
          { type: 'revision.tampered', revision: n, detail: { problem: err.message } },
          ...(lkgProblem !== null ? [{ type: 'revision.tampered', revision: lkg!, detail: { problem: lkgProblem } }] : []),
          { type: 'revision.fallback', ...(fallback ? { revision: fallback.n } : {}), detail: { from: n, to: fallback ? fallback.n : null } },
        ],
      );
      return { revision: fallback, fellBackFrom: n };
    }
  }

  // ------------------------------------------------------------------ changing

  /**
   * Makes a pending candidate. High-risk and non-interactive candidates raise an alert that stays
   * until reviewed.
   */
  create(config: unknown, provenance: Provenance, risk: RiskAssessment | null = null): Revision {
    const n = this.#state.nextRevision;
    const rev: Revision = {
      n,
      hash: contentHash(config),
      parent: this.#state.active,
      provenance,
      risk,
      config,
      createdAt: this.#iso(),
    };
    // The revision file first: until the state names it, it is an orphan that the next create overwrites.
    writeFileAtomic(this.revisionPath(n), seal(this.#key, MAC_REVISION, 'revision', rev), {
      failPoint: this.#fail,
      label: 'revision',
    });
    this.#commit(
      (st, at) => {
        st.nextRevision = n + 1;
        st.revisions[String(n)] = { state: 'pending', hash: rev.hash, changedAt: at };
        if (risk?.level === 'high') this.#alert(st, 'high-risk', alertText.highRisk(n, risk.reasons), n);
        if (!provenance.interactive) this.#alert(st, 'non-interactive', alertText.nonInteractive(n, provenance), n);
      },
      [
        {
          type: 'revision.created',
          revision: n,
          actor: { user: provenance.user, uid: provenance.uid },
          detail: {
            hash: rev.hash,
            channel: provenance.channel,
            source: provenance.source,
            sourceSha256: provenance.sourceSha256,
            risk: risk?.level ?? null,
          },
        },
      ],
    );
    return rev;
  }

  /**
   * THE COMMIT POINT of an activation: one state write makes `n` active. The previous active
   * becomes last-known-good (or superseded for a rollback, whose source stays last-known-good).
   */
  commitActivation(n: number, actor: Actor, opts: { rollback?: boolean } = {}): void {
    this.#expect(n, ['pending']);
    const prev = this.#state.active;
    this.#commit(
      (st, at) => {
        const set = (k: number, state: RevisionState, reason?: string) => {
          st.revisions[String(k)] = { ...st.revisions[String(k)]!, state, changedAt: at, ...(reason ? { reason } : {}) };
        };
        if (prev !== null) {
          if (opts.rollback) set(prev, 'superseded', `rolled back by revision #${n}`);
          else {
            if (st.lastKnownGood !== null && st.lastKnownGood !== prev) set(st.lastKnownGood, 'superseded', `replaced by #${prev}`);
            set(prev, 'last-known-good');
            st.lastKnownGood = prev;
          }
        }
        set(n, 'active');
        st.active = n;
      },
      [{ type: opts.rollback ? 'revision.rolled-back' : 'revision.activated', revision: n, actor, detail: { previous: prev } }],
    );
  }

  reject(n: number, actor: Actor, reason: string): void {
    this.#expect(n, ['pending']);
    this.#commit(
      (st, at) => {
        st.revisions[String(n)] = { ...st.revisions[String(n)]!, state: 'rejected', reason, changedAt: at };
      },
      [{ type: 'revision.rejected', revision: n, actor, detail: { reason } }],
    );
  }

  /** A failed activation: the candidate is rejected with the step that failed, and an alert is raised. */
  recordApplyFailure(n: number, actor: Actor, step: string, message: string, restored: boolean): void {
    this.#commit(
      (st, at) => {
        const e = st.revisions[String(n)];
        if (e && e.state === 'pending') st.revisions[String(n)] = { ...e, state: 'rejected', reason: `apply failed at ${step}: ${message}`, changedAt: at };
        this.#alert(st, 'apply-failed', alertText.applyFailed(n, step, message, restored), n);
      },
      [{ type: 'revision.apply-failed', revision: n, actor, detail: { step, message, restored } }],
    );
  }

  /** A new pending revision holding last-known-good's config; activate it with `{ rollback: true }`. */
  rollbackCandidate(actor: Actor): Revision {
    const lkg = this.#state.lastKnownGood;
    if (lkg === null) throw new StoreError('SY_ERR_STORE_STATE', 'there is no last-known-good revision to roll back to');
    const src = this.get(lkg);
    return this.create(src.config, {
      channel: 'cli',
      source: `revision #${lkg}`,
      sourceSha256: src.hash,
      user: actor.user,
      uid: actor.uid,
      time: this.#iso(),
      interactive: true,
      note: 'rollback',
    });
  }

  reviewAlert(id: number, actor: Actor): void {
    const a = findAlert(this.#state, id);
    if (a === undefined) throw new StoreError('SY_ERR_STORE_NOT_FOUND', `no alert #${id}`);
    if (a.reviewed) return;
    this.#commit(
      (st) => markReviewed(st, id, actor.user),
      [{ type: 'alert.reviewed', actor, detail: { alert: id, kind: a.kind } }],
    );
  }

  /** Appends a free-standing audit event (e.g. `enforce.off`, `cache.flush`). */
  audit(input: AuditInput): AuditEvent {
    this.#commit(() => {}, [input]);
    return this.#state.audit.tail[this.#state.audit.tail.length - 1]!;
  }

  /** Verifies the audit log against the anchor in the protected state. */
  verifyAudit(): AuditVerification {
    return verifyAuditText(readAuditText(this.auditPath), this.auditAnchor);
  }

  // ------------------------------------------------------------------ internals

  #iso(): string {
    return this.#now().toISOString();
  }

  #expect(n: number, states: RevisionState[]): void {
    const e = this.entry(n);
    if (e === undefined) throw new StoreError('SY_ERR_STORE_NOT_FOUND', `no revision #${n}`);
    if (!states.includes(e.state)) throw new StoreError('SY_ERR_STORE_STATE', `revision #${n} is ${e.state}, not ${states.join(' or ')}`);
  }

  /** Raises an alert in the state being committed; it is reported in openReport.raised too. */
  #alert(st: StateBody, kind: AlertKind, message: string, revision?: number): Alert {
    const a = raiseAlert(st, kind, message, this.#iso(), revision);
    this.openReport.raised.push(a);
    return a;
  }

  /** One state change + its audit events: state write (commit point), then log append. */
  #commit(mutate: (st: StateBody, at: string) => void, events: AuditInput[]): void {
    const st = structuredClone(this.#state);
    const at = this.#iso();
    mutate(st, at);
    st.seq++;
    const tail: AuditEvent[] = [];
    let anchor: AuditAnchor = { count: st.audit.count, head: st.audit.head };
    for (const input of events) {
      const e = makeEvent(anchor, input, at);
      tail.push(e);
      anchor = { count: e.seq, head: e.hash };
    }
    st.audit = { count: anchor.count, head: anchor.head, tail: events.length > 0 ? tail : st.audit.tail };
    this.#writeState(st);
    this.#state = st;
    if (tail.length > 0) {
      this.#fail('audit:before-append');
      this.#appendAudit(tail.map(eventLine).join(''));
    }
  }

  #writeState(st: StateBody): void {
    const body = seal(this.#key, MAC_STATE, 'state', st);
    // Keep the current state as state.prev.json (hard link: no window without a state.json).
    const prev = join(this.dir, 'state.prev.json');
    try {
      unlinkSync(prev);
    } catch {
      /* none yet */
    }
    try {
      linkSync(this.statePath, prev);
    } catch {
      /* first commit */
    }
    writeFileAtomic(this.statePath, body, { failPoint: this.#fail, label: 'state' });
  }

  #appendAudit(text: string): void {
    let fd: number | undefined;
    try {
      fd = openSync(this.auditPath, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600);
      const buf = Buffer.from(text, 'utf8');
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } catch (err) {
      // The state already holds these events; the next open replays them.
      throw new StoreError('SY_ERR_STORE_IO', `cannot append to ${this.auditPath}: ${(err as Error).message}`, err);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  /** Parses and MAC-checks a state file; returns null with a reason on any failure. */
  #readState(path: string): { state: StateBody } | { problem: string } | null {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      return { problem: `cannot read: ${(err as Error).message}` };
    }
    const sealed = unseal<StateBody>(text, this.#key, MAC_STATE, 'state');
    if ('problem' in sealed) return sealed;
    const st = sealed.value;
    if (st.format !== 1) return { problem: `unknown format ${String(st.format)}` };
    return { state: st };
  }

  #load(): void {
    const cur = this.#readState(this.statePath);
    if (cur !== null && 'state' in cur) {
      this.#state = cur.state;
      this.#repairAudit();
      this.#checkAuditOnOpen();
      return;
    }
    // No trustworthy state.json. A first start has no other files; otherwise this is tampering
    // (or a lost file) and we say so.
    const hasHistory = readAuditText(this.auditPath) !== '' || this.#hasRevisionFiles();
    if (cur === null && !hasHistory) {
      this.#state = freshState();
      return;
    }
    const problem = cur === null ? 'state.json is missing' : `state.json failed verification (${cur.problem})`;
    const prev = this.#readState(join(this.dir, 'state.prev.json'));
    const base = prev !== null && 'state' in prev ? prev.state : freshState();
    const used = prev !== null && 'state' in prev ? 'the previous state (state.prev.json)' : 'an empty state (no active revision: fail closed)';
    // The anchor in the state we fall back to no longer matches the log; record what the log
    // looks like now and re-anchor on it, with the tamper alert saying so.
    const text = readAuditText(this.auditPath);
    const v = verifyAuditText(text, { count: 0, head: GENESIS_HASH });
    this.#state = base;
    // Truncate anything after the last good event so the chain continues cleanly.
    this.#truncateAuditTo(text, v.count);
    this.#state.audit = { count: v.count, head: v.head, tail: [] };
    this.#commit(
      (st) => {
        this.#alert(st, 'tamper', alertText.stateTampered(problem, used, v.count));
        if (st.active !== null) {
          // The state we fell back to may be older than the truth: its active revision is still verified on use.
        }
      },
      [{ type: 'state.tampered', detail: { problem, used, auditEvents: v.count, auditProblems: v.problems } }],
    );
  }

  #hasRevisionFiles(): boolean {
    try {
      return statSync(this.revisionPath(1)).isFile();
    } catch {
      return false;
    }
  }

  #truncateAuditTo(text: string, count: number): void {
    const lines = text.split('\n');
    const keep = lines.slice(0, count).map((l) => l + '\n').join('');
    if (Buffer.byteLength(keep) === Buffer.byteLength(text)) return;
    const fd = openSync(this.auditPath, constants.O_WRONLY | constants.O_CREAT, 0o600);
    try {
      ftruncateSync(fd, Buffer.byteLength(keep));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * After a crash between the state write and the log append, the log lacks the state's last
   * events (and may end in a torn line). If the log is exactly a prefix of what the state
   * expects, finish the append; anything else is left for verification to report.
   */
  #repairAudit(): void {
    const { count, head, tail } = this.#state.audit;
    if (tail.length === 0) return;
    const text = readAuditText(this.auditPath);
    const lines = text.split('\n');
    const torn = lines.pop() ?? '';
    const have = lines.length;
    const missing = count - have;
    if (missing <= 0 || missing > tail.length) return;
    const firstMissing = tail[tail.length - missing]!;
    const v = verifyAuditText(lines.map((l) => l + '\n').join(''), { count: have, head: firstMissing.prev });
    if (!v.ok) return;
    const rest = tail.slice(tail.length - missing);
    if (rest[rest.length - 1]!.hash !== head) return;
    if (torn !== '') this.#truncateAuditTo(text, have);
    this.#appendAudit(rest.map(eventLine).join(''));
    fsyncDir(this.dir);
    this.openReport.repairedAuditEvents = rest.length;
  }

  #checkAuditOnOpen(): void {
    const v = this.verifyAudit();
    if (v.ok) return;
    const message = alertText.auditFailed(v.problems);
    if (isOpen(this.#state, 'audit', message)) return;
    // No event is appended to a log that failed verification: the alert lives in the state.
    this.#commit((st) => void this.#alert(st, 'audit', message), []);
  }
}

/** sha256 of a source file's bytes, for provenance. */
export function sourceSha256(bytes: Buffer | string): string {
  return sha256Hex(bytes);
}
