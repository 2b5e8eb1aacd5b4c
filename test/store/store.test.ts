// The policy store: revision lifecycle, tampered revisions and state, audit log tampering
// (edit in the middle, truncation, wholesale rewrite with recomputed hashes), repair after an
// interrupted append, and activation fail points with restore.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PolicyStore, type Provenance } from '../../src/store/store.ts';
import { loadOrCreateKey } from '../../src/store/key.ts';
import { activate, APPLY_POINTS, type ApplySteps } from '../../src/store/apply.ts';
import { GENESIS_HASH, type AuditEvent } from '../../src/store/audit.ts';
import { canonicalJson, sha256Hex } from '../../src/store/canonical.ts';
import { diffConfigs } from '../../src/store/diff.ts';
import { classifyRisk } from '../../src/store/risk.ts';
import { isSwitchyardError } from '../../src/errors.ts';
import { baseConfig, addRule, edit } from './helpers/config.ts';

const root = mkdtempSync(join(tmpdir(), 'sy-store-'));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const actor = { user: 'root', uid: 0 };
const code = (c: string) => (e: unknown) => isSwitchyardError(e) && e.code === c;

function prov(over: Partial<Provenance> = {}): Provenance {
  return { channel: 'file', source: '/etc/switchyard/config.toml', sourceSha256: sha256Hex('x'), user: 'root', uid: 0, time: '2026-11-22T00:00:00.000Z', interactive: true, ...over };
}

function fresh(): { dir: string; open: () => PolicyStore } {
  const dir = join(root, `s${++counter}`);
  const { key } = loadOrCreateKey(dir);
  return { dir, open: () => PolicyStore.open(dir, { key }) };
}

/** The "applied" world the steps change: a variable standing in for the policy + OS backend. */
function world(initial: unknown) {
  const w = { applied: initial as unknown, restores: 0 };
  const steps: ApplySteps<unknown> = {
    snapshot: () => w.applied,
    apply: (rev) => void (w.applied = rev.config),
    verify: (rev) => assert.equal(w.applied, rev.config),
    restore: (snap) => {
      w.restores++;
      w.applied = snap;
    },
  };
  return { w, steps };
}

async function seeded() {
  const f = fresh();
  const s = f.open();
  const { steps } = world(null);
  const c1 = baseConfig();
  const r1 = s.create(c1, prov(), classifyRisk(diffConfigs(null, c1)));
  await activate(s, r1.n, steps, { actor });
  const c2 = addRule(c1, 'vpn', { domains: [{ kind: 'full', value: 'one.example' }] });
  const r2 = s.create(c2, prov(), classifyRisk(diffConfigs(c1, c2)));
  await activate(s, r2.n, steps, { actor });
  return { ...f, s, c1, c2 };
}

function auditLines(dir: string): AuditEvent[] {
  return readFileSync(join(dir, 'store', 'audit.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AuditEvent);
}
function writeAudit(dir: string, events: AuditEvent[]): void {
  writeFileSync(join(dir, 'store', 'audit.ndjson'), events.map((e) => canonicalJson(e) + '\n').join(''));
}
/** Recomputes the whole chain, as an attacker without the key can. */
function rechain(events: AuditEvent[]): AuditEvent[] {
  let prev = GENESIS_HASH;
  return events.map((e, i) => {
    const { hash: _h, ...body } = { ...e, seq: i + 1, prev };
    const hash = sha256Hex(canonicalJson(body));
    prev = hash;
    return { ...body, hash };
  });
}

test('lifecycle: pending → active; the previous active becomes last-known-good, the one before superseded', async () => {
  const { s, open } = await seeded();
  assert.equal(s.active, 2);
  assert.equal(s.lastKnownGood, 1);
  const c3 = edit(s.get(2).config as ReturnType<typeof baseConfig>, (c) => void (c.dns.timeoutMs = 1));
  const r3 = s.create(c3, prov());
  assert.equal(s.entry(3)?.state, 'pending');
  assert.equal(r3.parent, 2);
  await activate(s, 3, world(null).steps, { actor });
  assert.deepEqual(s.list().map((e) => [e.n, e.state]), [[1, 'superseded'], [2, 'last-known-good'], [3, 'active']]);
  // Rejecting and approving non-pending revisions is refused.
  assert.throws(() => s.reject(3, actor, 'no'), code('SY_ERR_STORE_STATE'));
  await assert.rejects(activate(s, 1, world(null).steps, { actor }), code('SY_ERR_STORE_STATE'));
  const r4 = s.create({ x: 1 }, prov());
  s.reject(r4.n, actor, 'not wanted');
  assert.equal(s.entry(4)?.state, 'rejected');
  // Rollback: a new revision with last-known-good's content; the rolled-back one is superseded.
  const rb = s.rollbackCandidate(actor);
  assert.equal(rb.hash, s.get(2).hash);
  assert.equal(rb.provenance.note, 'rollback');
  await activate(s, rb.n, world(null).steps, { actor, rollback: true });
  assert.deepEqual(s.list().map((e) => [e.n, e.state]), [[1, 'superseded'], [2, 'last-known-good'], [3, 'superseded'], [4, 'rejected'], [5, 'active']]);
  // Everything survives a reopen, and the audit log verifies.
  const again = open();
  assert.deepEqual(again.list(), s.list());
  assert.equal(again.resolveActive().revision?.n, 5);
  assert.equal(again.verifyAudit().ok, true);
  assert.deepEqual(auditLines(s.dir.replace(/\/store$/, '')).map((e) => e.type), [
    'revision.created', 'revision.activated', 'revision.created', 'revision.activated', 'revision.created', 'revision.activated',
    'revision.created', 'revision.rejected', 'revision.created', 'revision.rolled-back',
  ]);
});

test('high-risk and non-interactive candidates raise alerts that stay until reviewed', async () => {
  const { s, c2, open } = await seeded();
  const hi = edit(c2, (c) => void (c.default = 'vpn'));
  s.create(hi, prov(), classifyRisk(diffConfigs(c2, hi)));
  s.create(c2, prov({ channel: 'linked', interactive: false }), null);
  const kinds = s.alerts().map((a) => a.kind);
  assert.ok(kinds.includes('high-risk'));
  assert.ok(kinds.includes('non-interactive'));
  // c1 itself was high-risk (it adds an exemption): three alerts in all.
  assert.equal(open().alerts().length, s.alerts().length);
  for (const a of s.alerts()) s.reviewAlert(a.id, actor);
  assert.deepEqual(open().alerts(), []);
  assert.equal(open().alerts({ all: true }).every((a) => a.reviewed && a.reviewedBy === 'root'), true);
});

test('tampered active revision: refused, last-known-good active, audit event, alert', async () => {
  const { s, dir, open } = await seeded();
  const path = s.revisionPath(2);
  const file = JSON.parse(readFileSync(path, 'utf8'));
  file.revision.config.default = 'block'; // change the policy, keep the old MAC
  writeFileSync(path, JSON.stringify(file));
  assert.throws(() => s.get(2), code('SY_ERR_STORE_TAMPERED'));

  const s2 = open();
  const r = s2.resolveActive();
  assert.equal(r.fellBackFrom, 2);
  assert.equal(r.revision?.n, 1);
  assert.equal(s2.active, 1);
  assert.equal(s2.entry(2)?.state, 'rejected');
  assert.match(s2.entry(2)?.reason ?? '', /integrity check failed/);
  const alert = s2.alerts().find((a) => a.kind === 'tamper');
  assert.ok(alert && alert.revision === 2);
  const types = auditLines(dir).map((e) => e.type);
  assert.deepEqual(types.slice(-2), ['revision.tampered', 'revision.fallback']);
  assert.equal(s2.verifyAudit().ok, true);
  // Persisted: a later start sees the same, and the alert stays until reviewed.
  const s3 = open();
  assert.equal(s3.resolveActive().revision?.n, 1);
  assert.equal(s3.alerts().filter((a) => a.kind === 'tamper').length, 1);
});

test('other revision tampering: a recomputed content hash, a swapped file, a deleted file', async () => {
  for (const how of ['rehash', 'swap', 'delete'] as const) {
    const { s, open } = await seeded();
    const path = s.revisionPath(2);
    if (how === 'rehash') {
      const file = JSON.parse(readFileSync(path, 'utf8'));
      file.revision.config.default = 'block';
      file.revision.hash = sha256Hex(canonicalJson(file.revision.config)); // hash fixed, MAC not
      writeFileSync(path, JSON.stringify(file));
    } else if (how === 'swap') {
      writeFileSync(path, readFileSync(s.revisionPath(1))); // a valid MAC, but of revision #1
    } else {
      rmSync(path);
    }
    const r = open().resolveActive();
    assert.equal(r.revision?.n, 1, how);
    assert.equal(r.fellBackFrom, 2, how);
  }
});

test('both active and last-known-good tampered: nothing active (fail closed), alert', async () => {
  const { s, open } = await seeded();
  writeFileSync(s.revisionPath(2), '{}');
  writeFileSync(s.revisionPath(1), 'garbage');
  const s2 = open();
  const r = s2.resolveActive();
  assert.equal(r.revision, null);
  assert.equal(s2.active, null);
  assert.equal(s2.entry(1)?.state, 'rejected');
  assert.ok(s2.alerts().some((a) => a.kind === 'tamper' && /no trusted revision/.test(a.message)));
});

test('tampered state (active pointer edited): the previous state is used and an alert raised', async () => {
  const { s, open } = await seeded();
  const file = JSON.parse(readFileSync(s.statePath, 'utf8'));
  file.state.active = 1; // point back at an older revision without the key
  writeFileSync(s.statePath, JSON.stringify(file));
  const s2 = open();
  const a = s2.alerts().find((x) => x.kind === 'tamper');
  assert.ok(a, 'tamper alert');
  assert.match(a!.message, /state\.json failed verification \(HMAC mismatch\)/);
  assert.equal(s2.resolveActive().revision?.n, 1, 'state.prev.json: before #2 was activated');
  assert.equal(s2.verifyAudit().ok, true, 'the log was re-anchored and the event recorded');
  assert.equal(auditLines(s.dir.replace(/\/store$/, '')).at(-1)?.type, 'state.tampered');
  // A deleted state with history around it is tampering too, not a first start.
  rmSync(s.statePath);
  rmSync(join(s.dir, 'state.prev.json'));
  const s3 = open();
  assert.equal(s3.active, null);
  assert.ok(s3.alerts().some((x) => x.kind === 'tamper' && /state\.json is missing/.test(x.message)));
});

test('state replaced by an older, validly signed copy: the audit anchor exposes it', async () => {
  const { s, open } = await seeded();
  // state.prev.json is genuine (it carries a good MAC) but one commit old: active #1.
  writeFileSync(s.statePath, readFileSync(join(s.dir, 'state.prev.json')));
  const s2 = open();
  assert.equal(s2.active, 1, 'the MAC alone cannot tell');
  const v = s2.verifyAudit();
  assert.equal(v.ok, false);
  assert.match(v.problems[0]!, /4 events but the protected state records 3 \(.*state was rolled back\)/);
  assert.ok(s2.alerts().some((a) => a.kind === 'audit'));
});

test('audit log: an edit in the middle is detected (with and without fixing that line\'s hash)', async () => {
  const { dir, open } = await seeded();
  const events = auditLines(dir);
  assert.equal(events.length, 4);
  const edited = structuredClone(events);
  edited[1]!.actor = { user: 'mallory', uid: 1000 };
  writeAudit(dir, edited);
  let v = open().verifyAudit();
  assert.equal(v.ok, false);
  assert.equal(v.firstBadLine, 2);
  assert.match(v.problems[0]!, /line 2: hash mismatch/);

  const { hash: _h, ...body } = edited[1]!;
  edited[1]!.hash = sha256Hex(canonicalJson(body));
  writeAudit(dir, edited);
  v = open().verifyAudit();
  assert.equal(v.firstBadLine, 3);
  assert.match(v.problems[0]!, /line 3: does not link to line 2/);
});

test('audit log: truncation is detected', async () => {
  const { dir, open } = await seeded();
  const events = auditLines(dir);
  writeAudit(dir, events.slice(0, 2));
  const v = open().verifyAudit();
  assert.equal(v.ok, false);
  assert.match(v.problems[0]!, /2 events but the protected state records 4 \(truncated/);
  writeFileSync(join(dir, 'store', 'audit.ndjson'), '');
  assert.match(open().verifyAudit().problems[0]!, /0 events but the protected state records 4/);
  rmSync(join(dir, 'store', 'audit.ndjson'));
  assert.equal(open().verifyAudit().ok, false);
});

test('audit log: cutting only the last commit\'s events looks like a crash and is restored from the state', async () => {
  // The protected state holds the last commit's events in full (to finish an interrupted
  // append), so this cut cannot lose them: they are written back on open.
  const { dir, open } = await seeded();
  const events = auditLines(dir);
  writeAudit(dir, events.slice(0, 3));
  const s = open();
  assert.equal(s.openReport.repairedAuditEvents, 1);
  assert.equal(s.verifyAudit().ok, true);
  assert.deepEqual(auditLines(dir), events);
});

test('audit log: a wholesale rewrite with recomputed hashes is detected', async () => {
  const { dir, open } = await seeded();
  const events = auditLines(dir);
  // Same number of events, one edited, the whole chain recomputed: internally consistent.
  const forged = structuredClone(events);
  forged[2]!.detail = { ...forged[2]!.detail, source: '/home/mallory/evil.toml' };
  writeAudit(dir, rechain(forged));
  let v = open().verifyAudit();
  assert.equal(v.ok, false);
  assert.equal(v.firstBadLine, undefined, 'the chain itself is consistent');
  assert.match(v.problems[0]!, /differs from the protected state \(the log was rewritten\)/);
  // Fewer events, recomputed: the count gives it away.
  writeAudit(dir, rechain(events.filter((_, i) => i !== 2)));
  v = open().verifyAudit();
  assert.match(v.problems[0]!, /3 events but the protected state records 4/);
  // An appended forged event, chained correctly: also detected.
  writeAudit(dir, rechain([...events, { ...events[3]!, type: 'revision.approved' }]));
  assert.match(open().verifyAudit().problems[0]!, /5 events but the protected state records 4/);
});

test('a tampered audit log raises a persistent alert on open', async () => {
  const { dir, open } = await seeded();
  writeAudit(dir, auditLines(dir).slice(0, 2));
  const s = open();
  const a = s.alerts().filter((x) => x.kind === 'audit');
  assert.equal(a.length, 1);
  assert.equal(open().alerts().filter((x) => x.kind === 'audit').length, 1, 'not duplicated on the next open');
});

test('hostile audit lines are reported, not thrown', async () => {
  const { dir, open } = await seeded();
  const p = join(dir, 'store', 'audit.ndjson');
  for (const junk of ['not json\n', '[1]\n', '{"seq":1}\n', `{"seq":1,"type":"x","prev":"${GENESIS_HASH}","hash":"00","evil":1}\n`, 'x'.repeat(300_000) + '\n', '{"partial":']) {
    writeFileSync(p, junk);
    const v = open().verifyAudit();
    assert.equal(v.ok, false);
    assert.equal(v.firstBadLine, 1, junk.slice(0, 40));
  }
});

test('an interrupted audit append is completed on the next open', async () => {
  const f = fresh();
  let armed = false;
  const { key } = loadOrCreateKey(f.dir);
  const s = PolicyStore.open(f.dir, {
    key,
    failPoint: (name) => {
      if (armed && name === 'audit:before-append') throw Object.assign(new Error('boom'), { injected: true });
    },
  });
  s.create({ a: 1 }, prov());
  armed = true;
  assert.throws(() => s.create({ a: 2 }, prov()), /boom/);
  // A torn partial line as well, as a crash mid-write leaves it.
  writeFileSync(join(f.dir, 'store', 'audit.ndjson'), readFileSync(join(f.dir, 'store', 'audit.ndjson'), 'utf8') + '{"seq":2,"ti');
  const s2 = PolicyStore.open(f.dir, { key });
  assert.equal(s2.openReport.repairedAuditEvents, 1);
  assert.equal(s2.verifyAudit().ok, true);
  assert.equal(s2.entry(2)?.state, 'pending');
  assert.deepEqual(s2.alerts().filter((a) => a.kind === 'audit'), []);
});

for (const point of APPLY_POINTS) {
  test(`fail point at ${point}: ${point === 'after-commit' ? 'the new revision stays' : 'restored, candidate rejected, previous active'}`, async () => {
    const { s, c2, open } = await seeded();
    const { w, steps } = world(c2);
    const c3 = addRule(c2, 'vpn', { domains: [{ kind: 'full', value: 'two.example' }] });
    const r3 = s.create(c3, prov());
    const seen: string[] = [];
    await assert.rejects(activate(s, r3.n, steps, { actor, failAt: point, at: (p) => void seen.push(p) }), (e) =>
      point === 'after-commit' ? /injected failure at after-commit/.test((e as Error).message) : code('SY_ERR_STORE_APPLY')(e),
    );
    assert.equal(seen.at(-1), point);
    const s2 = open();
    if (point === 'after-commit') {
      assert.equal(s2.active, r3.n);
      assert.deepEqual(w.applied, c3);
      assert.equal(w.restores, 0);
      return;
    }
    assert.equal(s2.active, 2);
    assert.equal(s2.entry(r3.n)?.state, 'rejected');
    assert.match(s2.entry(r3.n)?.reason ?? '', new RegExp(`apply failed at ${point}`));
    assert.equal(w.applied, c2, 'the snapshot was restored');
    assert.equal(w.restores, 1);
    assert.ok(s2.alerts().some((a) => a.kind === 'apply-failed' && a.revision === r3.n));
    assert.equal(auditLines(s.dir.replace(/\/store$/, '')).at(-1)?.type, 'revision.apply-failed');
    assert.equal(s2.verifyAudit().ok, true);
  });
}

test('a failing step and a failing restore are both reported', async () => {
  const { s, c2 } = await seeded();
  const r3 = s.create(addRule(c2, 'vpn', { domains: [{ kind: 'full', value: 'x.example' }] }), prov());
  const steps: ApplySteps<null> = {
    snapshot: () => null,
    apply: () => {
      throw new Error('nft said no');
    },
    verify: () => {},
    restore: () => {
      throw new Error('and again');
    },
  };
  await assert.rejects(activate(s, r3.n, steps, { actor }), (e) => code('SY_ERR_STORE_APPLY')(e) && /nft said no; RESTORING THE PREVIOUS STATE FAILED/.test((e as Error).message));
  assert.ok(s.alerts().some((a) => /ALSO failed/.test(a.message)));
});

test('a store-write failure at the commit (temp written, rename not done) keeps the previous revision', async () => {
  const f = fresh();
  const { key } = loadOrCreateKey(f.dir);
  let armed = false;
  const s = PolicyStore.open(f.dir, {
    key,
    failPoint: (name) => {
      if (armed && name === 'state:written') {
        armed = false;
        throw Object.assign(new Error('disk full'), { injected: true });
      }
    },
  });
  const { w, steps } = world('old');
  const r1 = s.create({ a: 1 }, prov());
  await activate(s, r1.n, steps, { actor });
  const r2 = s.create({ a: 2 }, prov());
  armed = true;
  await assert.rejects(activate(s, r2.n, steps, { actor }), code('SY_ERR_STORE_APPLY'));
  assert.equal(s.active, 1);
  assert.deepEqual(w.applied, { a: 1 });
  const s2 = PolicyStore.open(f.dir, { key });
  assert.equal(s2.active, 1);
  assert.equal(s2.entry(2)?.state, 'rejected');
  assert.equal(s2.verifyAudit().ok, true);
});
