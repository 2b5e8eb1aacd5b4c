// How risky a policy change is, from its diff. Pure. The level decides what happens to a
// candidate made by `switchyard reload`: low is activated at once (audited), medium and high
// wait for `switchyard approve`; high also raises a persistent alert.
//
//   low     only a few (<= FEW_NAMES) exact names added (`full:` patterns), nothing else
//   medium  broader additions: suffix/keyword/regexp names, CIDRs, app rules, more than a few
//           names; removals of non-block entries; new egresses; dns/inbound settings
//   high    the default egress changes; a block rule is removed or an entry leaves `block`;
//           exemptions are added or removed (an exemption bypasses every rule); an existing
//           destination is sent elsewhere; an egress is removed or redefined (everything routed
//           to it moves); enforcement or control settings change; a mass change (> MASS_CHANGE
//           entries)
//
// A first revision (nothing to compare with) is judged as "everything added".
//
// Each reason is one line a person can read in `switchyard diff`.
import type { ConfigDiff } from './diff.ts';

export type RiskLevel = 'low' | 'medium' | 'high';

export interface RiskAssessment {
  level: RiskLevel;
  reasons: string[];
}

export const FEW_NAMES = 5;
export const MASS_CHANGE = 50;

const ORDER: Record<RiskLevel, number> = { low: 0, medium: 1, high: 2 };

export function classifyRisk(d: ConfigDiff): RiskAssessment {
  const high: string[] = [];
  const medium: string[] = [];

  if (d.default) high.push(`default egress changes from ${d.default.from} to ${d.default.to}`);
  const removedBlocks = d.removed.filter((e) => e.egress === 'block');
  if (removedBlocks.length > 0) high.push(`${removedBlocks.length} block ${removedBlocks.length === 1 ? 'entry' : 'entries'} removed`);
  const unblocked = d.rerouted.filter((r) => r.from === 'block');
  if (unblocked.length > 0) high.push(`${unblocked.length} blocked ${unblocked.length === 1 ? 'entry' : 'entries'} unblocked`);
  const moved = d.rerouted.length - unblocked.length;
  if (moved > 0) high.push(`${moved} existing ${moved === 1 ? 'destination' : 'destinations'} rerouted`);
  if (d.exemptRemoved.length > 0) high.push(`exemptions removed: ${d.exemptRemoved.join(', ')}`);
  if (d.exemptAdded.length > 0) high.push(`exemptions added (they bypass every rule): ${d.exemptAdded.join(', ')}`);
  if (d.egressRemoved.length > 0) high.push(`egresses removed: ${d.egressRemoved.join(', ')}`);
  if (d.egressChanged.length > 0) high.push(`egresses redefined: ${d.egressChanged.join(', ')}`);
  for (const s of d.sections) if (s === 'enforce' || s === 'control') high.push(`[${s}] settings change`);
  if (d.changedEntries > MASS_CHANGE) high.push(`mass change: ${d.changedEntries} entries (more than ${MASS_CHANGE})`);

  const broad = d.added.filter((e) => !(e.kind === 'domain' && e.patternKind === 'full'));
  const byKind = new Map<string, number>();
  for (const e of broad) {
    const k = e.kind === 'domain' ? `${e.patternKind} domain` : e.kind === 'other' ? 'port/network' : e.kind;
    byKind.set(k, (byKind.get(k) ?? 0) + 1);
  }
  for (const [k, n] of byKind) medium.push(`${n} ${k} ${n === 1 ? 'pattern' : 'patterns'} added`);
  const names = d.added.length - broad.length;
  if (names > FEW_NAMES) medium.push(`${names} exact names added (more than ${FEW_NAMES})`);
  const removedOther = d.removed.length - removedBlocks.length;
  if (removedOther > 0) medium.push(`${removedOther} ${removedOther === 1 ? 'entry' : 'entries'} removed (their traffic falls to other rules or the default)`);
  if (d.egressAdded.length > 0) medium.push(`egresses added: ${d.egressAdded.join(', ')}`);
  for (const s of d.sections) if (s === 'dns' || s === 'inbound') medium.push(`[${s}] settings change`);

  if (high.length > 0) return { level: 'high', reasons: [...high, ...medium] };
  if (medium.length > 0) return { level: 'medium', reasons: medium };
  if (d.unchanged) return { level: 'low', reasons: ['no policy change'] };
  return { level: 'low', reasons: [`${names} exact ${names === 1 ? 'name' : 'names'} added`] };
}

export function maxRisk(a: RiskLevel, b: RiskLevel): RiskLevel {
  return ORDER[a] >= ORDER[b] ? a : b;
}

/**
 * Whether a candidate may be activated without `switchyard approve`: only a low-risk change that
 * a person asked for at a terminal (`switchyard reload`, channel cli or file). File watchers,
 * imports, linked files and scripts (interactive false, or channel import/linked) always wait.
 */
export function activatesAtOnce(risk: RiskAssessment, provenance: { channel: string; interactive: boolean }): boolean {
  if (!provenance.interactive) return false;
  if (provenance.channel !== 'cli' && provenance.channel !== 'file') return false;
  return risk.level === 'low';
}
