// Benchmark of the Linux OS backend's own costs (npm run bench:linux; needs root, nft, unshare):
//   - connection setup through the nft redirect vs direct, to the same kind of sink;
//   - throughput of one flow through the redirect vs direct (the redirect is NAT on the first
//     packet only, so this should be equal within noise);
//   - set updates from DNS answers (libnftables in-process): one-element calls and one batch.
// It re-executes itself inside `unshare --mount --net` with a per-run cgroup root, so nothing
// touches the host's network or ruleset. Figures are medians of this run, compared in the same run.
// The full path (front door + SOCKS egress vs redsocks) needs the front door and is not here yet.
import { spawn, execFileSync } from 'node:child_process';
import { createServer, connect, type Server } from 'node:net';
import { existsSync, rmdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { LinuxBackend } from '../src/redirect/linux/backend.ts';
import { buildPlan } from '../src/redirect/plan.ts';
import type { Binding } from '../src/flow/types.ts';
import { makeConfig } from '../test/redirect-linux/helpers/inside.ts';

const N_CONNECT = Number(process.env['SY_BENCH_CONNECTS'] ?? 300);
const BYTES = Number(process.env['SY_BENCH_MB'] ?? 256) * 1024 * 1024;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.99)] ?? NaN;

function sink(host: string, port: number): Promise<Server> {
  return new Promise((resolve) => {
    const s = createServer((c) => {
      c.on('data', () => {});
      c.on('error', () => {});
      c.on('end', () => c.end());
    });
    s.listen(port, host, () => resolve(s));
  });
}

function connectOnce(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const c = connect(port, host, () => {
      const dt = performance.now() - t0;
      c.destroy();
      resolve(dt);
    });
    c.on('error', reject);
  });
}

function throughput(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const chunk = Buffer.alloc(1 << 20, 7);
    const c = connect(port, host);
    let sent = 0;
    const t0 = performance.now();
    const pump = () => {
      while (sent < BYTES) {
        sent += chunk.length;
        if (!c.write(chunk)) return void c.once('drain', pump);
      }
      c.end();
    };
    c.on('connect', pump);
    c.on('close', () => resolve(BYTES / 1e6 / ((performance.now() - t0) / 1000)));
    c.on('error', reject);
  });
}

async function inside(): Promise<void> {
  execFileSync('sh', ['-c', 'ip link set lo up && ip link add sy0 type veth peer name sy1 && ip link set sy0 up && ip link set sy1 up && ip addr add 198.18.0.10/32 dev sy0 && ip addr add 198.18.0.11/32 dev sy0 && mount -t cgroup2 none /sys/fs/cgroup']);
  const direct = await sink('198.18.0.10', 9000);
  await sink('198.18.0.11', 9000); // never reached while redirected: the captured address
  const front = await sink('127.0.0.1', 0);
  const frontPort = (front.address() as { port: number }).port;
  const be = new LinuxBackend({ cgroupRoot: process.env['SY_BENCH_CGROUP_ROOT']!, statePath: `/tmp/sy-bench-state-${process.pid}.json` });
  const t0 = performance.now();
  await be.apply(buildPlan({ config: makeConfig(), ports: { groups: { vpn: frontPort }, captured: frontPort, dns: null } }));
  const applyMs = performance.now() - t0;
  const b = (ip: string): Binding => ({ ip, family: 4, name: 'bench.example.test', egresses: ['vpn'], ttlSeconds: 300, holdSeconds: 300 });
  await be.addBindings([b('198.18.0.11')]);

  const dDirect: number[] = [];
  const dRedirect: number[] = [];
  for (let i = 0; i < N_CONNECT; i++) {
    dDirect.push(await connectOnce('198.18.0.10', 9000));
    dRedirect.push(await connectOnce('198.18.0.11', 9000));
  }
  const tDirect = [await throughput('198.18.0.10', 9000), await throughput('198.18.0.10', 9000)];
  const tRedirect = [await throughput('198.18.0.11', 9000), await throughput('198.18.0.11', 9000)];

  const singles: number[] = [];
  for (let i = 0; i < 500; i++) singles.push((await be.addBindings([b(`198.19.${i >> 8}.${i & 255}`)])).micros);
  const batch: Binding[] = [];
  for (let i = 0; i < 5000; i++) batch.push(b(`198.19.${100 + (i >> 8)}.${i & 255}`));
  const big = await be.addBindings(batch);
  await be.down();
  await be.close();
  direct.close();

  const rows = [
    ['apply (transaction + read-back + canary)', `${applyMs.toFixed(0)} ms`, ''],
    ['TCP connect, direct', `${(median(dDirect) * 1000).toFixed(0)} µs`, 'anchor'],
    ['TCP connect, redirected (captured set)', `${(median(dRedirect) * 1000).toFixed(0)} µs`, `${(median(dRedirect) / median(dDirect)).toFixed(2)}×`],
    ['one flow, direct', `${Math.max(...tDirect).toFixed(0)} MB/s`, 'anchor'],
    ['one flow, redirected to a local sink', `${Math.max(...tRedirect).toFixed(0)} MB/s`, `${(Math.max(...tRedirect) / Math.max(...tDirect)).toFixed(2)}×`],
    ['set update, one element per call (p50 / p99)', `${median(singles)} / ${p99(singles)} µs`, ''],
    ['set update, batch of 5000', `${(big.micros / big.elements).toFixed(1)} µs per element`, ''],
  ];
  process.stdout.write(`| measure (${N_CONNECT} connects, ${BYTES >> 20} MB per flow) | value | vs anchor |\n|---|---|---|\n`);
  for (const r of rows) process.stdout.write(`| ${r.join(' | ')} |\n`);
  process.exit(0);
}

async function outside(): Promise<void> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench:linux needs root (unshare, nft, cgroups)\n');
    process.exit(2);
  }
  const root = `switchyard-bench-${process.pid}`;
  const child = spawn('unshare', ['--mount', '--net', '--propagation', 'private', '--', process.execPath, '--import', 'tsx', fileURLToPath(import.meta.url)], {
    env: { ...process.env, SY_BENCH_IN_NS: '1', SY_BENCH_CGROUP_ROOT: root },
    stdio: 'inherit',
  });
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  // The namespace took the table with it; the cgroup tree is shared with the host: remove it.
  for (const d of [`/sys/fs/cgroup/unified/${root}`, `/sys/fs/cgroup/${root}`]) {
    if (!existsSync(d)) continue;
    for (const g of ['exempt', 'egress-vpn', 'egress-block']) if (existsSync(`${d}/${g}`)) rmdirSync(`${d}/${g}`);
    rmdirSync(d);
  }
  process.exit(code);
}

await (process.env['SY_BENCH_IN_NS'] === '1' ? inside() : outside());
