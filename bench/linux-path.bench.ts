// Benchmark of the whole Linux redirect path (part of npm run bench:linux; needs root, nft,
// unshare, microsocks, redsocks). Three ways to the same kind of sink, in the same run:
//   - direct;
//   - switchyard: a real `switchyard up` redirects the flow (static CIDR rule) to its front door,
//     which relays it through a SOCKS5 egress (microsocks);
//   - redsocks: an nft redirect to redsocks, which relays through the same microsocks.
// Setup = connect() and a small request until the server's first byte arrives (the whole chain is
// built by then);
// throughput = one flow of SY_BENCH_MB until the sink has read it all. Medians of this run.
// Runs itself inside `unshare --mount --net` with a per-run cgroup root (test hosts 198.18.0.0/15).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createServer, connect, type Server } from 'node:net';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, copyFileSync, chmodSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const N = Number(process.env['SY_BENCH_CONNECTS'] ?? 200);
const BYTES = Number(process.env['SY_BENCH_MB'] ?? 256) * 1024 * 1024;
const RUNS = 3;
const DIRECT = '198.18.0.10';
const VIA = '198.18.0.11'; // microsocks dials out from here
const SY = '198.18.0.30'; // redirected by switchyard (static CIDR rule → egress vpn)
const RS = '198.18.0.31'; // redirected to redsocks by the bench's own table
const PORT = 9000;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Answers the client's first bytes with one byte (so setup is timed end to end: the client speaks
 * first, as HTTP and TLS do; a server-speaks-first protocol would also wait for the front door's
 * sniff timeout), then reads everything.
 */
function sink(host: string): Promise<Server> {
  return new Promise((resolve) => {
    const s = createServer((c) => {
      c.once('data', () => c.write('x'));
      c.on('data', () => {});
      c.on('error', () => {});
      c.on('end', () => c.end());
    });
    s.listen(PORT, host, () => resolve(s));
  });
}

function setupOnce(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const c = connect(PORT, host, () => c.write('GET / HTTP/1.1\r\nHost: bench\r\n\r\n'));
    c.once('data', () => {
      resolve(performance.now() - t0);
      c.destroy();
    });
    c.on('error', reject);
    c.setTimeout(5000, () => reject(new Error(`no greeting from ${host}`)));
  });
}

function throughput(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const chunk = Buffer.alloc(1 << 20, 7);
    const c = connect(PORT, host, () => c.write('GET / HTTP/1.1\r\nHost: bench\r\n\r\n'));
    let sent = 0;
    let t0 = 0;
    const pump = () => {
      while (sent < BYTES) {
        sent += chunk.length;
        if (!c.write(chunk)) return void c.once('drain', pump);
      }
      c.end();
    };
    c.once('data', () => {
      t0 = performance.now();
      pump();
    });
    c.on('data', () => {});
    c.on('close', () => resolve(BYTES / 1e6 / ((performance.now() - t0) / 1000)));
    c.on('error', reject);
  });
}

async function inside(): Promise<void> {
  const children: ChildProcess[] = [];
  let daemonProc: { kill(sig: NodeJS.Signals): void } | null = null;
  const bg = (argv: string[], opts: { stderr?: boolean } = {}) => {
    const c = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', opts.stderr ? 'inherit' : 'ignore'] });
    children.push(c);
    return c;
  };
  const dir = process.env['SY_BENCH_DIR']!;
  const root = process.env['SY_BENCH_CGROUP_ROOT']!;
  try {
    execFileSync('sh', ['-c', `ip link set lo up && ip link add sy0 type veth peer name sy1 && ip link set sy0 up && ip link set sy1 up && for a in ${DIRECT} ${VIA} ${SY} ${RS}; do ip addr add $a/32 dev sy0; done && mount -t cgroup2 none /sys/fs/cgroup`]);
    for (const h of [DIRECT, SY, RS]) await sink(h);

    // microsocks as a uniquely named copy: the daemon exempts it by name (its own connections to
    // SY must not be redirected back to the front door).
    const socks = join(dir, 'sy-bench-socks');
    copyFileSync(execFileSync('sh', ['-c', 'command -v microsocks'], { encoding: 'utf8' }).trim(), socks);
    chmodSync(socks, 0o755);
    bg([socks, '-i', '127.0.0.1', '-p', '1090', '-b', VIA]);
    writeFileSync(join(dir, 'redsocks.conf'), `base { log_debug = off; log_info = off; log = stderr; daemon = off; redirector = iptables; }
redsocks { local_ip = 127.0.0.1; local_port = 12345; ip = 127.0.0.1; port = 1090; type = socks5; }
`);
    bg(['redsocks', '-c', join(dir, 'redsocks.conf')]);
    // redsocks' own table: the flow to RS goes to redsocks, except microsocks' (it dials from VIA).
    execFileSync('nft', ['-f', '-'], { input: `table ip bench_redsocks {\n chain out { type nat hook output priority -100; policy accept;\n  ip daddr ${RS} tcp dport { ${PORT}, 9001 } ip saddr != ${VIA} redirect to :12345\n }\n}\n` });

    process.env['SWITCHYARD_RUNTIME_DIR'] = join(dir, 'run');
    process.env['SWITCHYARD_STATE_DIR'] = join(dir, 'state');
    process.env['SWITCHYARD_CGROUP_ROOT'] = root;
    mkdirSync(join(dir, 'run'), { recursive: true });
    const configPath = join(dir, 'config.toml');
    writeFileSync(configPath, `version = 1
default = "direct"
[dns]
listen = ["127.0.0.1:5303"]
upstreams = ["udp://127.0.0.1:5399"]
[inbound]
mixed = "127.0.0.1:7303"
[enforce]
enabled = true
[egress.vpn]
type = "socks5"
endpoint = "socks5://127.0.0.1:1090"
[[exempt]]
apps = ["sy-bench-socks"]
[[rule]]
egress = "vpn"
cidrs = ["${SY}/32"]
`);
    const { DaemonProc } = await import('../test/e2e-linux/fixtures/lib.ts');
    const daemon = new DaemonProc(configPath);
    daemonProc = daemon;
    daemon.start();
    await daemon.ready(60_000);
    await sleep(1500); // the watcher's first rescan exempts microsocks

    // Path check: switchyard and redsocks flows must arrive from microsocks' address.
    const who = (host: string) =>
      new Promise<string>((resolve) => {
        const probe = createServer((c) => {
          resolve((c.remoteAddress ?? '').replace(/^::ffff:/, ''));
          c.destroy();
        });
        probe.listen(9001, host, () => {
          const c = connect(9001, host);
          c.on('error', () => {});
          c.on('close', () => probe.close());
        });
      });
    const paths = { direct: await who(DIRECT), switchyard: await who(SY), redsocks: await who(RS) };
    if (paths.switchyard !== VIA || paths.redsocks !== VIA) throw new Error(`wrong path: ${JSON.stringify(paths)}`);

    const setup: Record<string, number[]> = { direct: [], switchyard: [], redsocks: [] };
    for (let i = 0; i < N; i++) {
      setup['direct']!.push(await setupOnce(DIRECT));
      setup['switchyard']!.push(await setupOnce(SY));
      setup['redsocks']!.push(await setupOnce(RS));
    }
    const tput: Record<string, number[]> = { direct: [], switchyard: [], redsocks: [] };
    for (let i = 0; i < RUNS; i++) {
      tput['direct']!.push(await throughput(DIRECT));
      tput['switchyard']!.push(await throughput(SY));
      tput['redsocks']!.push(await throughput(RS));
    }
    daemon.kill('SIGTERM');
    await daemon.exited();

    const s = (k: string) => median(setup[k]!);
    const t = (k: string) => median(tput[k]!);
    const rows = [
      ['setup, direct (connect → first server byte)', `${(s('direct') * 1000).toFixed(0)} µs`, 'anchor'],
      ['setup, switchyard (nft → front door → microsocks)', `${(s('switchyard') * 1000).toFixed(0)} µs`, `${(s('switchyard') / s('direct')).toFixed(2)}× direct, ${(s('switchyard') / s('redsocks')).toFixed(2)}× redsocks`],
      ['setup, redsocks (nft → redsocks → microsocks)', `${(s('redsocks') * 1000).toFixed(0)} µs`, `${(s('redsocks') / s('direct')).toFixed(2)}× direct`],
      ['one flow, direct', `${t('direct').toFixed(0)} MB/s`, 'anchor'],
      ['one flow, switchyard', `${t('switchyard').toFixed(0)} MB/s`, `${(t('switchyard') / t('direct')).toFixed(2)}× direct, ${(t('switchyard') / t('redsocks')).toFixed(2)}× redsocks`],
      ['one flow, redsocks', `${t('redsocks').toFixed(0)} MB/s`, `${(t('redsocks') / t('direct')).toFixed(2)}× direct`],
    ];
    process.stdout.write(`\npath check: ${JSON.stringify(paths)}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}\n`);
    process.stdout.write(`| measure (${N} setups each, median of ${RUNS} flows of ${BYTES >> 20} MB) | value | ratio |\n|---|---|---|\n`);
    for (const r of rows) process.stdout.write(`| ${r.join(' | ')} |\n`);
  } finally {
    daemonProc?.kill('SIGKILL');
    for (const c of children) c.kill('SIGKILL');
  }
  process.exit(0);
}

async function outside(): Promise<void> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench:linux needs root (unshare, nft, cgroups)\n');
    process.exit(2);
  }
  for (const tool of ['microsocks', 'redsocks', 'nft', 'unshare']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      process.stderr.write(`bench:linux (path) needs ${tool}\n`);
      process.exit(2);
    }
  }
  const { uniqueCgroupRoot, removeCgroupTree } = await import('../test/redirect-linux/helpers/host.ts');
  const root = uniqueCgroupRoot('bench-path');
  const dir = mkdtempSync(join(tmpdir(), 'sy-bench-path-'));
  process.stdout.write(`load average before: ${loadavg().map((x) => x.toFixed(1)).join(' ')}\n`);
  const child = spawn('unshare', ['--mount', '--net', '--propagation', 'private', '--', process.execPath, '--import', 'tsx', fileURLToPath(import.meta.url)], {
    env: { ...process.env, SY_BENCH_IN_NS: '1', SY_BENCH_CGROUP_ROOT: root, SY_BENCH_DIR: dir },
    stdio: 'inherit',
  });
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  removeCgroupTree(root);
  rmSync(dir, { recursive: true, force: true });
  process.exit(code);
}

await (process.env['SY_BENCH_IN_NS'] === '1' ? inside() : outside());
