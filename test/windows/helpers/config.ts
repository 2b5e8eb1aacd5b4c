// A normalised Config (src/policy/types.ts) for the Windows tests, built by hand so these tests do
// not depend on the config parser of another branch.
import type { Config, EgressConfig, RuleConfig } from '../../../src/policy/types.ts';

const health = { target: null, intervalMs: 10_000, timeoutMs: 2_000 };
const common = { fallback: null, health, dns: [], obfuscatesOnly: false, process: null };

function egress(name: string, e: Record<string, unknown>): EgressConfig {
  return { name, ...common, ...e } as unknown as EgressConfig;
}

function rule(index: number, r: Partial<RuleConfig> & { egress: string }): RuleConfig {
  return { index, name: null, domains: [], apps: [], cidrs: [], ports: [], network: null, origin: { line: index + 10 }, ...r };
}

export function testConfig(over: { mode?: 'selected' | 'all'; lan?: 'direct' | 'policy'; rules?: RuleConfig[] } = {}): Config {
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
      timeoutMs: 2000,
      rateLimit: 100,
      cache: { maxEntries: 1000, minTtl: 0, maxTtl: 86400, negativeTtl: 60 },
      store: { maxEntries: 1000, graceSeconds: 300, persist: false },
    },
    inbound: {
      mixed: null,
      allowFrom: [],
      auth: null,
      transparentListen: '0.0.0.0',
      maxSessions: 100,
      handshakeTimeoutMs: 5000,
      connectTimeoutMs: 5000,
      idleTimeoutMs: 60000,
      sniffTimeoutMs: 300,
    },
    enforce: { enabled: true, mode: over.mode ?? 'selected', lan: over.lan ?? 'direct', blockQuic: true, exemptUsers: [], windivertPath: 'C:\\WinDivert' },
    control: { group: 'switchyard', readUsers: [] },
    egress: {
      direct: egress('direct', { type: 'direct' }),
      block: egress('block', { type: 'block' }),
      proxy: egress('proxy', { type: 'socks5', endpoint: { host: '127.0.0.1', port: 1080 }, auth: null, sendDomain: true, udp: true }),
      vpnif: egress('vpnif', { type: 'interface', interface: 'wg0' }),
      home: egress('home', { type: 'direct' }),
    },
    exempt: [
      {
        apps: [{ kind: 'path', value: 'C:\\Program Files\\sing-box\\sing-box.exe' }],
        users: [],
        cidrs: [{ family: 4, address: '203.0.113.0', prefix: 24 }],
        origin: { line: 5 },
      },
    ],
    rules: over.rules ?? [
      rule(0, { apps: [{ kind: 'name', value: 'zen.exe' }], egress: 'proxy' }),
      rule(1, { apps: [{ kind: 'path', value: 'C:\\Apps\\Telegram\\Telegram.exe' }], egress: 'proxy' }),
      rule(2, { domains: [{ kind: 'suffix', value: 'youtube.com' }], egress: 'proxy' }),
      rule(3, {
        name: 'no-smtp',
        cidrs: [
          { family: 4, address: '198.51.100.0', prefix: 24 },
          { family: 6, address: '2001:db8:bad::', prefix: 48 },
        ],
        ports: [{ from: 25, to: 25 }, { from: 465, to: 587 }],
        network: 'tcp',
        egress: 'block',
      }),
      rule(4, { apps: [{ kind: 'path', value: 'C:\\Apps\\bad.exe' }], egress: 'block' }),
      rule(5, { apps: [{ kind: 'glob', value: 'C:\\Games\\**\\*.exe' }], egress: 'vpnif' }),
      rule(6, { apps: [{ kind: 'group', value: 'proxy' }], egress: 'proxy' }),
      rule(7, { domains: [{ kind: 'suffix', value: 'ads.example' }], egress: 'block' }),
      rule(8, { apps: [{ kind: 'path', value: 'C:\\Apps\\local.exe' }], egress: 'home' }),
    ],
    source: 'test',
    notices: [],
  };
}
