// The config line behind a decision made by a list rule, for `explain`.
import type { Cidr, Decision, RuleOrigin } from '../policy/types.ts';
import { domainPatternText } from '../policy/engine/domain-index.ts';
import { parseCidr } from './normalize.ts';
import type { ListsResult } from './to-rules.ts';

/**
 * The origin of a decision with the line filled in: for `entry` rules it is the rule's origin;
 * for grouped rules it looks the matched pattern up (a linear scan — explain is interactive).
 */
export function listOriginOf(result: Pick<ListsResult, 'patternLines' | 'rules'>, d: Pick<Decision, 'rule' | 'matched'>): RuleOrigin | null {
  if (!d.rule) return null;
  const lines = result.patternLines.get(d.rule.index);
  if (!lines) return d.rule.origin;
  const rule = result.rules.find((r) => r.index === d.rule!.index);
  if (!rule) return d.rule.origin;
  for (const m of d.matched) {
    if (m.condition === 'domain') {
      const i = rule.domains.findIndex((p) => domainPatternText(p) === m.pattern);
      if (i >= 0) return { ...d.rule.origin, ...(lines.domainFiles?.has(i) ? { file: lines.domainFiles.get(i)! } : {}), line: lines.domains[i]! };
    } else if (m.condition === 'cidr') {
      const want = parseCidrSafe(m.pattern);
      const i = want === null ? -1 : rule.cidrs.findIndex((c) => c.family === want.family && c.prefix === want.prefix && c.address === want.address);
      if (i >= 0) return { ...d.rule.origin, ...(lines.cidrFiles?.has(i) ? { file: lines.cidrFiles.get(i)! } : {}), line: lines.cidrs[i]! };
    }
  }
  return d.rule.origin;
}

function parseCidrSafe(text: string): Cidr | null {
  try {
    return parseCidr(text).cidr;
  } catch {
    return null;
  }
}
