// The normalised config and the policy contracts every part shares. src/policy/config/load.ts parses
// TOML into `Config`; src/policy/engine/policy.ts compiles it into a `Policy` (public API:
// src/policy/index.ts). Pure data: no I/O here. Rules built in code (lists) must carry
// `index` equal to their position in `Config.rules`.
//
// Names of egresses are user-chosen, except two built-ins that always exist: `direct` and `block`.

export type Network = 'tcp' | 'udp';

/** host:port as written in the config; host is an IP literal or a name (bootstrap-resolved). */
export interface HostPort {
  host: string;
  port: number;
}

export interface EgressAuth {
  username: string;
  password: string;
}

export interface HealthConfig {
  /** host:port probed *through* the egress (a proxy that is up with its tunnel down is down). */
  target: HostPort | null;
  intervalMs: number;
  timeoutMs: number;
}

export interface EgressProcessConfig {
  command: string;
  args: string[];
}

interface EgressCommon {
  name: string;
  /** Explicit fallback egress when this one is down; null = fail closed (the default). */
  fallback: string | null;
  health: HealthConfig;
  /** Resolvers used for names routed to this egress, reached *through* it (udp:// tcp:// tls:// https://). */
  dns: string[];
  /** The egress only obfuscates (a DPI-bypass proxy): plaintext DNS through it is refused, DoT/DoH only. */
  obfuscatesOnly: boolean;
  /** A process switchyard supervises (sing-box, ciadpi); null when started elsewhere. */
  process: EgressProcessConfig | null;
  /** Config line of the [egress.NAME] table, for messages. */
  line?: number;
}

export type EgressConfig =
  | (EgressCommon & { type: 'direct' })
  | (EgressCommon & { type: 'block' })
  | (EgressCommon & {
      type: 'socks5';
      endpoint: HostPort;
      auth: EgressAuth | null;
      /** Send the sniffed, destination-consistent domain instead of the IP (default true). */
      sendDomain: boolean;
      /** Relay UDP through the egress's UDP ASSOCIATE (default true). */
      udp: boolean;
    })
  | (EgressCommon & { type: 'http'; endpoint: HostPort; auth: EgressAuth | null; sendDomain: boolean })
  | (EgressCommon & {
      type: 'interface';
      /** Interface name, or `auto` for the physical default interface. */
      interface: string;
    });

export type EgressType = EgressConfig['type'];

/** A domain pattern, normalised (lower case, no trailing dot, punycode). */
export type DomainPattern =
  | { kind: 'suffix'; value: string } // bare name: itself and subdomains
  | { kind: 'full'; value: string }
  | { kind: 'keyword'; value: string }
  | { kind: 'regexp'; value: string };

export type AppPattern =
  | { kind: 'name'; value: string } // lower-cased base name, e.g. `zen.exe`
  | { kind: 'path'; value: string } // normalised full path
  | { kind: 'glob'; value: string } // path glob
  | { kind: 'group'; value: string }; // the OS backend's group (egress group name)

export interface Cidr {
  family: 4 | 6;
  /** Canonical network address text. */
  address: string;
  prefix: number;
}

export interface PortRange {
  from: number;
  to: number;
}

/** Where a rule came from: the config (line) or a list (name and line). */
export interface RuleOrigin {
  file?: string;
  line?: number;
  list?: string;
}

export interface RuleConfig {
  /** Position among rules, 0-based; also the stable id `rule#<index+1>` when unnamed. */
  index: number;
  name: string | null;
  egress: string;
  domains: DomainPattern[];
  apps: AppPattern[];
  cidrs: Cidr[];
  ports: PortRange[];
  network: Network | null;
  origin: RuleOrigin;
}

export interface ExemptConfig {
  apps: AppPattern[];
  users: string[];
  cidrs: Cidr[];
  origin: RuleOrigin;
}

export interface DnsCacheConfig {
  maxEntries: number;
  minTtl: number;
  maxTtl: number;
  negativeTtl: number;
}

export interface DnsStoreConfig {
  maxEntries: number;
  /** Seconds a binding stays (marked stale) after its TTL ran out. */
  graceSeconds: number;
  persist: boolean;
}

export interface DnsConfig {
  listen: HostPort[];
  /** Upstream URLs; empty = the system's resolvers (never switchyard itself). */
  upstreams: string[];
  /** IP addresses used to resolve DoT/DoH and egress host names. */
  bootstrap: string[];
  /** Static hosts: name → addresses. */
  hosts: Record<string, string[]>;
  blockAnswer: 'nxdomain' | 'null';
  /** Answer Firefox's use-application-dns.net canary with NXDOMAIN. */
  firefoxCanary: boolean;
  /** Strip ECH configs from HTTPS records of names whose egress is not direct. */
  stripEch: boolean;
  timeoutMs: number;
  /** Queries per second per client address. */
  rateLimit: number;
  cache: DnsCacheConfig;
  store: DnsStoreConfig;
  /**
   * Optional PEM file of an extra CA trusted for DoT/DoH upstreams (a private resolver; tests), on
   * top of the system's roots. Absent = system roots only. (Added by the dns helper; the TOML key
   * would be `ca_file`.)
   */
  caFile?: string | null;
}

export interface InboundConfig {
  /** SOCKS5 + HTTP proxy on one port; null = off. */
  mixed: HostPort | null;
  /** Client CIDRs allowed on the mixed port besides loopback. */
  allowFrom: Cidr[];
  auth: EgressAuth | null;
  /** Address the transparent listeners bind (ports are chosen by the OS). */
  transparentListen: string;
  maxSessions: number;
  handshakeTimeoutMs: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  /** Bound on waiting for a client's first bytes to sniff SNI/Host. */
  sniffTimeoutMs: number;
}

export interface EnforceConfig {
  enabled: boolean;
  /** `selected`: only selected apps and captured destinations; `all`: every non-exempt flow. */
  mode: 'selected' | 'all';
  /** Loopback and LAN destinations: `direct` (default) or `policy` (treated like any other). */
  lan: 'direct' | 'policy';
  blockQuic: boolean;
  /** Refuse known DoH endpoints: their names answered as blocked, their addresses' port 443 rejected. */
  blockDoh?: boolean;
  /** Extra DoH endpoints (names and addresses, one per line) added to the built-in list; null = built-in only. */
  dohList?: string | null;
  exemptUsers: string[];
  /** Windows: folder holding WinDivert.dll and WinDivert64.sys. */
  windivertPath: string | null;
}

export interface ControlConfig {
  /** Unix group (Linux) allowed to use state-changing methods, besides root. */
  group: string;
  /** Users allowed read-only methods; empty = everyone who can open the socket. */
  readUsers: string[];
}

/** One `[[list]]` table (docs/lists.md). Its entries become rules outside src/policy (src/lists-load.ts). */
export interface ListConfig {
  name: string;
  /** Exactly one of path / url. A relative path is relative to the config file. */
  path: string | null;
  url: string | null;
  format: 'plain' | 'v2fly' | 'singbox' | 'clash-domain' | 'clash-ipcidr' | 'clash-classical' | 'netrulerouter';
  egress: string;
  attrs: string[];
  unsupported: 'error' | 'skip';
  granularity: 'auto' | 'entry' | 'list';
  sha256: string | null;
  maxBytes: number | null;
  via: string;
  /** url lists: seconds between re-checks. */
  refreshSeconds: number;
  /** Config line of the [[list]] table. */
  line?: number;
  /**
   * sha256 of the list body this config runs with, set by the list loader (not the TOML): a changed
   * file or an approved download changes the config's hash, so it becomes a revision. Absent/null
   * for a url list not yet approved (it contributes no rules).
   */
  content?: string | null;
}

export interface Config {
  version: 1;
  default: string;
  dns: DnsConfig;
  inbound: InboundConfig;
  enforce: EnforceConfig;
  control: ControlConfig;
  /** Declared egresses plus the built-ins `direct` and `block`. */
  egress: Record<string, EgressConfig>;
  exempt: ExemptConfig[];
  rules: RuleConfig[];
  /** `[[list]]` definitions (absent in configs built by hand = none). */
  lists?: ListConfig[];
  /** Where the config came from: a path, or `embedded` for the built-in default. */
  source: string;
  /** Notices for the user (e.g. "read as policy-router-rs format"). */
  notices: string[];
}

// ---------------------------------------------------------------- decisions

/** What the policy is asked. Every field is optional except network: decide with what is known. */
export interface FlowQuery {
  network: Network;
  /** Process base name (any case; Windows paths are normalised). */
  process?: string;
  /** Full executable path. */
  exe?: string;
  /** OS group the backend put the process in (an egress group name). */
  group?: string;
  /** Unix user name or Windows account, for exempt users. */
  user?: string;
  domain?: string;
  ip?: string;
  port?: number;
}

export type Stage = 'exempt' | 'lan' | 'block' | 'domain' | 'cidr' | 'app' | 'other' | 'default';

/** One condition that matched, able to describe itself (`domain youtube.com matches www.youtube.com`). */
export interface MatchReason {
  condition: 'domain' | 'app' | 'cidr' | 'port' | 'network' | 'user' | 'lan' | 'group';
  pattern: string;
  value: string;
}

export interface RuleRef {
  /** `rule#N` (1-based) or the rule's name; `exempt#N` for exempt entries. */
  id: string;
  index: number;
  origin: RuleOrigin;
  /**
   * Set on the implicit rule `group:NAME → NAME` that compilePolicy adds for each egress (index -1,
   * origin: the [egress.NAME] table); absent on configured rules. (Added by perfpol2.)
   */
  implicit?: true;
}

export interface Candidate {
  rule: RuleRef;
  egress: string;
  stage: Stage;
  matched: MatchReason[];
  /** Why it lost to the winner, in words. */
  lostBecause: string;
}

export interface Decision {
  egress: string;
  stage: Stage;
  /** null when the default decided. */
  rule: RuleRef | null;
  matched: MatchReason[];
}

/** decide() plus the losers: the record `switchyard explain` prints. */
export interface Explanation extends Decision {
  query: FlowQuery;
  candidates: Candidate[];
}

/** What a name alone tells: the egresses it can take whatever the app and port. */
export interface DomainProjection {
  /** Distinct egresses a flow to this name may take (the default included when it can apply). */
  egresses: string[];
  /** True when every flow to this name takes the same egress, whatever the app/port. */
  uniform: boolean;
  /** The egress when uniform; else null. */
  egress: string | null;
  /** The domain rule that decides it, if any. */
  rule: RuleRef | null;
}

export interface ProjectOptions {
  /**
   * For the OS backend's captured sets: leave out rules with an app condition (selected apps are
   * redirected by their group whatever the destination) and rules with a CIDR condition (their
   * addresses are redirected by the static sets). Without this, one app or CIDR rule would put
   * every resolved address into the captured set and through the front door.
   */
  capture?: boolean;
}

export interface Policy {
  readonly config: Config;
  decide(q: FlowQuery): Decision;
  explain(q: FlowQuery): Explanation;
  projectDomain(name: string, opts?: ProjectOptions): DomainProjection;
}
