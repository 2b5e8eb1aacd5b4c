// Which group a process belongs in, from its executable: the watcher's rules. Patterns are the
// config's AppPattern (src/policy/types.ts): name (lower-cased base name), path, glob (path glob:
// `*` and `?` within a component, `**` across components). `group` patterns name a placement, not a
// program, so they never match here.
import type { AppPattern } from '../../policy/types.ts';
import type { PlacementRule } from '../types.ts';

export type WatchRule = PlacementRule;

export function globToRegExp(glob: string): RegExp {
  let re = '^';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        re += '.*';
        i++;
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(re + '$');
}

export interface CompiledRule {
  group: string;
  test(exe: string, name: string): boolean;
}

export function compileRules(rules: WatchRule[]): CompiledRule[] {
  return rules.map((r) => {
    const names = new Set<string>();
    const paths = new Set<string>();
    const globs: RegExp[] = [];
    for (const p of r.patterns) {
      if (p.kind === 'name') names.add(p.value.toLowerCase());
      else if (p.kind === 'path') paths.add(p.value);
      else if (p.kind === 'glob') globs.push(globToRegExp(p.value));
    }
    return { group: r.group, test: (exe, name) => names.has(name.toLowerCase()) || paths.has(exe) || globs.some((g) => g.test(exe)) };
  });
}

/** First matching rule's group, or null. */
export function groupFor(rules: CompiledRule[], exe: string): string | null {
  const name = exe.slice(exe.lastIndexOf('/') + 1).replace(/ \(deleted\)$/, '');
  for (const r of rules) if (r.test(exe, name)) return r.group;
  return null;
}

export { placementRules as watchRulesFromConfig } from '../plan.ts';
