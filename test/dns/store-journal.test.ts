// Persistence of the correlation store (src/dns/store-journal.ts): a snapshot plus an append-only
// journal. A flush writes only the addresses that changed; the journal is compacted into a new
// snapshot when it outgrows its bound; a crash mid-append (a torn last line) loses only that line;
// a stale journal left by a crash between compaction's renames is ignored; damaged or hostile
// files are reported and never crash the forwarder.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readFileSync, readdirSync, statSync, truncateSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { CorrelationStore, STORE_FILE_NAME, startDnsForwarder } from '../../src/dns/index.ts';
import { journalPath } from '../../src/dns/store-journal.ts';
import { createLogger } from '../../src/log.ts';
import { builtinEgresses, cleanup, dnsConfig, projector, tempDir } from './helpers.ts';

function clock(start = 1_800_000_000_000): { now: () => number; advance: (s: number) => void } {
  let t = start;
  return { now: () => t, advance: (s) => (t += s * 1000) };
}

/** A persisted store on `file` with a test clock. */
const storeOn = (file: string, c: { now: () => number }, maxEntries = 100) => new CorrelationStore({ maxEntries, graceSeconds: 60, file, now: c.now });

const rec = (name: string, ttl = 300, chain = [name]) => ({ name, chain, ttlSeconds: ttl, upstream: 'udp://127.0.0.1:53' });
const ipOf = (i: number) => `127.4.${(i >> 8) & 255}.${i & 255}`;

function withDir(tag: string, fn: (dir: string, file: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = tempDir(tag);
    try {
      await fn(dir, join(dir, 'state', STORE_FILE_NAME));
    } finally {
      cleanup(dir);
    }
  };
}

describe('store journal', () => {
  test(
    'a restart keeps what was flushed (journal only, then snapshot only after close)',
    withDir('sj-restart', async (dir, file) => {
      const c = clock();
      const a = storeOn(file, c);
      a.record('127.4.0.1', rec('a.example', 300, ['a.example', 'cdn.example']));
      a.record('127.4.0.1', rec('b.example'));
      a.record('::ffff:127.4.0.2', rec('c.example'));
      await a.flush();
      assert.ok(existsSync(journalPath(file)), 'the journal holds the changes');
      assert.equal(existsSync(file), false, 'no snapshot yet: nothing was compacted');
      // No close: as after a SIGKILL.
      const b = storeOn(file, c);
      assert.deepEqual(await b.load(), { loaded: 2 });
      assert.deepEqual(b.lookup('127.4.0.1').names.map((n) => n.name), ['b.example', 'a.example']);
      assert.deepEqual(b.lookup('127.4.0.1').names[1]!.chain, ['a.example', 'cdn.example']);
      assert.equal(b.lookup('127.4.0.2').names[0]!.name, 'c.example');
      b.record('127.4.0.3', rec('d.example'));
      await b.close();
      assert.deepEqual(readdirSync(join(dir, 'state')), [STORE_FILE_NAME], 'close leaves one snapshot, no journal, no temporary file');
      const d = storeOn(file, c);
      assert.deepEqual(await d.load(), { loaded: 3 });
      assert.equal(d.lookup('127.4.0.3').names[0]!.name, 'd.example');
    }),
  );

  test(
    'a flush writes only what changed: the snapshot is untouched and the journal grows by one line',
    withDir('sj-cost', async (_dir, file) => {
      const c = clock();
      const s = storeOn(file, c, 5000);
      for (let i = 0; i < 3000; i++) s.record(ipOf(i), rec(`n${i}.example`));
      await s.save();
      const snapBefore = readFileSync(file);
      const journalBefore = statSync(journalPath(file)).size;
      s.record(ipOf(7), rec('changed.example', 3600));
      await s.flush();
      assert.ok(readFileSync(file).equals(snapBefore), 'the snapshot was not rewritten');
      const added = readFileSync(journalPath(file), 'utf8').slice(journalBefore);
      assert.equal(added.split('\n').filter(Boolean).length, 1, 'one line for the one changed address');
      assert.match(added, /changed\.example/);
      assert.ok(added.length < snapBefore.length / 100, `the flush wrote ${added.length} bytes, the store is ${snapBefore.length}`);
      // Nothing changed: a flush writes nothing.
      const size = statSync(journalPath(file)).size;
      await s.flush();
      assert.equal(statSync(journalPath(file)).size, size);
      // A forgotten address is journaled as such.
      c.advance(400);
      assert.equal(s.lookup(ipOf(8)).state, 'unknown');
      await s.flush();
      const r = storeOn(file, c, 5000);
      await r.load();
      assert.equal(r.lookup(ipOf(8)).state, 'unknown');
      assert.equal(r.lookup(ipOf(7)).names[0]!.name, 'changed.example');
    }),
  );

  test(
    'removals are journaled: an address evicted by the size bound or dropped after grace stays gone after a crash',
    withDir('sj-evict', async (_dir, file) => {
      const c = clock();
      const a = storeOn(file, c, 3);
      a.record('127.4.5.1', rec('a.example'));
      a.record('127.4.5.2', rec('b.example'));
      a.record('127.4.5.3', rec('c.example'));
      await a.save(); // the snapshot holds a, b, c
      // Touch a (a lookup is not journaled: nothing changes on disk), so the bound evicts b, then c.
      assert.equal(a.lookup('127.4.5.1').state, 'fresh');
      a.record('127.4.5.4', rec('d.example'));
      await a.flush();
      assert.equal(a.lookup('127.4.5.1').state, 'fresh');
      a.record('127.4.5.5', rec('e.example'));
      assert.equal(a.lookup('127.4.5.2').state, 'unknown', 'b was evicted');
      assert.equal(a.lookup('127.4.5.3').state, 'unknown', 'c was evicted');
      await a.flush();
      // No close (as after a SIGKILL), and a larger bound, so nothing is cut by the bound on load.
      const b = storeOn(file, c, 100);
      assert.deepEqual(await b.load(), { loaded: 3 });
      for (const ip of ['127.4.5.2', '127.4.5.3']) assert.equal(b.lookup(ip).state, 'unknown', `${ip} stays evicted`);
      assert.equal(b.lookup('127.4.5.1').names[0]?.name, 'a.example');
      assert.equal(b.lookup('127.4.5.4').names[0]?.name, 'd.example');
      assert.equal(b.lookup('127.4.5.5').names[0]?.name, 'e.example');
      // The same bound as before: the evicted ones do not push out the kept ones either.
      const s = storeOn(file, c, 3);
      assert.deepEqual(await s.load(), { loaded: 3 });
      assert.deepEqual(['127.4.5.1', '127.4.5.4', '127.4.5.5'].map((ip) => s.lookup(ip).state), ['fresh', 'fresh', 'fresh']);
      assert.equal(s.lookup('127.4.5.2').state, 'unknown');

      // Dropped after its grace period: it does not come back from its older line, even under a
      // longer grace after the restart.
      const g = storeOn(file, c, 100);
      await g.load();
      g.record('127.4.5.7', rec('short.example', 10));
      await g.flush();
      c.advance(10 + 61);
      assert.equal(g.lookup('127.4.5.7').state, 'unknown', 'past TTL + grace');
      await g.flush();
      const h = new CorrelationStore({ maxEntries: 100, graceSeconds: 3600, file, now: c.now });
      await h.load();
      assert.equal(h.lookup('127.4.5.7').state, 'unknown', 'the dropped address stays dropped');
      assert.equal(h.lookup('127.4.5.2').state, 'unknown', 'the evicted address stays evicted');
      assert.equal(h.lookup('127.4.5.1').names[0]?.name, 'a.example');

      // A removal line for an address the store never held (or a hostile one) is harmless.
      appendFileSync(journalPath(file), '{"ip":"127.4.5.99"}\n{"ip":"not-an-address"}\n{"ip":"127.4.5.100","e":null}\n');
      const k = storeOn(file, c, 100);
      const r = await k.load();
      assert.equal(r.loaded, 3);
      assert.match(r.problem ?? '', /1 damaged line\(s\) skipped/, 'the "e":null line is damaged, the others are removals');
      assert.equal(k.lookup('127.4.5.99').state, 'unknown');
      assert.equal(k.lookup('127.4.5.5').names[0]?.name, 'e.example');
    }),
  );

  test(
    'a burst of new and evicted addresses between flushes compacts instead of journaling every one',
    withDir('sj-burst', async (_dir, file) => {
      const c = clock();
      const a = storeOn(file, c, 4);
      for (let i = 0; i < 50; i++) a.record(ipOf(i), rec(`burst${i}.example`));
      await a.flush();
      const j = readFileSync(journalPath(file), 'utf8');
      assert.equal(j.split('\n').filter(Boolean).length, 1, 'only the header: the snapshot holds the store');
      const b = storeOn(file, c, 100);
      assert.deepEqual(await b.load(), { loaded: 4 });
      assert.equal(b.lookup(ipOf(49)).names[0]?.name, 'burst49.example');
      assert.equal(b.lookup(ipOf(0)).state, 'unknown');
    }),
  );

  test(
    'a torn last line is ignored, cut off, and later appends load whole',
    withDir('sj-torn', async (_dir, file) => {
      const c = clock();
      const a = storeOn(file, c);
      for (let i = 0; i < 5; i++) {
        a.record(ipOf(i), rec(`t${i}.example`));
        await a.flush(); // one line each
      }
      const j = journalPath(file);
      const full = statSync(j).size;
      truncateSync(j, full - 7); // the last line, cut mid-write
      const b = storeOn(file, c);
      assert.deepEqual(await b.load(), { loaded: 4 }, 'the whole lines, no problem reported');
      assert.equal(b.lookup(ipOf(3)).names[0]!.name, 't3.example');
      assert.equal(b.lookup(ipOf(4)).state, 'unknown', 'the torn line is not half-read');
      assert.ok(readFileSync(j, 'utf8').endsWith('\n'), 'the torn tail was cut off');
      b.record(ipOf(9), rec('after.example'));
      await b.flush();
      const d = storeOn(file, c);
      assert.deepEqual(await d.load(), { loaded: 5 });
      assert.equal(d.lookup(ipOf(9)).names[0]!.name, 'after.example');
    }),
  );

  test(
    'bounded: the journal is compacted into a new snapshot once it outgrows max(floor, snapshot)',
    withDir('sj-bound', async (_dir, file) => {
      const c = clock();
      const floor = 4096;
      const s = new CorrelationStore({ maxEntries: 50, graceSeconds: 60, file, now: c.now, journalMinCompactBytes: floor });
      let compactions = 0;
      let lastSnap = '';
      let maxJournal = 0;
      for (let round = 0; round < 60; round++) {
        for (let k = 0; k < 5; k++) s.record(ipOf((round * 5 + k) % 40), rec(`r${round}-${k}.example`));
        await s.flush();
        const j = statSync(journalPath(file)).size;
        const snap = existsSync(file) ? readFileSync(file, 'utf8') : '';
        if (snap !== lastSnap) compactions++;
        lastSnap = snap;
        maxJournal = Math.max(maxJournal, j);
        // Bound: the threshold plus one flush (5 lines of at most a few hundred bytes each).
        assert.ok(j <= Math.max(floor, Buffer.byteLength(snap)) + 5 * 1024, `journal ${j} bytes after round ${round}`);
      }
      assert.ok(compactions >= 2, `compacted ${compactions} times`);
      const r = new CorrelationStore({ maxEntries: 50, graceSeconds: 60, file, now: c.now });
      await r.load();
      assert.equal(r.lookup(ipOf((59 * 5 + 4) % 40)).names[0]!.name, 'r59-4.example', 'the newest state survives compactions');
      assert.equal(r.size, 40);
    }),
  );

  test(
    'a crash between the snapshot rename and the new journal: the old journal is ignored',
    withDir('sj-gen', async (dir, file) => {
      const c = clock();
      const a = storeOn(file, c);
      a.record('127.4.1.1', rec('old.example'));
      await a.flush();
      const oldJournal = join(dir, 'old-journal');
      copyFileSync(journalPath(file), oldJournal);
      c.advance(1);
      a.record('127.4.1.1', rec('new.example'));
      await a.save();
      copyFileSync(oldJournal, journalPath(file)); // as if the journal's rename never happened
      const b = storeOn(file, c);
      assert.deepEqual(await b.load(), { loaded: 1 });
      assert.deepEqual(b.lookup('127.4.1.1').names.map((n) => n.name), ['new.example', 'old.example']);
      // The stale journal is replaced, not appended to.
      b.record('127.4.1.2', rec('x.example'));
      await b.flush();
      const d = storeOn(file, c);
      assert.deepEqual(await d.load(), { loaded: 2 });
      assert.deepEqual(d.lookup('127.4.1.1').names.map((n) => n.name), ['new.example', 'old.example']);
    }),
  );

  test(
    'hostile journal lines are skipped and reported; the rest loads',
    withDir('sj-hostile', async (_dir, file) => {
      const c = clock();
      const a = storeOn(file, c);
      a.record('127.4.2.1', rec('good.example'));
      await a.flush();
      const j = journalPath(file);
      const bad = [
        'not json',
        '[1,2,3]',
        '{"ip":5}',
        '{"ip":"127.4.2.2","e":"nope"}',
        '{"ip":"127.4.2.3","e":[{"name":5}]}',
        '{"ip":"999.1.1.1","e":[]}',
        `{"ip":"127.4.2.4","e":[{"name":"${'x'.repeat(2000)}","chain":[],"expiresAt":1e300,"upstream":"u","firstSeen":0,"lastSeen":0}]}`,
        '\u0000\u0001\u00ff',
        `{"ip":"127.4.2.5","e":${'['.repeat(5000)}`,
      ];
      appendFileSync(j, `${bad.join('\n')}\n`);
      a.record('127.4.2.9', rec('later.example'));
      await a.flush();
      const b = storeOn(file, c);
      const r = await b.load();
      assert.equal(r.loaded, 2);
      assert.match(r.problem ?? '', /6 damaged line\(s\) skipped/);
      assert.equal(b.lookup('127.4.2.1').names[0]!.name, 'good.example');
      assert.equal(b.lookup('127.4.2.9').names[0]!.name, 'later.example');
      for (const ip of ['127.4.2.2', '127.4.2.3', '127.4.2.4', '127.4.2.5']) assert.equal(b.lookup(ip).state, 'unknown', ip);
      // A journal that is not one at all (no header): reported, ignored, replaced at the next flush.
      writeFileSync(j, Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x0a, 0x00]));
      const d = storeOn(file, c);
      assert.match((await d.load()).problem ?? '', /is not a journal/);
      d.record('127.4.2.7', rec('fresh.example'));
      await d.flush();
      const e = storeOn(file, c);
      assert.deepEqual(await e.load(), { loaded: 1 });
    }),
  );

  test(
    'a garbage snapshot: a clear logged error, an empty store, a working forwarder, a valid snapshot after the next flush',
    withDir('sj-garbage', async (dir, file) => {
      const state = join(dir, 'state');
      const c = clock();
      const seed = new CorrelationStore({ maxEntries: 10, graceSeconds: 60, file, now: c.now });
      seed.record('127.4.3.1', rec('seed.example'));
      await seed.flush(); // a journal exists too: it must not be applied on top of nothing known
      writeFileSync(file, Buffer.from('\u0089PNG\r\n\u001a\n garbage {{{ ['));
      const lines: string[] = [];
      const sink = new Writable({
        write(chunk: Buffer, _enc, cb) {
          lines.push(chunk.toString());
          cb();
        },
      });
      const log = createLogger({ level: 'info', destination: sink as never, format: 'json' });
      const config = {
        dns: dnsConfig({ hosts: { 'h.test': ['127.4.3.9'] }, store: { maxEntries: 100, graceSeconds: 60, persist: true } }),
        egress: builtinEgresses(),
      };
      const fwd = await startDnsForwarder({ config, projectDomain: projector({}), stateDir: state, log, fastPath: false });
      try {
        const logged = lines.map((l) => JSON.parse(l) as { msg: string; problem?: string; level: number });
        const entry = logged.find((l) => l.msg === 'dns: store not reloaded');
        assert.ok(entry, `logged: ${lines.join('')}`);
        assert.match(entry.problem ?? '', /dns-store\.json is not valid JSON/);
        assert.ok(entry.level >= 40, 'at warn level or above');
        assert.equal(fwd.store.size, 0, 'empty store');
        assert.equal(fwd.store.lookup('127.4.3.1').state, 'unknown', 'the journal is not applied without its snapshot');
        fwd.store.record('127.4.3.2', rec('after.example'));
        await fwd.store.flush();
        const doc = JSON.parse(readFileSync(file, 'utf8')) as { version: number; entries: unknown[] };
        assert.equal(doc.version, 2, 'the garbage was replaced by a valid snapshot');
      } finally {
        await fwd.close();
      }
      const again = new CorrelationStore({ maxEntries: 10, graceSeconds: 60, file });
      const r = await again.load();
      assert.equal(r.problem, undefined);
      assert.equal(again.lookup('127.4.3.2').names[0]?.name, 'after.example');
    }),
  );

  test(
    'a version-1 snapshot (whole-file saves, before the journal) still loads and is rewritten as version 2',
    withDir('sj-v1', async (_dir, file) => {
      const now = Date.now();
      const e = { name: 'v1.example', chain: ['v1.example'], expiresAt: now + 300_000, upstream: 'u', firstSeen: now, lastSeen: now };
      const { mkdirSync } = await import('node:fs');
      mkdirSync(join(file, '..'), { recursive: true });
      writeFileSync(file, JSON.stringify({ version: 1, savedAt: now, entries: [['127.4.4.1', [e]]] }));
      const s = new CorrelationStore({ maxEntries: 10, graceSeconds: 60, file });
      assert.deepEqual(await s.load(), { loaded: 1 });
      await s.flush(); // nothing changed, but the old format is replaced
      assert.equal((JSON.parse(readFileSync(file, 'utf8')) as { version: number }).version, 2);
      const t = new CorrelationStore({ maxEntries: 10, graceSeconds: 60, file });
      assert.deepEqual(await t.load(), { loaded: 1 });
    }),
  );
});
