// The daemon's side of the policy store (docs/store.md): the running policy is the store's active
// revision; config files and imports are artifacts that become candidate revisions.
//
// Start: src/daemon/startup.ts (the store's active revision runs, integrity-checked; the file
// only becomes a candidate, except on the first start).
//
// Changes:
//   - `switchyard reload` (a privileged caller): the file becomes a candidate; a LOW-risk one
//     that a person asked for at a terminal is activated at once (audited), medium/high wait.
//   - the file watcher, imports, linked files and scripts only ever make pending candidates.
//   - activation is atomic (src/store/apply.ts): snapshot → apply (OS plan, policy, egress set,
//     DNS projection) → verify → commit (the store's state write) → old egress set released.
//
// Making candidates (shared with the start-up path) is src/daemon/candidates.ts; import sources
// (`switchyard import`, linked files) are src/daemon/import-sources.ts.
//
// SWITCHYARD_FAILPOINT (TEST ONLY, documented in docs/store.md): a comma list like
// `fail:apply,kill:before-commit`; each activation takes the next entry: `fail:P` makes it fail
// right after point P, `kill:P` SIGKILLs the daemon on entering P.
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { StoreError, isSwitchyardError } from '../errors.ts';
import type { Config } from '../policy/index.ts';
import {
  APPLY_POINTS,
  PolicyStore,
  activate,
  activatesAtOnce,
  classifyRisk,
  describeDiff,
  diffConfigs,
  loadOrCreateKey,
  type Actor,
  type ApplyPoint,
  type Provenance,
  type RiskAssessment,
} from '../store/index.ts';
import { verifyAuditText, type AuditEvent } from '../store/audit.ts';
import type { HmacKey } from '../store/key.ts';
import type { ApplyOutcome, Daemon, LiveSnapshot, ReloadResult } from './daemon.ts';
import { Candidates, canonicalConfig, listContentLines, policyHash, readConfigSource, type CandidateOrigin, type ConfigSource } from './candidates.ts';
import { startupConfig } from './startup.ts';
import { ImportSources, type Notice, type SourceRecord } from './import-sources.ts';

export { policyHash, canonicalConfig } from './candidates.ts';
export { blockAll } from './startup.ts';
export type { Notice } from './import-sources.ts';

/** Lines of a diff sent over the control socket (frames are at most 1 MiB). */
export const MAX_DIFF_LINES = 400;
/** Audit events `switchyard audit` returns at most. */
export const MAX_AUDIT_EVENTS = 1000;
type Failpoint = { kind: 'fail' | 'kill'; point: ApplyPoint };

function parseFailpoints(v: string | undefined): Failpoint[] {
  if (!v) return [];
  const out: Failpoint[] = [];
  for (const part of v.split(',')) {
    const m = /^(fail|kill):([a-z-]+)$/.exec(part.trim());
    if (m && (APPLY_POINTS as readonly string[]).includes(m[2]!)) out.push({ kind: m[1] as 'fail' | 'kill', point: m[2] as ApplyPoint });
  }
  return out;
}

export class Revisions {
  readonly store: PolicyStore;
  readonly selfActor: Actor;
  readonly #d: Daemon;
  readonly #failpoints: Failpoint[];
  readonly #candidates: Candidates;
  readonly #imports: ImportSources;

  private constructor(d: Daemon, store: PolicyStore, key: HmacKey) {
    this.#d = d;
    this.store = store;
    let user = String(process.getuid?.() ?? 'unknown');
    try {
      user = userInfo().username;
    } catch {
      /* no passwd entry */
    }
    this.selfActor = { user: `${user} (daemon)`, uid: process.getuid?.() ?? null };
    this.#candidates = new Candidates(store, this.selfActor);
    this.#imports = new ImportSources(d, this.#candidates, key);
    this.#failpoints = parseFailpoints(process.env['SWITCHYARD_FAILPOINT']);
  }

  static open(d: Daemon): Revisions {
    const { key, created } = loadOrCreateKey(d.paths.stateDir, { checkPerms: process.platform !== 'win32' });
    const store = PolicyStore.open(d.paths.stateDir, { key });
    const r = new Revisions(d, store, key);
    if (created) d.log.info('created the store key (0600) in the state directory');
    for (const a of store.openReport.raised) d.log.error({ alert: a.id, kind: a.kind }, 'store alert raised while opening: see switchyard status');
    r.#imports.load();
    return r;
  }

  /** Messages about import sources for `status` (newest last). */
  get notices(): readonly Notice[] {
    return this.#imports.notices;
  }

  // ------------------------------------------------------------------ start

  /** The config the daemon starts with (see the header comment and src/daemon/startup.ts). */
  startupConfig(): Config {
    const file = this.#readConfigSource();
    const { config, fromActive } = startupConfig(this.#candidates, file, this.#d.log);
    if (fromActive) this.#imports.checkAtStart();
    return config;
  }

  #readConfigSource(): ConfigSource {
    return readConfigSource(this.#d.configPath, this.#d.paths.stateDir, this.#activeConfig());
  }

  /** The running config, or before start the active revision's (for approved url list contents). */
  #activeConfig(): Config | null {
    if (this.#d.config) return this.#d.config;
    const n = this.store.active;
    if (n === null) return null;
    try {
      return this.store.get(n).config as Config;
    } catch {
      return null;
    }
  }

  /**
   * A remote list changed: `config` is the running config with that list's content replaced. It
   * becomes a PENDING revision (linked-import semantics: never activated without approve); the
   * same change twice makes one candidate.
   */
  proposeLinked(config: Config, source: string, sha: string, note: string): { revision: number; created: boolean } {
    const c = canonicalConfig(config);
    const existing = this.#pendingWithHash(policyHash(c));
    if (existing !== null) return { revision: existing, created: false };
    const rev = this.#create(c, this.#d.config, { channel: 'linked', source, sha, interactive: false, note });
    this.#d.log.info({ revision: rev.n, source }, 'remote list changed: pending revision (switchyard diff / approve)');
    return { revision: rev.n, created: true };
  }

  // ------------------------------------------------------------------ candidates

  #create(config: Config, against: Config | null, o: CandidateOrigin) {
    return this.#candidates.create(config, against, o);
  }

  #pendingWithHash(h: string): number | null {
    return this.#candidates.pendingWithHash(h);
  }

  /** `switchyard reload` and the file watcher. */
  async fromConfigFile(trigger: string, interactive: boolean, actor: Actor): Promise<ReloadResult> {
    const file = this.#readConfigSource();
    if ('error' in file) throw file.error;
    const running = this.#d.config;
    const base = { trigger, restartNeeded: [] as string[], egressRebuilt: false, changedFlows: 0, generation: this.#d.generation };
    const h = policyHash(file.config);
    if (h === policyHash(running)) return { ...base, applied: false, revision: this.store.active, state: 'unchanged', risk: null };
    const risk = classifyRisk(diffConfigs(running, file.config));
    const n =
      this.#pendingWithHash(h) ??
      this.#create(file.config, running, { channel: 'file', source: file.path, sha: file.sha, interactive, actor, note: trigger === 'file change' ? 'file watcher' : 'switchyard reload' }).n;
    if (!activatesAtOnce(risk, { channel: 'file', interactive })) {
      this.#d.log.info({ revision: n, risk: risk.level, trigger }, 'candidate revision pending: switchyard diff / approve');
      return { ...base, applied: false, revision: n, state: 'pending', risk };
    }
    const r = await this.activateRevision(n, actor);
    return { ...base, ...r, applied: true, revision: n, state: 'active', risk, generation: this.#d.generation };
  }

  // ------------------------------------------------------------------ activation

  /** Atomic activation of pending revision `n` (approve, low-risk reload, rollback). */
  async activateRevision(n: number, actor: Actor, opts: { rollback?: boolean } = {}): Promise<ApplyOutcome & { changedFlows: number }> {
    const rev = this.store.get(n);
    const config = rev.config as Config;
    let snap: LiveSnapshot | null = null;
    let outcome: ApplyOutcome = { restartNeeded: [], egressRebuilt: false };
    const fp = this.#failpoints.shift();
    const d = this.#d;
    try {
      await activate(
        this.store,
        n,
        {
          snapshot: () => (snap = d.snapshotLive()),
          apply: async () => {
            outcome = await d.applyLive(config);
          },
          verify: () => d.verifyLive(config),
          restore: (s: LiveSnapshot) => d.restoreLive(s),
        },
        {
          actor,
          ...(opts.rollback ? { rollback: true } : {}),
          ...(fp?.kind === 'fail' ? { failAt: fp.point } : {}),
          ...(fp?.kind === 'kill'
            ? {
                at: (p: ApplyPoint) => {
                  if (p === fp.point) process.kill(process.pid, 'SIGKILL');
                },
              }
            : {}),
        },
      );
    } catch (err) {
      if (this.store.active === n && snap) {
        // Past the commit point (an injected after-commit failure): the new revision stays.
        d.afterCommit(snap);
        throw new StoreError('SY_ERR_STORE_APPLY', `revision #${n} is active, but: ${(err as Error).message}`, err);
      }
      d.log.error({ revision: n, code: isSwitchyardError(err) ? err.code : undefined }, 'activation failed; the previous policy was restored');
      throw err;
    }
    d.afterCommit(snap!);
    this.#reviewAlertsOf(n, actor);
    const changedFlows = d.sessions.list().filter((f) => d.decisionChanged(f)).length;
    d.log.info({ revision: n, rollback: opts.rollback === true, changedFlows }, 'revision activated');
    return { ...outcome, changedFlows };
  }

  /** Approving or rejecting a revision reviews the alerts it raised. */
  #reviewAlertsOf(n: number, actor: Actor): void {
    for (const a of this.store.alerts()) if (a.revision === n && a.kind !== 'tamper') this.store.reviewAlert(a.id, actor);
  }

  async approve(n: number, actor: Actor): Promise<{ revision: number; state: string } & ApplyOutcome & { changedFlows: number }> {
    const r = await this.activateRevision(n, actor);
    return { revision: n, state: 'active', ...r };
  }

  reject(n: number, actor: Actor, reason: string): { revision: number; state: string } {
    this.store.reject(n, actor, reason);
    this.#reviewAlertsOf(n, actor);
    return { revision: n, state: 'rejected' };
  }

  async rollback(actor: Actor): Promise<{ revision: number; to: number; state: string } & ApplyOutcome & { changedFlows: number }> {
    const to = this.store.lastKnownGood;
    const rev = this.store.rollbackCandidate(actor);
    this.#candidates.remember(rev);
    const r = await this.activateRevision(rev.n, actor, { rollback: true });
    return { revision: rev.n, to: to!, state: 'active', ...r };
  }

  // ------------------------------------------------------------------ review

  list(): unknown {
    const rows = this.store.list().map((e) => {
      let prov: Provenance | null = null;
      let risk: RiskAssessment | null = null;
      let createdAt: string | null = null;
      let tampered: string | null = null;
      try {
        const r = this.store.get(e.n);
        prov = r.provenance;
        risk = r.risk;
        createdAt = r.createdAt;
      } catch (err) {
        tampered = (err as Error).message;
      }
      return {
        n: e.n,
        state: e.state,
        hash: e.hash,
        reason: e.reason ?? null,
        changedAt: e.changedAt,
        createdAt,
        channel: prov?.channel ?? null,
        source: prov?.source ?? null,
        sourceSha256: prov?.sourceSha256 ?? null,
        user: prov?.user ?? null,
        interactive: prov?.interactive ?? null,
        note: prov?.note ?? null,
        risk: risk?.level ?? null,
        integrity: tampered ?? 'ok',
      };
    });
    return { active: this.store.active, lastKnownGood: this.store.lastKnownGood, revisions: rows };
  }

  /** The diff of revision `n` (default: the newest pending) against the running policy. */
  diff(n: number | undefined): unknown {
    const target = n ?? [...this.store.list()].reverse().find((e) => e.state === 'pending')?.n;
    if (target === undefined) throw new StoreError('SY_ERR_STORE_NOT_FOUND', 'no pending revision (give a revision number: switchyard revisions)');
    const rev = this.store.get(target);
    const d = diffConfigs(this.#d.config, rev.config as Config);
    const risk = classifyRisk(d);
    const lines = [...describeDiff(d), ...listContentLines(this.#d.config, rev.config as Config, rev.provenance.channel === 'linked' ? (rev.provenance.note ?? null) : null)];
    return {
      revision: target,
      state: this.store.entry(target)?.state ?? null,
      against: this.store.active,
      provenance: rev.provenance,
      risk,
      counts: { added: d.added.length, removed: d.removed.length, rerouted: d.rerouted.length, exemptAdded: d.exemptAdded.length, exemptRemoved: d.exemptRemoved.length },
      lines: lines.slice(0, MAX_DIFF_LINES),
      moreLines: Math.max(0, lines.length - MAX_DIFF_LINES),
    };
  }

  ackAlert(id: number, actor: Actor): { alert: number; reviewed: boolean } {
    this.store.reviewAlert(id, actor);
    return { alert: id, reviewed: true };
  }

  /** The audit log's last events and, on request, its verification against the protected anchor. */
  audit(o: { verify: boolean; limit: number; privileged: boolean }): unknown {
    let text = '';
    try {
      text = readFileSync(this.store.auditPath, 'utf8');
    } catch {
      /* missing: verification says so */
    }
    const anchor = this.store.auditAnchor;
    const out: Record<string, unknown> = { count: anchor.count, head: anchor.head };
    if (o.verify) {
      const v = verifyAuditText(text, anchor);
      out['verification'] = { ok: v.ok, count: v.count, problems: v.problems, firstBadLine: v.firstBadLine ?? null };
    }
    // Events name users and file paths: only privileged callers see them.
    if (o.privileged) {
      const lines = text.split('\n').filter((l) => l !== '');
      const events: unknown[] = [];
      for (const l of lines.slice(-Math.min(o.limit, MAX_AUDIT_EVENTS))) {
        try {
          events.push(JSON.parse(l) as AuditEvent);
        } catch {
          events.push({ unreadable: l.slice(0, 200) });
        }
      }
      out['events'] = events;
    } else out['events'] = null;
    return out;
  }

  /** For `status`. */
  summary(): unknown {
    const list = this.store.list();
    return {
      active: this.store.active,
      lastKnownGood: this.store.lastKnownGood,
      pending: list.filter((e) => e.state === 'pending').map((e) => e.n),
      alerts: this.store.alerts(),
      notices: this.notices,
      sources: this.#imports.rows(),
    };
  }

  // ------------------------------------------------------------------ imports (src/daemon/import-sources.ts)

  /** True for a file imported with `switchyard import` (watched by its own source watcher). */
  isImportSource(path: string): boolean {
    return this.#imports.has(path);
  }

  importFile(path: string, linked: boolean, actor: Actor, interactive: boolean, list?: SourceRecord['list']): Promise<unknown> {
    return this.#imports.importFile(path, linked, actor, interactive, list);
  }

  /** Import sources are watched even with `--no-watch` (that turns off the config file's watcher only). */
  startWatchers(debounceMs: number): void {
    this.#imports.startWatchers(debounceMs);
  }

  close(): void {
    this.#imports.close();
  }
}

export function actorOf(caller: { uid: number; user: string | undefined }): Actor {
  return { user: caller.user ?? `uid ${caller.uid}`, uid: caller.uid };
}

