// bench:dns — switchyard's DNS forwarder against dnsmasq, both forwarding to the same local
// upstream (dnsmasq serving a 5,000-name hosts file), in the same run:
//   - cache-hit QPS: dnsperf over 1,000 warmed names, 5 rounds, alternating order, median;
//   - miss latency: sequential queries for names neither has seen, p50/p99 per round, median,
//     compared with asking the upstream directly.
// Servers under test run on CPU 0 (taskset), dnsperf, the upstream and this script on CPU 1.
// Writes the figures into docs/benchmarks.md, section "dns".
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildNameQuery } from '../src/dns/build.ts';

const run = promisify(execFile);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? '5');
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? '2');
const NAMES = 5000;
const HIT_NAMES = 1000;
const MISS_PER_ROUND = 200;
const ROOT = new URL('../', import.meta.url).pathname;

for (const tool of ['dnsmasq', 'dnsperf', 'taskset']) {
  if (!['/usr/sbin', '/usr/bin', '/sbin', '/bin'].some((d) => existsSync(join(d, tool)))) {
    console.error(`bench:dns needs ${tool}`);
    process.exit(2);
  }
}
const multiCpu = cpus().length >= 2;
const CPU_SERVER = '0';
const CPU_CLIENT = multiCpu ? '1' : '0';
await run('taskset', ['-p', '-c', CPU_CLIENT, String(process.pid)]);

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'sy-bench-dns-'));
const children: ChildProcess[] = [];
function cleanup(): void {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);

const name = (i: number): string => `n${String(i).padStart(4, '0')}.bench.test`;
writeFileSync(join(dir, 'hosts'), Array.from({ length: NAMES }, (_, i) => `127.20.${i >> 8}.${(i & 0xff) + 1} ${name(i)}`).join('\n') + '\n');
writeFileSync(join(dir, 'hits.txt'), Array.from({ length: HIT_NAMES }, (_, i) => `${name(i)} A`).join('\n') + '\n');

function dnsmasq(cpu: string, port: number, extra: string[]): ChildProcess {
  const c = spawn('taskset', ['-c', cpu, 'dnsmasq', '-k', '-C', '/dev/null', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts', '--pid-file=', ...extra], { stdio: 'ignore' });
  children.push(c);
  return c;
}

async function waitAnswer(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await query(port, name(NAMES - 1), 200)) !== null) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`nothing answers on port ${port}`);
}

/** One query, its round-trip time in microseconds (null on timeout). */
function query(port: number, qname: string, timeoutMs = 2000): Promise<number | null> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const q = buildNameQuery(qname, 1).buf;
    const timer = setTimeout(() => {
      s.close();
      resolve(null);
    }, timeoutMs);
    let start = 0n;
    s.on('error', () => {
      clearTimeout(timer);
      s.close();
      resolve(null);
    });
    s.on('message', () => {
      const us = Number(process.hrtime.bigint() - start) / 1000;
      clearTimeout(timer);
      s.close();
      resolve(us);
    });
    s.connect(port, '127.0.0.1', () => {
      start = process.hrtime.bigint();
      s.send(q);
    });
  });
}

async function dnsperf(port: number): Promise<{ qps: number; lost: number }> {
  const { stdout } = await run('taskset', ['-c', CPU_CLIENT, 'dnsperf', '-s', '127.0.0.1', '-p', String(port), '-d', join(dir, 'hits.txt'), '-l', String(SECONDS), '-c', '4', '-q', '256', '-t', '2']);
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(stdout)?.[1] ?? 'NaN');
  const lost = Number(/Queries lost:\s+(\d+)/.exec(stdout)?.[1] ?? 'NaN');
  return { qps, lost };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

const upPort = await freePort();
dnsmasq(CPU_CLIENT, upPort, [`--addn-hosts=${join(dir, 'hosts')}`, '--local=/bench.test/', '--local-ttl=3600', '--cache-size=0']);
await waitAnswer(upPort);

const dmPort = await freePort();
dnsmasq(CPU_SERVER, dmPort, [`--server=127.0.0.1#${upPort}`, '--cache-size=10000']);
await waitAnswer(dmPort);

const syPort = await freePort();
const sy = spawn('taskset', ['-c', CPU_SERVER, process.execPath, '--import', 'tsx', join(ROOT, 'bench/dns-server.ts'), JSON.stringify({ port: syPort, upstream: `udp://127.0.0.1:${upPort}` })], {
  cwd: ROOT,
  stdio: ['ignore', 'pipe', 'inherit'],
});
children.push(sy);
await new Promise<void>((resolve, reject) => {
  sy.stdout!.on('data', (d: Buffer) => d.toString().includes('READY') && resolve());
  sy.once('exit', (code) => reject(new Error(`switchyard bench server exited with ${code}`)));
});
await waitAnswer(syPort);

// Warm both caches with the hit set.
for (const port of [syPort, dmPort]) for (let i = 0; i < HIT_NAMES; i++) await query(port, name(i));

const hits: Record<'switchyard' | 'dnsmasq', number[]> = { switchyard: [], dnsmasq: [] };
const lost: Record<'switchyard' | 'dnsmasq', number> = { switchyard: 0, dnsmasq: 0 };
const lat = { direct: { p50: [] as number[], p99: [] as number[] }, switchyard: { p50: [] as number[], p99: [] as number[] }, dnsmasq: { p50: [] as number[], p99: [] as number[] } };

let next = HIT_NAMES;
for (let r = 0; r < ROUNDS; r++) {
  const order: ('switchyard' | 'dnsmasq')[] = r % 2 ? ['dnsmasq', 'switchyard'] : ['switchyard', 'dnsmasq'];
  for (const who of order) {
    const res = await dnsperf(who === 'switchyard' ? syPort : dmPort);
    hits[who].push(res.qps);
    lost[who] += res.lost;
  }
  // Misses: fresh names for each forwarder; the direct baseline asks the upstream for the same names.
  const fresh = (n: number): string[] => Array.from({ length: n }, () => name(next++ % NAMES));
  for (const [who, port] of [['direct', upPort], ['switchyard', syPort], ['dnsmasq', dmPort]] as const) {
    const names = fresh(MISS_PER_ROUND);
    const rtts: number[] = [];
    for (const n of names) {
      const us = await query(port, n);
      if (us !== null) rtts.push(us);
    }
    lat[who].p50.push(pct(rtts, 50));
    lat[who].p99.push(pct(rtts, 99));
  }
}
sy.kill('SIGTERM');

const syQps = median(hits.switchyard);
const dmQps = median(hits.dnsmasq);
const ratio = syQps / dmQps;
const m = (who: keyof typeof lat, k: 'p50' | 'p99'): number => median(lat[who][k]);
const overhead = m('switchyard', 'p50') - m('direct', 'p50');
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const us = (n: number): string => `${(n / 1000).toFixed(3)} ms`;
const date = new Date().toISOString().slice(0, 10);

const section = `## dns

\`npm run bench:dns\` (${date}, Node ${process.version}, ${cpus().length} CPUs; servers pinned to CPU ${CPU_SERVER}, dnsperf/upstream/prober to CPU ${CPU_CLIENT}; ${ROUNDS} rounds, medians). Both forwarders ask the same local upstream: dnsmasq serving a ${NAMES}-name hosts file.

| | switchyard | dnsmasq | direct to upstream |
|---|---|---|---|
| cache-hit QPS (dnsperf, ${HIT_NAMES} warmed names, ${SECONDS} s × ${ROUNDS}) | ${fmt(syQps)} | ${fmt(dmQps)} | |
| queries lost (all rounds) | ${lost.switchyard} | ${lost.dnsmasq} | |
| miss latency p50 (${MISS_PER_ROUND} fresh names × ${ROUNDS}, sequential) | ${us(m('switchyard', 'p50'))} | ${us(m('dnsmasq', 'p50'))} | ${us(m('direct', 'p50'))} |
| miss latency p99 | ${us(m('switchyard', 'p99'))} | ${us(m('dnsmasq', 'p99'))} | ${us(m('direct', 'p99'))} |

- Cache-hit QPS ratio switchyard / dnsmasq: **${ratio.toFixed(2)}×** (target ≥ 1.5×).
- Miss p50 overhead over asking the upstream directly: **${(overhead / 1000).toFixed(3)} ms** (target ≤ 0.2 ms).
- Per round, switchyard QPS: ${hits.switchyard.map(fmt).join(', ')}; dnsmasq: ${hits.dnsmasq.map(fmt).join(', ')}.
- The switchyard server runs with a no-op binding hook, so misses include batching and awaiting it.
`;

console.log(section);
const docPath = join(ROOT, 'docs/benchmarks.md');
let doc = existsSync(docPath) ? readFileSync(docPath, 'utf8') : '# Benchmarks\n\nFigures written by the `bench:*` scripts; each compares against its anchor in the same run.\n';
const re = /## dns\n[\s\S]*?(?=\n## |$)/;
doc = re.test(doc) ? doc.replace(re, section.trimEnd() + '\n') : `${doc.trimEnd()}\n\n${section}`;
writeFileSync(docPath, doc);
console.log(`written to ${docPath}`);
process.exit(0);
