// Making candidate revisions, shared by the start-up path (src/daemon/startup.ts) and the
// changes (src/daemon/revisions.ts): reading the config file as a candidate, comparing policies
// by what they do, and creating a pending revision with its provenance and risk.
import { readConfigBytes } from '../config-file.ts';
import { isSwitchyardError, type SwitchyardError } from '../errors.ts';
import { DEFAULT_CONFIG_TOML, loadConfigFromBytes, type Config } from '../policy/index.ts';
import { classifyRisk, contentHash, diffConfigs, sourceSha256, type Actor, type Channel, type PolicyStore, type Provenance, type Revision, type RiskAssessment } from '../store/index.ts';
import { canonicalJson } from '../store/canonical.ts';
import { ListBodyCache, approvedContents, pinLists } from '../lists-load.ts';

/** Keys that say where a config came from, not what it does: ignored when comparing policies. */
const PROVENANCE_KEYS = new Set(['line', 'origin', 'source', 'notices']);

/** Hash of what a config does (line numbers, comments and its path do not count). */
export function policyHash(c: Config): string {
  // No lists = an empty `lists` (revisions stored before [[list]] existed have no such key).
  const drop = (k: string, v: unknown) => PROVENANCE_KEYS.has(k) || (k === 'lists' && Array.isArray(v) && v.length === 0);
  return contentHash(JSON.parse(JSON.stringify(c, (k, v: unknown) => (drop(k, v) ? undefined : v))));
}

/**
 * The config as the store keeps it (keys sorted, as read back from a revision file): the daemon
 * compares configs by their JSON (src/daemon/config-diff.ts), so every config it runs has one form.
 */
export function canonicalConfig(c: Config): Config {
  return JSON.parse(canonicalJson(c)) as Config;
}

/**
 * [[list]] changes a rule diff cannot show (the list rules are expanded at activation, not stored):
 * a list whose pinned body differs, with the entry diff the remote checker recorded in the note.
 */
export function listContentLines(from: Config, to: Config, linkedNote: string | null): string[] {
  const before = new Map((from.lists ?? []).map((l) => [l.name, l]));
  const out: string[] = [];
  for (const l of to.lists ?? []) {
    const b = before.get(l.name);
    if (!b) out.push(`+ list ${l.name} (${l.format} → ${l.egress}) from ${l.url ?? l.path}`);
    else if ((b.content ?? null) !== (l.content ?? null)) out.push(`~ list ${l.name}: body ${b.content?.slice(0, 12) ?? 'none'}… → ${l.content?.slice(0, 12) ?? 'none'}…`);
  }
  for (const l of from.lists ?? []) if (!(to.lists ?? []).some((x) => x.name === l.name)) out.push(`- list ${l.name}`);
  if (out.length && linkedNote) out.push(...linkedNote.split('\n'));
  return out;
}

/** The config file (or the embedded default) as a candidate, or why it cannot be one. */
export type ConfigSource = { config: Config; sha: string; path: string | null } | { error: SwitchyardError };

/**
 * Reads the config file with its [[list]] bodies pinned by hash (src/lists-load.ts): a changed
 * list file is a changed config. `approved` is the config whose url list contents count as approved.
 */
export function readConfigSource(path: string | null, stateDir: string, approved: Config | null): ConfigSource {
  try {
    const bytes = path ? readConfigBytes(path) : new TextEncoder().encode(DEFAULT_CONFIG_TOML);
    const loaded = pinLists(loadConfigFromBytes(bytes, path ?? 'embedded'), {
      configPath: path,
      cache: new ListBodyCache(stateDir),
      approved: approvedContents(approved),
    });
    return { config: canonicalConfig(loaded), sha: sourceSha256(Buffer.from(bytes)), path };
  } catch (err) {
    if (isSwitchyardError(err)) return { error: err };
    throw err;
  }
}

export interface CandidateOrigin {
  channel: Channel;
  source: string | null;
  sha: string | null;
  interactive: boolean;
  actor?: Actor;
  note?: string;
}

/** Creates candidate revisions in the store and finds a pending one with the same policy. */
export class Candidates {
  readonly store: PolicyStore;
  readonly selfActor: Actor;
  /** policyHash per revision number (revisions never change). */
  readonly #hashes = new Map<number, string>();

  constructor(store: PolicyStore, selfActor: Actor) {
    this.store = store;
    this.selfActor = selfActor;
  }

  provenance(channel: Channel, source: string | null, sha: string | null, actor: Actor, interactive: boolean, note?: string): Provenance {
    return { channel, source, sourceSha256: sha, user: actor.user, uid: actor.uid, time: new Date().toISOString(), interactive, ...(note ? { note } : {}) };
  }

  /** A pending revision of `config`, its risk judged against `against` (null: nothing trusted = high). */
  create(config: Config, against: Config | null, o: CandidateOrigin): Revision {
    let risk: RiskAssessment = against ? classifyRisk(diffConfigs(against, config)) : { level: 'high' as const, reasons: ['no trusted revision to compare with'] };
    // A changed list body changes no stored rule, so the rule diff cannot see it: never call it low.
    const listLines = against ? listContentLines(against, config, null) : [];
    if (listLines.length && risk.level === 'low') risk = { level: 'medium', reasons: [...risk.reasons, ...listLines] };
    else if (listLines.length) risk = { ...risk, reasons: [...risk.reasons, ...listLines] };
    const rev = this.store.create(config, this.provenance(o.channel, o.source, o.sha, o.actor ?? this.selfActor, o.interactive, o.note), risk);
    this.#hashes.set(rev.n, policyHash(config));
    return rev;
  }

  /** Records the policy hash of a revision made elsewhere (the store's rollback candidate). */
  remember(rev: Revision): void {
    this.#hashes.set(rev.n, policyHash(rev.config as Config));
  }

  /** The newest pending revision with this policy, so a burst of the same change makes one candidate. */
  pendingWithHash(h: string): number | null {
    const pending = this.store.list().filter((e) => e.state === 'pending');
    for (let i = pending.length - 1; i >= 0; i--) if (this.#policyHashOf(pending[i]!.n) === h) return pending[i]!.n;
    return null;
  }

  #policyHashOf(n: number): string | null {
    const h = this.#hashes.get(n);
    if (h !== undefined) return h;
    try {
      const v = policyHash(this.store.get(n).config as Config);
      this.#hashes.set(n, v);
      return v;
    } catch {
      return null;
    }
  }
}
