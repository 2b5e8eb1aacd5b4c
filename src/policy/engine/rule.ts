// A rule compiled for matching: its stage (the most specific condition kind it has), the number of
// condition kinds (the tie-breaker at equal specificity), and small matchers for the conditions
// that are not its stage's (checked after the stage index found the rule).
import type { Cidr, MatchReason, Network, RuleConfig, RuleRef, Stage } from '../types.ts';
import { cidrText, ipv6Hex, ipv6PrefixKey, parseIPv4, parseIPv6, v4Mask } from '../ip.ts';
import { AppIndex, appPatternText } from './app-matcher.ts';
import type { QueryCtx } from './query.ts';

export type RuleStage = Extract<Stage, 'domain' | 'cidr' | 'app' | 'other'>;

export const MATCH_NO = 0;
export const MATCH_YES = 1;
/** projectDomain(): the rule matches only for some apps/addresses/ports. */
export const MATCH_MAYBE = 2;
export type MatchResult = typeof MATCH_NO | typeof MATCH_YES | typeof MATCH_MAYBE;

interface LocalCidr {
  cidr: Cidr;
  v4net: number;
  v4mask: number;
  v6key: string;
}

export function ruleId(r: RuleConfig): string {
  return r.name ?? `rule#${r.index + 1}`;
}

export function ruleRef(r: RuleConfig): RuleRef {
  return { id: ruleId(r), index: r.index, origin: r.origin };
}

export function stageOf(cfg: RuleConfig): RuleStage {
  return cfg.domains.length ? 'domain' : cfg.cidrs.length ? 'cidr' : cfg.apps.length ? 'app' : 'other';
}

/** Number of condition kinds (domains, apps, cidrs, ports, network): the tie-breaker. */
export function condsOf(cfg: RuleConfig): number {
  return +(cfg.domains.length > 0) + +(cfg.apps.length > 0) + +(cfg.cidrs.length > 0) + +(cfg.ports.length > 0) + +(cfg.network !== null);
}

/** What explain() and the decision need to know about a matched rule. */
export interface RuleInfo {
  readonly cfg: RuleConfig;
  readonly egress: string;
  readonly stage: RuleStage;
  readonly conds: number;
  readonly ref: RuleRef;
}

/**
 * A rule with one condition kind that has a stage index (domains, cidrs or apps alone) needs no
 * matcher of its own: finding it in the index is the whole match. The engine keeps no object per
 * such rule — at a million rules that is most of the memory — and describes it on demand.
 */
export function isSimple(cfg: RuleConfig): boolean {
  return condsOf(cfg) === 1 && stageOf(cfg) !== 'other';
}

export function simpleInfo(cfg: RuleConfig): RuleInfo {
  return { cfg, egress: cfg.egress, stage: stageOf(cfg), conds: 1, ref: ruleRef(cfg) };
}

export class CompiledRule implements RuleInfo {
  readonly cfg: RuleConfig;
  readonly egress: string;
  readonly stage: RuleStage;
  /** Number of condition kinds (domains, apps, cidrs, ports, network). */
  readonly conds: number;
  private readonly apps: AppIndex<true> | null;
  private readonly cidrs: LocalCidr[] | null;
  private readonly ports: Int32Array | null;
  private readonly network: Network | null;
  private refCache: RuleRef | null = null;

  constructor(cfg: RuleConfig) {
    this.cfg = cfg;
    this.egress = cfg.egress;
    this.stage = stageOf(cfg);
    this.conds = condsOf(cfg);
    // Secondary matchers only where the condition is not this rule's stage (the stage index covers that).
    if (cfg.apps.length && this.stage !== 'app') {
      this.apps = new AppIndex<true>();
      for (const p of cfg.apps) this.apps.add(p, true);
    } else this.apps = null;
    this.cidrs = cfg.cidrs.length && this.stage !== 'cidr'
      ? cfg.cidrs.map((c) => ({
          cidr: c,
          v4net: c.family === 4 ? parseIPv4(c.address)! : 0,
          v4mask: c.family === 4 ? v4Mask(c.prefix) : 0,
          v6key: c.family === 6 ? ipv6PrefixKey(ipv6Hex(parseIPv6(c.address)!), c.prefix) : '',
        }))
      : null;
    if (cfg.ports.length) {
      this.ports = new Int32Array(cfg.ports.length * 2);
      cfg.ports.forEach((p, i) => { this.ports![2 * i] = p.from; this.ports![2 * i + 1] = p.to; });
    } else this.ports = null;
    this.network = cfg.network;
  }

  get ref(): RuleRef {
    return (this.refCache ??= ruleRef(this.cfg));
  }

  /**
   * Checks the conditions outside this rule's stage. With `reasons`, records what matched.
   * While projecting, a condition that needs app/address/port facts is MAYBE, not NO.
   */
  matchRest(ctx: QueryCtx, reasons: MatchReason[] | null): MatchResult {
    let maybe = false;
    if (this.cidrs !== null) {
      if (ctx.projecting) maybe = true;
      else {
        const hit = this.matchCidr(ctx);
        if (hit === null) return MATCH_NO;
        reasons?.push({ condition: 'cidr', pattern: cidrText(hit), value: ctx.q.ip! });
      }
    }
    if (this.apps !== null) {
      if (ctx.projecting) maybe = true;
      else {
        const hit = this.apps.first(ctx);
        if (hit === null) return MATCH_NO;
        reasons?.push({ condition: hit.pattern.kind === 'group' ? 'group' : 'app', pattern: appPatternText(hit.pattern), value: hit.observed });
      }
    }
    if (this.ports !== null) {
      if (ctx.projecting) maybe = true;
      else {
        const port = ctx.q.port;
        if (port === undefined) return MATCH_NO;
        let ok = -1;
        for (let i = 0; i < this.ports.length; i += 2) if (port >= this.ports[i]! && port <= this.ports[i + 1]!) { ok = i; break; }
        if (ok < 0) return MATCH_NO;
        const from = this.ports[ok]!;
        const to = this.ports[ok + 1]!;
        reasons?.push({ condition: 'port', pattern: from === to ? String(from) : `${from}-${to}`, value: String(port) });
      }
    }
    if (this.network !== null) {
      if (ctx.projecting) maybe = true;
      else {
        if (ctx.q.network !== this.network) return MATCH_NO;
        reasons?.push({ condition: 'network', pattern: this.network, value: ctx.q.network });
      }
    }
    return maybe ? MATCH_MAYBE : MATCH_YES;
  }

  private matchCidr(ctx: QueryCtx): Cidr | null {
    const ip = ctx.ip;
    if (ip === null) return null;
    for (const c of this.cidrs!) {
      if (c.cidr.family !== ip.family) continue;
      if (ip.family === 4 ? ((ip.v4 & c.v4mask) >>> 0) === c.v4net : ipv6PrefixKey(ctx.v6hex!, c.cidr.prefix) === c.v6key) return c.cidr;
    }
    return null;
  }
}

/** Order of rules sharing one pattern: more condition kinds first, then the earlier rule. */
export function byConditionsThenIndex(a: RuleConfig, b: RuleConfig): number {
  return condsOf(b) - condsOf(a) || a.index - b.index;
}
