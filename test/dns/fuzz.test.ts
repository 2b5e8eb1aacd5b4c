// Fuzz: 100k random and mutated packets (times SWITCHYARD_TEST_SCALE) at the UDP listener, and
// framed junk over TCP, with valid queries mixed in. The forwarder must keep answering the valid
// ones, still answer afterwards, and keep RSS and event-loop lag bounded. Deterministic PRNG, so a
// failure can be replayed with the same seed (printed).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { startDnsForwarder } from '../../src/dns/index.ts';
import type { DnsForwarder } from '../../src/dns/index.ts';
import { buildNameQuery } from '../../src/dns/build.ts';
import { builtinEgresses, cleanup, dig, dnsConfig, have, projector, startUnbound, tempDir } from './helpers.ts';
import type { Unbound } from './helpers.ts';

const SCALE = Number(process.env['SWITCHYARD_TEST_SCALE'] ?? '1') || 1;
const TOTAL = Math.round(100_000 * SCALE);
const SEED = Number(process.env['SWITCHYARD_FUZZ_SEED'] ?? '20261122');

function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

const skip = !have('unbound') || !have('dig') ? 'needs unbound and dig' : false;

describe(`fuzz: ${TOTAL} packets (seed ${SEED})`, { skip }, () => {
  let dir: string;
  let ub: Unbound;
  let fwd: DnsForwarder;

  before(async () => {
    dir = tempDir('fuzz');
    ub = await startUnbound({ dir, localData: ['a.test. 300 IN A 127.1.0.1', 'h.test. 300 IN HTTPS 1 . alpn=h2 ipv4hint=127.1.0.9'] });
    fwd = await startDnsForwarder({
      config: { dns: dnsConfig({ upstreams: [`udp://127.0.0.1:${ub.port}`], timeoutMs: 1000 }), egress: builtinEgresses() },
      projectDomain: projector({ 'blocked.test': 'block' }),
      onBindings: async () => {},
    });
  });
  after(async () => {
    await fwd?.close();
    await ub?.stop();
    cleanup(dir);
  });

  test('random and mutated packets: no crash, valid queries answered, memory and lag bounded', async () => {
    const { host, port } = fwd.addresses[0]!;
    const rnd = prng(SEED);
    const bases = [
      buildNameQuery('a.test', 1).buf,
      buildNameQuery('h.test', 65).buf,
      buildNameQuery('blocked.test', 28).buf,
      buildNameQuery('use-application-dns.net', 1).buf,
      Buffer.from(buildNameQuery('a.test', 1).buf.subarray(0, 24)).fill(0, 10, 12),
    ];
    const randomBytes = (n: number): Buffer => {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) b[i] = rnd() & 0xff;
      return b;
    };
    const mutate = (): Buffer => {
      const b = Buffer.from(bases[rnd() % bases.length]!);
      const n = 1 + (rnd() % 4);
      let out = b;
      for (let i = 0; i < n; i++) {
        const kind = rnd() % 5;
        if (kind === 0) out[rnd() % out.length] = rnd() & 0xff;
        else if (kind === 1) out[rnd() % out.length]! ^= 1 << (rnd() % 8);
        else if (kind === 2) out = out.subarray(0, rnd() % (out.length + 1));
        else if (kind === 3) out = Buffer.concat([out, randomBytes(rnd() % 40)]);
        else if (out.length >= 12) out.writeUInt16BE(rnd() & 0xffff, 4 + 2 * (rnd() % 4));
        if (out.length === 0) break;
      }
      return out;
    };
    const random = (): Buffer => randomBytes(rnd() % 300);

    const junk = createSocket('udp4');
    const valid = createSocket('udp4');
    let validAnswered = 0;
    valid.on('message', (m) => {
      if ((m[3]! & 0xf) === 0 && m.readUInt16BE(6) > 0) validAnswered++;
    });
    junk.on('message', () => {});
    await new Promise<void>((r) => junk.bind(0, '127.0.0.1', () => r()));
    await new Promise<void>((r) => valid.bind(0, '127.0.0.1', () => r()));

    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    let validSent = 0;
    const BURST = 200;
    const q0 = fwd.stats().queries;
    // Send until the forwarder has processed TOTAL packets, in bursts, waiting for it to catch up
    // (in one process, an unpaced sender only fills the socket buffer and the kernel drops).
    for (let sent = 0; fwd.stats().queries - q0 < TOTAL; ) {
      for (let i = 0; i < BURST; i++, sent++) {
        if (sent % 100 === 0) {
          const q = buildNameQuery(rnd() & 1 ? 'a.test' : 'A.TEST', 1).buf;
          valid.send(q, port, host);
          validSent++;
        } else junk.send(rnd() % 2 ? mutate() : random(), port, host);
      }
      // Sleep (not spin) until most of the burst was read; give up waiting after 50 ms (drops are fine).
      const until = Date.now() + 50;
      do await new Promise((r) => setTimeout(r, 1));
      while (fwd.stats().queries - q0 < sent - BURST / 4 && Date.now() < until);
    }

    // Framed junk over TCP, then an honest query on the same connection still gets its answer.
    const tcpAnswer = await new Promise<Buffer | null>((resolve) => {
      const s = connect(port, host);
      let acc = Buffer.alloc(0);
      s.on('data', (d) => {
        acc = Buffer.concat([acc, d]);
        // Read frames; the last query we send has ID 0x5359.
        let p = 0;
        while (p + 2 <= acc.length) {
          const len = acc.readUInt16BE(p);
          if (p + 2 + len > acc.length) break;
          const m = acc.subarray(p + 2, p + 2 + len);
          if (m.length >= 2 && m.readUInt16BE(0) === 0x5359) {
            s.destroy();
            resolve(Buffer.from(m));
            return;
          }
          p += 2 + len;
        }
      });
      s.on('error', () => resolve(null));
      s.setTimeout(5000, () => {
        s.destroy();
        resolve(null);
      });
      s.on('connect', () => {
        for (let i = 0; i < 200; i++) {
          const m = rnd() % 2 ? mutate() : random();
          const f = Buffer.alloc(2 + m.length);
          f.writeUInt16BE(m.length, 0);
          m.copy(f, 2);
          s.write(f);
        }
        const q = buildNameQuery('a.test', 1).buf;
        q.writeUInt16BE(0x5359, 0);
        const f = Buffer.alloc(2 + q.length);
        f.writeUInt16BE(q.length, 0);
        q.copy(f, 2);
        s.write(f);
      });
    });
    await new Promise((r) => setTimeout(r, 1500));
    lag.disable();
    junk.close();
    valid.close();
    global.gc?.();
    const rssGrowth = (process.memoryUsage().rss - rssBefore) / 1048576;
    const stats = fwd.stats();
    const maxLagMs = lag.max / 1e6;
    console.log(`# fuzz: ${stats.queries} processed, valid ${validAnswered}/${validSent}, rss +${rssGrowth.toFixed(1)} MiB, lag p99 ${(lag.percentile(99) / 1e6).toFixed(1)} ms max ${maxLagMs.toFixed(1)} ms, stats ${JSON.stringify(stats)}`);

    assert.ok(stats.malformed > TOTAL / 10, 'malformed packets were seen and refused');
    assert.ok(validAnswered >= validSent * 0.8, `valid queries answered: ${validAnswered}/${validSent}`);
    assert.ok(tcpAnswer && (tcpAnswer[3]! & 0xf) === 0 && tcpAnswer.readUInt16BE(6) === 1, 'TCP answer after junk frames');
    assert.ok(rssGrowth < 200, `RSS grew by ${rssGrowth.toFixed(1)} MiB`);
    assert.ok(maxLagMs < 2000, `event-loop lag max ${maxLagMs.toFixed(0)} ms`);
    const r = await dig(host, port, ['a.test', 'A']);
    assert.deepEqual(r.answers.map((a) => a.split(' ')[4]), ['127.1.0.1']);
  });
});
