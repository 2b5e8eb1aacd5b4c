// compilePolicy(config) → Policy. The fixed decision order (docs/config.md):
//   exempt → lan → block → domain → cidr → app → other → implicit group rules → default
// exempt: [[exempt]] entries and [enforce] exempt_users — always direct, even when a domain rule
//         matches (an egress core must never be sent into itself);
// lan:    with [enforce] lan = "direct" (default), loopback/RFC 1918/link-local/ULA destinations
//         go direct; lan = "policy" skips this stage;
// block:  any matching rule whose egress has type block, ranked like the stages below;
// then the non-block rules by stage; then the implicit group rules; and the default egress.
// Implicit group rules: for every egress NAME (declared or built-in) compilePolicy adds
// `group:NAME → NAME` below every configured rule, so a program that `switchyard exec --egress
// NAME` (or the app watcher) put into group NAME takes egress NAME unless a configured rule says
// otherwise. They report stage `app`, rule index -1 and `implicit: true`. projectDomain() leaves
// them out: a group's flows are redirected by the group itself, and counting them would make
// every name's projection non-uniform.
// decide() returns at the first match; explain() runs the same walk with a collector (rule-set.ts).
import type {
  Candidate,
  Config,
  Decision,
  DomainProjection,
  Explanation,
  FlowQuery,
  MatchReason,
  Policy,
  RuleRef,
  Stage,
} from '../types.ts';
import { InternalError } from '../../errors.ts';
import { cidrContains, cidrText, isLanAddress, isLanV4 } from '../ip.ts';
import { AppIndex, appPatternText } from './app-matcher.ts';
import { QueryCtx } from './query.ts';
import { byConditionsThenIndex, type RuleInfo } from './rule.ts';
import { DomainIndex } from './domain-index.ts';
import { RuleSet, type Collector, type Match } from './rule-set.ts';
import type { ExemptConfig, ProjectOptions, RuleConfig } from '../types.ts';

const STAGE_ORDER: Record<Stage, number> = { exempt: 0, lan: 1, block: 2, domain: 3, cidr: 4, app: 5, other: 6, default: 7 };
const LAN_REF: RuleRef = { id: 'enforce.lan', index: -1, origin: {} };

interface CompiledExempt {
  ref: RuleRef;
  apps: AppIndex<true>;
  users: Set<string>;
  cfg: ExemptConfig;
}

/** A match from any stage, including the pseudo-rules exempt and lan. */
interface Ranked {
  ref: RuleRef;
  egress: string;
  stage: Stage;
  matched: MatchReason[];
  rule: RuleInfo | null;
  spec: number;
}

class CollectAll implements Collector {
  readonly all: Match[] = [];
  private readonly seen = new Set<number>();
  add(m: Match): boolean {
    if (!this.seen.has(m.rule.cfg.index)) {
      this.seen.add(m.rule.cfg.index);
      this.all.push(m);
    }
    return false;
  }
}

/** Projection: records possible egresses; stops at the first match that holds for every flow. */
class CollectProjection implements Collector {
  readonly egresses: string[] = [];
  sure: Match | null = null;
  readonly capture: boolean;
  constructor(capture: boolean) {
    this.capture = capture;
  }
  add(m: Match): boolean {
    if (this.capture && (m.rule.cfg.apps.length > 0 || m.rule.cfg.cidrs.length > 0)) return false;
    if (!this.egresses.includes(m.rule.egress)) this.egresses.push(m.rule.egress);
    if (!m.maybe) {
      this.sure = m;
      return true;
    }
    return false;
  }
}

export class CompiledPolicy implements Policy {
  readonly config: Config;
  private readonly blockSet: RuleSet;
  private readonly mainSet: RuleSet;
  private readonly exempt: CompiledExempt[];
  private readonly lanDirect: boolean;
  /** The domain table both rule sets share; it also normalises each query's name (query.ts). */
  private readonly domains: DomainIndex<number>;
  /** decide()'s query context, refilled per call (decide is synchronous and calls out to nothing). */
  private readonly scratch = new QueryCtx({ network: 'tcp' });
  /** Implicit rule `group:NAME → NAME` per egress name. */
  private readonly implicitGroups = new Map<string, RuleRef>();

  constructor(config: Config) {
    this.config = config;
    const rules = config.rules;
    rules.forEach((r, i) => {
      if (r.index !== i) throw new InternalError(`rule ${i} has index ${r.index}: rules must be numbered 0..n-1 in order`);
    });
    // One domain table for both sets (lane 0: block rules, lane 1: the rest): one probe pass per name.
    const domain = new DomainIndex<number>(2);
    const blockRules: RuleConfig[] = [];
    const otherRules: RuleConfig[] = [];
    const blockEgress = new Set(Object.keys(config.egress).filter((e) => config.egress[e]!.type === 'block'));
    // Each rule's egress as a small number: decide() reads it without touching the rule object.
    const egressNames = Object.keys(config.egress);
    const egressIds = new Map(egressNames.map((e, i) => [e, i]));
    const egressOf = new Uint16Array(rules.length);
    for (const r of rules) {
      const egress = r.egress;
      (blockEgress.has(egress) ? blockRules : otherRules).push(r);
      let id = egressIds.get(egress);
      if (id === undefined) {
        id = egressNames.length;
        if (id > 0xffff) throw new InternalError('more than 65536 egress names');
        egressNames.push(egress);
        egressIds.set(egress, id);
      }
      egressOf[r.index] = id;
    }
    const egress = { names: egressNames, of: egressOf };
    this.domains = domain;
    this.blockSet = new RuleSet('block', rules, blockRules, domain, 0, egress);
    this.mainSet = new RuleSet(null, rules, otherRules, domain, 1, egress);
    domain.finish((a, b) => byConditionsThenIndex(rules[a]!, rules[b]!));
    this.exempt = config.exempt.map((e, i) => {
      const apps = new AppIndex<true>();
      for (const p of e.apps) apps.add(p, true);
      return { ref: { id: `exempt#${i + 1}`, index: i, origin: e.origin }, apps, users: new Set(e.users), cfg: e };
    });
    if (config.enforce.exemptUsers.length) {
      const e: ExemptConfig = { apps: [], users: config.enforce.exemptUsers, cidrs: [], origin: {} };
      this.exempt.push({ ref: { id: 'enforce.exempt_users', index: -1, origin: {} }, apps: new AppIndex(), users: new Set(e.users), cfg: e });
    }
    this.lanDirect = config.enforce.lan === 'direct';
    for (const [name, e] of Object.entries(config.egress)) {
      const origin = e.line !== undefined ? { file: config.source, line: e.line } : {};
      this.implicitGroups.set(name, Object.freeze({ id: `implicit rule: group ${name} → egress ${name}`, index: -1, origin: Object.freeze(origin), implicit: true as const }));
    }
  }

  /** The implicit group rule for the query's group, as a match; null when none applies. */
  private implicitMatch(ctx: QueryCtx): Ranked | null {
    const g = ctx.q.group;
    if (g === undefined) return null;
    const ref = this.implicitGroups.get(g);
    if (ref === undefined) return null;
    return { ref, egress: g, stage: 'app', matched: [{ condition: 'group', pattern: `group:${g}`, value: g }], rule: null, spec: -1 };
  }

  decide(q: FlowQuery): Decision {
    const ctx = this.scratch.set(q, false, this.domains);
    const pre = this.exemptOrLan(ctx);
    if (pre !== null) return { egress: pre.egress, stage: pre.stage, rule: pre.ref, matched: pre.matched };
    const d = this.blockSet.decide(ctx) ?? this.mainSet.decide(ctx);
    if (d !== null) return d;
    const imp = this.implicitMatch(ctx);
    if (imp !== null) return { egress: imp.egress, stage: imp.stage, rule: imp.ref, matched: imp.matched };
    return { egress: this.config.default, stage: 'default', rule: null, matched: [] };
  }

  explain(q: FlowQuery): Explanation {
    const ctx = new QueryCtx(q, false, this.domains);
    const ranked: Ranked[] = [];
    const pre = this.exemptOrLan(ctx);
    if (pre !== null) ranked.push(pre);
    for (const set of [this.blockSet, this.mainSet]) {
      const col = new CollectAll();
      set.search(ctx, col);
      for (const m of col.all) ranked.push({ ref: m.rule.ref, egress: m.rule.egress, stage: m.stage, matched: m.matched, rule: m.rule, spec: m.spec });
    }
    const imp = this.implicitMatch(ctx);
    if (imp !== null) ranked.push(imp);
    // The walk already yields matches in rank order, so the first one is what decide() returns.
    const winner = ranked[0];
    const decision: Decision = winner
      ? { egress: winner.egress, stage: winner.stage, rule: winner.ref, matched: winner.matched }
      : { egress: this.config.default, stage: 'default', rule: null, matched: [] };
    const candidates: Candidate[] = ranked.slice(1).map((c) => ({
      rule: c.ref,
      egress: c.egress,
      stage: c.stage,
      matched: c.matched,
      lostBecause: lostBecause(winner!, c),
    }));
    return { ...decision, query: q, candidates };
  }

  projectDomain(name: string, opts: ProjectOptions = {}): DomainProjection {
    const capture = opts.capture === true;
    const ctx = new QueryCtx({ network: 'tcp', domain: name }, true, this.domains);
    const egresses: string[] = [];
    const addAll = (list: readonly string[]) => { for (const e of list) if (!egresses.includes(e)) egresses.push(e); };
    let decidedBy: Match | null = null;
    for (const set of [this.blockSet, this.mainSet]) {
      const col = new CollectProjection(capture);
      set.search(ctx, col, true);
      addAll(col.egresses);
      if (col.sure) { decidedBy = col.sure; break; }
      addAll(capture ? set.nonDomainCaptureEgresses : set.nonDomainEgresses); // an app/cidr/port rule may match some flow to this name
    }
    if (decidedBy === null) addAll([this.config.default]);
    const uniform = egresses.length === 1;
    return {
      egresses,
      uniform,
      egress: uniform ? egresses[0]! : null,
      rule: uniform && decidedBy ? decidedBy.rule.ref : null,
    };
  }

  private exemptOrLan(ctx: QueryCtx): Ranked | null {
    for (const e of this.exempt) {
      const matched = exemptMatch(e, ctx);
      if (matched) return { ref: e.ref, egress: 'direct', stage: 'exempt', matched: [matched], rule: null, spec: 0 };
    }
    if (this.lanDirect && ctx.family !== 0) {
      if (ctx.family === 4 ? isLanV4(ctx.v4) : isLanAddress(ctx.ip!)) {
        return { ref: LAN_REF, egress: 'direct', stage: 'lan', matched: [{ condition: 'lan', pattern: 'loopback/LAN', value: ctx.q.ip! }], rule: null, spec: 0 };
      }
    }
    return null;
  }
}

function exemptMatch(e: CompiledExempt, ctx: QueryCtx): MatchReason | null {
  if (e.apps.size) {
    const hit = e.apps.first(ctx);
    if (hit) return { condition: hit.pattern.kind === 'group' ? 'group' : 'app', pattern: appPatternText(hit.pattern), value: hit.observed };
  }
  if (ctx.q.user !== undefined && e.users.has(ctx.q.user)) return { condition: 'user', pattern: ctx.q.user, value: ctx.q.user };
  if (e.cfg.cidrs.length && ctx.ip !== null) {
    for (const c of e.cfg.cidrs) if (cidrContains(c, ctx.ip)) return { condition: 'cidr', pattern: cidrText(c), value: ctx.q.ip! };
  }
  return null;
}

function lostBecause(w: Ranked, l: Ranked): string {
  if (w.stage === 'exempt') return `${w.ref.id} matched: exempt flows always go direct`;
  if (w.stage === 'lan') return 'the destination is loopback/LAN and [enforce] lan = "direct"';
  if (l.ref.implicit) return `implicit group rules rank below every configured rule (${w.ref.id} matched)`;
  if (STAGE_ORDER[w.stage] < STAGE_ORDER[l.stage]) {
    return w.stage === 'block' ? `${w.ref.id} blocks (block rules come first)` : `${w.stage} rules come before ${l.stage} rules`;
  }
  const ws = w.rule!.stage;
  const ls = l.rule!.stage;
  if (ws !== ls) return `${ws} rules come before ${ls} rules`;
  if (w.spec !== l.spec) {
    const wp = w.matched[0]?.pattern ?? '';
    const lp = l.matched[0]?.pattern ?? '';
    if (ws === 'domain') return `'${wp}' is more specific than '${lp}'`;
    if (ws === 'cidr') return `${wp} is a longer prefix than ${lp}`;
    if (ws === 'app') return `'${wp}' (${w.matched[0]?.condition === 'group' ? 'group' : 'app'}) is a more specific app match than '${lp}'`;
  }
  if (w.rule!.conds !== l.rule!.conds) return `${w.ref.id} has more conditions (${w.rule!.conds} > ${l.rule!.conds})`;
  return `${w.ref.id} comes earlier in the config`;
}

export function compilePolicy(config: Config): Policy {
  return new CompiledPolicy(config);
}
