// One `[[list]]` table of the config: its shape and the checks made before anything is read.
import { ListError } from '../errors.ts';
import { LIST_FORMATS, isListFormat, type ListFormat } from './types.ts';

/** One `[[list]]` table of the config, already read from TOML (keys in docs/lists.md). */
export interface ListDef {
  name: string;
  path?: string;
  url?: string;
  format: string;
  egress: string;
  /** v2fly attribute filter: `["cn"]` keeps @cn entries, `["-ads"]` drops @ads ones. */
  attrs?: string[];
  /** `error` (default) or `skip`: what an unsupported field or rule type does. */
  unsupported?: 'error' | 'skip';
  /** Remote lists: pinned sha256 of the body (hex). Checked by the fetcher. */
  sha256?: string;
  /** Remote lists: download size limit in bytes. */
  maxBytes?: number;
  /** Remote lists: the egress the download goes through (default `direct`). */
  via?: string;
  /** Config line of the [[list]] table, for messages. */
  line?: number;
}

const LIST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function defError(def: Partial<ListDef>, message: string): ListError {
  return new ListError('SY_ERR_LIST_DEF', message + (def.line === undefined ? '' : ` (config line ${def.line})`), def.name ? { list: def.name } : {});
}

/** Checks one definition; returns the format. */
export function validateListDef(def: ListDef, egresses?: ReadonlySet<string>): ListFormat {
  if (typeof def.name !== 'string' || !LIST_NAME.test(def.name)) throw defError(def, `list name '${String(def.name)}' must be 1–64 of A-Z a-z 0-9 . _ - (starting with a letter or digit)`);
  const hasPath = typeof def.path === 'string' && def.path !== '';
  const hasUrl = typeof def.url === 'string' && def.url !== '';
  if (hasPath === hasUrl) throw defError(def, 'give exactly one of path and url');
  if (hasUrl) {
    let u: URL;
    try { u = new URL(def.url!); } catch { throw defError(def, `url '${def.url}' is not a URL`); }
    if (u.protocol !== 'https:') throw defError(def, `url must be https:// (got ${u.protocol})`);
  }
  if (typeof def.format !== 'string' || !isListFormat(def.format)) throw defError(def, `format '${String(def.format)}' is not one of ${LIST_FORMATS.join(', ')}`);
  if (typeof def.egress !== 'string' || def.egress === '') throw defError(def, 'egress is required');
  if (egresses && !egresses.has(def.egress)) throw defError(def, `egress '${def.egress}' is not declared`);
  if (def.unsupported !== undefined && def.unsupported !== 'error' && def.unsupported !== 'skip') throw defError(def, "unsupported must be 'error' or 'skip'");
  if (def.attrs !== undefined && (!Array.isArray(def.attrs) || def.format !== 'v2fly')) throw defError(def, 'attrs is a list of v2fly attributes (format = "v2fly" only)');
  if (def.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(def.sha256)) throw defError(def, 'sha256 must be 64 hex digits');
  if (def.sha256 !== undefined && !hasUrl) throw defError(def, 'sha256 applies to url lists only');
  if (def.maxBytes !== undefined && (!Number.isSafeInteger(def.maxBytes) || def.maxBytes < 1 || !hasUrl)) throw defError(def, 'max_bytes is a positive integer, for url lists only');
  if (def.via !== undefined) {
    if (typeof def.via !== 'string' || def.via === '' || !hasUrl) throw defError(def, 'via names the egress a url list is fetched through');
    if (egresses && !egresses.has(def.via)) throw defError(def, `via egress '${def.via}' is not declared`);
  }
  return def.format;
}

