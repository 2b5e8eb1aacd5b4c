// The Linux UDP fast path (src/dns/fast-path.ts, fast-worker.ts) against a real dnsmasq upstream,
// asked by dig and by raw sockets: hits are answered by the worker (its counters say so), cache
// flush / eviction / TTL expiry / lost OS sets reach its replica (no stale answer after them), the
// rate limit and the binding hook still apply, hostile packets do not hurt it, and a dying worker
// is restarted, then replaced by a dgram socket — DNS keeps answering throughout.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDnsForwarder } from '../../src/dns/index.ts';
import type { DnsForwarder } from '../../src/dns/index.ts';
import { buildNameQuery } from '../../src/dns/build.ts';
import type { DnsConfig } from '../../src/policy/types.ts';
import { builtinEgresses, cleanup, dig, dnsConfig, freePort, have, projector, tempDir, udpQuery } from './helpers.ts';

const skip = process.platform !== 'linux' ? 'the fast path is Linux only' : !have('dnsmasq') || !have('dig') ? 'needs dnsmasq and dig' : false;

interface Upstream {
  port: number;
  /** How many times dnsmasq was asked for `name` (any type). */
  asked(name: string): Promise<number>;
  /** Replaces the hosts file and makes dnsmasq re-read it. */
  setHosts(lines: string[]): Promise<void>;
  stop(): Promise<void>;
}

/** dnsmasq answering from a hosts file (TTL 300), logging every query to a file. */
async function startUpstream(dir: string, lines: string[]): Promise<Upstream> {
  chmodSync(dir, 0o755);
  const hosts = join(dir, 'hosts');
  const logFile = join(dir, 'dnsmasq.log');
  writeFileSync(hosts, lines.join('\n') + '\n');
  const port = await freePort();
  const child: ChildProcess = spawn(
    'dnsmasq',
    ['-k', '-C', '/dev/null', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts', '--pid-file=', '--user=root',
      `--addn-hosts=${hosts}`, '--local=/fast.test/', '--local-ttl=300', '--cache-size=0', '--log-queries', `--log-facility=${logFile}`],
    { stdio: 'ignore' },
  );
  for (let i = 0; i < 100; i++) {
    const r = await udpQuery('127.0.0.1', port, Buffer.from(buildNameQuery('probe.fast.test', 1).buf), 200);
    if (r) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const count = (name: string): number =>
    existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').filter((l) => new RegExp(`query\\[[A-Z0-9]+\\] ${name.replace(/\./g, '\\.')} from`, 'i').test(l)).length : 0;
  return {
    port,
    // dnsmasq writes its log asynchronously: give it a moment.
    asked: async (name) => {
      await new Promise((r) => setTimeout(r, 150));
      return count(name);
    },
    setHosts: async (l) => {
      writeFileSync(hosts, l.join('\n') + '\n');
      child.kill('SIGHUP');
      await new Promise((r) => setTimeout(r, 300));
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

const HOSTS = ['127.1.0.1 a.fast.test', '127.1.0.2 b.fast.test', '127.1.0.3 c.fast.test', '127.1.0.4 hook.fast.test', 'fd00:5359::7 six.fast.test', '127.1.0.8 ttl.fast.test'];
const addr = (r: { answers: string[] }): string[] => r.answers.map((a) => a.split(' ')[4]!);

/** A forwarder on 127.0.0.1 (and ::1 with `both`) asking `up`. */
async function start(up: Upstream, over: Partial<DnsConfig> = {}, extra: Partial<Parameters<typeof startDnsForwarder>[0]> = {}, both = false): Promise<DnsForwarder> {
  return startDnsForwarder({
    config: {
      dns: dnsConfig({
        listen: both
          ? [
              { host: '127.0.0.1', port: 0 },
              { host: '::1', port: 0 },
            ]
          : [{ host: '127.0.0.1', port: 0 }],
        upstreams: [`udp://127.0.0.1:${up.port}`],
        ...over,
      }),
      egress: builtinEgresses(),
    },
    projectDomain: projector({}),
    // The worker reads from the start: these tests are about what it does (the low-load hand-over
    // to the main thread has its own tests below).
    fastPathMainAtLowLoad: false,
    ...extra,
  });
}

describe('UDP fast path', { skip }, () => {
  let dir: string;
  let up: Upstream;
  before(async () => {
    dir = tempDir('fast');
    up = await startUpstream(dir, HOSTS);
  });
  after(async () => {
    await up?.stop();
    cleanup(dir);
  });

  test('cache hits are answered by the worker, with the client\'s ID, case and EDNS; IPv4 and IPv6', async () => {
    const fwd = await start(up, {}, {}, true);
    try {
      assert.ok(fwd.listeners.length === 2 && fwd.listeners.every((l) => l.fast?.active), 'both listeners run the fast path');
      const [v4, v6] = fwd.addresses as [{ host: string; port: number }, { host: string; port: number }];
      const first = await dig(v4.host, v4.port, ['a.fast.test', 'A']);
      assert.deepEqual(addr(first), ['127.1.0.1']);
      assert.equal(fwd.stats().fastPath.hits, 0, 'the miss went through the main thread');
      const hit = await dig(v4.host, v4.port, ['A.Fast.TEST', 'A']);
      assert.deepEqual(addr(hit), ['127.1.0.1']);
      assert.match(hit.raw, /^;A\.Fast\.TEST\.\s+IN\s+A$/m, 'the question comes back in the client\'s spelling');
      assert.equal(fwd.stats().fastPath.hits, 1);
      const noEdns = await dig(v4.host, v4.port, ['+noedns', 'a.fast.test', 'A']);
      assert.deepEqual(addr(noEdns), ['127.1.0.1']);
      assert.doesNotMatch(noEdns.raw, /OPT PSEUDOSECTION/, 'no OPT for a client that sent none');
      assert.equal(fwd.stats().fastPath.hits, 2);
      // IPv6 listener: its own worker, fed by the same cache.
      const six = await dig(v6.host, v6.port, ['six.fast.test', 'AAAA']);
      assert.deepEqual(addr(six), ['fd00:5359::7']);
      const six2 = await dig(v6.host, v6.port, ['six.fast.test', 'AAAA']);
      assert.deepEqual(addr(six2), ['fd00:5359::7']);
      assert.equal(fwd.stats().fastPath.hits, 3);
      assert.equal(await up.asked('a.fast.test'), 1, 'the upstream was asked once');
      const s = fwd.stats();
      assert.equal(s.cacheHits, 3, 'hits answered by the worker count as cache hits');
      assert.ok(s.queries >= 5);
      // A raw query's ID is patched into the copied answer.
      const q = Buffer.from(buildNameQuery('a.fast.test', 1).buf);
      q.writeUInt16BE(0xbeef, 0);
      const r = await udpQuery(v4.host, v4.port, q);
      assert.ok(r);
      assert.equal(r.readUInt16BE(0), 0xbeef);
      assert.equal(fwd.stats().fastPath.hits, 4);
    } finally {
      await fwd.close();
    }
  });

  test('no stale answer after cache flush: the replica is cleared before the next datagram', async () => {
    const fwd = await start(up);
    const { host, port } = fwd.addresses[0]!;
    try {
      assert.deepEqual(addr(await dig(host, port, ['b.fast.test', 'A'])), ['127.1.0.2']);
      await up.setHosts(HOSTS.map((l) => l.replace('127.1.0.2 b', '127.1.0.22 b')));
      assert.deepEqual(addr(await dig(host, port, ['b.fast.test', 'A'])), ['127.1.0.2'], 'cached answer before the flush');
      const hits = fwd.stats().fastPath.hits;
      assert.equal(hits, 1);
      fwd.flushCache();
      assert.deepEqual(addr(await dig(host, port, ['b.fast.test', 'A'])), ['127.1.0.22'], 'the new answer right after the flush');
      assert.equal(fwd.stats().fastPath.hits, hits, 'the worker did not answer it');
      assert.deepEqual(addr(await dig(host, port, ['b.fast.test', 'A'])), ['127.1.0.22']);
      assert.equal(fwd.stats().fastPath.hits, hits + 1, 'and serves the new one afterwards');
    } finally {
      await up.setHosts(HOSTS);
      await fwd.close();
    }
  });

  test('an entry evicted from the cache (LRU bound) is no longer served by the worker', async () => {
    const fwd = await start(up, { cache: { maxEntries: 2, minTtl: 0, maxTtl: 86400, negativeTtl: 300 } });
    const { host, port } = fwd.addresses[0]!;
    try {
      const before = await up.asked('c.fast.test');
      await dig(host, port, ['c.fast.test', 'A']);
      await dig(host, port, ['c.fast.test', 'A']);
      assert.equal(fwd.stats().fastPath.hits, 1);
      await dig(host, port, ['a.fast.test', 'A']);
      await dig(host, port, ['b.fast.test', 'A']); // evicts c.fast.test
      assert.equal(fwd.stats().cacheEntries, 2);
      const r = await dig(host, port, ['c.fast.test', 'A']);
      assert.deepEqual(addr(r), ['127.1.0.3']);
      assert.equal(fwd.stats().fastPath.hits, 1, 'the evicted entry was not answered from the replica');
      assert.equal((await up.asked('c.fast.test')) - before, 2, 'it was asked upstream again');
    } finally {
      await fwd.close();
    }
  });

  test('an answer whose TTL ran out is not served by the worker', async () => {
    const fwd = await start(up, { cache: { maxEntries: 100, minTtl: 0, maxTtl: 1, negativeTtl: 1 } });
    const { host, port } = fwd.addresses[0]!;
    try {
      const before = await up.asked('ttl.fast.test');
      await dig(host, port, ['ttl.fast.test', 'A']);
      await dig(host, port, ['ttl.fast.test', 'A']);
      assert.equal(fwd.stats().fastPath.hits, 1);
      await new Promise((r) => setTimeout(r, 1200));
      const r = await dig(host, port, ['ttl.fast.test', 'A']);
      assert.deepEqual(addr(r), ['127.1.0.8']);
      assert.equal(fwd.stats().fastPath.hits, 1);
      assert.equal((await up.asked('ttl.fast.test')) - before, 2);
    } finally {
      await fwd.close();
    }
  });

  test('the per-client rate limit holds for hits answered by the worker', async () => {
    const fwd = await start(up, { rateLimit: 5 });
    const { host, port } = fwd.addresses[0]!;
    const sock = createSocket('udp4');
    try {
      assert.deepEqual(addr(await dig(host, port, ['a.fast.test', 'A'])), ['127.1.0.1']);
      let answered = 0;
      sock.on('message', () => answered++);
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
      for (let i = 0; i < 40; i++) sock.send(buildNameQuery('a.fast.test', 1).buf, port, host);
      await new Promise((r) => setTimeout(r, 500));
      assert.ok(answered >= 5 && answered <= 20, `answered ${answered} of 40 (burst 10, 5/s)`);
      const s = fwd.stats();
      assert.ok(s.fastPath.rateLimited >= 20, `the worker dropped ${s.fastPath.rateLimited}`);
      assert.ok(s.rateLimited >= 20);
      assert.ok(s.fastPath.hits >= 4, 'the answered ones were hits from the worker');
    } finally {
      sock.close();
      await fwd.close();
    }
  });

  test('the binding hook: hits skip it while the set entry lives, re-run it when the sets were lost', async () => {
    let calls = 0;
    const fwd = await start(up, {}, {
      onBindings: async () => {
        calls++;
      },
    });
    const { host, port } = fwd.addresses[0]!;
    try {
      await dig(host, port, ['hook.fast.test', 'A']);
      assert.equal(calls, 1);
      await dig(host, port, ['hook.fast.test', 'A']);
      assert.equal(calls, 1);
      assert.equal(fwd.stats().fastPath.hits, 1, 'a hit with a live set entry is answered by the worker');
      fwd.forwarder.invalidateHooks();
      assert.deepEqual(addr(await dig(host, port, ['hook.fast.test', 'A'])), ['127.1.0.4']);
      assert.equal(calls, 2, 'after the sets were lost the hit went to the main thread, which ran the hook');
      assert.equal(fwd.stats().fastPath.hits, 1);
      assert.equal(fwd.stats().rehooks, 1);
      await dig(host, port, ['hook.fast.test', 'A']);
      assert.equal(calls, 2);
      assert.equal(fwd.stats().fastPath.hits, 2, 'once re-hooked, the worker serves it again');
    } finally {
      await fwd.close();
    }
  });

  test('a hit whose set entry may expire before the answer does is never served by the worker', async () => {
    // A 1 s grace period: right after the miss, the set entry outlives the answer by exactly the
    // grace, so within a second a hit must re-run the hook (needsRehook turns true once the
    // answer's age passes x.5 s). Binder.fastUntil is 0 for such an entry: the worker never gets it.
    let calls = 0;
    const fwd = await start(up, { store: { maxEntries: 100, graceSeconds: 1, persist: false } }, {
      onBindings: async () => {
        calls++;
      },
    });
    const { host, port } = fwd.addresses[0]!;
    try {
      assert.deepEqual(addr(await dig(host, port, ['hook.fast.test', 'A'])), ['127.1.0.4']);
      assert.equal(fwd.stats().fastPath.replicaEntries, 0, 'not offered to the replica');
      assert.deepEqual(addr(await dig(host, port, ['hook.fast.test', 'A'])), ['127.1.0.4']);
      let s = fwd.stats();
      assert.equal(s.fastPath.hits, 0, 'the hit went to the main thread');
      assert.equal(s.cacheHits, 1);
      // Over the next second some hits re-run the hook; only after one has (and then only if the
      // new set entry outlives the answer by enough) may the worker serve it.
      for (let i = 0; i < 8; i++) {
        assert.deepEqual(addr(await dig(host, port, ['hook.fast.test', 'A'])), ['127.1.0.4']);
        await new Promise((r) => setTimeout(r, 150));
      }
      s = fwd.stats();
      assert.ok(s.rehooks >= 1, 'the hook ran again on a hit');
      assert.equal(calls, 1 + s.rehooks);
      assert.equal(s.cacheHits, 9);
    } finally {
      await fwd.close();
    }
  });

  test('hostile datagrams: malformed → FORMERR from the main thread, responses and odd opcodes never answered as hits', async () => {
    const fwd = await start(up);
    const { host, port } = fwd.addresses[0]!;
    try {
      await dig(host, port, ['a.fast.test', 'A']);
      const good = Buffer.from(buildNameQuery('a.fast.test', 1).buf);
      // A reply-flagged copy of a cached question: no answer at all (no reflection).
      const resp = Buffer.from(good);
      resp[2]! |= 0x80;
      assert.equal(await udpQuery(host, port, resp, 300), null);
      // Cut inside the question: FORMERR with the client's ID.
      const cut = Buffer.from(good.subarray(0, 20));
      const f = await udpQuery(host, port, cut);
      assert.ok(f);
      assert.equal(f[3]! & 0xf, 1);
      assert.equal(f.readUInt16BE(0), cut.readUInt16BE(0));
      // Opcode STATUS on a cached name: NOTIMP, not the cached answer.
      const st = Buffer.from(good);
      st[2] = (st[2]! & 0x87) | (2 << 3);
      const n = await udpQuery(host, port, st);
      assert.ok(n);
      assert.equal(n[3]! & 0xf, 4);
      assert.equal(n.readUInt16BE(6), 0, 'no answer records');
      // Shorter than a header: dropped, counted.
      assert.equal(await udpQuery(host, port, Buffer.from([1, 2, 3]), 300), null);
      assert.equal(fwd.stats().fastPath.hits, 0);

      // Thousands of random and mutated datagrams at the worker.
      const sock = createSocket('udp4');
      sock.on('message', () => {});
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
      let seed = 12345;
      const rnd = (n: number): number => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return seed % n;
      };
      for (let i = 0; i < 4000; i++) {
        let b: Buffer;
        if (i % 2) {
          b = Buffer.alloc(rnd(80));
          for (let j = 0; j < b.length; j++) b[j] = rnd(256);
        } else {
          b = Buffer.from(good);
          for (let k = 0; k < 1 + rnd(3); k++) b[rnd(b.length)] = rnd(256);
          if (rnd(4) === 0) b = b.subarray(0, rnd(b.length));
        }
        sock.send(b, port, host);
        if (i % 200 === 0) await new Promise((r) => setImmediate(r));
      }
      await new Promise((r) => setTimeout(r, 500));
      sock.close();
      const s = fwd.stats();
      assert.equal(s.fastPath.restarts, 0, 'the worker never died');
      assert.equal(s.fastPath.listeners, 1);
      // Still answering: a hit from the worker and a miss through the main thread.
      const h0 = s.fastPath.hits;
      assert.deepEqual(addr(await dig(host, port, ['a.fast.test', 'A'])), ['127.1.0.1']);
      assert.ok(fwd.stats().fastPath.hits > h0);
      assert.deepEqual(addr(await dig(host, port, ['c.fast.test', 'A'])), ['127.1.0.3']);
    } finally {
      await fwd.close();
    }
  });

  test('a flood the main thread cannot take up is dropped in the worker, not queued without bound', async () => {
    const fwd = await start(up);
    const { host, port } = fwd.addresses[0]!;
    try {
      // A child process sends 20 000 datagrams the worker must pass on (header-only queries,
      // FORMERR material) while this thread is kept busy and cannot take any of them up.
      const sender = spawn(process.execPath, ['-e', `
        const s = require('node:dgram').createSocket('udp4');
        const b = Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        let n = 0;
        (function go() { for (let i = 0; i < 500 && n < 20000; i++, n++) s.send(b, ${port}, '${host}'); if (n < 20000) setImmediate(go); else setTimeout(() => s.close(), 200); })();
      `], { stdio: 'ignore' });
      const started = Date.now();
      while (Date.now() - started < 1500) {
        // busy: the worker keeps reading and queueing for this thread meanwhile
      }
      await new Promise<void>((r) => sender.once('exit', () => r()));
      await new Promise((r) => setTimeout(r, 300));
      const s = fwd.stats();
      assert.ok(s.fastPath.overflow > 0, `the worker dropped ${s.fastPath.overflow} once ${4096} were waiting`);
      assert.ok(s.fastPath.forwarded <= 20000 - s.fastPath.overflow);
      assert.deepEqual(addr(await dig(host, port, ['a.fast.test', 'A'])), ['127.1.0.1'], 'answers afterwards');
    } finally {
      await fwd.close();
    }
  });

  test('a dying worker is restarted; after repeated deaths the listener falls back to dgram on the same port', async () => {
    const logged: string[] = [];
    const log = { debug() {}, info() {}, warn: (_: object, m?: string) => void logged.push(`warn ${m}`), error: (_: object, m?: string) => void logged.push(`error ${m}`) };
    const fwd = await start(up, {}, { log });
    const { host, port } = fwd.addresses[0]!;
    const l = fwd.listeners[0]!.fast!;
    const waitFor = async (cond: () => boolean, what: string): Promise<void> => {
      for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
      assert.ok(cond(), what);
    };
    try {
      await dig(host, port, ['a.fast.test', 'A']);
      l.crashWorkerForTest();
      await waitFor(() => fwd.stats().fastPath.restarts === 1, 'restarted once');
      assert.ok(logged.some((m) => m.startsWith('error dns: fast path worker died')), logged.join('; '));
      // Answers keep coming (the main thread reads while the worker restarts); once the new
      // worker reads, its replica refills from the main thread's cache.
      assert.deepEqual(addr(await dig(host, port, ['a.fast.test', 'A'])), ['127.1.0.1']);
      await waitFor(() => l.workerReady && l.reader === 'worker', 'the new worker reads');
      assert.deepEqual(addr(await dig(host, port, ['a.fast.test', 'A'])), ['127.1.0.1']);
      await waitFor(() => fwd.stats().fastPath.replicaEntries === 1, 'the new worker got the entry');
      const h = fwd.stats().fastPath.hits;
      assert.deepEqual(addr(await dig(host, port, ['a.fast.test', 'A'])), ['127.1.0.1']);
      assert.equal(fwd.stats().fastPath.hits, h + 1, 'the restarted worker answers hits');
      // Abrupt ends count too; the fourth death within a minute gives up the fast path.
      for (let i = 2; i <= 4; i++) {
        if (i % 2) l.crashWorkerForTest();
        else await l.terminateWorkerForTest();
        await waitFor(() => fwd.stats().fastPath.restarts === i || fwd.stats().fastPath.fallbacks === 1, `death ${i} handled`);
        if (i < 4) await waitFor(() => l.workerReady, `worker ${i} up`);
      }
      await waitFor(() => !l.active && fwd.stats().fastPath.fallbacks === 1, 'fell back');
      assert.ok(logged.some((m) => m.includes('answering through a dgram socket instead')), logged.join('; '));
      await waitFor(() => logged.some((m) => m.includes('back on a dgram socket')), 'dgram bound');
      assert.deepEqual(addr(await dig(host, port, ['a.fast.test', 'A'])), ['127.1.0.1'], 'same address, answered by the dgram listener');
      assert.deepEqual(addr(await dig(host, port, ['b.fast.test', 'A'])), ['127.1.0.2']);
    } finally {
      await fwd.close();
    }
  });

  test('low load: the main thread reads (no hop); a burst hands reading to the worker, every query answered once; quiet hands it back', async () => {
    const fwd = await start(up, {}, { fastPathMainAtLowLoad: true });
    const { host, port } = fwd.addresses[0]!;
    const l = fwd.listeners[0]!.fast!;
    const waitFor = async (cond: () => boolean, what: string): Promise<void> => {
      for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
      assert.ok(cond(), what);
    };
    try {
      assert.equal(l.reader, 'main', 'idle: the main thread reads');
      assert.deepEqual(addr(await dig(host, port, ['a.fast.test', 'A'])), ['127.1.0.1']);
      assert.deepEqual(addr(await dig(host, port, ['a.fast.test', 'A'])), ['127.1.0.1']);
      let s = fwd.stats();
      assert.equal(s.fastPath.forwarded, 0, 'nothing went through the worker');
      assert.equal(s.fastPath.hits, 0);
      assert.ok(s.cacheHits >= 1, 'the hit was answered by the main thread');
      assert.equal(l.reader, 'main');
      // A burst from one socket: two thirds hits, one third misses (names the upstream denies).
      const N = 3000;
      // A large receive buffer: this thread is also the forwarder's, so answers pile up unread.
      const sock = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
      const answers = new Map<number, number>();
      let got = 0;
      const all = new Promise<void>((resolve) => {
        sock.on('message', (m) => {
          const id = m.readUInt16BE(0);
          answers.set(id, (answers.get(id) ?? 0) + 1);
          if (++got === N) resolve();
        });
      });
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
      for (let i = 0; i < N; i++) {
        const q = Buffer.from(buildNameQuery(i % 3 === 2 ? `m${i}.burst.fast.test` : 'a.fast.test', 1).buf);
        q.writeUInt16BE(i, 0);
        sock.send(q, port, host);
        // Paced so the socket buffer never overflows (UDP would drop, not the forwarder).
        if (i % 50 === 49) await new Promise((r) => setImmediate(r));
      }
      await Promise.race([all, new Promise((r) => setTimeout(r, 15_000))]);
      sock.close();
      s = fwd.stats();
      assert.ok(s.fastPath.toWorker >= 1, 'the burst handed reading to the worker');
      assert.ok(s.fastPath.hits > 0, 'the worker answered hits');
      const missing = Array.from({ length: N }, (_, i) => i).filter((i) => !answers.has(i));
      assert.equal(answers.size, N, `every query answered (${answers.size} of ${N}; missing misses ${missing.filter((i) => i % 3 === 2).length}, hits ${missing.filter((i) => i % 3 !== 2).length})`);
      assert.ok([...answers.values()].every((n) => n === 1), 'and each exactly once');
      // Quiet: the worker hands reading back; a flush is then seen at once by the main thread.
      await waitFor(() => l.reader === 'main' && fwd.stats().fastPath.toMain >= 1, 'handed back when quiet');
      const before = await up.asked('a.fast.test');
      const h = fwd.stats().fastPath.hits;
      fwd.flushCache();
      assert.deepEqual(addr(await dig(host, port, ['a.fast.test', 'A'])), ['127.1.0.1']);
      assert.equal(await up.asked('a.fast.test'), before + 1, 'after the flush the upstream is asked again');
      assert.equal(fwd.stats().fastPath.hits, h);
    } finally {
      await fwd.close();
    }
  });

  test('low load, main thread blocked: the worker takes over reading and answers cached names', async () => {
    const fwd = await start(up, {}, { fastPathMainAtLowLoad: true });
    const { host, port } = fwd.addresses[0]!;
    const l = fwd.listeners[0]!.fast!;
    try {
      assert.deepEqual(addr(await dig(host, port, ['b.fast.test', 'A'])), ['127.1.0.2']);
      for (let i = 0; i < 100 && fwd.stats().fastPath.replicaEntries < 1; i++) await new Promise((r) => setTimeout(r, 25));
      assert.equal(l.reader, 'main');
      const h0 = fwd.stats().fastPath.hits;
      // A child asks for the cached name every 20 ms while this thread (the forwarder's main
      // thread) is blocked; it prints how many answers it got.
      const child = spawn(process.execPath, ['-e', `
        const s = require('node:dgram').createSocket('udp4');
        const q = Buffer.from(${JSON.stringify([...buildNameQuery('b.fast.test', 1).buf])});
        let got = 0; s.on('message', () => got++);
        process.stdout.write('ready ');
        let n = 0; const t = setInterval(() => { s.send(q, ${port}, '${host}'); if (++n === 60) { clearInterval(t); setTimeout(() => { process.stdout.write(String(got)); s.close(); }, 300); } }, 20);
      `], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      // Blocked only once the child runs (it may take a while to start on a loaded machine).
      for (let i = 0; i < 400 && !out.startsWith('ready'); i++) await new Promise((r) => setTimeout(r, 25));
      const started = Date.now();
      while (Date.now() - started < 800) {
        // blocked: no event-loop turn, so the dgram socket reads nothing meanwhile
      }
      const duringBlock = fwd.stats().fastPath;
      await new Promise<void>((r) => child.once('exit', () => r()));
      assert.ok(duringBlock.toWorker >= 1, `the worker took over while the main thread was blocked: ${JSON.stringify(duringBlock)}`);
      assert.ok(duringBlock.hits > h0, `the worker answered hits meanwhile (${duringBlock.hits - h0})`);
      assert.equal(out, 'ready 60', 'every query answered');
      assert.deepEqual(addr(await dig(host, port, ['c.fast.test', 'A'])), ['127.1.0.3'], 'a miss afterwards');
    } finally {
      await fwd.close();
    }
  });

  test('fastPath: false keeps the dgram listener', async () => {
    const fwd = await start(up, {}, { fastPath: false });
    try {
      assert.ok(fwd.listeners.every((l) => l.fast === null));
      const { host, port } = fwd.addresses[0]!;
      await dig(host, port, ['a.fast.test', 'A']);
      await dig(host, port, ['a.fast.test', 'A']);
      const s = fwd.stats();
      assert.equal(s.fastPath.hits, 0);
      assert.equal(s.cacheHits, 1);
    } finally {
      await fwd.close();
    }
  });
});
