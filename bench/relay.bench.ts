// npm run bench:relay — one-flow throughput and connections/s through switchyard's relay
// (mixed inbound, direct egress), dante and microsocks, and direct loopback, in one run.
//
// Pinning: each proxy runs on core 0 (taskset -c 0); this process — the load client and the
// target server — moves itself to core 1, so a proxy competes with nothing of the bench's.
// Throughput: the target server pushes BYTES on one connection (download through the proxy);
// the client reads into one preallocated buffer (net `onread`), so the client costs little.
// Connections/s: 32 concurrent loops of connect → SOCKS5 greeting → CONNECT → read one byte →
// close, for a fixed time. Each figure is the median of ROUNDS rounds; ratios are printed and
// written to docs/benchmarks.md, section "relay".
import net from 'node:net';
import os from 'node:os';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    bytes: { type: 'string', default: String(512 * 1024 * 1024) },
    rounds: { type: 'string', default: '5' },
    'conn-seconds': { type: 'string', default: '1.5' },
    'no-write': { type: 'boolean', default: false },
    // Run switchyard from the tsc build (dist/), as `npm start` does; needs `npm run build` first.
    built: { type: 'boolean', default: false },
    // Also bench the two anchors: a minimal node:net SOCKS5 relay (bench/relay-node-minimal.ts)
    // and a minimal koffi/epoll one (bench/relay-epoll-proto.ts) — the floor of each data path.
    anchors: { type: 'boolean', default: false },
  },
});
const BYTES = Number(values.bytes);
const ROUNDS = Number(values.rounds);
const CONN_MS = Number(values['conn-seconds']) * 1000;
const CONCURRENCY = 32;

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const hasTaskset = (() => {
  try {
    execFileSync('sh', ['-c', 'command -v taskset'], { stdio: 'ignore' });
    return os.cpus().length >= 2;
  } catch {
    return false;
  }
})();
if (hasTaskset) execFileSync('taskset', ['-pc', '1', String(process.pid)], { stdio: 'ignore' });
const pinned = (cmd: string, args: string[]): [string, string[]] => (hasTaskset ? ['taskset', ['-c', '0', cmd, ...args]] : [cmd, args]);

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const p = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}

async function waitPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), r(true)));
      s.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`port ${port} never opened`);
}

interface Proxy {
  name: string;
  port: number | null; // null = direct
  proc?: ChildProcess;
  cleanup?: () => void;
}

async function startSwitchyard(): Promise<Proxy> {
  const [cmd, args] = pinned(process.execPath, ['--import', 'tsx', new URL('./relay-proxy.ts', import.meta.url).pathname]);
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...(values.built ? { SY_RELAY_FROM: 'dist' } : {}) } });
  const [line] = (await once(proc.stdout!, 'data')) as [Buffer];
  return { name: 'switchyard', port: Number(String(line).trim()), proc };
}

async function startAnchor(name: string, script: string): Promise<Proxy> {
  const [cmd, args] = pinned(process.execPath, ['--import', 'tsx', new URL(script, import.meta.url).pathname]);
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(proc.stdout!, 'data')) as [Buffer];
  return { name, port: Number(String(line).trim()), proc };
}

async function startDante(): Promise<Proxy> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sy-bench-dante-'));
  writeFileSync(
    join(dir, 'd.conf'),
    ['logoutput: /dev/null', `internal: 127.0.0.1 port = ${port}`, 'external: 127.0.0.1', 'socksmethod: none', 'clientmethod: none', 'user.privileged: root', 'user.unprivileged: nobody', 'client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }', 'socks pass { from: 0.0.0.0/0 to: 0.0.0.0/0 }', ''].join('\n'),
  );
  const [cmd, args] = pinned('danted', ['-f', join(dir, 'd.conf'), '-p', join(dir, 'pid')]);
  const proc = spawn(cmd, args, { stdio: 'ignore' });
  await waitPort(port);
  return { name: 'dante', port, proc, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

async function startMicrosocks(): Promise<Proxy> {
  const port = await freePort();
  const [cmd, args] = pinned('microsocks', ['-i', '127.0.0.1', '-p', String(port)]);
  const proc = spawn(cmd, args, { stdio: 'ignore' });
  await waitPort(port);
  return { name: 'microsocks', port, proc };
}

// ---------------------------------------------------------------- target servers

const block = Buffer.alloc(1 << 20, 0x5a);
let pushBytes = BYTES;
const source = net.createServer((s) => {
  s.on('error', () => {});
  let left = pushBytes;
  const go = () => {
    while (left > 0) {
      const b = left >= block.length ? block : block.subarray(0, left);
      left -= b.length;
      if (!s.write(b)) return void s.once('drain', go);
    }
    s.end();
  };
  go();
});
const greeter = net.createServer((s) => {
  s.on('error', () => {});
  s.end('x');
});

/** SOCKS5 request for 127.0.0.1:port (greeting and request sent in sequence). */
function request(port: number): Buffer {
  const b = Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, 0, 0]);
  b.writeUInt16BE(port, 8);
  return b;
}

const readBuf = Buffer.allocUnsafe(1 << 20);
/** Connections completed by connRate(), all proxies (for CPU time per connection). */
let connDone = 0;

/** One flow: connect (through the proxy when given), read everything; resolves bytes/second. */
function oneFlow(proxy: Proxy, target: number, expect: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let phase = proxy.port === null ? 2 : 0; // 0: method reply, 1: connect reply, 2: data
    let pending = 0;
    let got = 0;
    let t0 = 0;
    const s = net.connect({
      host: '127.0.0.1',
      port: proxy.port ?? target,
      onread: {
        buffer: readBuf,
        callback: (n: number) => {
          if (phase === 2) {
            got += n;
            return true;
          }
          pending += n;
          if (phase === 0 && pending >= 2) {
            pending -= 2;
            phase = 1;
            s.write(request(target));
          }
          if (phase === 1 && pending >= 10) {
            got += pending - 10; // bytes that followed the reply in the same read
            phase = 2;
          }
          return true;
        },
      },
    });
    s.on('connect', () => {
      t0 = performance.now();
      if (proxy.port !== null) s.write(Buffer.from([5, 1, 0]));
    });
    s.on('end', () => {
      const sec = (performance.now() - t0) / 1000;
      s.destroy();
      if (got !== expect) reject(new Error(`${proxy.name}: got ${got} of ${expect}`));
      else resolve(expect / sec);
    });
    s.on('error', reject);
  });
}

/**
 * CPU time (µs, user + system, all threads) a process has used so far; undefined when unknown.
 * Connections/s through a proxy on a shared machine measures the load of the moment as much as
 * the proxy; CPU time per connection is the proxy's own cost and varies much less with load.
 * Only single-process proxies (switchyard, microsocks: threads are counted) — dante's work is
 * done in child processes, so it gets no figure.
 */
function cpuMicros(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 (utime, stime) in clock ticks; rest[0] is field 3.
    return ((Number(rest[11]) + Number(rest[12])) * 1e6) / CLK_TCK;
  } catch {
    return undefined;
  }
}
/**
 * CPU time (µs) of a process and all its descendants, for the throughput rounds: dante relays in
 * child processes. Live descendants are read from /proc; exited ones are in the parent's
 * cutime/cstime once reaped.
 */
function cpuTreeMicros(root: number | undefined): number | undefined {
  if (root === undefined) return undefined;
  const stat = new Map<number, { ppid: number; t: number }>();
  let rootChildren = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const f = readFileSync(`/proc/${d}/stat`, 'utf8');
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
      // rest[1] is field 4 (ppid); rest[11..14] are fields 14..17 (utime, stime, cutime, cstime).
      stat.set(Number(d), { ppid: Number(rest[1]), t: Number(rest[11]) + Number(rest[12]) });
      if (Number(d) === root) rootChildren = Number(rest[13]) + Number(rest[14]);
    } catch {
      // gone meanwhile
    }
  }
  if (!stat.has(root)) return undefined;
  let ticks = rootChildren;
  const inTree = (pid: number): boolean => {
    for (let p = pid, i = 0; p > 1 && i < 64; p = stat.get(p)?.ppid ?? 0, i++) if (p === root) return true;
    return false;
  };
  for (const [pid, v] of stat) if (inTree(pid)) ticks += v.t;
  return (ticks * 1e6) / CLK_TCK;
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Connections completed per second by CONCURRENCY loops over CONN_MS. */
async function connRate(proxy: Proxy, target: number, ms = CONN_MS): Promise<number> {
  const end = performance.now() + ms;
  let done = 0;
  const once1 = () =>
    new Promise<void>((resolve) => {
      let phase = proxy.port === null ? 2 : 0;
      let buf = Buffer.alloc(0);
      const s = net.connect(proxy.port ?? target, '127.0.0.1');
      s.on('connect', () => proxy.port !== null && s.write(Buffer.from([5, 1, 0])));
      s.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        if (phase === 0 && buf.length >= 2) {
          buf = buf.subarray(2);
          phase = 1;
          s.write(request(target));
        }
        if (phase === 1 && buf.length >= 10) {
          buf = buf.subarray(10);
          phase = 2;
        }
        if (phase === 2 && buf.length >= 1) {
          done++;
          connDone++;
          s.destroy();
        }
      });
      s.on('error', () => {});
      s.on('close', () => resolve());
    });
  const loop = async () => {
    while (performance.now() < end) await once1();
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, loop));
  return done / ((performance.now() - t0) / 1000);
}

async function main() {
  source.listen(0, '127.0.0.1');
  greeter.listen(0, '127.0.0.1');
  await Promise.all([once(source, 'listening'), once(greeter, 'listening')]);
  const sourcePort = (source.address() as net.AddressInfo).port;
  const greeterPort = (greeter.address() as net.AddressInfo).port;
  const proxies: Proxy[] = [{ name: 'direct', port: null }, await startSwitchyard(), await startDante(), await startMicrosocks()];
  if (values.anchors) proxies.push(await startAnchor('node-minimal', './relay-node-minimal.ts'), await startAnchor('epoll-minimal', './relay-epoll-proto.ts'));
  const results: Record<string, { gbps: number; cps: number; rounds: number[]; cpuUs?: number; cpuUsPerMiB?: number }> = {};
  try {
    // Warm-up (JIT, page cache of the binaries): one short round each.
    pushBytes = 64 * 1024 * 1024;
    for (const p of proxies) await oneFlow(p, sourcePort, pushBytes);
    // The connection path needs its own warm-up: without it, the first connection rounds of a
    // Node proxy measured its JIT compiling (2–3× the steady CPU per connection, and a third of
    // its CPU in the optimizing compiler during the first seconds).
    for (const p of proxies) await connRate(p, greeterPort, 1000);
    pushBytes = BYTES;
    for (const p of proxies) results[p.name] = { gbps: 0, cps: 0, rounds: [] };
    // Rounds interleave the candidates so a burst of load from elsewhere hits all of them.
    const tput: Record<string, number[]> = {};
    const cps: Record<string, number[]> = {};
    const cpuPerConn: Record<string, number[]> = {};
    const cpuPerMiB: Record<string, number[]> = {};
    for (let r = 0; r < ROUNDS; r++) {
      for (const p of proxies) {
        const t0 = cpuTreeMicros(p.proc?.pid);
        (tput[p.name] ??= []).push(await oneFlow(p, sourcePort, BYTES));
        const t1 = cpuTreeMicros(p.proc?.pid);
        if (t0 !== undefined && t1 !== undefined) (cpuPerMiB[p.name] ??= []).push((t1 - t0) / (BYTES / 2 ** 20));
      }
      for (const p of proxies) {
        const pid = p.name === 'dante' ? undefined : p.proc?.pid;
        const c0 = cpuMicros(pid);
        const before = connDone;
        (cps[p.name] ??= []).push(await connRate(p, greeterPort));
        const c1 = cpuMicros(pid);
        if (c0 !== undefined && c1 !== undefined && connDone > before) (cpuPerConn[p.name] ??= []).push((c1 - c0) / (connDone - before));
      }
    }
    for (const p of proxies) {
      results[p.name] = { gbps: median(tput[p.name]!) / 1e9, cps: median(cps[p.name]!), rounds: tput[p.name]!.map((x) => Math.round(x / 1e7) / 100) };
      if (cpuPerConn[p.name]) results[p.name]!.cpuUs = median(cpuPerConn[p.name]!);
      if (cpuPerMiB[p.name]) results[p.name]!.cpuUsPerMiB = median(cpuPerMiB[p.name]!);
    }
  } finally {
    for (const p of proxies) {
      p.proc?.kill('SIGTERM');
      p.cleanup?.();
    }
    source.close();
    greeter.close();
  }
  const sy = results.switchyard!;
  const ratios = {
    vsDante: sy.gbps / results.dante!.gbps,
    vsDirect: sy.gbps / results.direct!.gbps,
    cpsVsMicrosocks: sy.cps / results.microsocks!.cps,
    cpsVsBestServer: sy.cps / Math.max(results.microsocks!.cps, results.dante!.cps),
    cpuVsMicrosocks: sy.cpuUs !== undefined && results.microsocks!.cpuUs !== undefined ? sy.cpuUs / results.microsocks!.cpuUs : NaN,
  };
  const rows = [
    '| path | throughput (GB/s, median) | rounds (GB/s) | proxy CPU µs per MiB (median) | connections/s (median, 32 concurrent) | proxy CPU µs per connection (median) |',
    '|---|---|---|---|---|---|',
    ...Object.entries(results).map(([n, r]) => `| ${n} | ${r.gbps.toFixed(2)} | ${r.rounds.join(', ')} | ${r.cpuUsPerMiB !== undefined ? Math.round(r.cpuUsPerMiB) : '—'} | ${Math.round(r.cps).toLocaleString('en')} | ${r.cpuUs !== undefined ? Math.round(r.cpuUs) : '—'} |`),
  ];
  const cpuVsMs = (n: string): string => {
    const a = results[n]?.cpuUs;
    const m = results.microsocks!.cpuUs;
    return a !== undefined && m !== undefined ? `${(a / m).toFixed(2)}×` : 'n/a';
  };
  const anchorLines = values.anchors
    ? [
        `anchors (floors of a data path, not switchyard): node-minimal / microsocks CPU per connection ${cpuVsMs('node-minimal')}; epoll-minimal / microsocks ${cpuVsMs('epoll-minimal')}`,
      ]
    : [];
  const summary = [
    `switchyard / dante throughput: ${ratios.vsDante.toFixed(2)}× (target ≥ 1.2×)`,
    `proxy CPU per MiB in the throughput rounds, dante (all its processes) / switchyard: ${sy.cpuUsPerMiB !== undefined && results.dante!.cpuUsPerMiB !== undefined ? (results.dante!.cpuUsPerMiB / sy.cpuUsPerMiB).toFixed(2) : 'n/a'}× (above 1× means switchyard moves more bytes per CPU second; less sensitive to load than GB/s)`,
    `switchyard / direct throughput: ${ratios.vsDirect.toFixed(2)}× (target ≥ 0.35×)`,
    `switchyard / microsocks connections/s: ${ratios.cpsVsMicrosocks.toFixed(2)}× (target ≥ 1×); / faster of dante and microsocks: ${ratios.cpsVsBestServer.toFixed(2)}×`,
    `switchyard / microsocks CPU time per connection: ${ratios.cpuVsMicrosocks.toFixed(2)}× (below 1× would mean switchyard can take more connections/s on a core of its own)`,
    ...anchorLines,
  ];
  console.log(rows.join('\n'));
  console.log(summary.join('\n'));
  console.log(JSON.stringify({ results, ratios }));
  if (!values['no-write']) writeDocs(rows, summary);
}

function writeDocs(rows: string[], summary: string[]): void {
  const path = new URL('../docs/benchmarks.md', import.meta.url);
  let doc: string;
  try {
    doc = readFileSync(path, 'utf8');
  } catch {
    doc = '# Benchmarks\n\nFigures from `npm run bench:<area>` on the machine named in each section.\n';
  }
  const section = [
    '## relay',
    '',
    '<!-- written by bench/relay.bench.ts (npm run bench:relay); edit the script, not this section -->',
    '',
    `Run ${new Date().toISOString().slice(0, 16)}Z on ${os.cpus()[0]?.model ?? 'unknown CPU'} (${os.cpus().length} cores, shared with other work; load average ${os.loadavg()[0]!.toFixed(1)} at the end), Node ${process.version}.`,
    `Each proxy ${hasTaskset ? 'pinned to core 0, the load client and target servers to core 1' : 'unpinned (taskset or a second core missing)'}; loopback only.`,
    `Throughput: one flow, the target pushes ${(BYTES / 2 ** 20).toFixed(0)} MiB per round (the issue asks 2 GiB; shorter rounds keep the`,
    `run short on a shared machine; \`--bytes 2147483648\` runs the full size), median of ${ROUNDS} rounds, rounds interleaved across`,
    `paths so that load from elsewhere hits every path alike — the per-round column shows how much it varied.`,
    `Connections/s: ${CONCURRENCY} concurrent loops of connect → SOCKS5 CONNECT → one byte from the target → close,`,
    `${CONN_MS / 1000} s per round after a 1 s warm-up, median of ${ROUNDS}; the proxy's CPU time (user + system, /proc/PID/stat) per connection of the round, for the single-process proxies.`,
    `CPU per MiB: the proxy's CPU time (with all its child processes — dante relays in children) over a throughput round, per MiB moved.`,
    `switchyard runs the mixed inbound with every flow on the direct egress`,
    `(policy call, session table, relay with the shared \`onread\` buffer), ${values.built ? 'from the tsc build (dist/, what `npm start` runs; `--built`)' : 'from the sources through tsx (`--built` runs the tsc build)'}.`,
    ...(values.anchors
      ? [
          'Anchors (`--anchors`), floors of a data path rather than products: node-minimal is bench/relay-node-minimal.ts (net.Server + net.connect + pipe,',
          'no policy, sessions, timeouts or limits — the least a relay with two net.Sockets per flow costs); epoll-minimal is bench/relay-epoll-proto.ts',
          '(its own epoll loop through koffi, src/sys/linux/tcp-epoll.ts, no net.Socket at all; same lack of features).',
        ]
      : []),
    '',
    ...rows,
    '',
    ...summary.map((s) => `- ${s}`),
    '',
  ].join('\n');
  const re = /## relay\n[\s\S]*?(?=\n## |$)/;
  doc = re.test(doc) ? doc.replace(re, section) : doc.trimEnd() + '\n\n' + section;
  writeFileSync(path, doc);
}

await main();
process.exit(0);
