// Imported artifacts: a whole config, or a rule list, turned into the config of a candidate
// revision. Both go through the config loader, so every limit of src/policy applies to them:
// size (1 MiB), UTF-8, TOML nesting depth, schema version, rule and pattern counts, pattern
// lengths, and unknown keys (any key the schema does not know is refused, so a field this build
// cannot honour never passes silently).
//
// A **rule list** is a TOML file holding only `version = 1` and `[[rule]]` tables. Its rules are
// appended to the running config's rules (after dropping rules an earlier import of the same
// file added: a linked list replaces its own rules, never anyone else's), and the merged config
// is loaded again as a whole so egress names, counts and patterns are checked in context.
// Anything else is a **config**: it replaces the running config.
import { ConfigError } from '../errors.ts';
import { basename } from 'node:path';
import { ListError } from '../errors.ts';
import { configToToml, loadConfigFromBytes, loadConfigFromString, parseConfigToml, type Config } from '../policy/index.ts';
import type { ListConfig } from '../policy/types.ts';
import { parseList } from '../lists/index.ts';
import { sha256Hex, type ListBodyCache } from '../lists-load.ts';

export type ArtifactKind = 'config' | 'rule-list';

export interface BuiltImport {
  kind: ArtifactKind;
  config: Config;
  /** Rules the artifact contributes (a list's rules, or a config's rules). */
  rules: number;
}

/** True for a TOML document whose top level is only `version` and `rule`. */
function isRuleList(value: Record<string, unknown>): boolean {
  const keys = Object.keys(value);
  return keys.includes('rule') && keys.every((k) => k === 'version' || k === 'rule');
}

/**
 * The list's text without its top-level `version` line, so it can follow another document's
 * tables. Only lines before the first table header are looked at (after it, a `version` key
 * would belong to a table, and the loader would refuse it as an unknown rule key).
 */
function withoutVersion(text: string): string {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const t = lines[i]!.trim();
    if (t.startsWith('[')) break;
    if (/^version\s*=/.test(t)) lines[i] = '';
  }
  return lines.join('\n');
}

export function buildImport(bytes: Uint8Array, source: string, running: Config): BuiltImport {
  const { value, text } = parseConfigToml(bytes, source);
  if (!isRuleList(value)) {
    const config = loadConfigFromBytes(bytes, source);
    return { kind: 'config', config, rules: config.rules.length };
  }
  if (value['version'] !== 1) {
    throw new ConfigError('SY_ERR_CONFIG_VERSION', `${source}: a rule list needs \`version = 1\` at the top (this build reads version 1)`, [
      { path: 'version', message: 'missing or unsupported' },
    ]);
  }
  const kept = running.rules.filter((r) => r.origin.list !== source);
  const base: Config = { ...running, rules: kept.map((r, i) => ({ ...r, index: i })) };
  const merged = loadConfigFromString(`${configToToml(base)}\n# rules from ${source.replace(/\n/g, ' ')}\n${withoutVersion(text)}`, source);
  // Restore what the round trip through TOML cannot carry: where each rule came from.
  merged.rules.forEach((r, i) => {
    r.origin = i < kept.length ? { ...kept[i]!.origin } : { list: source };
  });
  merged.source = running.source;
  // [[list]] tables come back from TOML without their pinned bodies: keep the running ones.
  if (running.lists) merged.lists = running.lists;
  else delete merged.lists;
  merged.exempt.forEach((e, i) => {
    const was = running.exempt[i];
    if (was) e.origin = { ...was.origin };
  });
  return { kind: 'rule-list', config: merged, rules: merged.rules.length - kept.length };
}

// ------------------------------------------------------------------ list formats

/**
 * A rule list in one of the list formats (plain, v2fly, sing-box, Clash, NetRuleRouter) becomes a
 * `[[list]]` of the running config whose body is pinned by hash (src/lists-load.ts): the entries
 * are parsed strictly here (a bad line refuses the import with its line number), and activation
 * compiles them from the cached body. Importing the same file again replaces its own list.
 */
export async function buildListImport(
  body: Buffer,
  path: string,
  running: Config,
  o: { format: ListConfig['format']; egress: string; cache: ListBodyCache },
): Promise<BuiltImport> {
  if (!Object.hasOwn(running.egress, o.egress)) {
    throw new ListError('SY_ERR_LIST_DEF', `egress '${o.egress}' is not declared in the running config (declared: ${Object.keys(running.egress).join(', ')})`, { file: path });
  }
  const others = (running.lists ?? []).filter((l) => !(l.path === path && l.url === null));
  let name = basename(path).replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[^A-Za-z0-9]+/, '').slice(0, 48) || 'list';
  if (others.some((l) => l.name === name)) name = `${name.slice(0, 40)}-${sha256Hex(path).slice(0, 8)}`;
  const content = o.cache.put(body);
  const def: ListConfig = {
    name,
    path,
    url: null,
    format: o.format,
    egress: o.egress,
    attrs: [],
    unsupported: 'error',
    granularity: 'auto',
    sha256: null,
    maxBytes: null,
    via: 'direct',
    refreshSeconds: 6 * 3600,
    content,
  };
  return { kind: 'rule-list', config: { ...running, lists: [...others, def] }, rules: await countEntries(body, o.format, name, path) };
}

async function countEntries(body: Buffer, format: ListConfig['format'], list: string, file: string): Promise<number> {
  let n = 0;
  await parseList(body, format, { list, file }, () => void n++);
  return n;
}
