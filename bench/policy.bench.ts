// Policy engine benchmark: compile time, memory and decision speed at 100k and 1M domain rules.
//   npm run bench:policy              (both sizes, each in its own process; writes docs/benchmarks.md)
//   npm run bench:policy -- --size 100k --queries 1000000 --no-write
//   npm run build && npm run bench:policy -- --built   (the engine from the tsc build, dist/)
// The default runs the sources through tsx (esbuild's transform); --built times the code the
// daemon actually runs.
// Each size runs in a fresh child process (with --expose-gc) so heap figures do not mix.
// Per-decision latency is timed call by call with process.hrtime.bigint(); the timer's own cost,
// measured in the same run, is subtracted. Throughput is timed over whole batches without
// per-call timers. Every query name is distinct (a counter is part of it); there is no cache.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import os from 'node:os';
import type { Config, FlowQuery, Policy } from '../src/policy/types.ts';
import { generate, makeQuery, rng } from './policy-gen.ts';

// [domain rules, app rules, CIDR rules, domain patterns per rule, packed]
// packed: one-pattern domain and CIDR rules built as a PackedRules table (src/policy/packed-rules.ts);
// otherwise as plain RuleConfig objects.
const SIZES: Record<string, [number, number, number, number, boolean]> = {
  '100k': [100_000, 1_000, 10_000, 1, true],
  '1m': [1_000_000, 10_000, 100_000, 1, true],
  // The same million one-pattern rules as plain RuleConfig objects (what src/lists makes today).
  '1m-objects': [1_000_000, 10_000, 100_000, 1, false],
  // The same million domain patterns as rule lists deliver them: 1 000 rules of 1 000 patterns.
  '1m-lists': [1_000_000, 10_000, 100_000, 1_000, true],
};

interface Result {
  size: string;
  /** The engine came from the tsc build (dist/), not from the sources through tsx. */
  built?: boolean;
  domainRules: number;
  appRules: number;
  cidrRules: number;
  queries: number;
  compileMs: number;
  compileCpuMs: number;
  patternsPerRule: number;
  /** One-pattern rules as a PackedRules table (false: plain RuleConfig objects). */
  packed?: boolean;
  heapConfigMB: number;
  heapPolicyMB: number;
  heapTotalMB: number;
  rssMB: number;
  decisionsPerSec: number;
  /** Mean CPU time (user + system of this process) per decision in the throughput pass. */
  cpuNsPerDecision: number;
  p50ns: number;
  /** p50 when the query's name and address strings are already flat (as real inputs are). */
  p50FlatNs?: number;
  /**
   * p50 with each query built just before its call, with flat strings: how the daemon calls
   * decide() (src/front/flow.ts builds the FlowQuery from the request right before deciding; names
   * from the DNS parser or SNI and addresses from the socket are flat, freshly touched strings).
   * The other figures time queries pre-built in batches of 50 000 (cold in the caches).
   */
  p50FreshNs?: number;
  p99FreshNs?: number;
  /**
   * CPU ns per decision over 16 queries decided again and again (after the timed part): every
   * table line and string they touch stays in the core's caches, so this is the cost of the
   * instructions alone — the floor the other figures sit on, and what memory layout cannot cut.
   */
  cpuNsHot?: number;
  p99ns: number;
  p999ns: number;
  timerNs: number;
  /** Anchor: ns for one Map.get of a fresh query-like string in a Map as big as the suffix set. */
  anchorNs: number;
  /** CPU ns per iteration of a trivial integer loop: ~0.5–1 ns on an unthrottled core. */
  loopNs: number;
  /** 1-minute load average when the size started (os.loadavg), to show contention. */
  load: number;
  /**
   * Steal time over this size's timed part (throughput and latency passes): the share of all
   * vCPUs' time (from /proc/stat, column 8) the hypervisor ran something else while a vCPU wanted
   * to run. null where /proc/stat is missing (not Linux).
   */
  stealPct?: number | null;
  /** The same as milliseconds of steal summed over the vCPUs, and the timed part's wall time. */
  stealMs?: number | null;
  timedWallMs?: number;
  stages: Record<string, number>;
}

/**
 * The anchor: the cheapest conceivable domain lookup — one Map.get of a fresh name — measured in
 * the same process, so results from a loaded or slow machine can be read as a ratio.
 */
/** CPU speed calibration: CPU time per iteration of `x = (x + i * 7) | 0`. */
function loopCalibration(): number {
  let x = 0;
  const c0 = process.cpuUsage();
  for (let i = 0; i < 100_000_000; i++) x = (x + i * 7) | 0;
  const c = process.cpuUsage(c0);
  if (x === 0.5) throw new Error('unreachable');
  return Math.round(((c.user + c.system) * 1000 / 100_000_000) * 100) / 100;
}

/** /proc/stat's first line: [steal, all columns summed], in clock ticks; null if unreadable. */
function cpuTicks(): [number, number] | null {
  try {
    const line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0]!;
    const cols = line.trim().split(/\s+/).slice(1, 9).map(Number); // user nice system idle iowait irq softirq steal
    if (cols.length < 8 || cols.some((x) => !Number.isFinite(x))) return null;
    return [cols[7]!, cols.reduce((a, b) => a + b, 0)];
  } catch {
    return null;
  }
}

function anchor(keys: string[]): number {
  const m = new Map<string, number>();
  for (let i = 0; i < keys.length; i++) m.set(keys[i]!, i);
  const r = rng(9);
  const probes: string[] = [];
  for (let i = 0; i < 200_000; i++) probes.push(`${keys[Math.floor(r() * keys.length)]!}`.slice(0) + (i % 2 ? '' : 'x'));
  let hits = 0;
  for (const p of probes.slice(0, 50_000)) if (m.get(p) !== undefined) hits++;
  const s = process.hrtime.bigint();
  for (const p of probes) if (m.get(p) !== undefined) hits++;
  const ns = Number(process.hrtime.bigint() - s) / probes.length;
  if (hits < 0) throw new Error('unreachable');
  return Math.round(ns);
}

const mb = (n: number) => Math.round((n / 1048576) * 10) / 10;
function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) throw new Error('run with --expose-gc (npm run bench:policy does)');
  g();
  g();
}

function runOne(compilePolicy: (c: Config) => Policy, size: string, queries: number): Result {
  const [d, a, c, per, packed] = SIZES[size]!;
  const load = Math.round(os.loadavg()[0]! * 10) / 10;
  gc();
  // Heap figures count the JS heap and typed-array backing stores (the compiled tables are mostly
  // typed arrays, which heapUsed leaves out).
  const used = () => { const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers; };
  const heap0 = used();
  const set = generate(d, a, c, 1, per, packed);
  gc();
  const heap1 = used();
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const policy = compilePolicy(set.config);
  const cpu1 = process.cpuUsage(cpu0);
  const compileMs = Number(process.hrtime.bigint() - t0) / 1e6;
  gc();
  const heap2 = used();
  const rss = process.memoryUsage().rss;

  const r = rng(42);
  const BATCH = 50_000;
  const batch = new Array(BATCH);
  const stages: Record<string, number> = {};
  // Warm-up (JIT), not counted.
  for (let i = 0; i < BATCH; i++) policy.decide(makeQuery(set, -1 - i, r));

  // Steal time and wall time over the timed part (throughput and the three latency passes).
  const ticks0 = cpuTicks();
  const wall0 = process.hrtime.bigint();
  // Throughput: whole batches, no per-call timer.
  let timedNs = 0n;
  let cpuUs = 0;
  let done = 0;
  for (let start = 0; start < queries; start += BATCH) {
    const n = Math.min(BATCH, queries - start);
    for (let i = 0; i < n; i++) batch[i] = makeQuery(set, start + i, r);
    const s = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    for (let i = 0; i < n; i++) {
      const dec = policy.decide(batch[i]);
      if (i === 0) stages[dec.stage] = (stages[dec.stage] ?? 0) + 1;
    }
    const c1 = process.cpuUsage(c0);
    timedNs += process.hrtime.bigint() - s;
    cpuUs += c1.user + c1.system;
    done += n;
  }
  const decisionsPerSec = Math.round(done / (Number(timedNs) / 1e9));

  // Latency: call by call on fresh names (offset so they differ from the throughput pass).
  let timer = Infinity;
  for (let k = 0; k < 5; k++) {
    const s = process.hrtime.bigint();
    for (let i = 0; i < 100_000; i++) process.hrtime.bigint();
    timer = Math.min(timer, Number(process.hrtime.bigint() - s) / 100_000);
  }
  const samples = new Float64Array(Math.min(queries, 1_000_000));
  for (let start = 0; start < samples.length; start += BATCH) {
    const n = Math.min(BATCH, samples.length - start);
    for (let i = 0; i < n; i++) batch[i] = makeQuery(set, queries + start + i, r);
    for (let i = 0; i < n; i++) {
      const s = process.hrtime.bigint();
      const dec = policy.decide(batch[i]);
      samples[start + i] = Number(process.hrtime.bigint() - s) - timer;
      stages[dec.stage] = (stages[dec.stage] ?? 0) + 1;
    }
  }
  samples.sort();
  // The same on flat strings: the generator builds names and addresses by concatenation, which V8
  // keeps as rope (cons) strings that the first character read must copy flat; names from the DNS
  // parser, SNI or a socket address arrive flat. Reported beside the main figure, not instead of it.
  const flat = new Float64Array(Math.min(queries, 200_000));
  for (let start = 0; start < flat.length; start += BATCH) {
    const n = Math.min(BATCH, flat.length - start);
    for (let i = 0; i < n; i++) {
      const q = makeQuery(set, 2 * queries + start + i, r);
      q.domain!.charCodeAt(0);
      q.ip!.charCodeAt(0);
      batch[i] = q;
    }
    for (let i = 0; i < n; i++) {
      const s = process.hrtime.bigint();
      policy.decide(batch[i]);
      flat[start + i] = Number(process.hrtime.bigint() - s) - timer;
    }
  }
  flat.sort();
  // As the daemon calls it: each query built (untimed) right before its call, strings flat.
  const fresh = new Float64Array(Math.min(queries, 200_000));
  for (let i = 0; i < fresh.length; i++) {
    const q = makeQuery(set, 3 * queries + i, r);
    q.domain = Buffer.from(q.domain!, 'latin1').toString('latin1');
    q.ip = Buffer.from(q.ip!, 'latin1').toString('latin1');
    const s = process.hrtime.bigint();
    policy.decide(q);
    fresh[i] = Number(process.hrtime.bigint() - s) - timer;
  }
  const timedWallMs = Number(process.hrtime.bigint() - wall0) / 1e6;
  const hot: FlowQuery[] = [];
  for (let i = 0; i < 16; i++) {
    const q = makeQuery(set, 4 * queries + i, r);
    q.domain = Buffer.from(q.domain!, 'latin1').toString('latin1');
    q.ip = Buffer.from(q.ip!, 'latin1').toString('latin1');
    hot.push(q);
  }
  for (let k = 0; k < 1000; k++) for (const q of hot) policy.decide(q);
  const hot0 = process.cpuUsage();
  for (let k = 0; k < 20_000; k++) for (let i = 0; i < 16; i++) policy.decide(hot[i]!);
  const hot1 = process.cpuUsage(hot0);
  const cpuNsHot = Math.round(((hot1.user + hot1.system) * 1000) / (20_000 * 16));
  const ticks1 = cpuTicks();
  let stealPct: number | null = null;
  let stealMs: number | null = null;
  if (ticks0 && ticks1 && ticks1[1] > ticks0[1]) {
    stealPct = Math.round(((ticks1[0] - ticks0[0]) / (ticks1[1] - ticks0[1])) * 1000) / 10;
    stealMs = (ticks1[0] - ticks0[0]) * 10; // USER_HZ is 100 on Linux
  }
  fresh.sort();
  const anchorNs = anchor(set.domains);
  const loopNs = loopCalibration();
  const pct = (p: number) => Math.max(0, Math.round(samples[Math.min(samples.length - 1, Math.floor(p * samples.length))]!));
  return {
    size,
    domainRules: d + set.counts.keyword + set.counts.regexp,
    appRules: a,
    cidrRules: c,
    queries: done + samples.length,
    compileMs: Math.round(compileMs),
    compileCpuMs: Math.round((cpu1.user + cpu1.system) / 1000),
    patternsPerRule: per,
    packed,
    heapConfigMB: mb(heap1 - heap0),
    heapPolicyMB: mb(heap2 - heap1),
    heapTotalMB: mb(heap2),
    rssMB: mb(rss),
    decisionsPerSec,
    cpuNsPerDecision: Math.round((cpuUs * 1000) / done),
    p50ns: pct(0.5),
    p50FlatNs: Math.max(0, Math.round(flat[Math.floor(flat.length / 2)]!)),
    p50FreshNs: Math.max(0, Math.round(fresh[Math.floor(fresh.length / 2)]!)),
    p99FreshNs: Math.max(0, Math.round(fresh[Math.floor(fresh.length * 0.99)]!)),
    cpuNsHot,
    p99ns: pct(0.99),
    p999ns: pct(0.999),
    timerNs: Math.round(timer),
    anchorNs,
    loopNs,
    load,
    stealPct,
    stealMs,
    timedWallMs: Math.round(timedWallMs),
    stages,
  };
}

function table(results: Result[]): string {
  const rows = [
    '| rules (domain / app / CIDR) | compile wall (CPU) | heap + typed arrays: config / compiled / total after GC | RSS | decisions/s (CPU ns each) | ns/decision p50 / p99 / p99.9 | anchor (one Map.get) | p50 ÷ anchor |',
    '|---|---|---|---|---|---|---|---|',
    ...results.map(
      (x) =>
        `| ${x.domainRules.toLocaleString('en')}${x.patternsPerRule > 1 ? ` patterns in ${Math.ceil(x.domainRules / x.patternsPerRule).toLocaleString('en')} rules` : x.packed === false ? ' (plain objects)' : ''} / ${x.appRules.toLocaleString('en')} / ${x.cidrRules.toLocaleString('en')} | ${x.compileMs} ms (${x.compileCpuMs} ms) | ${x.heapConfigMB} / ${x.heapPolicyMB} / ${x.heapTotalMB} MB | ${x.rssMB} MB | ${x.decisionsPerSec.toLocaleString('en')} (${x.cpuNsPerDecision ?? '?'}) | ${x.p50ns} / ${x.p99ns} / ${x.p999ns} | ${x.anchorNs} ns | ${(x.p50ns / Math.max(1, x.anchorNs)).toFixed(1)} |`,
    ),
  ];
  return rows.join('\n');
}

/** Plain statement of each target against this run's figures. */
function status(results: Result[]): string[] {
  const by = (size: string) => results.find((x) => x.size === size);
  const out: string[] = [];
  const k100 = by('100k');
  if (k100) {
    out.push(
      `- p50 at 100k: ${k100.p50ns} ns — ${k100.p50ns <= 1000 ? 'met' : 'not met'} on this machine; ${(k100.p50ns / Math.max(1, k100.anchorNs)).toFixed(1)} × the anchor` +
        (k100.p50FlatNs !== undefined ? ` (flat query strings: ${k100.p50FlatNs} ns — ${k100.p50FlatNs <= 1000 ? 'met' : 'not met'}, ${(k100.p50FlatNs / Math.max(1, k100.anchorNs)).toFixed(1)} × the anchor)` : '') +
        (k100.p50FreshNs !== undefined ? `; each query built just before its call with flat strings, as the daemon calls decide(): p50 ${k100.p50FreshNs} ns — ${k100.p50FreshNs <= 1000 ? 'met' : 'not met'}, p99 ${k100.p99FreshNs} ns` : '') +
        (k100.cpuNsHot !== undefined ? `; 16 queries decided over and over (all in cache: the instructions alone) ${k100.cpuNsHot} CPU-ns each` : '') +
        (k100.stealPct !== undefined && k100.stealPct !== null ? `; steal time during the timed part ${k100.stealPct} % of vCPU time, loop calibration ${k100.loopNs} ns.` : '.'),
    );
  }
  for (const x of [by('1m'), by('1m-objects'), by('1m-lists')]) {
    if (!x) continue;
    const shape = x.patternsPerRule > 1 ? 'list-shaped 1M' : x.packed === false ? '1M one-pattern rules as plain RuleConfig objects' : '1M one-pattern rules as a PackedRules table';
    out.push(
      `- ${shape}: compile ${x.compileMs} ms wall / ${x.compileCpuMs} ms CPU — ${x.compileMs <= 3000 ? 'met' : x.compileCpuMs <= 3000 ? 'met in CPU time, not in wall time' : 'not met'}; ` +
        `whole heap and typed arrays after compile and GC (rule list, compiled structures, the bench's own name list) ${x.heapTotalMB} MB — ${x.heapTotalMB <= 200 ? 'met' : 'over 200 MB'}.`,
    );
  }
  return out.length ? ['', ...out] : [];
}

function writeDocs(results: Result[]): void {
  const path = new URL('../docs/benchmarks.md', import.meta.url);
  let doc = '';
  try {
    doc = readFileSync(path, 'utf8');
  } catch {
    doc = '# Benchmarks\n\nFigures from `npm run bench:<area>` on the machine named in each section.\n';
  }
  const q = results[0]!.queries;
  const section = [
    '## policy',
    '',
    '<!-- written by bench/policy.bench.ts (npm run bench:policy); edit the script, not this section -->',
    '',
    `Run ${new Date().toISOString().slice(0, 16)}Z on ${os.cpus()[0]?.model ?? 'unknown CPU'} (${os.cpus().length} cores, shared), Node ${process.version},`,
    `engine ${results[0]!.built ? 'from the tsc build (dist/, what `npm start` runs; `--built`)' : 'from the sources through tsx (`--built` runs the tsc build)'};`,
    `1-minute load average at the start of each size: ${results.map((x) => x.load ?? '?').join(', ')} (other jobs ran on the same cores);`,
    `CPU calibration: one iteration of a trivial integer loop took ${results.map((x) => x.loopNs ?? '?').join(', ')} CPU-ns (about 0.5–1 ns on an unthrottled core).`,
    `Steal time over each size's timed part (share of all vCPU time the hypervisor gave to others, /proc/stat): ${results.map((x) => (x.stealPct === undefined || x.stealPct === null ? '?' : `${x.stealPct} % (${x.stealMs} ms of ${x.timedWallMs} ms wall × ${os.cpus().length} vCPUs)`)).join(', ')}.`,
    `Each size in its own process; ${q.toLocaleString('en')} distinct query names per size from a seeded generator (half under a rule's`,
    'domain, half unrelated; process, IPv4 address and port set), no result cache. Domain rules are 90 % suffix, 9 % `full:`,',
    '1 % suffix + app condition, plus 5 `keyword:` and 3 `regexp:` patterns that every query scans. App rules: 80 % names,',
    '18 % paths, 2 % globs. CIDR rules: 90 % IPv4 /8–/32, 10 % IPv6. Latency is timed per call (timer cost, ' + `${results[0]!.timerNs} ns, subtracted);`,
    'throughput over batches of 50 000 without per-call timers, with the process CPU time per decision in parentheses',
    '(less sensitive to other jobs than wall time). "config" is the in-memory rule list, "compiled" what',
    'compilePolicy adds on top of it (JS heap plus typed-array backing stores: until 2026-11-22 07:30Z this section',
    'gave the JS heap alone, which left out about 35 MB of typed arrays at 1M rules). The anchor is one `Map.get`',
    'of a fresh name in a Map holding the rule domains, timed in the same process: the floor of any hashed domain lookup, for reading figures from a loaded machine.',
    '',
    table(results),
    '',
    'Targets (issue 2): p50 ≤ 1 µs at 100k domain rules; 1M rules compile ≤ 3 s and ≤ 200 MB.',
    ...status(results),
    '',
    'Reading the figures: other jobs shared these 2 cores, so wall times (and the anchor, one hashed lookup, which costs',
    'tens of nanoseconds on an idle modern core) are inflated; the CPU columns and the p50 ÷ anchor ratio are the more',
    'comparable numbers, and the integer-loop calibration shows how fast this core was. A decision is: one',
    'right-to-left pass over the name that checks it needs no normalising, hashes every suffix and probes one table',
    'per label depth that patterns have (exact and suffix keys of the block rules and of the other rules; a small bit',
    'filter answers most misses; a key that holds one rule keeps it in its slot; keys compared in place only on a',
    'hash hit); the process name and the IPv4 address read into the query context (no objects); exempt and LAN',
    'checks; the keyword/regexp scan (a keyword or regexp that needs a character the name lacks, or a first/last',
    'character it does not have, is skipped); the CIDR stage (a /16 table that names the longest block covering the',
    'whole /16 when no block starts inside it, else a few packed block records) and the app stage, for the block',
    'rules and then the others, until a rule decides; plus the decision record (four small objects; the rule\'s id',
    'and origin are read from the rule only when asked for). "1M one-pattern rules" builds the rule list as a PackedRules table',
    '(src/policy/packed-rules.ts: columns plus one small object per rule); "(plain objects)" is the same list as plain',
    'RuleConfig objects, for comparison. "flat query strings": the generator concatenates names and addresses, which',
    'V8 keeps as rope strings that the first read copies flat; real inputs arrive flat, so p50 on pre-flattened',
    'strings is given beside the main figure. "As the daemon calls it": each query built right before its call',
    '(untimed) with flat strings, as src/front builds the FlowQuery just before deciding, instead of pre-built in',
    'batches of 50 000 that have left the caches by the time they are decided. "16 queries decided over and over":',
    'CPU time per decision when every table line and string involved is in the core\'s caches — the cost of the',
    'instructions alone, which memory layout cannot cut; the gap to the other figures is cache misses.',
    '',
    ].join('\n');
  const re = /## policy\n[\s\S]*?(?=\n## |$)/;
  doc = re.test(doc) ? doc.replace(re, section) : doc.trimEnd() + '\n\n' + section;
  writeFileSync(path, doc);
}

const { values } = parseArgs({
  options: {
    size: { type: 'string' },
    queries: { type: 'string', default: '1000000' },
    'no-write': { type: 'boolean', default: false },
    render: { type: 'string' },
    child: { type: 'boolean', default: false },
    // The engine from the tsc build (dist/, `npm run build`): what `npm start` runs.
    built: { type: 'boolean', default: false },
  },
});
const queries = Number(values.queries);
if (values.render) {
  // Re-render docs from a saved run's output (lines `SIZE: {json}`), without measuring again.
  const results = readFileSync(values.render, 'utf8').split('\n').filter((l) => /^[0-9a-z-]+: \{/.test(l)).map((l) => JSON.parse(l.slice(l.indexOf('{'))) as Result);
  process.stdout.write(table(results) + '\n');
  writeDocs(results);
} else if (values.child) {
  const mod = (await import(values.built ? '../dist/policy/index.js' : '../src/policy/index.ts')) as { compilePolicy: (c: Config) => Policy };
  process.stdout.write(JSON.stringify({ ...runOne(mod.compilePolicy, values.size!, queries), built: values.built }) + '\n');
} else {
  const sizes = values.size ? [values.size] : Object.keys(SIZES);
  const results: Result[] = [];
  for (const size of sizes) {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--expose-gc', '--max-old-space-size=4096', fileURLToPath(import.meta.url), '--child', '--size', size, '--queries', String(queries), ...(values.built ? ['--built'] : [])],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
    );
    if (r.status !== 0) throw new Error(`size ${size} failed (exit ${r.status})`);
    const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as Result;
    results.push(res);
    process.stdout.write(`${size}: ${JSON.stringify(res)}\n`);
  }
  process.stdout.write('\n' + table(results) + '\n');
  if (!values['no-write']) writeDocs(results);
}
