// Persistence of the correlation store (src/dns/store.ts): a snapshot plus an append-only journal,
// so that what a periodic save costs follows how many addresses changed, not how many are held.
//
//   <stateDir>/dns-store.json          snapshot: {"version":2,"gen":G,"savedAt":T,"entries":[[ip,[entry…]]…]}
//   <stateDir>/dns-store.json.journal  line 1: {"journal":1,"gen":G}
//                                      then one line per changed address: {"ip":…,"e":[entry…]}
//                                      (the address's whole list after the change), or {"ip":…}: the
//                                      address was removed (evicted by the size bound, or dropped
//                                      after its grace period), so an older line or the snapshot
//                                      must not bring it back
//
// A flush appends one line per address changed since the last flush (one write call). When the
// journal outgrows max(JOURNAL_MIN_BYTES, the last snapshot's size) it is compacted: the whole
// store is written to a temporary file, fsynced and renamed over the snapshot with a new
// generation, then a fresh journal of that generation replaces the old one the same way. A crash
// between the two renames leaves a journal of the old generation, which load ignores (the new
// snapshot already holds everything it said). The journal's size is therefore bounded by
// max(JOURNAL_MIN_BYTES, snapshot size) plus one flush, and compaction's cost is paid once per
// that many bytes of changes. The set of addresses waiting for the next flush is bounded too
// (maxPending): past it, the set is dropped and the next flush compacts instead, which writes the
// whole (bounded) store, so a burst of new and evicted addresses costs at most one snapshot.
//
// Load reads the snapshot, then the journal of the same generation line by line. A last line without
// its newline is a write cut short by a crash: ignored, and cut off the file so that later appends
// start on a line boundary. A damaged line elsewhere is skipped and reported. A snapshot that cannot
// be read or parsed is reported (the caller logs it), the store starts empty, and the next flush
// writes a valid snapshot over it.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, truncate, unlink, appendFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { StoreName } from '../flow/types.ts';

/** One name of an address as stored: what lookups return, less `stale` (computed at lookup time). */
export type StoredEntry = Omit<StoreName, 'stale'>;

/** What the journal reads from the store it persists. */
export interface JournalSource {
  /** Every address and its live entries, least recently used first (a snapshot reloads in order). */
  all(): [string, StoredEntry[]][];
  /** The live entries of one address now; null or empty when it has none. */
  current(ip: string): StoredEntry[] | null;
}

export interface JournalOptions {
  /** Compaction threshold floor (bytes); the threshold is max(this, last snapshot size). */
  minCompactBytes?: number;
  /** Addresses waiting for the next flush above which it compacts instead (default: unbounded). */
  maxPending?: number;
  now?: () => number;
}

/** The journal file that goes with a snapshot file. */
export function journalPath(file: string): string {
  return `${file}.journal`;
}

export const SNAPSHOT_VERSION = 2;
const JOURNAL_VERSION = 1;
export const JOURNAL_MIN_BYTES = 1 << 20;
/** Files larger than this are not read at all (a bounded store never writes one). */
const MAX_FILE_BYTES = 512 << 20;
/** A journal line longer than this is damaged (8 names of ≤ 1 KiB with ≤ 32-link chains fit). */
const MAX_LINE_BYTES = 1 << 20;

export interface LoadResult {
  /** Addresses and their entries in the order they were last written (oldest first). */
  entries: Map<string, unknown[]>;
  problem?: string;
}

export class StoreJournal {
  readonly file: string;
  readonly journal: string;
  readonly #src: JournalSource;
  readonly #minCompact: number;
  readonly #maxPending: number;
  readonly #now: () => number;
  #changed = new Set<string>();
  /** Generation of the snapshot on disk (a journal of another generation is ignored). */
  #gen: string = newGen();
  /** The journal on disk belongs to #gen and ends on a line boundary: appends may go there. */
  #journalOk = false;
  #journalBytes = 0;
  #snapshotBytes = 0;
  /** The snapshot on disk is damaged or outdated: the next flush compacts. */
  #needCompact = false;
  #chain: Promise<void> = Promise.resolve();

  constructor(file: string, src: JournalSource, opts: JournalOptions = {}) {
    this.file = file;
    this.journal = journalPath(file);
    this.#src = src;
    this.#minCompact = opts.minCompactBytes ?? JOURNAL_MIN_BYTES;
    this.#maxPending = opts.maxPending ?? Number.POSITIVE_INFINITY;
    this.#now = opts.now ?? Date.now;
  }

  /** `ip`'s entries changed (or it was removed): the next flush writes its line. */
  markChanged(ip: string): void {
    this.#changed.add(ip);
    if (this.#changed.size > this.#maxPending) {
      // More changed than a snapshot would write: write the snapshot instead.
      this.#changed.clear();
      this.#needCompact = true;
    }
  }

  /** Something waits to be written. */
  get pending(): boolean {
    return this.#changed.size > 0 || this.#needCompact;
  }

  /** Bytes in the journal file now (for tests and status). */
  get journalBytes(): number {
    return this.#journalBytes;
  }

  /**
   * Reads the snapshot and its journal. The caller validates each entry (the files may be damaged);
   * `problem` names what could not be used. Never throws.
   */
  async load(): Promise<LoadResult> {
    const entries = new Map<string, unknown[]>();
    const snap = await readBounded(this.file);
    let snapGen: string | null = null;
    if (snap.problem) {
      this.#needCompact = true;
      return { entries, problem: snap.problem };
    }
    if (snap.text !== null) {
      this.#snapshotBytes = Buffer.byteLength(snap.text);
      let doc: unknown;
      try {
        doc = JSON.parse(snap.text);
      } catch {
        this.#needCompact = true;
        return { entries, problem: `${this.file} is not valid JSON` };
      }
      const d = doc as { version?: unknown; gen?: unknown; entries?: unknown };
      if ((d.version !== 1 && d.version !== SNAPSHOT_VERSION) || !Array.isArray(d.entries) || (d.version === SNAPSHOT_VERSION && typeof d.gen !== 'string')) {
        this.#needCompact = true;
        return { entries, problem: `${this.file}: unknown format` };
      }
      for (const item of d.entries) {
        if (!Array.isArray(item) || item.length !== 2 || typeof item[0] !== 'string' || !Array.isArray(item[1])) continue;
        entries.delete(item[0]);
        entries.set(item[0], item[1] as unknown[]);
      }
      // Version 1 (a whole-file save, before the journal existed) has no generation: no journal goes with it.
      snapGen = typeof d.gen === 'string' ? d.gen : null;
      if (snapGen === null) this.#needCompact = true;
    }
    const problem = await this.#loadJournal(entries, snap.text === null, snapGen);
    return problem ? { entries, problem } : { entries };
  }

  /** Replays the journal onto `entries` when it belongs to the snapshot read (or there is none). */
  async #loadJournal(entries: Map<string, unknown[]>, noSnapshot: boolean, snapGen: string | null): Promise<string | undefined> {
    if (snapGen !== null) this.#gen = snapGen;
    const j = await readBounded(this.journal);
    if (j.text === null) return j.problem;
    const text = j.text;
    const firstEnd = text.indexOf('\n');
    const header = firstEnd > 0 ? parseObject(text.slice(0, firstEnd)) : null;
    // A fresh journal is written whole (temporary file + rename): a bad header is not a torn write.
    if (header === null || header['journal'] !== JOURNAL_VERSION || typeof header['gen'] !== 'string') return `${this.journal} is not a journal (ignored)`;
    // Another generation: written before the snapshot was (its changes are in it), or orphaned.
    if (noSnapshot) this.#gen = header['gen'];
    else if (header['gen'] !== this.#gen) return undefined;
    let at = firstEnd + 1;
    let damaged = 0;
    while (at < text.length) {
      const end = text.indexOf('\n', at);
      if (end < 0) break; // a torn last line: a write cut short by a crash
      const line = text.slice(at, end);
      at = end + 1;
      if (line.length > MAX_LINE_BYTES || !applyLine(entries, line)) damaged++;
    }
    // Later appends must start on a line boundary: cut the torn tail off.
    const whole = Buffer.byteLength(text.slice(0, at));
    if (whole !== Buffer.byteLength(text)) {
      try {
        await truncate(this.journal, whole);
      } catch (err) {
        return `cannot cut the torn end off ${this.journal}: ${(err as Error).message}`;
      }
    }
    this.#journalOk = true;
    this.#journalBytes = whole;
    return damaged > 0 ? `${this.journal}: ${damaged} damaged line(s) skipped` : undefined;
  }

  /** Appends the changed addresses (and compacts when the journal has grown past its bound). */
  flush(): Promise<void> {
    return this.#serial(async () => {
      if (this.#changed.size > 0) {
        const lines: string[] = [];
        for (const ip of this.#changed) {
          const list = this.#src.current(ip);
          lines.push(JSON.stringify(list && list.length > 0 ? { ip, e: list } : { ip }));
        }
        this.#changed.clear();
        const text = `${lines.join('\n')}\n`;
        if (!this.#journalOk) await this.#freshJournal();
        try {
          await appendFile(this.journal, text, { mode: 0o600 });
        } catch (err) {
          // The append may have left part of a line: rewrite everything next time.
          this.#journalOk = false;
          this.#needCompact = true;
          throw err;
        }
        this.#journalBytes += Buffer.byteLength(text);
      }
      if (this.#needCompact || this.#journalBytes > Math.max(this.#minCompact, this.#snapshotBytes)) await this.#compact(true);
    });
  }

  /** Writes the whole store as a new snapshot and starts an empty journal (what `save` does). */
  compact(): Promise<void> {
    return this.#serial(() => this.#compact(true));
  }

  /** On close: a last snapshot, and no journal left behind. */
  close(): Promise<void> {
    return this.#serial(() => this.#compact(false));
  }

  #serial(fn: () => Promise<void>): Promise<void> {
    const next = this.#chain.then(fn);
    this.#chain = next.catch(() => {});
    return next;
  }

  async #compact(keepJournal: boolean): Promise<void> {
    // Taken in one synchronous step: changes made while the files are written go to the next flush.
    const entries = this.#src.all();
    this.#changed.clear();
    // Cleared before the write, so that a bound overflow during it (markChanged) asks for another.
    this.#needCompact = false;
    const gen = newGen();
    const text = JSON.stringify({ version: SNAPSHOT_VERSION, gen, savedAt: this.#now(), entries });
    await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
    try {
      await writeDurably(this.file, text);
    } catch (err) {
      this.#needCompact = true;
      throw err;
    }
    this.#gen = gen;
    this.#snapshotBytes = Buffer.byteLength(text);
    this.#journalOk = false;
    this.#journalBytes = 0;
    if (keepJournal) await this.#freshJournal();
    else await unlink(this.journal).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  /** Replaces the journal by an empty one of the current generation (temporary file + rename). */
  async #freshJournal(): Promise<void> {
    const header = `${JSON.stringify({ journal: JOURNAL_VERSION, gen: this.#gen })}\n`;
    await mkdir(dirname(this.journal), { recursive: true, mode: 0o700 });
    await writeDurably(this.journal, header);
    this.#journalOk = true;
    this.#journalBytes = Buffer.byteLength(header);
  }
}

/** A JSON object, or null for anything else (damaged text, an array, a number). */
function parseObject(text: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** One journal line onto `entries`; false when the line is damaged. */
function applyLine(entries: Map<string, unknown[]>, line: string): boolean {
  const rec = parseObject(line);
  if (rec === null || typeof rec['ip'] !== 'string') return false;
  const ip = rec['ip'];
  const e = rec['e'];
  if (e !== undefined && !Array.isArray(e)) return false;
  entries.delete(ip);
  if (e !== undefined) entries.set(ip, e as unknown[]);
  return true;
}

function newGen(): string {
  return randomBytes(8).toString('hex');
}

/** The file's text; null when it does not exist; a problem when it cannot be read or is too large. */
async function readBounded(file: string): Promise<{ text: string | null; problem?: string }> {
  try {
    const st = await stat(file);
    if (st.size > MAX_FILE_BYTES) return { text: null, problem: `${file} is ${st.size} bytes, over the ${MAX_FILE_BYTES}-byte limit (ignored)` };
    return { text: await readFile(file, 'utf8') };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { text: null };
    return { text: null, problem: `cannot read ${file}: ${(err as Error).message}` };
  }
}

/** Temporary file, fsync, rename over `file`: after a crash `file` is the old or the new text, whole. */
async function writeDurably(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(text);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}
