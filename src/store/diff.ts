// What changed between two configs, in the terms a person reviews: which destinations (domain
// patterns, CIDRs, apps) were added, removed or sent elsewhere, the default, exemptions, egress
// definitions and other sections. Pure: no I/O, safe to call anywhere (`switchyard diff`, risk).
//
// A rule is flattened into entries, one per pattern, keyed by what it matches: a rule with
// domains yields domain entries (its app/port/network conditions become part of the key, since
// "youtube.com for firefox" and "youtube.com" are different destinations); a rule without domains
// but with CIDRs yields CIDR entries; else app entries; else one `other` entry. When the same key
// appears twice, the first rule (lowest index) is the one that counts, as in the engine.
import type { AppPattern, Cidr, Config, DomainPattern, EgressConfig, ExemptConfig, RuleConfig } from '../policy/types.ts';
import { canonicalJson } from './canonical.ts';

export type EntryKind = 'domain' | 'cidr' | 'app' | 'other';

export interface Entry {
  key: string;
  kind: EntryKind;
  /** `suffix`/`full`/`keyword`/`regexp` for domains, `name`/`path`/`glob`/`group` for apps, `cidr`, `other`. */
  patternKind: string;
  /** The pattern as text (`youtube.com`, `10.0.0.0/8`, `firefox.exe`). */
  pattern: string;
  /** Other conditions of the rule, as text ('' when none). */
  qualifier: string;
  egress: string;
  rule: string;
}

export interface Reroute {
  entry: Entry;
  from: string;
  to: string;
}

export interface ConfigDiff {
  added: Entry[];
  removed: Entry[];
  rerouted: Reroute[];
  default: { from: string; to: string } | null;
  exemptAdded: string[];
  exemptRemoved: string[];
  egressAdded: string[];
  egressRemoved: string[];
  /** Egresses whose definition (type, endpoint, interface, fallback...) changed. */
  egressChanged: string[];
  /** Other top-level sections that changed: dns, inbound, enforce, control. */
  sections: string[];
  /** Rules whose names changed position only are not changes; this counts entries touched. */
  changedEntries: number;
  unchanged: boolean;
}

function cidrText(c: Cidr): string {
  return `${c.address}/${c.prefix}`;
}
function appText(a: AppPattern): string {
  return `${a.kind}:${a.value}`;
}
function domainText(d: DomainPattern): string {
  return d.value;
}

function ruleId(r: RuleConfig): string {
  return r.name ?? `rule#${r.index + 1}`;
}

function qualifierOf(r: RuleConfig, without: 'apps' | 'cidrs' | 'none'): string {
  const q: string[] = [];
  if (without !== 'apps' && r.apps.length > 0) q.push(`apps=${r.apps.map(appText).sort().join(',')}`);
  if (without === 'none' && r.cidrs.length > 0) q.push(`cidrs=${r.cidrs.map(cidrText).sort().join(',')}`);
  if (r.ports.length > 0) q.push(`ports=${r.ports.map((p) => (p.from === p.to ? `${p.from}` : `${p.from}-${p.to}`)).join(',')}`);
  if (r.network !== null) q.push(`network=${r.network}`);
  return q.join(' ');
}

/** Flattens rules into entries keyed by what they match; first occurrence wins. */
export function entriesOf(cfg: Config): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const put = (e: Omit<Entry, 'key'>) => {
    const key = `${e.kind}:${e.patternKind}:${e.pattern}${e.qualifier ? ` [${e.qualifier}]` : ''}`;
    if (!out.has(key)) out.set(key, { key, ...e });
  };
  const rules = [...cfg.rules].sort((a, b) => a.index - b.index);
  for (const r of rules) {
    const base = { egress: r.egress, rule: ruleId(r) };
    if (r.domains.length > 0) {
      const qualifier = qualifierOf(r, 'none');
      for (const d of r.domains) put({ kind: 'domain', patternKind: d.kind, pattern: domainText(d), qualifier, ...base });
    } else if (r.cidrs.length > 0) {
      const qualifier = qualifierOf(r, 'cidrs');
      for (const c of r.cidrs) put({ kind: 'cidr', patternKind: 'cidr', pattern: cidrText(c), qualifier, ...base });
    } else if (r.apps.length > 0) {
      const qualifier = qualifierOf(r, 'apps');
      for (const a of r.apps) put({ kind: 'app', patternKind: a.kind, pattern: a.value, qualifier, ...base });
    } else {
      put({ kind: 'other', patternKind: 'other', pattern: '*', qualifier: qualifierOf(r, 'none'), ...base });
    }
  }
  return out;
}

function exemptionsOf(list: readonly ExemptConfig[], enforceUsers: readonly string[]): Set<string> {
  const s = new Set<string>();
  for (const e of list) {
    for (const a of e.apps) s.add(`app ${appText(a)}`);
    for (const u of e.users) s.add(`user ${u}`);
    for (const c of e.cidrs) s.add(`cidr ${cidrText(c)}`);
  }
  for (const u of enforceUsers) s.add(`user ${u}`);
  return s;
}

/** The parts of an egress that decide where traffic goes (not its line number). */
function egressShape(e: EgressConfig): string {
  const { line: _line, ...rest } = e;
  return canonicalJson(rest);
}

function sectionShape(v: unknown, drop: string[] = []): string {
  const o = { ...(v as Record<string, unknown>) };
  for (const k of drop) delete o[k];
  return canonicalJson(o);
}

export function diffConfigs(before: Config | null, after: Config): ConfigDiff {
  const a = before ? entriesOf(before) : new Map<string, Entry>();
  const b = entriesOf(after);
  const added: Entry[] = [];
  const removed: Entry[] = [];
  const rerouted: Reroute[] = [];
  for (const [k, e] of b) {
    const old = a.get(k);
    if (old === undefined) added.push(e);
    else if (old.egress !== e.egress) rerouted.push({ entry: e, from: old.egress, to: e.egress });
  }
  for (const [k, e] of a) if (!b.has(k)) removed.push(e);

  const exA = before ? exemptionsOf(before.exempt, before.enforce.exemptUsers) : new Set<string>();
  const exB = exemptionsOf(after.exempt, after.enforce.exemptUsers);
  const exemptAdded = [...exB].filter((x) => !exA.has(x)).sort();
  const exemptRemoved = [...exA].filter((x) => !exB.has(x)).sort();

  const egA = before?.egress ?? {};
  const egB = after.egress;
  const egressAdded = Object.keys(egB).filter((k) => !(k in egA)).sort();
  const egressRemoved = Object.keys(egA).filter((k) => !(k in egB)).sort();
  const egressChanged = Object.keys(egB)
    .filter((k) => k in egA && egressShape(egA[k]!) !== egressShape(egB[k]!))
    .sort();

  const sections: string[] = [];
  if (before) {
    if (sectionShape(before.dns) !== sectionShape(after.dns)) sections.push('dns');
    if (sectionShape(before.inbound) !== sectionShape(after.inbound)) sections.push('inbound');
    if (sectionShape(before.enforce, ['exemptUsers']) !== sectionShape(after.enforce, ['exemptUsers'])) sections.push('enforce');
    if (sectionShape(before.control) !== sectionShape(after.control)) sections.push('control');
  }
  const def = before && before.default !== after.default ? { from: before.default, to: after.default } : null;
  const changedEntries = added.length + removed.length + rerouted.length;
  const unchanged =
    changedEntries === 0 &&
    def === null &&
    exemptAdded.length + exemptRemoved.length + egressAdded.length + egressRemoved.length + egressChanged.length + sections.length === 0 &&
    before !== null;
  return { added, removed, rerouted, default: def, exemptAdded, exemptRemoved, egressAdded, egressRemoved, egressChanged, sections, changedEntries, unchanged };
}

/** The diff as text lines, for `switchyard diff` and alerts. */
export function describeDiff(d: ConfigDiff): string[] {
  if (d.unchanged) return ['no policy change'];
  const lines: string[] = [];
  const ent = (e: Entry) => `${e.kind} ${e.patternKind === e.kind ? '' : `${e.patternKind} `}${e.pattern}${e.qualifier ? ` [${e.qualifier}]` : ''}`;
  if (d.default) lines.push(`default: ${d.default.from} -> ${d.default.to}`);
  for (const r of d.rerouted) lines.push(`~ ${ent(r.entry)}: ${r.from} -> ${r.to} (${r.entry.rule})`);
  for (const e of d.added) lines.push(`+ ${ent(e)} -> ${e.egress} (${e.rule})`);
  for (const e of d.removed) lines.push(`- ${ent(e)} (was -> ${e.egress}, ${e.rule})`);
  for (const x of d.exemptAdded) lines.push(`+ exempt ${x}`);
  for (const x of d.exemptRemoved) lines.push(`- exempt ${x}`);
  for (const x of d.egressAdded) lines.push(`+ egress ${x}`);
  for (const x of d.egressRemoved) lines.push(`- egress ${x}`);
  for (const x of d.egressChanged) lines.push(`~ egress ${x} (definition changed)`);
  for (const s of d.sections) lines.push(`~ [${s}] changed`);
  return lines;
}
