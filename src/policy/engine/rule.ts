// A rule compiled for matching: its stage (the most specific condition kind it has), the number of
// condition kinds (the tie-breaker at equal specificity), and small matchers for the conditions
// that are not its stage's (checked after the stage index found the rule).
import type { AppPattern, Cidr, MatchReason, Network, RuleConfig, RuleOrigin, RuleRef, Stage } from '../types.ts';
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

/**
 * The RuleRef of configured rule `index` of `rules`. `id` and `origin` are read from the rule the
 * first time they are asked for (then kept): decide() returns a RuleRef with every decision, and
 * at 100k+ rules reading the rule object and its origin column costs several cache misses per
 * decision that most callers (which look at the egress) never need. JSON.stringify gives the
 * three fields (toJSON); an object spread would copy only `index` — read the fields instead.
 */
export class ConfiguredRuleRef implements RuleRef {
  readonly index: number;
  readonly #rules: readonly RuleConfig[];
  #id: string | undefined = undefined;
  #origin: RuleOrigin | undefined = undefined;

  constructor(rules: readonly RuleConfig[], index: number) {
    this.#rules = rules;
    this.index = index;
  }

  get id(): string {
    return (this.#id ??= ruleId(this.#rules[this.index]!));
  }

  get origin(): RuleOrigin {
    return (this.#origin ??= this.#rules[this.index]!.origin);
  }

  toJSON(): RuleRef {
    return { id: this.id, index: this.index, origin: this.origin };
  }
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

/** `cfg` is `rules[cfg.index]`. */
export function simpleInfo(rules: readonly RuleConfig[], cfg: RuleConfig): RuleInfo {
  return { cfg, egress: cfg.egress, stage: stageOf(cfg), conds: 1, ref: new ConfiguredRuleRef(rules, cfg.index) };
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
  private readonly rules: readonly RuleConfig[];
  private refCache: RuleRef | null = null;

  /**
   * `cfg` is `rules[cfg.index]`. `sharedApps`: app matchers already built for frozen `apps`
   * arrays — a PackedRules table gives every rule of one app condition the same frozen array, so
   * its thousands of rules share one matcher (an AppIndex is read-only once built) instead of
   * each holding its own (about 0.7 KB apiece: 7 MB at 1M list rules with 1 % app-restricted).
   */
  constructor(rules: readonly RuleConfig[], cfg: RuleConfig, sharedApps: Map<readonly AppPattern[], AppIndex<true>> | null = null) {
    this.rules = rules;
    this.cfg = cfg;
    this.egress = cfg.egress;
    this.stage = stageOf(cfg);
    this.conds = condsOf(cfg);
    // Secondary matchers only where the condition is not this rule's stage (the stage index covers that).
    const apps = cfg.apps;
    if (apps.length && this.stage !== 'app') {
      const share = sharedApps !== null && Object.isFrozen(apps);
      let idx = share ? sharedApps.get(apps) : undefined;
      if (idx === undefined) {
        idx = new AppIndex<true>();
        for (const p of apps) idx.add(p, true);
        if (share) sharedApps.set(apps, idx);
      }
      this.apps = idx;
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
    return (this.refCache ??= new ConfiguredRuleRef(this.rules, this.cfg.index));
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
    const family = ctx.family;
    if (family === 0) return null;
    for (const c of this.cidrs!) {
      if (c.cidr.family !== family) continue;
      if (family === 4 ? ((ctx.v4 & c.v4mask) >>> 0) === c.v4net : ipv6PrefixKey(ctx.v6hex!, c.cidr.prefix) === c.v6key) return c.cidr;
    }
    return null;
  }
}

/** Order of rules sharing one pattern: more condition kinds first, then the earlier rule. */
export function byConditionsThenIndex(a: RuleConfig, b: RuleConfig): number {
  return condsOf(b) - condsOf(a) || a.index - b.index;
}
