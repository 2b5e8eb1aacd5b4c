// The daemon's rule lists: what `switchyard lists` shows, and the remote-list checker.
//
// A url list is checked at start and every `refresh` interval (and on `switchyard lists refresh`):
// checkRemoteList fetches it conditionally (ETag / Last-Modified of the approved body), parses
// the new body strictly and diffs it. A change is cached by hash in the state dir and becomes a
// PENDING revision whose config pins the new hash — never active without `switchyard approve`.
// Any failure (certificate, size, hash pin, parse) is recorded and logged; the running policy is
// untouched because nothing here changes it.
import { Duplex } from 'node:stream';
import { isIP } from 'node:net';
import { readFileSync, writeFileSync, renameSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { checkRemoteList, type ActiveRemote } from '../lists/remote.ts';
import type { ConnectFn } from '../lists/fetch.ts';
import { describeEntry } from '../lists/collect.ts';
import { ListBodyCache, listDefOf, listPath, type ListsResult } from '../lists-load.ts';
import type { Config, ListConfig } from '../policy/types.ts';
import type { Daemon } from './daemon.ts';

interface Meta {
  etag: string | null;
  lastModified: string | null;
}

export interface ListStatus {
  lastCheck: string | null;
  lastChange: string | null;
  lastError: string | null;
  pending: number | null;
  pendingDiff: string | null;
}

export interface ListRow extends ListStatus {
  name: string;
  format: string;
  egress: string;
  source: string;
  entries: number | null;
  content: string | null;
}

const DIFF_SHOWN = 20;

export class DaemonLists {
  readonly cache: ListBodyCache;
  readonly #d: Daemon;
  readonly #status = new Map<string, ListStatus>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #metaFile: string;
  #meta: Record<string, Meta> = {};
  #checking = new Map<string, Promise<ListStatus>>();
  /** listsToRules result of the running policy (for `lists` entry counts and explain lines). */
  result: ListsResult | null = null;

  constructor(d: Daemon) {
    this.#d = d;
    this.cache = new ListBodyCache(d.paths.stateDir);
    this.#metaFile = join(this.cache.dir, 'meta.json');
    try {
      this.#meta = JSON.parse(readFileSync(this.#metaFile, 'utf8')) as Record<string, Meta>;
    } catch {
      this.#meta = {};
    }
  }

  #st(name: string): ListStatus {
    let s = this.#status.get(name);
    if (!s) this.#status.set(name, (s = { lastCheck: null, lastChange: null, lastError: null, pending: null, pendingDiff: null }));
    return s;
  }

  /** (Re)arms the schedule for the running config's url lists; checks each once now. */
  schedule(config: Config): void {
    for (const t of this.#timers.values()) clearInterval(t);
    this.#timers.clear();
    for (const l of config.lists ?? []) {
      if (l.url === null) continue;
      const t = setInterval(() => void this.check(l.name).catch(() => {}), l.refreshSeconds * 1000);
      t.unref();
      this.#timers.set(l.name, t);
      void this.check(l.name).catch(() => {});
    }
  }

  stop(): void {
    for (const t of this.#timers.values()) clearInterval(t);
    this.#timers.clear();
  }

  /** One check of a url list; concurrent calls share it. */
  check(name: string): Promise<ListStatus> {
    const running = this.#checking.get(name);
    if (running) return running;
    const p = this.#check(name).finally(() => this.#checking.delete(name));
    this.#checking.set(name, p);
    return p;
  }

  async #check(name: string): Promise<ListStatus> {
    const config = this.#d.config;
    const l = config.lists?.find((x) => x.name === name);
    const st = this.#st(name);
    if (!l || l.url === null) throw new Error(`no url list named '${name}' in the running config`);
    st.lastCheck = new Date().toISOString();
    try {
      let active: ActiveRemote | null = null;
      const body = l.content ? this.cache.get(l.content) : null;
      if (body && l.content) {
        const m = this.#meta[l.content];
        active = { body, etag: m?.etag ?? null, lastModified: m?.lastModified ?? null, sha256: l.content };
      }
      const r = await checkRemoteList(listDefOf(l), active, { ...(l.via !== 'direct' ? { connect: this.#connectVia(l.via) } : {}) });
      st.lastError = null;
      // Unchanged: nothing new to approve from this check (an older pending one still shows in `lists`).
      if (r.status === 'unchanged') return { ...st, pending: null, pendingDiff: null };
      const sha = this.cache.put(r.body);
      this.#meta[sha] = { etag: r.etag, lastModified: r.lastModified };
      this.#saveMeta();
      const next: Config = { ...config, lists: config.lists!.map((x) => (x.name === name ? { ...x, content: sha } : x)) };
      const lines = [
        `list '${name}' from ${l.url}: +${r.diff.added.length} −${r.diff.removed.length} entries (sha256 ${sha.slice(0, 16)}…)`,
        ...r.diff.added.slice(0, DIFF_SHOWN).map((e) => `+ ${describeEntry(e)} (line ${e.line})`),
        ...r.diff.removed.slice(0, DIFF_SHOWN).map((e) => `- ${describeEntry(e)}`),
      ];
      const { revision } = this.#d.revisions.proposeLinked(next, l.url, sha, lines.join('\n'));
      st.pending = revision;
      st.pendingDiff = lines.join('\n');
      st.lastChange = st.lastCheck;
      return st;
    } catch (e) {
      st.lastError = `${(e as { code?: string }).code ?? 'error'}: ${(e as Error).message}`;
      this.#d.log.warn({ list: name, err: st.lastError }, 'remote list check failed; the active list is unchanged');
      throw e;
    }
  }

  #saveMeta(): void {
    mkdirSync(this.cache.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.#metaFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.#meta), { mode: 0o600 });
    renameSync(tmp, this.#metaFile);
  }

  /** Downloads through an egress of the running set (`via = "vpn"`), as a plain Duplex for TLS. */
  #connectVia(via: string): ConnectFn {
    return async (host, port) => {
      // An address literal is dialled as an address; a name is sent to the proxy (the daemon's own
      // request, so the name is trusted).
      const c = await this.#d.egress.connect(via, isIP(host) ? { ip: host, domainTrusted: false, port } : { domain: host, domainTrusted: true, port });
      const up = c.upstream;
      const dup = new Duplex({
        write(chunk: Buffer, _enc, cb) {
          up.socket.write(chunk, cb);
        },
        final(cb) {
          up.socket.end();
          cb();
        },
        read() {
          up.socket.resume();
        },
        destroy(err, cb) {
          up.socket.destroy();
          cb(err);
        },
      });
      for (const b of up.pending) dup.push(b);
      up.pending = [];
      up.onData = (chunk) => dup.push(Buffer.from(chunk));
      up.socket.on('end', () => dup.push(null));
      up.socket.on('error', (e) => dup.destroy(e));
      return dup;
    };
  }

  rows(): ListRow[] {
    const config = this.#d.config;
    // A pending revision that is no longer pending (approved, rejected) is not shown.
    const pendingSet = new Set(this.#d.revisions.store.list().filter((e) => e.state === 'pending').map((e) => e.n));
    return (config.lists ?? []).map((l: ListConfig) => {
      const st = this.#st(l.name);
      const summary = this.result?.lists.find((s) => s.name === l.name);
      const pending = st.pending !== null && pendingSet.has(st.pending) ? st.pending : null;
      return {
        name: l.name,
        format: l.format,
        egress: l.egress,
        source: l.url ?? listPath(l, this.#d.configPath),
        entries: summary ? summary.entries : null,
        content: l.content ?? null,
        lastCheck: st.lastCheck,
        lastChange: st.lastChange,
        lastError: st.lastError,
        pending,
        pendingDiff: pending !== null ? st.pendingDiff : null,
      };
    });
  }

  /** The running body of a list (what `lists export` converts). */
  body(name: string): { list: ListConfig; body: Buffer } {
    const l = this.#d.config.lists?.find((x) => x.name === name);
    if (!l) throw new Error(`no list named '${name}'`);
    const b = l.content ? this.cache.get(l.content) : null;
    if (!b) throw new Error(`list '${name}' has no approved body yet`);
    return { list: l, body: b };
  }
}
