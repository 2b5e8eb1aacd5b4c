// bench:dns — switchyard's DNS forwarder against dnsmasq, both forwarding to the same local
// upstream (dnsmasq serving a 5,000-name hosts file), in the same run:
//   - cache-hit QPS: dnsperf over 1,000 warmed names, 5 rounds, alternating order, median;
//   - miss latency: sequential queries for names neither has seen, p50/p99 per round, median,
//     compared with asking the upstream directly, and with switchyard on a plain dgram listener.
// switchyard runs as bench/dns-server.ts; on Linux its UDP listener is the fast path (the main
// thread reads at low load — the sequential misses — and a worker answering hits with
// recvmmsg/sendmmsg takes over under load — dnsperf; docs/dns.md), and the table says how many
// hits the worker took and how often reading changed hands.
// Servers under test run on CPU 0 (taskset), dnsperf, the upstream and this script on CPU 1.
// Writes the figures into docs/benchmarks.md, section "dns".
// Environment: BENCH_ROUNDS (5), BENCH_SECONDS (2) per dnsperf run; for investigation,
// BENCH_PROF=DIR (CPU profile of the switchyard server), BENCH_STATS=1 (its counters on exit),
// BENCH_PAUSE=SECONDS (keep the servers up at the end), BENCH_NO_WRITE=1 (or --no-write: print
// the section, leave docs/benchmarks.md alone).
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, cpus, loadavg } from 'node:os';
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

const loadBefore = loadavg();
const dir = mkdtempSync(join(tmpdir(), 'sy-bench-dns-'));
// dnsmasq reads its hosts file after dropping root (to nobody): the folder must be readable.
chmodSync(dir, 0o755);
const children: ChildProcess[] = [];
function cleanup(): void {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);

const name = (i: number): string => `n${String(i).padStart(4, '0')}.bench.test`;
writeFileSync(join(dir, 'hosts'), Array.from({ length: NAMES }, (_, i) => `127.20.${i >> 8}.${i & 0xff} ${name(i)}`).join('\n') + '\n');
writeFileSync(join(dir, 'hits.txt'), Array.from({ length: HIT_NAMES }, (_, i) => `${name(i)} A`).join('\n') + '\n');

function dnsmasq(cpu: string, port: number, extra: string[]): ChildProcess {
  const c = spawn('taskset', ['-c', cpu, 'dnsmasq', '-k', '-C', '/dev/null', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts', '--pid-file=', ...extra], { stdio: 'ignore' });
  children.push(c);
  return c;
}

/** Waits until `port` answers a hosts-file name with its address (a benchmark of errors proves nothing). */
async function waitAnswer(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const reply = await ask(port, name(NAMES - 1), 200);
    if (reply && (reply[3]! & 0xf) === 0 && reply.readUInt16BE(6) > 0) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`port ${port} does not answer ${name(NAMES - 1)} with an address`);
}

function ask(port: number, qname: string, timeoutMs: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const timer = setTimeout(() => {
      s.close();
      resolve(null);
    }, timeoutMs);
    s.on('error', () => {
      clearTimeout(timer);
      s.close();
      resolve(null);
    });
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m);
    });
    s.connect(port, '127.0.0.1', () => s.send(buildNameQuery(qname, 1).buf));
  });
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

/** CPU time (user + system, all threads) a process has used, in microseconds. */
function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100; // utime, stime in USER_HZ (100)
}

async function dnsperf(port: number): Promise<{ qps: number; lost: number; completed: number }> {
  const { stdout } = await run('taskset', ['-c', CPU_CLIENT, 'dnsperf', '-s', '127.0.0.1', '-p', String(port), '-d', join(dir, 'hits.txt'), '-l', String(SECONDS), '-c', '4', '-q', '256', '-t', '2']);
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(stdout)?.[1] ?? 'NaN');
  const lost = Number(/Queries lost:\s+(\d+)/.exec(stdout)?.[1] ?? 'NaN');
  const completed = Number(/Queries completed:\s+(\d+)/.exec(stdout)?.[1] ?? 'NaN');
  // Every answer must be NOERROR: the hit set is all names the upstream knows.
  const codes = /Response codes:\s+(.*)/.exec(stdout)?.[1] ?? '';
  if (!/^NOERROR [\d.]+ \(100(\.0+)?%\)$/.test(codes.trim())) throw new Error(`port ${port}: unexpected response codes: ${codes}`);
  return { qps, lost, completed };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

const upPort = await freePort();
dnsmasq(CPU_CLIENT, upPort, [`--addn-hosts=${join(dir, 'hosts')}`, '--local=/bench.test/', '--local-ttl=3600', '--cache-size=0']);
await waitAnswer(upPort);

const dmPort = await freePort();
const dm = dnsmasq(CPU_SERVER, dmPort, [`--server=127.0.0.1#${upPort}`, '--cache-size=10000']);
await waitAnswer(dmPort);

const syPort = await freePort();
const prof = process.env['BENCH_PROF'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['BENCH_PROF']}`] : [];
const sy = spawn('taskset', ['-c', CPU_SERVER, process.execPath, ...prof, '--import', 'tsx', join(ROOT, 'bench/dns-server.ts'), JSON.stringify({ port: syPort, upstream: `udp://127.0.0.1:${upPort}` })], {
  cwd: ROOT,
  stdio: ['ignore', 'pipe', 'inherit'],
});
children.push(sy);
await new Promise<void>((resolve, reject) => {
  sy.stdout!.on('data', (d: Buffer) => d.toString().includes('READY') && resolve());
  sy.once('exit', (code) => reject(new Error(`switchyard bench server exited with ${code}`)));
});
await waitAnswer(syPort);

// The same forwarder with its UDP listener on a Node dgram socket (no fast path): miss latency
// only, to show what the fast path's extra thread hop costs a miss in the same run.
const sdPort = await freePort();
const sd = spawn('taskset', ['-c', CPU_SERVER, process.execPath, '--import', 'tsx', join(ROOT, 'bench/dns-server.ts'), JSON.stringify({ port: sdPort, upstream: `udp://127.0.0.1:${upPort}`, fastPath: false })], {
  cwd: ROOT,
  stdio: ['ignore', 'pipe', 'inherit'],
});
children.push(sd);
await new Promise<void>((resolve) => sd.stdout!.on('data', (d: Buffer) => d.toString().includes('READY') && resolve()));
await waitAnswer(sdPort);

// Anchor: the cheapest possible Node responder (fixed answer by byte copy), same CPU.
const echoPort = await freePort();
const echo = spawn('taskset', ['-c', CPU_SERVER, process.execPath, '--import', 'tsx', join(ROOT, 'bench/udp-echo.ts'), String(echoPort)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
children.push(echo);
await new Promise<void>((resolve) => echo.stdout!.on('data', (d: Buffer) => d.toString().includes('READY') && resolve()));

// Warm both caches with the hit set, and both miss paths (JIT) with names the upstream denies.
for (const port of [syPort, dmPort, sdPort]) {
  for (let i = 0; i < HIT_NAMES; i++) await query(port, name(i));
  for (let i = 0; i < 1000; i++) await query(port, `warm${i}.${port}.bench.test`);
}

type Who = 'switchyard' | 'dnsmasq' | 'echo';
const hits: Record<Who, number[]> = { switchyard: [], dnsmasq: [], echo: [] };
const lost: Record<Who, number> = { switchyard: 0, dnsmasq: 0, echo: 0 };
const cpuPerQuery: Record<Who, number[]> = { switchyard: [], dnsmasq: [], echo: [] };
const servers: Record<Who, { port: number; proc: ChildProcess }> = {
  switchyard: { port: syPort, proc: sy },
  dnsmasq: { port: dmPort, proc: dm },
  echo: { port: echoPort, proc: echo },
};
const lat = {
  direct: { p50: [] as number[], p99: [] as number[] },
  switchyard: { p50: [] as number[], p99: [] as number[] },
  dnsmasq: { p50: [] as number[], p99: [] as number[] },
  dgram: { p50: [] as number[], p99: [] as number[] },
};

let next = HIT_NAMES;
for (let r = 0; r < ROUNDS; r++) {
  const order: Who[] = r % 2 ? ['dnsmasq', 'echo', 'switchyard'] : ['switchyard', 'echo', 'dnsmasq'];
  for (const who of order) {
    const pid = servers[who].proc.pid!;
    const cpu0 = cpuMicros(pid);
    const res = await dnsperf(servers[who].port);
    cpuPerQuery[who].push((cpuMicros(pid) - cpu0) / res.completed);
    hits[who].push(res.qps);
    lost[who] += res.lost;
  }
  // Misses: fresh names for each forwarder; the direct baseline asks the upstream for the same names.
  const fresh = (n: number): string[] => Array.from({ length: n }, () => name(next++ % NAMES));
  for (const [who, port] of [['direct', upPort], ['switchyard', syPort], ['dnsmasq', dmPort], ['dgram', sdPort]] as const) {
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
const loadAfter = loadavg();
// The server's counters: how many hits the UDP fast path's worker answered (0 on the dgram path).
type FastStats = { hits: number; listeners: number; batches: number; datagrams: number; toWorker?: number; toMain?: number };
let syStats: { cacheHits: number; fastPath?: FastStats } | null = null;
sy.stdout!.on('data', (d: Buffer) => {
  const m = /STATS (.*)/.exec(d.toString());
  if (m) syStats = JSON.parse(m[1]!) as typeof syStats;
});
const syExit = new Promise<void>((resolve) => sy.once('exit', () => resolve()));
if (process.env['BENCH_PAUSE']) {
  console.error(`paused: switchyard pid ${sy.pid} port ${syPort}; dnsmasq pid ${dm.pid} port ${dmPort}`);
  await new Promise((r) => setTimeout(r, Number(process.env['BENCH_PAUSE']) * 1000));
}
sy.kill('SIGTERM');
sd.kill('SIGTERM');
echo.kill('SIGTERM');
await Promise.race([syExit, new Promise((r) => setTimeout(r, 5000))]);
const fp = (syStats as { fastPath?: FastStats } | null)?.fastPath;
const fastNote = fp
  ? fp.listeners > 0
    ? `UDP fast path on: its worker answered ${fmt(fp.hits)} of ${fmt((syStats as unknown as { cacheHits: number }).cacheHits)} cache hits, ${(fp.datagrams / Math.max(1, fp.batches)).toFixed(1)} datagrams per recvmmsg on average; reading went to the worker ${fp.toWorker ?? 0} times and back to the main thread ${fp.toMain ?? 0} times`
    : 'UDP fast path OFF (dgram listener)'
  : 'fast path counters not reported';

const syQps = median(hits.switchyard);
const dmQps = median(hits.dnsmasq);
const ratio = syQps / dmQps;
const syCpu = median(cpuPerQuery.switchyard);
const dmCpu = median(cpuPerQuery.dnsmasq);
const echoCpu = median(cpuPerQuery.echo);
const m = (who: keyof typeof lat, k: 'p50' | 'p99'): number => median(lat[who][k]);
const overhead = m('switchyard', 'p50') - m('direct', 'p50');
const us = (n: number): string => `${(n / 1000).toFixed(3)} ms`;
const date = new Date().toISOString().slice(0, 10);

const section = `## dns

\`npm run bench:dns\` (${date}, Node ${process.version}, ${cpus().length} CPUs; servers pinned to CPU ${CPU_SERVER}, dnsperf/upstream/prober to CPU ${CPU_CLIENT}; ${ROUNDS} rounds, medians; load average (1/5/15 min) ${loadBefore.map((x) => x.toFixed(2)).join(' ')} before, ${loadAfter.map((x) => x.toFixed(2)).join(' ')} after). Both forwarders ask the same local upstream: dnsmasq serving a ${NAMES}-name hosts file.

| | switchyard | dnsmasq | Node dgram echo | direct to upstream |
|---|---|---|---|---|
| cache-hit QPS (dnsperf, ${HIT_NAMES} warmed names, ${SECONDS} s × ${ROUNDS}) | ${fmt(syQps)} | ${fmt(dmQps)} | ${fmt(median(hits.echo))} | |
| CPU per cache hit (server process, all threads) | ${syCpu.toFixed(1)} µs | ${dmCpu.toFixed(1)} µs | ${echoCpu.toFixed(1)} µs | |
| queries lost (all rounds) | ${lost.switchyard} | ${lost.dnsmasq} | ${lost.echo} | |
| miss latency p50 (${MISS_PER_ROUND} fresh names × ${ROUNDS}, sequential) | ${us(m('switchyard', 'p50'))} | ${us(m('dnsmasq', 'p50'))} | | ${us(m('direct', 'p50'))} |
| miss latency p99 | ${us(m('switchyard', 'p99'))} | ${us(m('dnsmasq', 'p99'))} | | ${us(m('direct', 'p99'))} |
| miss latency p50 / p99, switchyard with a plain dgram UDP listener (no fast path) | ${us(m('dgram', 'p50'))} / ${us(m('dgram', 'p99'))} | | | |

- Cache-hit QPS ratio switchyard / dnsmasq: **${ratio.toFixed(2)}×** (target ≥ 1.5×).
- CPU-per-hit ratio dnsmasq / switchyard (capacity per core, less sensitive to other load on the machine): **${(dmCpu / syCpu).toFixed(2)}×**.
- Miss p50 overhead over asking the upstream directly: **${(overhead / 1000).toFixed(3)} ms** (target ≤ 0.2 ms).
- Per round, switchyard QPS: ${hits.switchyard.map(fmt).join(', ')}; dnsmasq: ${hits.dnsmasq.map(fmt).join(', ')}; CPU µs per hit, switchyard: ${cpuPerQuery.switchyard.map((x) => x.toFixed(1)).join(', ')}; dnsmasq: ${cpuPerQuery.dnsmasq.map((x) => x.toFixed(1)).join(', ')}.
- ${fastNote}.
- "Node dgram echo" is bench/udp-echo.ts: a fixed answer by byte copy through one Node dgram socket — the least a dgram-based responder costs here (switchyard's UDP listener on Linux uses the fast path instead, docs/dns.md).
- dnsperf runs on one CPU: when the server needs less CPU per query than dnsperf, QPS measures dnsperf; the CPU-per-hit row is the server's capacity.
- The switchyard server runs with a no-op binding hook, so misses include batching and awaiting it.
`;

console.log(section);
if (process.env['BENCH_NO_WRITE'] || process.argv.includes('--no-write')) process.exit(0);
const docPath = join(ROOT, 'docs/benchmarks.md');
let doc = existsSync(docPath) ? readFileSync(docPath, 'utf8') : '# Benchmarks\n\nFigures written by the `bench:*` scripts; each compares against its anchor in the same run.\n';
const re = /## dns\n[\s\S]*?(?=\n## |$)/;
doc = re.test(doc) ? doc.replace(re, section.trimEnd() + '\n') : `${doc.trimEnd()}\n\n${section}`;
writeFileSync(docPath, doc);
console.log(`written to ${docPath}`);
process.exit(0);
