// DNS latency added by enforce mode on a cache miss (npm run bench:dns-enforce; root, nft, unshare,
// dnsmasq). Two forwarders in one run, same upstream (dnsmasq answering every *.bench.test with
// 198.18.5.5, reached through a microsocks egress as names routed to an egress are), same config (bench.test → egress vpn, so every answer is bound): one with the
// binding hook feeding the Linux backend's captured set in-process (libnftables), one without.
// Each query is a new name (a miss); queries alternate between the two. Medians and p99 of this
// run, and the difference of the medians = what the hook adds. Re-executes itself inside
// `unshare --mount --net` with a per-run cgroup root: nothing touches the host's ruleset.
import { spawn, execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { removeCgroupTree } from '../test/redirect-linux/helpers/host.ts';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const N = Number(process.env['SY_BENCH_QUERIES'] ?? 400);
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? NaN;

function query(port: number, name: string): Promise<number> {
  // A minimal A query (RFC 1035 4.1): header, then the name as labels.
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const id = Math.floor(Math.random() * 65535);
  const msg = Buffer.concat([Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    const timer = setTimeout(() => {
      s.close();
      reject(new Error(`timeout ${name}`));
    }, 3000);
    const t0 = performance.now();
    s.on('message', (m) => {
      const dt = performance.now() - t0;
      clearTimeout(timer);
      s.close();
      if ((m[3]! & 15) !== 0) reject(new Error(`rcode ${m[3]! & 15} for ${name}`));
      else resolve(dt);
    });
    s.send(msg, port, '127.0.0.1');
  });
}

async function inside(): Promise<void> {
  const root = process.env['SY_BENCH_CGROUP_ROOT']!;
  execFileSync('sh', ['-c', 'ip link set lo up && mount -t cgroup2 none /sys/fs/cgroup']);
  const dnsmasq = spawn('dnsmasq', ['--keep-in-foreground', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', '--listen-address=127.0.0.1', '--bind-interfaces', '--port=5398', '--address=/bench.test/198.18.5.5', '--pid-file=', '--cache-size=0'], { stdio: 'ignore' });
  // Names routed to an egress are resolved through it: a real SOCKS5 server on the same path for both.
  const socks = spawn('microsocks', ['-i', '127.0.0.1', '-p', '1081'], { stdio: 'ignore' });
  try {
    const { compilePolicy } = await import('../src/policy/index.ts');
    const { loadConfigFile } = await import('../src/config-file.ts');
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'sy-bench-dnsenf-'));
    const mk = (port: number) => {
      const f = join(dir, `c${port}.toml`);
      writeFileSync(f, `version = 1\n[dns]\nlisten = ["127.0.0.1:${port}"]\nupstreams = ["udp://127.0.0.1:5398"]\n[dns.store]\npersist = false\n[egress.vpn]\ntype = "socks5"\nendpoint = "socks5://127.0.0.1:1081"\n[[rule]]\negress = "vpn"\ndomains = ["bench.test"]\n`);
      return loadConfigFile(f);
    };
    const { startDnsForwarder } = await import('../src/dns/index.ts');
    const { LinuxBackend } = await import('../src/redirect/linux/backend.ts');
    const { buildPlan } = await import('../src/redirect/plan.ts');
    const cfgHook = mk(5391);
    const cfgPlain = mk(5392);
    const backend = new LinuxBackend({ cgroupRoot: root, statePath: join(dir, 'state.json') });
    await backend.apply(buildPlan({ config: cfgHook, ports: { groups: { vpn: 40001 }, captured: 40000, dns: null } }), { canary: false });
    const pol = compilePolicy(cfgHook);
    const hooked = await startDnsForwarder({ config: cfgHook, projectDomain: (n) => pol.projectDomain(n), stateDir: null, onBindings: async (b) => void (await backend.addBindings(b)) });
    const plain = await startDnsForwarder({ config: cfgPlain, projectDomain: (n) => pol.projectDomain(n), stateDir: null });
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 20; i++) {
      await query(5391, `warm${i}.bench.test`);
      await query(5392, `warmp${i}.bench.test`);
    }
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < N; i++) {
      a.push(await query(5391, `h${i}.bench.test`));
      b.push(await query(5392, `p${i}.bench.test`));
    }
    const listed = execFileSync('nft', ['list', 'set', 'inet', 'switchyard', 'captured4'], { encoding: 'utf8' });
    if (!listed.includes('198.18.5.5')) throw new Error('the hook did not fill the set');
    const f = (x: number) => `${(x * 1000).toFixed(0)} µs`;
    const rows = [
      ['miss, no hook (anchor)', f(pct(b, 0.5)), f(pct(b, 0.99))],
      ['miss, enforce hook (libnftables)', f(pct(a, 0.5)), f(pct(a, 0.99))],
      ['added by the hook (p50 difference)', f(pct(a, 0.5) - pct(b, 0.5)), ''],
    ];
    process.stdout.write(`| measure (${N} misses each, alternating) | p50 | p99 |\n|---|---|---|\n${rows.map((r) => `| ${r.join(' | ')} |`).join('\n')}\n`);
    process.stdout.write(`hook failures: ${hooked.forwarder.stats.hookFailures}\n`);
    await hooked.close();
    await plain.close();
    await backend.down();
    await backend.close();
  } finally {
    dnsmasq.kill('SIGKILL');
    socks.kill('SIGKILL');
  }
}

if (process.env['SY_BENCH_INSIDE'] === '1') {
  inside().then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
} else {
  const root = `switchyard-test-bench-dnsenf-${process.pid}`;
  const c = spawn('unshare', ['--mount', '--net', '--propagation', 'private', '--', process.execPath, '--import', 'tsx', fileURLToPath(import.meta.url)], {
    stdio: 'inherit',
    env: { ...process.env, SY_BENCH_INSIDE: '1', SY_BENCH_CGROUP_ROOT: root },
  });
  c.on('close', (code) => {
    removeCgroupTree(root);
    process.exit(code ?? 1);
  });
}
