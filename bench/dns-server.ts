// The switchyard DNS forwarder as a stand-alone process for bench/dns.bench.ts (so it can be pinned
// to its own CPU with taskset). argv[2]: JSON {port, upstream, fastPath?}. Prints `READY <port>`
// when bound; `fastPath: false` keeps the UDP listener on a Node dgram socket (for comparison).
import { startDnsForwarder } from '../src/dns/index.ts';
import type { EgressConfig } from '../src/policy/types.ts';

const { port, upstream, fastPath } = JSON.parse(process.argv[2] ?? '{}') as { port: number; upstream: string; fastPath?: boolean };
const common = { fallback: null, health: { target: null, intervalMs: 10000, timeoutMs: 2000 }, dns: [], obfuscatesOnly: false, process: null };
const egress: Record<string, EgressConfig> = {
  direct: { ...common, name: 'direct', type: 'direct' },
  block: { ...common, name: 'block', type: 'block' },
};
const fwd = await startDnsForwarder({
  config: {
    dns: {
      listen: [{ host: '127.0.0.1', port }],
      upstreams: [upstream],
      bootstrap: [],
      hosts: {},
      blockAnswer: 'nxdomain',
      firefoxCanary: true,
      stripEch: true,
      timeoutMs: 2000,
      rateLimit: 0,
      cache: { maxEntries: 20000, minTtl: 0, maxTtl: 86400, negativeTtl: 300 },
      store: { maxEntries: 20000, graceSeconds: 600, persist: false },
    },
    egress,
  },
  projectDomain: () => ({ egresses: ['direct'], uniform: true, egress: 'direct', rule: null }),
  // A hook that does nothing, as the OS backend's would when its sets are already filled: the
  // forwarder still pays for batching and awaiting it.
  onBindings: async () => {},
  fastPath: fastPath !== false,
});
process.stdout.write(`READY ${fwd.addresses[0]!.port}\n`);
process.on('SIGTERM', () => {
  // The bench reads this line (how many hits the UDP fast path's worker answered).
  process.stdout.write(`STATS ${JSON.stringify(fwd.stats())}\n`);
  if (process.env['BENCH_STATS']) process.stderr.write(`switchyard stats ${JSON.stringify(fwd.stats())}\n`);
  void fwd.close().then(() => process.exit(0));
});
