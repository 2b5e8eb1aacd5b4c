// Compares the table read back from the kernel with the model it was rendered from. Returns the
// problems in words; empty means the kernel holds what we meant. A `socket cgroupv2` match that
// lists as a bare number means the directory it was resolved from is gone (removed, maybe
// re-created by hand with a new id): that rule no longer matches anything.
import type { ListedTable } from './nft-cli.ts';
import type { TableModel } from './nft-script.ts';

const CGROUP_IN_RULE = /socket cgroupv2 level \d+ "([^"]+)"/g;

export function verifyTable(model: TableModel, listed: ListedTable): string[] {
  const problems: string[] = [];
  for (const s of model.sets) {
    const l = listed.sets.get(s.name);
    if (!l) problems.push(`set ${s.name} is missing`);
    else if (l.type !== s.type) problems.push(`set ${s.name} has type ${l.type}, expected ${s.type}`);
    else if (!l.flags.includes(s.kind)) problems.push(`set ${s.name} lacks flag ${s.kind}`);
  }
  for (const c of model.chains) {
    const l = listed.chains.get(c.name);
    if (!l) {
      problems.push(`chain ${c.name} is missing`);
      continue;
    }
    if (c.base !== null && l.hook !== 'output') problems.push(`chain ${c.name} is not hooked at output`);
    const rules = listed.rules.filter((r) => r.chain === c.name);
    if (rules.length !== c.rules.length) problems.push(`chain ${c.name} has ${rules.length} rules, expected ${c.rules.length}`);
    // Rules keep their order: compare the cgroup each one names with what we asked for.
    for (let i = 0; i < Math.min(rules.length, c.rules.length); i++) {
      const want = [...c.rules[i]!.matchAll(CGROUP_IN_RULE)].map((m) => m[1]!);
      const got = rules[i]!.cgroupv2;
      for (let k = 0; k < want.length; k++) {
        const g = got[k];
        if (g === want[k]) continue;
        problems.push(
          g !== undefined && /^\d+$/.test(g)
            ? `chain ${c.name} rule ${i + 1} matches cgroup id ${g}, whose directory ${want[k]} was removed or re-created`
            : `chain ${c.name} rule ${i + 1} matches cgroup ${g ?? '(none)'}, expected ${want[k]}`,
        );
      }
    }
  }
  return problems;
}

/** True when every problem is a stale cgroup id (repairable by re-applying the same plan). */
export function onlyStaleCgroups(problems: string[]): boolean {
  return problems.length > 0 && problems.every((p) => p.includes('was removed or re-created'));
}
