// The policy the daemon's parts hold: one object whose `current` snapshot is swapped in a single
// assignment on reload, so a flow decided during a reload sees either the old or the new policy,
// never half of each. Per-rule hit counters live here (the engine is pure and keeps none): they
// count flows as the front door reports them, not decide() calls (domainOfFlow asks the policy
// once per candidate name; those are not flows).
import type { Config, Decision, DomainProjection, Explanation, FlowQuery, Policy } from '../policy/types.ts';

export interface PolicySnapshot {
  policy: Policy;
  /** 1 for the config the daemon started with, +1 per applied reload. */
  generation: number;
  loadedAt: number;
}

export interface RuleHits {
  /** `rule#N`, the rule's name, `exempt#N`, or `default`. */
  rule: string;
  egress: string | null;
  stage: string | null;
  connected: number;
  refused: number;
  lastAt: number | null;
}

export class LivePolicy implements Policy {
  #current: PolicySnapshot;
  #hits = new Map<string, { connected: number; refused: number; lastAt: number }>();

  constructor(policy: Policy) {
    this.#current = { policy, generation: 1, loadedAt: Date.now() };
  }

  get current(): PolicySnapshot {
    return this.#current;
  }

  get config(): Config {
    return this.#current.policy.config;
  }

  decide(q: FlowQuery): Decision {
    return this.#current.policy.decide(q);
  }

  explain(q: FlowQuery): Explanation {
    return this.#current.policy.explain(q);
  }

  projectDomain(name: string, opts?: import('../policy/types.ts').ProjectOptions): DomainProjection {
    return this.#current.policy.projectDomain(name, opts);
  }

  /** The one swap. Counters restart: rule numbers may mean other rules now. */
  swap(policy: Policy): PolicySnapshot {
    this.#current = { policy, generation: this.#current.generation + 1, loadedAt: Date.now() };
    this.#hits = new Map();
    return this.#current;
  }

  count(d: Decision, outcome: 'connected' | 'refused'): void {
    const id = d.rule?.id ?? 'default';
    let h = this.#hits.get(id);
    if (!h) this.#hits.set(id, (h = { connected: 0, refused: 0, lastAt: 0 }));
    h[outcome]++;
    h.lastAt = Date.now();
  }

  /** Every rule of the running config (zero hits included), then exempt entries and the default. */
  hits(): RuleHits[] {
    const cfg = this.config;
    const out: RuleHits[] = [];
    const row = (rule: string, egress: string | null, stage: string | null): RuleHits => {
      const h = this.#hits.get(rule);
      return { rule, egress, stage, connected: h?.connected ?? 0, refused: h?.refused ?? 0, lastAt: h?.lastAt ?? null };
    };
    const seen = new Set<string>();
    for (const r of cfg.rules) {
      const id = r.name ?? `rule#${r.index + 1}`;
      seen.add(id);
      out.push(row(id, r.egress, null));
    }
    cfg.exempt.forEach((_e, i) => {
      const id = `exempt#${i + 1}`;
      seen.add(id);
      out.push(row(id, 'direct', 'exempt'));
    });
    seen.add('default');
    out.push(row('default', cfg.default, 'default'));
    // Ids the engine produced that are not rules of the config (e.g. the LAN stage).
    for (const id of this.#hits.keys()) if (!seen.has(id)) out.push(row(id, null, null));
    return out;
  }
}
