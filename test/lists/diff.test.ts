// diffEntries: compared by conditions, not lines; duplicates collapse; +block is a change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffEntries, formatDiff } from '../../src/lists/diff.ts';
import { parse } from './helpers.ts';

test('moved lines are not changes; duplicates collapse; +block and attributes count', async () => {
  const a = (await parse('--- Domains\na.example\nb.example\nc.example +block\nb.example\n', 'netrulerouter')).entries;
  const b = (await parse('--- Domains\nb.example\na.example\nc.example\nd.example\n', 'netrulerouter')).entries;
  const d = diffEntries(a, b);
  assert.deepEqual(d.added.map((e) => [e.domain!.value, e.block ?? false, e.line]), [['c.example', false, 4], ['d.example', false, 5]]);
  assert.deepEqual(d.removed.map((e) => [e.domain!.value, e.block ?? false, e.line]), [['c.example', true, 4]]);
  assert.equal(d.kept, 2);
  assert.deepEqual(formatDiff(d, 1), ['+ full c.example (line 4)', '+ … and 1 more', '- full c.example +block (line 4)']);
  assert.deepEqual(diffEntries(b, b), { added: [], removed: [], kept: 4 });
});
