// Configs for store tests: a small TOML read by the real parser, and hand-built rules to add.
import type { Config, DomainPattern, RuleConfig, AppPattern, Cidr } from '../../../src/policy/types.ts';
import { loadConfigFromString } from '../../../src/policy/index.ts';

const BASE = `version = 1
default = "direct"

[dns]
listen = ["127.0.0.1:53"]
timeout_ms = 3000   # not the default: a test changes it to the default (5000)

[inbound]
mixed = "127.0.0.1:1080"

[egress.vpn]
type = "socks5"
endpoint = "socks5://127.0.0.1:2080"

[[exempt]]
apps = ["sing-box"]

[[rule]]
egress = "vpn"
domains = ["youtube.com", "full:api.example.org"]

[[rule]]
egress = "block"
domains = ["ads.example"]

[[rule]]
egress = "vpn"
apps = ["firefox"]

[[rule]]
egress = "direct"
cidrs = ["10.0.0.0/8"]
`;

/** Four rules (two domain, an app, a CIDR), a socks5 egress `vpn` and a `sing-box` exemption. */
export function baseConfig(): Config {
  return loadConfigFromString(BASE, '/etc/switchyard/config.toml');
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
