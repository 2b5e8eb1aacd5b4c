// One check of a remote list: fetch (conditional on what is active), parse the new body strictly,
// and diff it against the active body. The result is a candidate for a pending revision or
// `unchanged`; nothing here activates anything, and on any error the caller's active state is
// untouched because this function only reads it.
import { ListError } from '../errors.ts';
import { diffEntries, type ListDiff } from './diff.ts';
import { fetchList, type ConnectFn, type FetchOptions } from './fetch.ts';
import { parseList, validateListDef, type ListDef } from './index.ts';
import type { ListEntry } from './types.ts';

/** The approved, active version of a remote list (what the store keeps). */
export interface ActiveRemote {
  body: Uint8Array | string;
  etag: string | null;
  lastModified: string | null;
  sha256: string;
}

export type RemoteCheck =
  | { status: 'unchanged'; etag: string | null; lastModified: string | null }
  | {
      status: 'pending';
      body: Buffer;
      sha256: string;
      etag: string | null;
      lastModified: string | null;
      /** Against the active version; everything is `added` on a first fetch. */
      diff: ListDiff;
      entries: number;
      notices: string[];
    };

export interface CheckOptions {
  ca?: FetchOptions['ca'];
  connect?: ConnectFn;
  timeoutMs?: number;
}

export async function checkRemoteList(def: ListDef, active: ActiveRemote | null, opts: CheckOptions = {}): Promise<RemoteCheck> {
  const format = validateListDef(def);
  if (!def.url) throw new ListError('SY_ERR_LIST_DEF', 'not a url list', { list: def.name });
  const res = await fetchList({
    url: def.url,
    list: def.name,
    ...(def.maxBytes === undefined ? {} : { maxBytes: def.maxBytes }),
    ...(def.sha256 === undefined ? {} : { sha256: def.sha256 }),
    ...(active ? { previous: { etag: active.etag, lastModified: active.lastModified, sha256: active.sha256 } } : {}),
    ...(opts.ca === undefined ? {} : { ca: opts.ca }),
    ...(opts.connect === undefined ? {} : { connect: opts.connect }),
    ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
  });
  if (res.status === 'unchanged') return { status: 'unchanged', etag: res.etag, lastModified: res.lastModified };
  const body = res.body!;
  // A body that does not parse never becomes a candidate: the error names its line.
  const parseOpts = { list: def.name, file: def.url, ...(def.unsupported ? { unsupported: def.unsupported } : {}), ...(def.attrs ? { attrs: def.attrs } : {}) };
  const next = await parseList(body, format, parseOpts);
  let before: ListEntry[] = [];
  if (active) before = (await parseList(active.body, format, parseOpts)).entries;
  return {
    status: 'pending',
    body,
    sha256: res.sha256!,
    etag: res.etag,
    lastModified: res.lastModified,
    diff: diffEntries(before, next.entries),
    entries: next.entries.length,
    notices: next.notices,
  };
}
