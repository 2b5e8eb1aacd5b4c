// Files imported with `switchyard import`: the record of each source (sealed with the store key
// in <store>/sources.json), their watchers, and what a change does — a linked source becomes a
// pending revision, a snapshot import only a notice. Candidates are made by src/daemon/candidates.ts.
import { closeSync, openSync, readSync, fstatSync } from 'node:fs';
import { join } from 'node:path';
import { readConfigBytes } from '../config-file.ts';
import { isSwitchyardError } from '../errors.ts';
import type { ListConfig } from '../policy/types.ts';
import { sourceSha256, type Actor, type Channel, type PolicyStore, type RiskAssessment } from '../store/index.ts';
import type { HmacKey } from '../store/key.ts';
import { writeFileAtomic } from '../store/atomic.ts';
import { seal, unseal } from '../store/sealed.ts';
import { buildImport, buildListImport, type BuiltImport } from './import.ts';
import { ConfigWatcher } from './watch.ts';
import { ListBodyCache, approvedContents, pinLists, readListFile } from '../lists-load.ts';
import { canonicalConfig, policyHash, type Candidates } from './candidates.ts';
import type { Daemon } from './daemon.ts';

const MAX_NOTICES = 20;
const MAC_SOURCES = 'switchyard/sources/v1';

export interface SourceRecord {
  path: string;
  linked: boolean;
  sha256: string;
  revision: number | null;
  /** A list-format import (plain, v2fly, …): its format and egress, to rebuild it on a change. */
  list?: { format: ListConfig['format']; egress: string };
}

export interface Notice {
  time: number;
  message: string;
}

/** What import sources read from the daemon. */
export type ImportHost = Pick<Daemon, 'config' | 'log' | 'paths' | 'opts' | 'serial'>;

export class ImportSources {
  readonly notices: Notice[] = [];
  readonly #d: ImportHost;
  readonly #candidates: Candidates;
  readonly #key: HmacKey;
  #sources = new Map<string, SourceRecord>();
  #watchers = new Map<string, ConfigWatcher>();

  constructor(d: ImportHost, candidates: Candidates, key: HmacKey) {
    this.#d = d;
    this.#candidates = candidates;
    this.#key = key;
  }

  get store(): PolicyStore {
    return this.#candidates.store;
  }

  has(path: string): boolean {
    return this.#sources.has(path);
  }

  /** For `status`. */
  rows(): { path: string; linked: boolean; revision: number | null }[] {
    return [...this.#sources.values()].map((s) => ({ path: s.path, linked: s.linked, revision: s.revision }));
  }

  /** An imported whole config pins its [[list]] bodies like the config file does (relative to the import's folder). */
  #pinImported(built: BuiltImport, path: string): BuiltImport {
    if (built.kind !== 'config') return built;
    const config = canonicalConfig(pinLists(built.config, { configPath: path, cache: new ListBodyCache(this.#d.paths.stateDir), approved: approvedContents(this.#d.config) }));
    return { ...built, config };
  }

  /** A list-format source: read with the list limit (64 MiB), built as a pinned [[list]]. */
  async #buildListSource(path: string, list: NonNullable<SourceRecord['list']>): Promise<{ built: BuiltImport; sha: string }> {
    const body = readListFile(path, 'import');
    const built = await buildListImport(body, path, this.#d.config, { ...list, cache: new ListBodyCache(this.#d.paths.stateDir) });
    return { built, sha: sourceSha256(body) };
  }

  async importFile(path: string, linked: boolean, actor: Actor, interactive: boolean, list?: SourceRecord['list']): Promise<unknown> {
    const running = this.#d.config;
    let built: BuiltImport;
    let sha: string;
    if (list) ({ built, sha } = await this.#buildListSource(path, list));
    else {
      const bytes = readConfigBytes(path);
      sha = sourceSha256(Buffer.from(bytes));
      built = this.#pinImported(buildImport(bytes, path, running), path);
    }
    const channel: Channel = linked ? 'linked' : 'import';
    let revision: number | null = null;
    let risk: RiskAssessment | null = null;
    if (policyHash(built.config) !== policyHash(running)) {
      const rev = this.#candidates.create(built.config, running, { channel, source: path, sha, interactive, actor, note: `${built.kind} import` });
      revision = rev.n;
      risk = rev.risk;
    }
    this.#sources.set(path, { path, linked, sha256: sha, revision, ...(list ? { list } : {}) });
    this.#saveSources();
    this.#watch(path, this.#d.opts.watchDebounceMs ?? 300);
    return { revision, state: revision === null ? 'unchanged' : 'pending', kind: built.kind, rules: built.rules, linked, source: path, sourceSha256: sha, risk };
  }

  /** A watched import source changed (or differs at start): linked → pending revision; snapshot → notice. */
  async #sourceChanged(path: string): Promise<void> {
    const rec = this.#sources.get(path);
    if (!rec) return;
    let bytes: Uint8Array;
    try {
      // A list source is read with the list limit; its body is only hashed here.
      bytes = rec.list ? readListFile(path, 'import') : readConfigBytes(path);
    } catch (err) {
      this.#notice(`import source ${path} cannot be read (${isSwitchyardError(err) ? err.code : 'error'}); nothing changes`);
      return;
    }
    const sha = sourceSha256(Buffer.from(bytes));
    if (sha === rec.sha256) return;
    rec.sha256 = sha;
    if (!rec.linked) {
      this.store.audit({ type: 'import.source-changed', detail: { source: path, sourceSha256: sha, linked: false } });
      this.#notice(`snapshot import ${path} changed on disk; nothing changes (import it again to make a candidate)`);
      this.#saveSources();
      return;
    }
    try {
      const running = this.#d.config;
      const built = rec.list ? (await this.#buildListSource(path, rec.list)).built : this.#pinImported(buildImport(bytes, path, running), path);
      if (policyHash(built.config) === policyHash(running)) {
        this.#saveSources();
        return;
      }
      const rev = this.#candidates.create(built.config, running, { channel: 'linked', source: path, sha, interactive: false, note: 'linked source changed' });
      rec.revision = rev.n;
      this.#d.log.warn({ revision: rev.n, risk: rev.risk?.level }, 'a linked source changed: pending revision (switchyard diff / approve)');
    } catch (err) {
      const code = isSwitchyardError(err) ? err.code : 'SY_ERR_INTERNAL';
      this.store.audit({ type: 'import.refused', detail: { source: path, sourceSha256: sha, code, message: (err as Error).message.slice(0, 500) } });
      this.#notice(`linked source ${path} changed but was refused (${code}); nothing changes`);
    }
    this.#saveSources();
  }

  #notice(message: string): void {
    this.notices.push({ time: Date.now(), message });
    if (this.notices.length > MAX_NOTICES) this.notices.shift();
    this.#d.log.warn('import source notice: see switchyard status');
  }

  /** At start (a trusted revision runs): a source that changed while the daemon was down counts as changed now. */
  checkAtStart(): void {
    // TOML sources are handled at once (no await on their path); list sources just after start.
    for (const [path, rec] of this.#sources) {
      // A list source is rebuilt against the running config, which is set right after start.
      if (rec.list) setImmediate(() => void this.#d.serial(async () => await this.#sourceChanged(path)).catch(() => {}));
      else void this.#sourceChanged(path);
    }
  }

  /** Import sources are watched even with `--no-watch` (that turns off the config file's watcher only). */
  startWatchers(debounceMs: number): void {
    for (const path of this.#sources.keys()) this.#watch(path, debounceMs);
  }

  #watch(path: string, debounceMs: number): void {
    if (this.#watchers.has(path)) return;
    const w = new ConfigWatcher(path, debounceMs, () => void this.#d.serial(async () => await this.#sourceChanged(path)).catch(() => {}));
    w.start();
    this.#watchers.set(path, w);
  }

  close(): void {
    for (const w of this.#watchers.values()) w.close();
    this.#watchers.clear();
  }

  get #sourcesPath(): string {
    return join(this.store.dir, 'sources.json');
  }

  #saveSources(): void {
    const body = { sources: [...this.#sources.values()] };
    writeFileAtomic(this.#sourcesPath, seal(this.#key, MAC_SOURCES, 'body', body));
  }

  /** The list of imported sources, MAC-checked like the rest of the store. */
  load(): void {
    let text: string;
    try {
      const fd = openSync(this.#sourcesPath, 'r');
      try {
        const size = fstatSync(fd).size;
        if (size > 1024 * 1024) throw new Error('too large');
        const buf = Buffer.alloc(size);
        readSync(fd, buf, 0, size, 0);
        text = buf.toString('utf8');
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      text = '';
    }
    try {
      const sealed = unseal<{ sources?: SourceRecord[] }>(text, this.#key, MAC_SOURCES, 'body');
      if ('problem' in sealed || !Array.isArray(sealed.value.sources)) throw new Error('MAC');
      for (const s of sealed.value.sources) this.#sources.set(s.path, s);
    } catch {
      this.store.audit({ type: 'sources.tampered', detail: { file: this.#sourcesPath } });
      this.#notice('the list of imported sources failed its integrity check and was ignored (import the sources again)');
    }
  }
}
