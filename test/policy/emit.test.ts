// configToToml (behind `switchyard config convert`): the text loads back to the same Config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { configToToml, defaultConfig, loadConfigFromBytes, loadConfigFromString, type Config } from '../../src/policy/index.ts';
import { randomConfigToml, randomRule, Rng } from './random.ts';

/** The parts of a Config that carry meaning (not where it came from). */
function meaning(c: Config): unknown {
  const strip = <T extends { origin?: unknown; line?: unknown }>(x: T) => ({ ...x, origin: undefined, line: undefined });
  return {
    ...c,
    source: undefined,
    notices: undefined,
    rules: c.rules.map(strip),
    exempt: c.exempt.map(strip),
    egress: Object.fromEntries(Object.entries(c.egress).map(([k, v]) => [k, strip(v)])),
  };
}

test('every key survives the round trip (full sample)', () => {
  const full = loadConfigFromBytes(readFileSync(new URL('./fixtures/full.toml', import.meta.url)), 'full.toml');
  const again = loadConfigFromString(configToToml(full), 'again.toml');
  assert.deepEqual(meaning(again), meaning(full));
});

test('defaults are not written out, and still load back the same', () => {
  const text = configToToml(defaultConfig());
  assert.doesNotMatch(text, /\[dns\]|\[inbound\]|\[control\]/);
  assert.deepEqual(meaning(loadConfigFromString(text, 'd.toml')), meaning(defaultConfig()));
});

test('random configs survive the round trip', () => {
  const r = new Rng(11);
  for (let i = 0; i < 50; i++) {
    const c = loadConfigFromString(randomConfigToml(r, Array.from({ length: 8 }, (_, k) => randomRule(r, `r${k}`))), 'rand.toml');
    assert.deepEqual(meaning(loadConfigFromString(configToToml(c), 'again.toml')), meaning(c));
  }
});
