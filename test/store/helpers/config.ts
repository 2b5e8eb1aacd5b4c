// Hand-built Config objects for store tests (plain data; no parser needed).
import type { Config, DomainPattern, RuleConfig, AppPattern, Cidr, EgressConfig } from '../../../src/policy/types.ts';

const health = { target: null, intervalMs: 10_000, timeoutMs: 3000 };
function egress(name: string, extra: Partial<EgressConfig> & Pick<EgressConfig, 'type'>): EgressConfig {
  return { name, fallback: null, health, dns: [], obfuscatesOnly: false, process: null, ...extra } as EgressConfig;
}

export function baseConfig(): Config {
  return {
    version: 1,
    default: 'direct',
    dns: {
      listen: [{ host: '127.0.0.1', port: 53 }],
      upstreams: [],
      bootstrap: [],
      hosts: {},
      blockAnswer: 'nxdomain',
      firefoxCanary: true,
      stripEch: true,
      timeoutMs: 3000,
      rateLimit: 200,
      cache: { maxEntries: 10_000, minTtl: 0, maxTtl: 86_400, negativeTtl: 60 },
      store: { maxEntries: 100_000, graceSeconds: 600, persist: true },
    },
    inbound: {
      mixed: { host: '127.0.0.1', port: 1080 },
      allowFrom: [],
      auth: null,
      transparentListen: '127.0.0.1',
      maxSessions: 4096,
      handshakeTimeoutMs: 10_000,
      connectTimeoutMs: 10_000,
      idleTimeoutMs: 300_000,
      sniffTimeoutMs: 300,
    },
    enforce: { enabled: false, mode: 'selected', lan: 'direct', blockQuic: true, exemptUsers: [], windivertPath: null },
    control: { group: 'switchyard', readUsers: [] },
    egress: {
      direct: egress('direct', { type: 'direct' }),
      block: egress('block', { type: 'block' }),
      vpn: egress('vpn', { type: 'socks5', endpoint: { host: '127.0.0.1', port: 2080 }, auth: null, sendDomain: true, udp: true } as Partial<EgressConfig> & { type: 'socks5' }),
    },
    exempt: [{ apps: [{ kind: 'name', value: 'sing-box' }], users: [], cidrs: [], origin: { line: 40 } }],
    rules: [
      rule(0, 'vpn', { domains: [{ kind: 'suffix', value: 'youtube.com' }, { kind: 'full', value: 'api.example.org' }] }),
      rule(1, 'block', { domains: [{ kind: 'suffix', value: 'ads.example' }] }),
      rule(2, 'vpn', { apps: [{ kind: 'name', value: 'firefox' }] }),
      rule(3, 'direct', { cidrs: [{ family: 4, address: '10.0.0.0', prefix: 8 }] }),
    ],
    source: '/etc/switchyard/config.toml',
    notices: [],
  };
}

export function rule(
  index: number,
  egressName: string,
  m: { domains?: DomainPattern[]; apps?: AppPattern[]; cidrs?: Cidr[]; name?: string },
): RuleConfig {
  return {
    index,
    name: m.name ?? null,
    egress: egressName,
    domains: m.domains ?? [],
    apps: m.apps ?? [],
    cidrs: m.cidrs ?? [],
    ports: [],
    network: null,
    origin: { line: 10 + index },
  };
}

/** A deep copy to edit. */
export function edit(c: Config, fn: (c: Config) => void): Config {
  const copy = structuredClone(c);
  fn(copy);
  return copy;
}

/** Appends a rule at the end. */
export function addRule(c: Config, egressName: string, m: Parameters<typeof rule>[2]): Config {
  return edit(c, (x) => void x.rules.push(rule(x.rules.length, egressName, m)));
}
