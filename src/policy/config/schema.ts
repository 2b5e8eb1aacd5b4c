// The shape of config v1 as written in TOML: key names, types and defaults. Only shape lives here
// (so that config/schema.json can be generated from it for editors); the meaning of each string —
// patterns, addresses, URLs, egress names — is checked in normalize.ts, which names the key path.
import { z } from 'zod';

const str = z.string();
const strList = z.array(z.string());
const port = z.number().int().min(1).max(65535);
const msField = (def: number, what: string) => z.number().int().min(1).max(86_400_000).default(def).describe(what);

const authSchema = z.strictObject({
  username: str.min(1).max(255),
  password: str.max(255),
});

export const dnsSchema = z
  .strictObject({
    listen: strList.default(['127.0.0.1:1053']).describe('host:port pairs the DNS forwarder listens on (UDP and TCP)'),
    upstreams: strList.default([]).describe('udp://, tcp://, tls:// or https:// resolvers; empty = the system resolvers'),
    bootstrap: strList.default([]).describe('IP addresses of resolvers used to resolve DoT/DoH and egress host names'),
    hosts: z.record(z.string(), strList).default({}).describe('static answers: name = ["address", ...]'),
    block_answer: z.enum(['nxdomain', 'null']).default('nxdomain').describe('answer for names whose egress is block'),
    firefox_canary: z.boolean().default(true).describe("answer use-application-dns.net with NXDOMAIN so Firefox keeps using this resolver"),
    strip_ech: z.boolean().default(true).describe('strip ECH configs from HTTPS records of names not routed direct'),
    timeout_ms: msField(5000, 'per-query upstream timeout'),
    rate_limit: z.number().int().min(0).max(1_000_000).default(2000).describe('queries per second per client address; 0 = unlimited'),
    ca_file: str.min(1).max(4096).optional().describe('absolute path of a PEM file of extra CAs trusted for tls:// and https:// upstreams'),
    cache: z
      .strictObject({
        max_entries: z.number().int().min(0).max(10_000_000).default(10_000),
        min_ttl: z.number().int().min(0).max(604_800).default(0),
        max_ttl: z.number().int().min(0).max(604_800).default(86_400),
        negative_ttl: z.number().int().min(0).max(86_400).default(60),
      })
      .default({ max_entries: 10_000, min_ttl: 0, max_ttl: 86_400, negative_ttl: 60 }),
    store: z
      .strictObject({
        max_entries: z.number().int().min(1).max(10_000_000).default(100_000),
        grace_seconds: z.number().int().min(0).max(604_800).default(300),
        persist: z.boolean().default(true),
      })
      .default({ max_entries: 100_000, grace_seconds: 300, persist: true }),
  })
  .describe('DNS forwarder');

export const inboundSchema = z
  .strictObject({
    mixed: z.union([str, z.literal(false)]).default('127.0.0.1:7890').describe('SOCKS5 + HTTP proxy host:port; false = off'),
    allow_from: strList.default([]).describe('client CIDRs allowed on the mixed port besides loopback'),
    auth: authSchema.optional().describe('username/password required on the mixed port'),
    transparent_listen: str.default('127.0.0.1').describe('address the transparent listeners bind'),
    max_sessions: z.number().int().min(1).max(1_000_000).default(4096),
    handshake_timeout_ms: msField(10_000, 'SOCKS/HTTP handshake timeout'),
    connect_timeout_ms: msField(10_000, 'egress connect timeout'),
    idle_timeout_ms: msField(300_000, 'idle relay timeout'),
    sniff_timeout_ms: msField(300, 'wait for the first client bytes (SNI/Host)'),
  })
  .describe('local inbounds');

export const enforceSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe('steer apps at the OS level (needs root/Administrator)'),
    mode: z.enum(['selected', 'all']).default('selected'),
    lan: z.enum(['direct', 'policy']).default('direct').describe('loopback/LAN destinations: always direct, or decided by the policy'),
    block_quic: z.boolean().default(true).describe('block UDP 443 of redirected apps so browsers fall back to TCP'),
    block_doh: z.boolean().default(false).describe('refuse well-known DoH endpoints (names and port-443 addresses) so browsers fall back to system DNS'),
    doh_list: str.optional().describe('file of extra DoH endpoints (names and IP addresses, one per line) for block_doh'),
    exempt_users: strList.default([]),
    windivert_path: str.optional().describe('Windows: folder holding WinDivert.dll and WinDivert64.sys'),
  })
  .describe('OS-level enforcement');

export const controlSchema = z.strictObject({
  group: str.min(1).max(64).default('switchyard').describe('Unix group allowed to change state'),
  read_users: strList.default([]).describe('users allowed read-only methods; empty = anyone who can open the socket'),
});

const healthSchema = z.strictObject({
  target: str.optional().describe('host:port probed through the egress'),
  interval_ms: msField(30_000, 'probe interval'),
  timeout_ms: msField(5_000, 'probe timeout'),
});

const processSchema = z.strictObject({
  command: str.min(1),
  args: strList.default([]),
});

export const egressSchema = z.strictObject({
  type: z.enum(['direct', 'socks5', 'http', 'interface', 'block']),
  endpoint: str.optional().describe('socks5://[user:pass@]host:port or http://[user:pass@]host:port'),
  interface: str.optional().describe('interface name or "auto" (type = "interface")'),
  fallback: str.optional().describe('egress used when this one is down; unset = fail closed'),
  dns: strList.default([]).describe('resolvers for names routed here, reached through this egress (interface: sockets bound to it; default: [dns] upstreams)'),
  obfuscates_only: z.boolean().default(false).describe('a DPI-bypass proxy: only DoT/DoH through it'),
  send_domain: z.boolean().default(true).describe('send the sniffed domain instead of the IP'),
  udp: z.boolean().default(true).describe('relay UDP through SOCKS5 UDP ASSOCIATE'),
  health: healthSchema.optional(),
  process: processSchema.optional(),
});

const ruleSchema = z.strictObject({
  name: str.min(1).max(128).optional(),
  egress: str,
  domains: strList.optional().describe('bare name = it and subdomains; full:, keyword:, regexp:'),
  apps: strList.optional().describe('base name, full path, path glob, or group:NAME'),
  cidrs: strList.optional(),
  ports: z.array(z.union([port, str])).optional().describe('443 or "8000-8999"'),
  network: z.enum(['tcp', 'udp']).optional(),
});

// [[list]]: a rule whose patterns come from a file or an HTTPS URL (docs/lists.md). Shape only;
// the list itself is read outside src/policy (src/lists-load.ts) because reading is I/O.
export const LIST_FORMAT_NAMES = ['plain', 'v2fly', 'singbox', 'clash-domain', 'clash-ipcidr', 'clash-classical', 'netrulerouter'] as const;
const listSchema = z.strictObject({
  name: str.min(1).max(64).describe('names the list in explain, errors and `switchyard lists`'),
  path: str.min(1).optional().describe('list file; relative to the config file'),
  url: str.min(1).optional().describe('https:// URL of a remote list (pending until approved)'),
  format: z.enum(LIST_FORMAT_NAMES),
  egress: str.describe('egress every entry takes (NetRuleRouter +block entries: block)'),
  attrs: strList.optional().describe('v2fly only: keep entries with @attr, drop -attr'),
  unsupported: z.enum(['error', 'skip']).default('error').describe('an unsupported construct stops the list, or skips its rule'),
  granularity: z.enum(['auto', 'entry', 'list']).default('auto').describe('one rule per entry, one per list, or auto (group above 10,000)'),
  sha256: str.optional().describe('url only: pinned sha256 of the body'),
  max_bytes: z.number().int().min(1).max(1024 * 1024 * 1024).optional().describe('url only: download limit (default 64 MiB)'),
  via: str.optional().describe('url only: egress the download goes through (default direct)'),
  refresh: str.optional().describe('url only: re-check interval, e.g. "30m", "6h", "1d" (default 6h)'),
});

const exemptSchema = z.strictObject({
  apps: strList.optional(),
  users: strList.optional(),
  cidrs: strList.optional(),
});

export const configSchema = z.strictObject({
  version: z.literal(1).describe('config format version; must be 1'),
  default: str.default('direct').describe('egress for flows no rule matches'),
  dns: dnsSchema.optional(),
  inbound: inboundSchema.optional(),
  enforce: enforceSchema.optional(),
  control: controlSchema.optional(),
  egress: z.record(z.string(), egressSchema).default({}),
  exempt: z.array(exemptSchema).default([]),
  rule: z.array(ruleSchema).default([]),
  list: z.array(listSchema).default([]).describe('rule lists: see docs/lists.md'),
});

export type RawConfig = z.output<typeof configSchema>;
export type RawRule = z.output<typeof ruleSchema>;
export type RawEgress = z.output<typeof egressSchema>;
export type RawList = z.output<typeof listSchema>;
export type RawExempt = z.output<typeof exemptSchema>;
