// One set of compiled rules (the engine keeps two: rules whose egress is a block egress, and the
// rest) with one index per stage. `search` walks the stages in order — domain (most specific
// pattern first), cidr (longest prefix first), app (path, name, glob, group), other — and inside a
// stage visits rules sharing a pattern by more conditions, then earlier index. decide() stops at
// the first rule whose other conditions hold; explain() and projectDomain() run the very same walk
// with a collector that records every match and lets it continue.
import type { Decision, MatchReason, Stage } from '../types.ts';
import { AppIndex, APP_KIND_RANK, appPatternText } from './app-matcher.ts';
import { CidrIndex } from './cidr-index.ts';
import type { DomainIndex } from './domain-index.ts';
import { byConditionsThenIndex, CompiledRule, ConfiguredRuleRef, MATCH_MAYBE, MATCH_NO, MATCH_YES, simpleInfo, type MatchResult, type RuleInfo, type RuleStage } from './rule.ts';
import type { RuleConfig } from '../types.ts';
import type { QueryCtx } from './query.ts';
import type { AppPattern, DomainPattern } from '../types.ts';

/** One matching rule as explain() reports it. `spec` ranks matches within a stage (higher wins). */
export interface Match {
  rule: RuleInfo;
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
  // Index values are rule indexes into `rules` (the config's list): small integers, no objects.
  /** Shared with the policy's other rule set: this set's patterns are lane `lane` of it. */
  readonly domain: DomainIndex<number>;
  private readonly lane: number;
  readonly cidr = new CidrIndex<number>();
  readonly app = new AppIndex<number>();
  readonly other: number[] = [];
  private domainSize = 0;
  /** Egresses of rules outside the domain stage, in rule order (for projections). */
  readonly nonDomainEgresses: string[] = [];
  /** The same, without rules that have an app or a CIDR condition (projections for capture). */
  readonly nonDomainCaptureEgresses: string[] = [];
  private readonly rules: readonly RuleConfig[];
  /**
   * Matchers for rules with more than one condition kind (simple rules have none). A Map, not a
   * sparse array: V8 keeps a sparse array in slow dictionary mode. `hasMatcher` (one bit per rule)
   * answers the common "no matcher" case of every candidate without a Map lookup.
   */
  private readonly compiled = new Map<number, CompiledRule>();
  private readonly hasMatcher: Uint32Array;

  // Scratch state of the current walk: decide() is synchronous, so one set per policy is safe and
  // spares a closure allocation per decision.
  private ctx: QueryCtx | null = null;
  private col: Collector | null = null;
  private stopped = false;
  private hit: Match | null = null;
  private decision: Decision | null = null;

  /** The caller finishes `domain` (shared by both sets) once every set has added its patterns. */
  /** Egress of each rule (by index) as a number into `names`, shared by both sets. */
  private readonly egress: { readonly names: readonly string[]; readonly of: Uint16Array };

  constructor(stageName: Stage | null, all: readonly RuleConfig[], members: readonly RuleConfig[], domain: DomainIndex<number>, lane: number, egress: { readonly names: readonly string[]; readonly of: Uint16Array }) {
    this.stageName = stageName;
    this.egress = egress;
    this.domain = domain;
    this.lane = lane;
    this.rules = all;
    this.hasMatcher = new Uint32Array((all.length >>> 5) + 1);
    const sharedApps = new Map<readonly AppPattern[], AppIndex<true>>();
    for (const r of members) {
      const i = r.index;
      // Each field read once: on a PackedRules rule a read builds the array (see packed-rules.ts).
      const domains = r.domains;
      const apps = r.apps;
      const cidrs = r.cidrs;
      const stage: RuleStage = domains.length ? 'domain' : cidrs.length ? 'cidr' : apps.length ? 'app' : 'other';
      const conds = +(domains.length > 0) + +(apps.length > 0) + +(cidrs.length > 0) + +(r.ports.length > 0) + +(r.network !== null);
      if (conds !== 1 || stage === 'other') { // not isSimple(r)
        this.compiled.set(i, new CompiledRule(all, r, sharedApps));
        this.hasMatcher[i >>> 5]! |= 1 << (i & 31);
      }
      if (stage === 'domain') { for (const p of domains) this.domain.add(p, i, lane); this.domainSize += domains.length; }
      else if (stage === 'cidr') for (const c of cidrs) this.cidr.add(c, i);
      else if (stage === 'app') for (const a of apps) this.app.add(a, i);
      else this.other.push(i);
      if (stage !== 'domain' && !this.nonDomainEgresses.includes(r.egress)) this.nonDomainEgresses.push(r.egress);
      if (stage !== 'domain' && apps.length === 0 && cidrs.length === 0 && !this.nonDomainCaptureEgresses.includes(r.egress)) this.nonDomainCaptureEgresses.push(r.egress);
    }
    const cmp = (a: number, b: number) => byConditionsThenIndex(all[a]!, all[b]!);
    this.cidr.finish(cmp);
    this.app.finish(cmp);
    this.other.sort(cmp);
  }

  private matcher(i: number): CompiledRule | undefined {
    return (this.hasMatcher[i >>> 5]! & (1 << (i & 31))) === 0 ? undefined : this.compiled.get(i);
  }

  private info(i: number): RuleInfo {
    return this.matcher(i) ?? simpleInfo(this.rules, this.rules[i]!);
  }

  private matchRest(i: number, reasons: MatchReason[] | null): MatchResult {
    const c = this.matcher(i);
    return c === undefined ? MATCH_YES : c.matchRest(this.ctx!, reasons);
  }

  /**
   * decide()'s walk: the first full match as a Decision, or null. Unlike search() it builds no
   * RuleInfo/Match for the winner and does not read the rule object at all (no stageOf(), and a
   * ConfiguredRuleRef that reads id/origin only when asked: each is a cache miss on a big set);
   * the rule's stage is the index it was found in.
   */
  decide(ctx: QueryCtx): Decision | null {
    this.search(ctx, null);
    const d = this.decision;
    this.decision = null;
    return d;
  }

  get size(): number {
    return this.domainSize + this.cidr.size + this.app.size + this.other.length;
  }

  /**
   * Walks the stages for `ctx`. Without a collector (only via decide()): stops at the first full
   * match, leaves it in `this.decision` and returns null. With one: feeds it every match (rank
   * order) until it asks to stop, and returns the first.
   */
  search(ctx: QueryCtx, col: Collector | null, domainOnly = false): Match | null {
    this.ctx = ctx;
    this.col = col;
    this.stopped = false;
    this.hit = null;
    this.decision = null;
    try {
      if (ctx.domain !== null && this.domainSize !== 0) {
        this.domain.find(ctx.domain, this.onDomain, this.lane);
        if (this.stopped) return this.hit;
      }
      if (domainOnly) return this.hit;
      if (this.cidr.size !== 0 && ctx.family !== 0) {
        this.cidr.find(ctx, this.onCidr);
        if (this.stopped) return this.hit;
      }
      if (this.app.size !== 0) {
        this.app.find(ctx, this.onApp);
        if (this.stopped) return this.hit;
      }
      for (const i of this.other) {
        if (this.consider(i, 0, PRIMARY_NONE, null, '')) return this.hit;
      }
      return this.hit;
    } finally {
      this.ctx = null;
      this.col = null;
    }
  }

  // The visitors build no objects unless the rule matches (decide() runs them per candidate).
  private readonly onDomain = (r: number, kind: DomainPattern['kind'], key: string): boolean => {
    // decide() (no collector) does not rank by spec: the index visits most specific first.
    const spec = this.col === null ? 0 : kind === 'full' ? 1000 : kind === 'suffix' ? 2 + countDots(key) : 0;
    return this.consider(r, spec, PRIMARY_DOMAIN, kind, key);
  };

  private readonly onCidr = (r: number, prefix: number): boolean => {
    return this.consider(r, prefix, PRIMARY_CIDR, '', '');
  };

  private readonly onApp = (r: number, p: AppPattern, observed: string): boolean => {
    return this.consider(r, APP_KIND_RANK[p.kind], PRIMARY_APP, p, observed);
  };

  private primary(code: number, a: unknown, b: string, spec: number): MatchReason | null {
    const ctx = this.ctx!;
    if (code === PRIMARY_DOMAIN) {
      // domainPatternText without building the pattern object.
      return { condition: 'domain', pattern: a === 'suffix' ? b : `${a as string}:${b}`, value: ctx.domain! };
    }
    if (code === PRIMARY_CIDR) return { condition: 'cidr', pattern: this.cidr.describe(ctx, spec), value: ctx.q.ip! };
    if (code === PRIMARY_APP) {
      const p = a as AppPattern;
      return { condition: p.kind === 'group' ? 'group' : 'app', pattern: appPatternText(p), value: b };
    }
    return null;
  }

  /** Rule `i`, whose stage condition matched; true = stop the walk. */
  private consider(i: number, spec: number, code: number, a: unknown, b: string): boolean {
    const col = this.col;
    if (col === null) {
      if (this.matchRest(i, null) === MATCH_NO) return false;
      const p = this.primary(code, a, b, spec);
      const matched: MatchReason[] = p ? [p] : [];
      this.matchRest(i, matched); // second pass only for the winner, to describe it
      // Same fields explain() reports for this match (rule-set stage, else the rule's own stage).
      // The rule object itself is not read (see ConfiguredRuleRef).
      const c = this.matcher(i);
      this.decision = { egress: this.egress.names[this.egress.of[i]!]!, stage: this.stageName ?? STAGE_OF_PRIMARY[code]!, rule: c === undefined ? new ConfiguredRuleRef(this.rules, i) : c.ref, matched };
      this.stopped = true;
      return true;
    }
    const p = this.primary(code, a, b, spec);
    const matched: MatchReason[] = p ? [p] : [];
    const res = this.matchRest(i, matched);
    if (res === MATCH_NO) return false;
    const rule = this.info(i);
    const m: Match = { rule, stage: this.stageName ?? rule.stage, matched, spec, maybe: res === MATCH_MAYBE };
    if (this.hit === null && !m.maybe) this.hit = m;
    if (col.add(m)) {
      this.stopped = true;
      return true;
    }
    return false;
  }
}

const PRIMARY_NONE = 0;
const PRIMARY_DOMAIN = 1;
const PRIMARY_CIDR = 2;
const PRIMARY_APP = 3;
/** A rule visited with a primary code sits in that stage's index, so this equals stageOf(rule). */
const STAGE_OF_PRIMARY: readonly RuleStage[] = ['other', 'domain', 'cidr', 'app'];

function countDots(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) === 46) n++;
  return n;
}

export type { RuleStage };
