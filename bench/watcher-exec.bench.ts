// What the fanotify watcher costs each exec on the host. While it runs, every exec of a file on a
// marked filesystem waits until its worker thread has answered; a matched program also waits for the
// cgroup.procs write. Measured as the time of an `sh` loop of N fork+execs of a copy of `true`:
//   none        — no watcher (the anchor)
//   fan-other   — fanotify watcher, the program matches no rule (the cost every other exec pays)
//   fan-matched — fanotify watcher, the program is placed into a group at each exec
//   netlink     — proc connector watcher, matched (the exec is not held; placement races it)
// Variants alternate round by round (the machine is shared); medians and ratios to `none` of the
// same run. Needs root; runs in the current namespace with a unique cgroup root and no nft rules.
// Env: BENCH_EXECS (default 300), BENCH_ROUNDS (default 5).
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findCgroup2Mount } from '../src/redirect/linux/cgroup-mount.ts';
import { CgroupManager } from '../src/redirect/linux/cgroups.ts';
import { ProcessWatcher } from '../src/redirect/linux/watcher.ts';
import { removeCgroupTree, uniqueCgroupRoot } from '../test/redirect-linux/helpers/host.ts';

if (process.getuid?.() !== 0) {
  console.log('watcher-exec bench: needs root; skipped');
  process.exit(0);
}
const N = Number(process.env['BENCH_EXECS'] ?? 300);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 5);
const dir = mkdtempSync(join(tmpdir(), 'sy-bench-exec-'));
const root = uniqueCgroupRoot('bench-exec');
const cg = new CgroupManager({ mount: findCgroup2Mount(), root });
cg.ensure(['vpn']);
const prog = join(dir, `sy-bench-true-${process.pid}`);
copyFileSync('/bin/true', prog);
chmodSync(prog, 0o755);
const placer = { procs: { vpn: join(cg.fsPath('vpn'), 'cgroup.procs') }, rootPath: cg.hierarchyRootPath() };

function loopUs(): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('sh', ['-c', 'i=0; while [ $i -lt "$1" ]; do "$0"; i=$((i+1)); done', prog, String(N)], { stdio: 'ignore', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`exec loop failed: ${r.status} ${r.error ?? ''}`);
  return Number(process.hrtime.bigint() - t0) / 1000 / N;
}

const variants: Record<string, { fanotify: boolean; match: boolean } | null> = {
  none: null,
  'fan-other': { fanotify: true, match: false },
  'fan-matched': { fanotify: true, match: true },
  netlink: { fanotify: false, match: true },
};
const samples: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
const holdNs: number[] = [];
const perEvent: Record<string, { events: number; us: number }> = {};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

try {
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, v] of Object.entries(variants)) {
      if (!v) {
        samples[name]!.push(loopUs());
        continue;
      }
      const w = new ProcessWatcher({
        rules: [{ group: 'vpn', patterns: [{ kind: 'name', value: v.match ? `sy-bench-true-${process.pid}` : 'sy-bench-nothing' }] }],
        placer,
        rescanMs: 60_000,
        fanotify: v.fanotify,
      });
      const s = await w.start();
      const want = v.fanotify ? 'fanotify' : 'netlink';
      if (s.mode !== want) throw new Error(`${name}: watcher mode ${s.mode} (${s.reason})`);
      const a = w.answered;
      const h = w.holdUs;
      samples[name]!.push(loopUs());
      const pe = (perEvent[name] ??= { events: 0, us: 0 });
      pe.events += w.answered - a;
      pe.us += w.holdUs - h;
      if (name === 'fan-matched') holdNs.push(...w.latenciesNs);
      await w.stop();
    }
  }
  const base = median(samples['none']!);
  console.log(`fork+exec of a copy of true, ${N} per loop, ${ROUNDS} rounds, median µs per exec (ratio to none, same run):`);
  for (const [name, xs] of Object.entries(samples)) {
    const m = median(xs);
    console.log(`  ${name.padEnd(12)} ${m.toFixed(0).padStart(6)} µs  ×${(m / base).toFixed(2)}  (+${(m - base).toFixed(0)} µs)   [${xs.map((x) => x.toFixed(0)).join(' ')}]`);
  }
  for (const [name, pe] of Object.entries(perEvent))
    if (pe.events) console.log(`  ${name}: ${(pe.events / (N * ROUNDS)).toFixed(2)} permission events per exec (all host execs counted), worker time per event ${(pe.us / pe.events).toFixed(1)} µs`);
  const h = holdNs.map((n) => n / 1000).sort((a, b) => a - b);
  if (h.length) console.log(`  fanotify worker: decide + place per matched exec, µs: p50 ${h[Math.floor(h.length / 2)]!.toFixed(0)} p99 ${h[Math.floor(h.length * 0.99)]!.toFixed(0)} (n=${h.length})`);
} finally {
  removeCgroupTree(root);
  rmSync(dir, { recursive: true, force: true });
}
