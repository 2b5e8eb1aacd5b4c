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
import { configToToml, loadConfigFromBytes, loadConfigFromString, parseConfigToml, type Config } from '../policy/index.ts';

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
  merged.exempt.forEach((e, i) => {
    const was = running.exempt[i];
    if (was) e.origin = { ...was.origin };
  });
  return { kind: 'rule-list', config: merged, rules: merged.rules.length - kept.length };
}
