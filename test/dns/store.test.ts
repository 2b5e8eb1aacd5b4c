// The correlation store: several names per IP newest first, ambiguous when fresh names project to
// different egresses, stale after the TTL, gone after the grace period, bounded, and persisted
// (atomically) so a restarted forwarder still knows what it learned.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CorrelationStore, STORE_FILE_NAME, canonicalIp, startDnsForwarder } from '../../src/dns/index.ts';
import { builtinEgresses, cleanup, dig, dnsConfig, have, projector, startUnbound, tempDir } from './helpers.ts';
import type { Unbound } from './helpers.ts';

function clock(start = 1_800_000_000_000): { now: () => number; advance: (s: number) => void } {
  let t = start;
  return { now: () => t, advance: (s) => (t += s * 1000) };
}

const rec = (name: string, ttl = 60, chain = [name]) => ({ name, chain, ttlSeconds: ttl, upstream: 'udp://127.0.0.1:53' });

describe('CorrelationStore', () => {
  test('two names on one IP are both kept, newest first', () => {
    const c = clock();
    const s = new CorrelationStore({ maxEntries: 100, graceSeconds: 600, file: null, now: c.now });
    s.record('127.3.0.1', rec('a.example'));
    c.advance(1);
    s.record('127.3.0.1', rec('b.example'));
    const l = s.lookup('127.3.0.1');
    assert.equal(l.state, 'fresh');
    assert.deepEqual(l.names.map((n) => n.name), ['b.example', 'a.example']);
    c.advance(1);
    s.record('127.3.0.1', rec('a.example'));
    const again = s.lookup('127.3.0.1');
    assert.deepEqual(again.names.map((n) => n.name), ['a.example', 'b.example']);
    assert.ok(again.names[0]!.firstSeen < again.names[0]!.lastSeen, 'firstSeen kept, lastSeen moved');
  });

  test('ambiguous when fresh names project to different egresses', () => {
    const c = clock();
    const s = new CorrelationStore({
      maxEntries: 100,
      graceSeconds: 600,
      file: null,
      now: c.now,
      projectDomain: projector({ 'video.example': 'vpn', 'cdn.example': 'vpn', 'bank.example': 'direct' }),
    });
    s.record('127.3.0.2', rec('video.example'));
    s.record('127.3.0.2', rec('x.cdn.example'));
    assert.equal(s.lookup('127.3.0.2').state, 'fresh', 'same egress: not ambiguous');
    s.record('127.3.0.2', rec('bank.example', 10));
    assert.equal(s.lookup('127.3.0.2').state, 'ambiguous');
    c.advance(11);
    const l = s.lookup('127.3.0.2');
    assert.equal(l.state, 'fresh', 'the conflicting name went stale: no longer ambiguous');
    assert.equal(l.names.find((n) => n.name === 'bank.example')?.stale, true);
  });

  test('stale after the TTL, gone after the grace period', () => {
    const c = clock();
    const s = new CorrelationStore({ maxEntries: 100, graceSeconds: 5, file: null, now: c.now });
    s.record('fd00:5359::7', rec('short.example', 2));
    assert.equal(s.lookup('fd00:5359:0:0::7').state, 'fresh');
    c.advance(3);
    const stale = s.lookup('fd00:5359::7');
    assert.equal(stale.state, 'stale');
    assert.equal(stale.names[0]!.stale, true);
    c.advance(5);
    assert.deepEqual(s.lookup('fd00:5359::7'), { names: [], state: 'unknown' });
    assert.equal(s.size, 0);
  });

  test('bounded: the least recently used addresses go first', () => {
    const s = new CorrelationStore({ maxEntries: 3, graceSeconds: 5, file: null });
    for (let i = 1; i <= 5; i++) s.record(`127.3.1.${i}`, rec(`n${i}.example`));
    assert.equal(s.size, 3);
    assert.equal(s.lookup('127.3.1.1').state, 'unknown');
    assert.equal(s.lookup('127.3.1.5').state, 'fresh');
  });

  test('IPv4-mapped IPv6 and bracketed forms find the IPv4 entry', () => {
    const s = new CorrelationStore({ maxEntries: 10, graceSeconds: 5, file: null });
    s.record('127.3.2.1', rec('m.example'));
    assert.equal(s.lookup('::ffff:127.3.2.1').names[0]?.name, 'm.example');
    assert.equal(canonicalIp('[FD00:5359:0000::1]'), 'fd00:5359::1');
    assert.equal(canonicalIp('not an ip'), null);
    assert.equal(s.lookup('garbage').state, 'unknown');
  });

  test('persisted atomically and reloaded; a damaged file is reported and ignored', async () => {
    const dir = tempDir('store');
    try {
      const file = join(dir, 'state', STORE_FILE_NAME);
      const c = clock(Date.now());
      const a = new CorrelationStore({ maxEntries: 10, graceSeconds: 60, file, now: c.now });
      a.record('127.3.3.1', rec('p.example', 30, ['p.example', 'q.example']));
      a.record('127.3.3.2', rec('gone.example', 1));
      await a.close();
      assert.deepEqual(readdirSync(join(dir, 'state')), [STORE_FILE_NAME], 'no temporary file left behind');
      c.advance(70);
      const b = new CorrelationStore({ maxEntries: 10, graceSeconds: 60, file, now: c.now });
      assert.deepEqual(await b.load(), { loaded: 1 });
      const l = b.lookup('127.3.3.1');
      assert.equal(l.state, 'stale');
      assert.deepEqual(l.names[0]!.chain, ['p.example', 'q.example']);
      assert.equal(b.lookup('127.3.3.2').state, 'unknown', 'past its grace when reloaded');
      writeFileSync(file, '{"version":1,"entries":[["127.0.0.1",[{"name":5}]], "junk"');
      const d = new CorrelationStore({ maxEntries: 10, graceSeconds: 60, file });
      const r = await d.load();
      assert.equal(r.loaded, 0);
      assert.match(r.problem ?? '', /not valid JSON/);
      writeFileSync(file, JSON.stringify({ version: 1, entries: [['127.0.0.1', [{ name: 5 }]], 'junk', ['x', []]] }));
      assert.deepEqual(await d.load(), { loaded: 0 });
    } finally {
      cleanup(dir);
    }
  });
});

describe('store through the forwarder', { skip: !have('unbound') || !have('dig') ? 'needs unbound and dig' : false }, () => {
  let dir: string;
  let ub: Unbound;
  before(async () => {
    dir = tempDir('store-fwd');
    ub = await startUnbound({
      dir,
      localData: ['one.test. 300 IN A 127.3.9.9', 'two.test. 300 IN A 127.3.9.9', 'alt.test. 300 IN A 127.3.9.9'],
      chainZone: ['video 300 IN CNAME edge', 'edge 300 IN A 127.3.9.1', 'edge 300 IN A 127.3.9.2'],
    });
  });
  after(async () => {
    await ub?.stop();
    cleanup(dir);
  });

  test('every address maps to the asked name with its chain; kept across a restart; ambiguity shows', async () => {
    const state = join(dir, 'state');
    const config = {
      dns: dnsConfig({ upstreams: [`udp://127.0.0.1:${ub.port}`], store: { maxEntries: 1000, graceSeconds: 600, persist: true } }),
      egress: {
        ...builtinEgresses(),
        // A second egress of its own name (type direct: an interface egress would now resolve through
        // its interface, and no interface reaches this loopback upstream).
        wan2: { ...builtinEgresses().direct!, name: 'wan2' },
      },
    };
    const project = projector({ 'alt.test': 'wan2' });
    let fwd = await startDnsForwarder({ config, projectDomain: project, stateDir: state });
    const { host, port } = fwd.addresses[0]!;
    await dig(host, port, ['video.chain', 'A']);
    await dig(host, port, ['one.test', 'A']);
    await dig(host, port, ['two.test', 'A']);
    for (const ip of ['127.3.9.1', '127.3.9.2']) {
      const l = fwd.store.lookup(ip);
      assert.equal(l.names[0]?.name, 'video.chain');
      assert.deepEqual(l.names[0]?.chain, ['video.chain', 'edge.chain']);
    }
    assert.deepEqual(fwd.store.lookup('127.3.9.9').names.map((n) => n.name), ['two.test', 'one.test']);
    assert.equal(fwd.store.lookup('127.3.9.9').state, 'fresh');
    await dig(host, port, ['alt.test', 'A']);
    assert.equal(fwd.store.lookup('127.3.9.9').state, 'ambiguous', 'alt.test leaves by wan2, the others direct');
    assert.ok(fwd.stats().storeEntries >= 3);
    await fwd.close();
    assert.ok(existsSync(join(state, STORE_FILE_NAME)));

    fwd = await startDnsForwarder({ config, projectDomain: project, stateDir: state });
    try {
      assert.deepEqual(fwd.store.lookup('127.3.9.1').names[0]?.chain, ['video.chain', 'edge.chain']);
      assert.deepEqual(fwd.store.lookup('127.3.9.9').names.map((n) => n.name), ['alt.test', 'two.test', 'one.test']);
      assert.equal(fwd.store.lookup('127.3.9.9').state, 'ambiguous');
    } finally {
      await fwd.close();
    }
  });
});
