// Crash-test child: opens the store, makes revision content from argv, and activates it. When it
// reaches the named point it prints `AT <point>` and blocks; the parent SIGKILLs it there.
// usage: crash-child.ts STATE_DIR POINT
// POINT: an apply point (before-commit, after-commit, ...) or a store fail point
// (state:written = temp file written, not yet renamed; state:renamed = renamed, log not appended),
// optionally `@N` for its N-th occurrence (the create commit is the 1st state write, the
// activation commit the 2nd).
import { writeSync } from 'node:fs';
import { PolicyStore } from '../../../src/store/store.ts';
import { loadOrCreateKey } from '../../../src/store/key.ts';
import { activate } from '../../../src/store/apply.ts';

const [stateDir, spec] = process.argv.slice(2) as [string, string];
const [point, nth] = spec.includes('@') ? [spec.slice(0, spec.indexOf('@')), Number(spec.slice(spec.indexOf('@') + 1))] : [spec, 1];
let hits = 0;
const block = (name: string) => {
  if (name !== point || ++hits !== nth) return;
  writeSync(1, `AT ${spec}\n`);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120_000); // parent kills us here
};
const { key } = loadOrCreateKey(stateDir);
const store = PolicyStore.open(stateDir, { key, failPoint: block });
const actor = { user: 'root', uid: 0 };
const rev = store.create({ version: 1, default: 'vpn' }, { channel: 'cli', source: null, sourceSha256: null, user: 'root', uid: 0, time: new Date().toISOString(), interactive: true });
writeSync(1, `CREATED ${rev.n}\n`);
await activate(store, rev.n, { snapshot: () => null, apply: () => {}, verify: () => {}, restore: () => {} }, { actor, at: block });
writeSync(1, 'DONE\n');
