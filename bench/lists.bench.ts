// Rule lists at scale: a 1M-line plain list and a 100k-entry v2fly list (with includes), parsed,
// turned into rules, and compiled by the real policy engine. Times are wall clock on a shared
// machine: the anchor (split + Set of the same text, in the same run) gives a ratio that travels
// better than the milliseconds. Memory is the retained heap after a forced GC (needs --expose-gc).
//
//   npm run bench:lists            (SWITCHYARD_BENCH_LINES=200000 for a quicker run)
import { performance } from 'node:perf_hooks';
import { cpus, loadavg } from 'node:os';
import { listsToRules, parseList, type ListDef } from '../src/lists/index.ts';
import { compilePolicy, loadConfigFromString, type Config } from '../src/policy/index.ts';

const LINES = Number(process.env.SWITCHYARD_BENCH_LINES ?? 1_000_000);
const V2FLY = Math.round(LINES / 10);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  process.stderr.write('run with --expose-gc (npm run bench:lists does)\n');
  process.exit(2);
}

const mb = (b: number): string => `${(b / 1024 / 1024).toFixed(0)} MB`;
function heap(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
}

/** Distinct, realistic-looking names: labels of varied length under a few hundred "sites". */
const TLDS = ['com', 'net', 'org', 'ru', 'io', 'de'];

function plainList(n: number): string {
  const tlds = TLDS;
  const out: string[] = ['# generated for bench/lists.bench.ts'];
  for (let i = 0; i < n; i++) {
    const site = `site${i % 997}-${(i * 7919) % 104729}`;
    out.push(i % 50 === 0 ? `full:www${i}.${site}.${tlds[i % 6]}` : `h${i.toString(36)}.${site}.${tlds[i % 6]}`);
  }
  return out.join('\n') + '\n';
}

function v2flyLists(n: number): Record<string, string> {
  const files: Record<string, string> = {};
  const parts = 10;
  const main: string[] = ['# main'];
  for (let p = 0; p < parts; p++) {
    const lines: string[] = [];
    for (let i = 0; i < n / parts; i++) {
      const id = p * (n / parts) + i;
      lines.push(i % 10 === 0 ? `full:w${id}.part${p}.example @ads` : `domain:d${id}.part${p}.example${i % 3 === 0 ? ' @cn' : ''}`);
    }
    files[`part${p}`] = lines.join('\n') + '\n';
    main.push(`include:part${p}`);
  }
  files['main'] = main.join('\n') + '\n';
  return files;
}

const BASE = `version = 1
default = "direct"
[egress.dpi]
type = "socks5"
endpoint = "socks5://127.0.0.1:1080"
`;

async function measure<T>(label: string, fn: () => Promise<T> | T): Promise<{ value: T; ms: number; heap: number }> {
  const h0 = heap();
  const t0 = performance.now();
  const value = await fn();
  const ms = performance.now() - t0;
  const heapDelta = heap() - h0;
  process.stdout.write(`${label.padEnd(44)} ${ms.toFixed(0).padStart(6)} ms   retained ${mb(heapDelta).padStart(7)}\n`);
  return { value, ms, heap: heapDelta };
}

async function loadAndCompile(text: string, granularity: 'entry' | 'list' | 'auto', anchorMs: number): Promise<void> {
  const rules = await measure(`listsToRules plain, granularity ${granularity}`, () =>
    listsToRules([{ name: 'big', path: '/big.txt', format: 'plain', egress: 'dpi' }], async () => text, { granularity }));
  if (rules.value.errors.length) throw rules.value.errors[0];
  const base = loadConfigFromString(BASE, 'bench.toml');
  const compiled = await measure(`compilePolicy (${rules.value.rules.length} rules)`, () => compilePolicy({ ...base, rules: rules.value.rules }));
  const q = await measure('10k decide() on names under list entries', () => {
    let hits = 0;
    for (let i = 0; i < 10_000; i++) {
      const j = (i * 7907) % LINES;
      const site = `site${j % 997}-${(j * 7919) % 104729}`;
      const name = j % 50 === 0 ? `www${j}.${site}.${TLDS[j % 6]}` : `x.h${j.toString(36)}.${site}.${TLDS[j % 6]}`;
      if (compiled.value.decide({ network: 'tcp', domain: name }).egress === 'dpi') hits++;
    }
    return hits;
  });
  const ms = rules.ms + compiled.ms;
  const heapTotal = rules.heap + compiled.heap;
  process.stdout.write(`=> ${granularity}: ${LINES} entries load+compile ${ms.toFixed(0)} ms (${(ms / anchorMs).toFixed(1)}x anchor), retained ${mb(heapTotal)} `
    + `(rules ${mb(rules.heap)}, engine ${mb(compiled.heap)}); ${q.value}/10000 lookups hit; rss ${mb(process.memoryUsage().rss)}\n\n`);
}

async function main(): Promise<void> {
  process.stdout.write(`node ${process.version}, ${cpus().length} CPUs, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}; ${LINES} plain lines, ${V2FLY} v2fly entries\n\n`);
  const text = plainList(LINES);
  process.stdout.write(`plain list: ${mb(Buffer.byteLength(text))} of text\n`);
  const anchor = await measure('anchor: split + Set of the same text', () => new Set(text.split('\n')).size);
  await measure('parse plain only (entries counted, not kept)', async () => {
    let n = 0;
    await parseList(text, 'plain', { list: 'big' }, () => { n++; });
    return n;
  });
  process.stdout.write('\n');
  await loadAndCompile(text, 'auto', anchor.ms);
  await loadAndCompile(text, 'entry', anchor.ms);

  const base = loadConfigFromString(BASE, 'bench.toml');
  const files = v2flyLists(V2FLY);
  const v = await measure('listsToRules v2fly (10 includes), auto', () =>
    listsToRules([{ name: 'geo', path: '/v2/main', format: 'v2fly', egress: 'dpi' }], async (p) => files[p.slice(4)] ?? ''));
  if (v.value.errors.length) throw v.value.errors[0];
  const vf = await measure('listsToRules v2fly, filter @cn', () =>
    listsToRules([{ name: 'geo', path: '/v2/main', format: 'v2fly', egress: 'dpi', attrs: ['cn'] } as ListDef], async (p) => files[p.slice(4)] ?? ''));
  const vc = await measure('compilePolicy with the v2fly rules', () => compilePolicy({ ...base, rules: v.value.rules }));
  process.stdout.write(`=> v2fly: ${v.value.counts.unique} rules (${vf.value.counts.unique} with @cn), load+compile ${(v.ms + vc.ms).toFixed(0)} ms\n`);
}

await main();
