// One set of compiled rules (the engine keeps two: rules whose egress is a block egress, and the
// rest) with one index per stage. `search` walks the stages in order — domain (most specific
// pattern first), cidr (longest prefix first), app (path, name, glob, group), other — and inside a
// stage visits rules sharing a pattern by more conditions, then earlier index. decide() stops at
// the first rule whose other conditions hold; explain() and projectDomain() run the very same walk
// with a collector that records every match and lets it continue.
import type { MatchReason, Stage } from '../types.ts';
import { AppIndex, APP_KIND_RANK, appPatternText } from './app-matcher.ts';
import { CidrIndex } from './cidr-index.ts';
import { DomainIndex, domainPatternText } from './domain-index.ts';
import { byConditionsThenIndex, CompiledRule, MATCH_MAYBE, MATCH_NO, type RuleStage } from './rule.ts';
import type { QueryCtx } from './query.ts';
import type { AppPattern, DomainPattern } from '../types.ts';

/** One matching rule as explain() reports it. `spec` ranks matches within a stage (higher wins). */
export interface Match {
  rule: CompiledRule;
  stage: Stage;
  matched: MatchReason[];
  spec: number;
  /** Only while projecting: the rule matches for some apps/addresses/ports only. */
  maybe: boolean;
}

/** Receives every match in rank order; returns true to stop the walk. */
export interface Collector {
  add(m: Match): boolean;
}

export class RuleSet {
  readonly stageName: Stage | null; // 'block' for the block set; null = each rule's own stage
  readonly domain = new DomainIndex<CompiledRule>();
  readonly cidr = new CidrIndex<CompiledRule>();
  readonly app = new AppIndex<CompiledRule>();
  readonly other: CompiledRule[] = [];
  /** Egresses of rules outside the domain stage, in rule order (for projections). */
  readonly nonDomainEgresses: string[] = [];

  // Scratch state of the current walk: decide() is synchronous, so one set per policy is safe and
  // spares a closure allocation per decision.
  private ctx: QueryCtx | null = null;
  private col: Collector | null = null;
  private stopped = false;
  private hit: Match | null = null;

  constructor(stageName: Stage | null, rules: CompiledRule[]) {
    this.stageName = stageName;
    for (const r of rules) {
      if (r.stage === 'domain') for (const p of r.cfg.domains) this.domain.add(p, r);
      else if (r.stage === 'cidr') for (const c of r.cfg.cidrs) this.cidr.add(c, r);
      else if (r.stage === 'app') for (const a of r.cfg.apps) this.app.add(a, r);
      else this.other.push(r);
      if (r.stage !== 'domain' && !this.nonDomainEgresses.includes(r.egress)) this.nonDomainEgresses.push(r.egress);
    }
    this.domain.finish(byConditionsThenIndex);
    this.other.sort(byConditionsThenIndex);
  }

  get size(): number {
    return this.domain.size + this.cidr.size + this.app.size + this.other.length;
  }

  /**
   * Walks the stages for `ctx`. Without a collector: returns the first full match. With one: feeds
   * it every match (rank order) until it asks to stop, and returns the first.
   */
  search(ctx: QueryCtx, col: Collector | null, domainOnly = false): Match | null {
    this.ctx = ctx;
    this.col = col;
    this.stopped = false;
    this.hit = null;
    try {
      if (ctx.domain !== null && this.domain.size !== 0) {
        this.domain.find(ctx.domain, this.onDomain);
        if (this.stopped) return this.hit;
      }
      if (domainOnly) return this.hit;
      if (this.cidr.size !== 0 && ctx.q.ip !== undefined) {
        this.cidr.find(ctx, this.onCidr);
        if (this.stopped) return this.hit;
      }
      if (this.app.size !== 0) {
        this.app.find(ctx, this.onApp);
        if (this.stopped) return this.hit;
      }
      for (const r of this.other) {
        if (this.consider(r, null, 0)) return this.hit;
      }
      return this.hit;
    } finally {
      this.ctx = null;
      this.col = null;
    }
  }

  private readonly onDomain = (r: CompiledRule, kind: DomainPattern['kind'], key: string): boolean => {
    const pattern: DomainPattern = { kind, value: key };
    const spec = kind === 'full' ? 1000 : kind === 'suffix' ? 1 + countDots(key) : 0;
    return this.consider(r, { condition: 'domain', pattern: domainPatternText(pattern), value: this.ctx!.domain! }, spec);
  };

  private readonly onCidr = (r: CompiledRule, prefix: number): boolean => {
    return this.consider(r, { condition: 'cidr', pattern: CidrIndex.describe(this.ctx!, prefix), value: this.ctx!.q.ip! }, prefix);
  };

  private readonly onApp = (r: CompiledRule, p: AppPattern, observed: string): boolean => {
    return this.consider(r, { condition: p.kind === 'group' ? 'group' : 'app', pattern: appPatternText(p), value: observed }, APP_KIND_RANK[p.kind]);
  };

  /** A rule whose stage condition matched (`primary`); true = stop the walk. */
  private consider(r: CompiledRule, primary: MatchReason | null, spec: number): boolean {
    const col = this.col;
    if (col === null) {
      if (r.matchRest(this.ctx!, null) === MATCH_NO) return false;
      const matched: MatchReason[] = primary ? [primary] : [];
      r.matchRest(this.ctx!, matched); // second pass only for the winner, to describe it
      this.hit = { rule: r, stage: this.stageName ?? r.stage, matched, spec, maybe: false };
      this.stopped = true;
      return true;
    }
    const matched: MatchReason[] = primary ? [primary] : [];
    const res = r.matchRest(this.ctx!, matched);
    if (res === MATCH_NO) return false;
    const m: Match = { rule: r, stage: this.stageName ?? r.stage, matched, spec, maybe: res === MATCH_MAYBE };
    if (this.hit === null && !m.maybe) this.hit = m;
    if (col.add(m)) {
      this.stopped = true;
      return true;
    }
    return false;
  }
}

function countDots(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) === 46) n++;
  return n;
}

export type { RuleStage };
