// src/policy must stay pure: no module that does I/O. Allowed imports: siblings, the shared
// errors module, zod, smol-toml, and node:url (domainToASCII is computation).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../src/policy/', import.meta.url));
const ALLOWED = new Set(['zod', 'smol-toml', 'node:url']);

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('src/policy imports nothing that does I/O', () => {
  const all = files(ROOT);
  assert.ok(all.length > 10);
  for (const f of all) {
    const src = readFileSync(f, 'utf8');
    for (const m of src.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
      const spec = m[1] ?? m[2]!;
      if (spec.startsWith('./') || spec.startsWith('../')) {
        assert.ok(!spec.startsWith('../../') || spec === '../../errors.ts', `${f}: ${spec} leaves src/policy`);
        continue;
      }
      assert.ok(ALLOWED.has(spec), `${f} imports ${spec}`);
    }
    assert.doesNotMatch(src, /\bprocess\.(env|stdout|stderr|argv)|\brequire\(/, `${f} touches process state`);
  }
});
