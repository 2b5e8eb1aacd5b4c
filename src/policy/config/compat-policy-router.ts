// Reads policy-router-rs's config format as it is and rewrites it into the v1 shape, so that one
// normaliser and one engine serve both. Format facts (from its config.example.toml and config.rs):
//   [defaults] egress = "NAME"
//   [egress.NAME] type = "singbox" | "socks5" | "direct" | "block", endpoint = "socks5://host:port"
//   [egress.NAME.process] enabled, program, args, cwd, env, restart, backoff_ms, max_backoff_ms,
//                         max_restarts_per_minute            (a supervised core; `singbox` = SOCKS5)
//   [rules.app]    NAME = ["zen.exe", ...]       exact process base names, case-insensitive
//   [rules.domain] NAME = ["youtube.com", ...]   the name and its subdomains; a leading '.' allowed
// and, in later versions, `[[rules]]` entries with egress, name, app, domain, dst_ip_cidr (each a
// string or a list). `@file:` includes need file reads, which this pure loader does not do.
//
// Semantics kept: block rules first, then domain rules, then app rules, then the default. Not kept
// on purpose: policy-router-rs ranks domain matches by egress kind (singbox < socks5 < direct), so
// `ru` under a VPN beats `mail.ru` under direct; here the most specific pattern wins. Generated
// rules are ordered by that kind rank, so ties (the same pattern under two egresses) still go the
// way they went there.
import { z } from 'zod';
import type { KeyPath } from './locate.ts';
import type { Issues, PathMap } from './issues.ts';
import { normalizeProcessName } from '../patterns.ts';

const strOrList = z.union([z.string(), z.array(z.string())]);

const compatSchema = z.strictObject({
  defaults: z.strictObject({ egress: z.string() }),
  egress: z
    .record(
      z.string(),
      z.strictObject({
        type: z.enum(['singbox', 'socks5', 'direct', 'block']),
        endpoint: z.string().optional(),
        process: z
          .strictObject({
            enabled: z.boolean().optional(),
            program: z.string().min(1),
            args: z.array(z.string()).optional(),
            cwd: z.string().optional(),
            env: z.record(z.string(), z.string()).optional(),
            restart: z.string().optional(),
            backoff_ms: z.number().int().optional(),
            max_backoff_ms: z.number().int().optional(),
            max_restarts_per_minute: z.number().int().optional(),
          })
          .optional(),
      }),
    )
    .default({}),
  rules: z.union([
    z.strictObject({
      app: z.record(z.string(), z.array(z.string())).optional(),
      domain: z.record(z.string(), z.array(z.string())).optional(),
    }),
    z.array(
      z.strictObject({
        egress: z.string(),
        name: z.string().optional(),
        app: strOrList.optional(),
        domain: strOrList.optional(),
        dst_ip_cidr: strOrList.optional(),
      }),
    ),
  ]),
});

const KIND_RANK: Record<string, number> = { block: -1, singbox: 0, socks5: 1, direct: 2 };

export function isPolicyRouterConfig(raw: Record<string, unknown>): boolean {
  return !('version' in raw) && ('defaults' in raw || 'rules' in raw);
}

export interface CompatResult {
  raw: Record<string, unknown>;
  mapPath: PathMap;
  notices: string[];
}

export function fromPolicyRouter(input: Record<string, unknown>, issues: Issues): CompatResult | null {
  const parsed = compatSchema.safeParse(input);
  if (!parsed.success) {
    for (const i of parsed.error.issues) {
      const path = i.path as (string | number)[];
      if (i.code === 'unrecognized_keys') for (const k of i.keys) issues.add([...path, k], `unknown key '${k}' (reading a policy-router-rs config)`);
      else issues.add(path, `${i.message} (reading a policy-router-rs config)`);
    }
    return null;
  }
  const c = parsed.data;
  const notices = [
    'read as a policy-router-rs config (no `version` key); run `switchyard config convert FILE` to write the v1 form. ' +
      'Difference: the most specific domain pattern wins here (mail.ru under direct beats ru under a VPN), not the egress kind.',
  ];
  const egress: Record<string, unknown> = {};
  const kindOf = (name: string) => c.egress[name]?.type ?? (name === 'direct' || name === 'block' ? name : undefined);
  for (const [name, e] of Object.entries(c.egress)) {
    const out: Record<string, unknown> = { type: e.type === 'singbox' ? 'socks5' : e.type };
    if (e.endpoint !== undefined) out.endpoint = e.endpoint;
    if (e.process) {
      if (e.process.enabled === true) out.process = { command: e.process.program, args: e.process.args ?? [] };
      const dropped = (['cwd', 'env', 'restart', 'backoff_ms', 'max_backoff_ms', 'max_restarts_per_minute'] as const).filter(
        (k) => e.process![k] !== undefined,
      );
      if (e.process.enabled !== true) notices.push(`egress ${name}: its process is disabled there, so switchyard does not start it`);
      else if (dropped.length) notices.push(`egress ${name}: process settings not carried over: ${dropped.join(', ')}`);
    }
    egress[name] = out;
  }

  const rules: Record<string, unknown>[] = [];
  const exempt: string[] = [];
  const origins: { base: KeyPath; fields: Record<string, { key: string; list: boolean }> }[] = [];
  const include = (v: string, path: KeyPath) => {
    if (v.trim().startsWith('@file:')) {
      issues.add(path, `'${v}': @file: includes are not read; inline the entries (or use switchyard lists)`);
      return false;
    }
    return true;
  };
  const domainOf = (d: string) => d.trim().replace(/^\./, '');
  const appOf = (a: string) => normalizeProcessName(a.trim());

  if (Array.isArray(c.rules)) {
    c.rules.forEach((r, i) => {
      const out: Record<string, unknown> = { egress: r.egress };
      if (r.name !== undefined) out.name = r.name;
      const fields: Record<string, { key: string; list: boolean }> = {};
      const take = (src: 'domain' | 'app' | 'dst_ip_cidr', dst: string, f: (s: string) => string) => {
        const v = r[src];
        if (v === undefined) return;
        const list = Array.isArray(v);
        const arr = list ? v : [v];
        out[dst] = arr.filter((x, j) => include(x, list ? ['rules', i, src, j] : ['rules', i, src])).map(f);
        fields[dst] = { key: src, list };
      };
      take('domain', 'domains', domainOf);
      take('app', 'apps', appOf);
      take('dst_ip_cidr', 'cidrs', (s) => s.trim());
      rules.push(out);
      origins.push({ base: ['rules', i], fields });
    });
  } else {
    const byRank = (m: Record<string, string[]> | undefined) =>
      Object.entries(m ?? {}).sort(([a], [b]) => (KIND_RANK[kindOf(a) ?? ''] ?? 9) - (KIND_RANK[kindOf(b) ?? ''] ?? 9) || (a < b ? -1 : a > b ? 1 : 0));
    for (const [kind, dst, f] of [['domain', 'domains', domainOf], ['app', 'apps', appOf]] as const) {
      for (const [name, list] of byRank(c.rules[kind])) {
        if (list.length === 0) continue;
        if (kind === 'app' && kindOf(name) === 'direct') {
          // An app sent direct by an app rule is, in practice, an egress core (ciadpi, sing-box)
          // or something that must never be proxied. Here it becomes [[exempt]]: direct even when
          // a domain rule matches, so a DPI-bypass core never has its own flows sent into itself.
          exempt.push(...list.filter((x, j) => include(x, ['rules', kind, name, j])).map(f));
          continue;
        }
        const kept = list.filter((x, j) => include(x, ['rules', kind, name, j])).map(f);
        rules.push({ egress: name, [dst]: kept });
        origins.push({ base: ['rules', kind, name], fields: { [dst]: { key: '', list: true } } });
      }
    }
  }

  const mapPath: PathMap = (p) => {
    if (p[0] === 'default') return ['defaults', 'egress'];
    if (p[0] === 'exempt') return ['rules', 'app'];
    if (p[0] === 'egress' && p[2] === 'process' && p[3] === 'command') return [...p.slice(0, 3), 'program'];
    if (p[0] === 'rule' && typeof p[1] === 'number') {
      const o = origins[p[1]];
      if (!o) return p;
      const field = typeof p[2] === 'string' ? o.fields[p[2]] : undefined;
      if (!field) return o.base;
      const base = field.key === '' ? o.base : [...o.base, field.key];
      return field.list && p[3] !== undefined ? [...base, p[3]] : base;
    }
    return p;
  };
  for (const e of Object.values(c.egress)) {
    if (e.process?.enabled === true) exempt.push(appOf(e.process.program));
  }
  const v1: Record<string, unknown> = { version: 1, default: c.defaults.egress, egress, rule: rules };
  if (exempt.length) {
    v1.exempt = [{ apps: [...new Set(exempt)] }];
    notices.push(
      `apps routed direct by app rules (${[...new Set(exempt)].join(', ')}) are read as [[exempt]]: always direct, ` +
        'even for domains that have rules (policy-router-rs let a domain rule win), so an egress core is never sent into itself',
    );
  }
  return { raw: v1, mapPath, notices };
}
