// The I/O half of `[[list]]`: reads list bodies and turns them into rules (src/lists is pure apart
// from the reader it is given; src/policy never reads files).
//
// Two steps, so that a revision says exactly which list contents it runs with:
//   pinLists(config)  — sync: reads each `path` list, records the sha256 of its body in the
//                       config (`lists[i].content`) and keeps the body in the state dir's cache.
//                       A `url` list takes the content of the approved (active) revision, or none.
//                       A changed file therefore changes the config's hash and becomes a revision.
//   expandLists(config) — async: reads each pinned body (cache first, so a restart needs neither
//                       the network nor unchanged files), runs listsToRules, appends the rules.
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, mkdirSync, openSync, readSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve as resolvePath } from 'node:path';
import { ListError } from './errors.ts';
import { listsToRules, listOriginOf, type ListDef, type ListsResult } from './lists/index.ts';
import { DEFAULT_LIMITS } from './lists/types.ts';
import type { Config, Decision, ListConfig, RuleOrigin } from './policy/types.ts';

export type { ListsResult };

/** `[[list]]` as listsToRules takes it. */
export function listDefOf(l: ListConfig): ListDef {
  return {
    name: l.name,
    ...(l.path !== null ? { path: l.path } : {}),
    ...(l.url !== null ? { url: l.url } : {}),
    format: l.format,
    egress: l.egress,
    ...(l.attrs.length ? { attrs: l.attrs } : {}),
    unsupported: l.unsupported,
    ...(l.sha256 !== null ? { sha256: l.sha256 } : {}),
    ...(l.maxBytes !== null ? { maxBytes: l.maxBytes } : {}),
    ...(l.url !== null ? { via: l.via } : {}),
    ...(l.line !== undefined ? { line: l.line } : {}),
  };
}

export function sha256Hex(b: Uint8Array | string): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Content-addressed cache of list bodies: `<stateDir>/lists/<sha256>`. */
export class ListBodyCache {
  readonly dir: string;
  constructor(stateDir: string) {
    this.dir = join(stateDir, 'lists');
  }
  put(body: Uint8Array): string {
    const sha = sha256Hex(body);
    const p = join(this.dir, sha);
    if (!existsSync(p)) {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const tmp = `${p}.${process.pid}.tmp`;
      writeFileSync(tmp, body, { mode: 0o600 });
      renameSync(tmp, p);
    }
    return sha;
  }
  /** The body with this hash, checked against it (a corrupted cache file is not used). */
  get(sha: string): Buffer | null {
    if (!/^[0-9a-f]{64}$/.test(sha)) return null;
    try {
      const b = readFileSync(join(this.dir, sha));
      return sha256Hex(b) === sha ? b : null;
    } catch {
      return null;
    }
  }
}

/** Where a `path` list lives: relative paths are relative to the config file's directory. */
export function listPath(l: ListConfig, configPath: string | null): string {
  const p = l.path!;
  if (isAbsolute(p) || !configPath) return p;
  return resolvePath(dirname(configPath), p);
}

/** Reads a list file, bounded like src/config-file.ts (a huge file is refused, not read whole). */
export function readListFile(path: string, list: string, maxBytes = DEFAULT_LIMITS.maxBytes): Buffer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new ListError('SY_ERR_LIST_READ', `cannot read list file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { list, file: path });
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new ListError('SY_ERR_LIST_READ', `cannot read list file ${path}: it is a directory`, { list, file: path });
    if (st.size > maxBytes) throw new ListError('SY_ERR_LIST_TOO_LARGE', `list file ${path} is ${st.size} bytes; the limit is ${maxBytes}`, { list, file: path });
    const buf = Buffer.alloc(Math.min(maxBytes + 1, Math.max(st.size + 1, 65536)));
    let n = 0;
    for (;;) {
      if (n === buf.length) {
        if (n > maxBytes) throw new ListError('SY_ERR_LIST_TOO_LARGE', `list file ${path} is over ${maxBytes} bytes`, { list, file: path });
        break;
      }
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
    }
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

export interface PinOptions {
  configPath: string | null;
  cache: ListBodyCache | null;
  /** url lists: the approved content hash, by list name (from the active revision). */
  approved?: ReadonlyMap<string, { url: string; content: string | null }>;
}

/** Returns `config` with every list's `content` set (see the header). Throws a ListError for an unreadable file. */
export function pinLists(config: Config, o: PinOptions): Config {
  if (!config.lists?.length) return config;
  const lists = config.lists.map((l) => {
    if (l.path !== null) {
      const body = readListFile(listPath(l, o.configPath), l.name);
      return { ...l, content: o.cache ? o.cache.put(body) : sha256Hex(body) };
    }
    const a = o.approved?.get(l.name);
    return { ...l, content: a && a.url === l.url ? a.content : null };
  });
  return { ...config, lists };
}

/** Approved url contents of a config, for pinLists. */
export function approvedContents(c: Config | null): Map<string, { url: string; content: string | null }> {
  const m = new Map<string, { url: string; content: string | null }>();
  for (const l of c?.lists ?? []) if (l.url !== null) m.set(l.name, { url: l.url, content: l.content ?? null });
  return m;
}

export interface Expanded {
  /** The config with the lists' rules appended (what compilePolicy gets). */
  config: Config;
  result: ListsResult | null;
  /** url lists without an approved body: they contribute nothing yet. */
  waiting: string[];
}

export interface ExpandOptions {
  configPath: string | null;
  cache: ListBodyCache | null;
  platform?: 'linux' | 'windows';
}

/**
 * Appends the lists' rules. A pinned body is read from the cache (and must hash to the pin); with
 * no cache, a path list is read from its file. Any failed list fails the whole expansion: a policy
 * never runs with half its lists.
 */
export async function expandLists(config: Config, o: ExpandOptions): Promise<Expanded> {
  const lists = config.lists ?? [];
  if (!lists.length) return { config, result: null, waiting: [] };
  const waiting: string[] = [];
  const defs: ListDef[] = [];
  const bodies = new Map<string, Uint8Array>();
  for (const l of lists) {
    const def = listDefOf(l);
    const ref = l.path !== null ? listPath(l, o.configPath) : l.url!;
    if (l.content) {
      const b = o.cache?.get(l.content) ?? (l.path !== null ? readListFile(ref, l.name) : null);
      if (!b || sha256Hex(b) !== l.content) {
        throw new ListError('SY_ERR_LIST_READ', `list '${l.name}': the approved body (sha256 ${l.content.slice(0, 12)}…) is not in the cache${l.path !== null ? ' and the file has changed since' : ''}`, { list: l.name, file: ref });
      }
      bodies.set(ref, b);
    } else if (l.url !== null) {
      waiting.push(l.name);
      continue;
    }
    defs.push(l.path !== null ? { ...def, path: ref } : def);
  }
  const result = await listsToRules(
    defs,
    async (ref) => bodies.get(ref) ?? (/^https:/.test(ref) ? Promise.reject(new Error('includes of url lists are not fetched')) : readListFile(ref, 'include')),
    {
      startIndex: config.rules.length,
      egresses: new Set(Object.keys(config.egress)),
      ...(o.platform ? { platform: o.platform } : {}),
      ...(granularityOf(lists) ? { granularity: granularityOf(lists)! } : {}),
    },
  );
  if (result.errors.length) throw result.errors[0]!;
  return { config: { ...config, rules: [...config.rules, ...result.rules] }, result, waiting };
}

// listsToRules takes one granularity for all lists; a per-list setting other than `auto` wins when
// all lists that set one agree (documented in docs/lists.md).
function granularityOf(lists: ListConfig[]): 'entry' | 'list' | undefined {
  const set = new Set(lists.map((l) => l.granularity).filter((g) => g !== 'auto'));
  return set.size === 1 ? ([...set][0] as 'entry' | 'list') : undefined;
}

/** The list, file and line a decision came from (grouped lists included), or null for a config rule. */
export function listOrigin(result: ListsResult | null, d: Decision): RuleOrigin | null {
  if (!result) return null;
  const o = listOriginOf(result, d);
  return o && o.list !== undefined ? o : null;
}
