// The presets in config/presets: every [[list]] table is a valid definition, and its list file
// loads without errors, notices or duplicates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { listsToRules, validateListDef, type ListDef } from '../../src/lists/index.ts';
import { FIXTURES } from './helpers.ts';

const CONFIG_DIR = join(FIXTURES, '..', '..', '..', 'config');
const presets = readdirSync(join(CONFIG_DIR, 'presets')).filter((f) => f.endsWith('.toml'));

test('there are presets', () => {
  assert.deepEqual(presets.sort(), ['lan-direct.toml', 'vpn-selected-apps.toml', 'youtube-via-dpi.toml']);
});

for (const file of presets) {
  test(`preset ${file}`, async () => {
    const doc = parseToml(readFileSync(join(CONFIG_DIR, 'presets', file), 'utf8')) as { list?: ListDef[] };
    assert.ok(Array.isArray(doc.list) && doc.list.length > 0, 'declares [[list]] tables');
    for (const def of doc.list) validateListDef({ ...def }, new Set(['direct', 'block', 'dpi', 'vpn']));
    const r = await listsToRules(doc.list.map((d) => ({ ...d })), (p) => readFile(p), { baseDir: CONFIG_DIR });
    assert.deepEqual(r.errors, []);
    assert.ok(r.rules.length >= 3);
    assert.equal(r.counts.duplicates, 0);
    for (const l of r.lists) assert.deepEqual(l.notices.filter((n) => !/disabled/.test(n)), [], `${l.name}: ${l.notices.join('; ')}`);
  });
}
