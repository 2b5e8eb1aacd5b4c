// Config text for the revision tests: a base with a block rule, an exemption and a routed name,
// and the variations the risk table needs. Ports come from the test.
export interface Ports {
  dns: number;
  mixed: number;
  socks: number;
}

export interface Variant {
  /** Default egress. */
  default?: string;
  /** Keep the `blocked.test → block` rule. */
  block?: boolean;
  /** Keep the `sing-box` exemption. */
  exempt?: boolean;
  /** Extra [[rule]] tables, as TOML. */
  extra?: string;
}

export function configText(p: Ports, v: Variant = {}): string {
  return `version = 1
default = "${v.default ?? 'direct'}"

[dns]
listen = ["127.0.0.1:${p.dns}"]
upstreams = ["udp://127.0.0.1:9"]   # never asked
hosts = { "count.test" = ["127.0.0.1"] }

# Test hosts live on loopback, and with lan = "direct" a name resolving to loopback never goes to
# a proxy egress (docs/front.md): "policy" lets the rules under test route them through ms.
[enforce]
lan = "policy"

[inbound]
mixed = "127.0.0.1:${p.mixed}"

[control]
read_users = ["*"]   # socket 0666: the nobody test connects; the server checks each call

[egress.ms]
type = "socks5"
endpoint = "socks5://127.0.0.1:${p.socks}"
send_domain = false
${v.exempt === false ? '' : '\n[[exempt]]\napps = ["sing-box"]\n'}${v.block === false ? '' : '\n[[rule]]\nname = "blocked"\negress = "block"\ndomains = ["blocked.test"]\n'}
[[rule]]
name = "count"
egress = "direct"
domains = ["count.test"]
${v.extra ?? ''}`;
}

/** `n` rules, one exact name each, all to egress ms. */
export function manyRules(n: number): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(`[[rule]]\negress = "ms"\ndomains = ["full:n${i}.bulk.test"]\n`);
  return out.join('\n');
}
