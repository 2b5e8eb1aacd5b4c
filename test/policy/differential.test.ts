// decide() against the brute-force reference ranker (reference-ranker.ts) on seeded random rule
// sets and queries; explain() must agree with decide(); and a metamorphic check: adding a more
// specific rule changes only the decisions of queries it matches.
// Scale: SWITCHYARD_TEST_SCALE (default 1 = 150 configs × 200 queries, 60 metamorphic rounds).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compilePolicy, loadConfigFromString, type FlowQuery } from '../../src/policy/index.ts';
import { referenceDecide } from './reference-ranker.ts';
import { randomConfigToml, randomName, randomQuery, randomRule, Rng, EGRESSES, type RandomRule } from './random.ts';

const SCALE = Number(process.env.SWITCHYARD_TEST_SCALE ?? '1') || 1;
const CONFIGS = Math.max(10, Math.round(150 * SCALE));
const QUERIES = 200;

test('decide() agrees with the reference ranker on random rule sets', () => {
  let checked = 0;
  const stages = new Map<string, number>();
  for (let seed = 1; seed <= CONFIGS; seed++) {
    const r = new Rng(seed);
    const rules = Array.from({ length: 1 + r.int(25) }, (_, i) => randomRule(r, `r${i}`));
    const toml = randomConfigToml(r, rules);
    const config = loadConfigFromString(toml, `seed${seed}`);
    const policy = compilePolicy(config);
    for (let k = 0; k < QUERIES; k++) {
      const q = randomQuery(r);
      const got = policy.decide(q);
      const want = referenceDecide(config, q);
      const ctx = () => `seed ${seed}, query ${JSON.stringify(q)}\n${toml}`;
      assert.equal(got.egress, want.egress, `egress differs: ${ctx()}`);
      assert.equal(got.stage, want.stage, `stage differs: ${ctx()}`);
      assert.equal(got.rule === null ? null : got.stage === 'exempt' || got.stage === 'lan' ? -1 : got.rule.index, want.ruleIndex, `rule differs: ${ctx()}`);
      const ex = policy.explain(q);
      assert.deepEqual({ egress: ex.egress, stage: ex.stage, rule: ex.rule, matched: ex.matched }, got, `explain differs: ${ctx()}`);
      // A configured rule's RuleRef reads id and origin on demand: compare what they give.
      const fields = (r: typeof got.rule) => (r === null ? null : { id: r.id, index: r.index, origin: r.origin, json: JSON.stringify(r) });
      assert.deepEqual(fields(ex.rule), fields(got.rule), `explain's rule differs: ${ctx()}`);
      stages.set(got.stage, (stages.get(got.stage) ?? 0) + 1);
      checked++;
    }
  }
  // The generator must exercise every stage, or the comparison proves little.
  for (const s of ['exempt', 'lan', 'block', 'domain', 'cidr', 'app', 'other', 'default']) {
    assert.ok((stages.get(s) ?? 0) > 0, `stage ${s} never decided (${JSON.stringify([...stages])})`);
  }
  assert.equal(checked, CONFIGS * QUERIES);
});

test('adding a more specific rule changes only the queries it matches', () => {
  for (let seed = 1; seed <= Math.max(10, Math.round(60 * SCALE)); seed++) {
    const r = new Rng(1000 + seed);
    const rules = Array.from({ length: 1 + r.int(20) }, (_, i) => randomRule(r, `r${i}`));
    const header = new Rng(seed);
    const before = compilePolicy(loadConfigFromString(randomConfigToml(header, rules), 'before'));
    // The new rule: an exact name (the most specific domain pattern), maybe with an app condition.
    const target = randomName(r);
    const added: RandomRule = { name: 'added', egress: r.pick(EGRESSES.filter((e) => e !== 'block' && e !== 'deny')), domains: [`full:${target}`] };
    if (r.chance(0.3)) added.apps = ['zen.exe'];
    const at = r.int(rules.length + 1);
    const withRule = [...rules.slice(0, at), added, ...rules.slice(at)];
    const after = compilePolicy(loadConfigFromString(randomConfigToml(new Rng(seed), withRule), 'after'));
    const queries: FlowQuery[] = Array.from({ length: 300 }, () => randomQuery(r));
    for (let k = 0; k < 30; k++) queries.push({ ...randomQuery(r), domain: target });
    for (const q of queries) {
      const a = before.decide(q);
      const b = after.decide(q);
      const addedMatches =
        q.domain !== undefined &&
        q.domain.toLowerCase().replace(/\.$/, '') === target &&
        (!added.apps || (q.process ?? '').toLowerCase() === 'zen.exe' || /zen\.exe$/i.test(q.exe ?? ''));
      if (!addedMatches) {
        assert.deepEqual(
          { egress: b.egress, stage: b.stage, rule: b.rule?.id ?? null },
          { egress: a.egress, stage: a.stage, rule: a.rule?.id ?? null },
          `seed ${seed}: a query the new rule does not match changed: ${JSON.stringify(q)}`,
        );
      } else if (b.rule?.id !== 'added') {
        // It may lose only to stages before the domain stage, or to another exact-name rule.
        assert.ok(
          ['exempt', 'lan', 'block'].includes(b.stage) || b.matched[0]?.pattern === `full:${target}`,
          `seed ${seed}: the new rule lost to ${JSON.stringify(b)} for ${JSON.stringify(q)}`,
        );
      }
    }
  }
});
