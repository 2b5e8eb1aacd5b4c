// A compact rule list for big generated rule sets (rule lists: a million one-pattern rules).
// Plain RuleConfig objects cost about 270 bytes a rule (the rule object, its `domains` array, the
// pattern object, an origin); here a rule is one small object holding only its index, and its
// fields are read from shared columns (egress number, pattern kind, pattern text, line) by getters
// on a prototype. Arrays and origins are built when a field is read, so `explain` still names the
// rule and its source line. Read-only: the getters rebuild values, so identity (`r.domains ===
// r.domains`) does not hold, and an object spread (`{...rule}`) copies only `index` — use
// `plainRule(rule)` or JSON.stringify (toJSON) to get a plain copy.
//
//   const t = new PackedRules({ list: 'ads', file: '/etc/switchyard/ads.txt' }, config.rules.length);
//   t.addDomain('block', { kind: 'suffix', value: 'ads.example' }, 12);
//   config.rules.push(...t.rules());   // indexes: firstIndex, firstIndex + 1, ...
import type { AppPattern, Cidr, DomainPattern, RuleConfig, RuleOrigin } from './types.ts';

const KINDS = ['suffix', 'full', 'keyword', 'regexp'] as const;
const KIND_CIDR4 = 4;
const KIND_CIDR6 = 5;
const EMPTY: never[] = Object.freeze([]) as unknown as never[];

function grow<T extends Uint8Array | Uint16Array | Int32Array>(a: T, need: number): T {
  if (need <= a.length) return a;
  const b = new (a.constructor as new (n: number) => T)(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

export class PackedRules {
  readonly firstIndex: number;
  private readonly origin: Readonly<RuleOrigin>;
  private readonly egressNames: string[] = [];
  private readonly egressIds = new Map<string, number>();
  private readonly appSets: (readonly AppPattern[])[] = [EMPTY];
  private egress = new Uint16Array(1024);
  private kind = new Uint8Array(1024);
  private prefix = new Uint8Array(1024);
  private apps = new Uint16Array(1024);
  private lines = new Int32Array(1024);
  private readonly text: string[] = [];
  private out: RuleConfig[] | null = null;

  /** `origin`: what every rule's origin has besides its line (list name, file). */
  constructor(origin: RuleOrigin, firstIndex: number) {
    this.origin = Object.freeze({ ...origin });
    this.firstIndex = firstIndex;
  }

  get size(): number {
    return this.text.length;
  }

  /**
   * A shared app condition for domain rules (e.g. one list restricted to some apps): register it
   * once, pass the returned number to addDomain. The array is frozen and shared by those rules.
   */
  appCondition(apps: readonly AppPattern[]): number {
    if (this.appSets.length === 65535) throw new RangeError('PackedRules: too many app conditions');
    this.appSets.push(Object.freeze(apps.map((a) => Object.freeze({ ...a }))));
    return this.appSets.length - 1;
  }

  /** A rule with one domain pattern (and optionally an app condition); `line` ≥ 1 or absent. */
  addDomain(egress: string, p: DomainPattern, line?: number, appCondition = 0): void {
    this.push(egress, KINDS.indexOf(p.kind), p.value, 0, line, appCondition);
  }

  /** A rule with one CIDR. */
  addCidr(egress: string, c: Cidr, line?: number): void {
    this.push(egress, c.family === 4 ? KIND_CIDR4 : KIND_CIDR6, c.address, c.prefix, line, 0);
  }

  private push(egress: string, kind: number, text: string, prefix: number, line: number | undefined, apps: number): void {
    if (this.out !== null) throw new Error('PackedRules: add after rules()');
    if (apps < 0 || apps >= this.appSets.length) throw new RangeError(`PackedRules: unknown app condition ${apps}`);
    let e = this.egressIds.get(egress);
    if (e === undefined) {
      e = this.egressNames.length;
      if (e === 65535) throw new RangeError('PackedRules: too many egress names');
      this.egressNames.push(egress);
      this.egressIds.set(egress, e);
    }
    const i = this.text.length;
    this.egress = grow(this.egress, i + 1);
    this.kind = grow(this.kind, i + 1);
    this.prefix = grow(this.prefix, i + 1);
    this.apps = grow(this.apps, i + 1);
    this.lines = grow(this.lines, i + 1);
    this.egress[i] = e;
    this.kind[i] = kind;
    this.prefix[i] = prefix;
    this.apps[i] = apps;
    this.lines[i] = line ?? 0;
    this.text.push(text);
  }

  /** The rules, in the order added (built once; the columns are trimmed to size). */
  rules(): RuleConfig[] {
    if (this.out !== null) return this.out;
    const n = this.text.length;
    this.egress = this.egress.slice(0, n);
    this.kind = this.kind.slice(0, n);
    this.prefix = this.prefix.slice(0, n);
    this.apps = this.apps.slice(0, n);
    this.lines = this.lines.slice(0, n);
    const t = this;
    const first = this.firstIndex;
    // The origin with a line, built with a fixed shape (explain() and a decision's rule.origin
    // make one when asked; an object spread of the shared origin costs more).
    const { list, file } = this.origin;
    const withLine: (line: number) => RuleOrigin =
      list !== undefined && file !== undefined ? (line) => ({ list, file, line })
      : list !== undefined ? (line) => ({ list, line })
      : file !== undefined ? (line) => ({ file, line })
      : (line) => ({ line });
    // One class per table, so a rule object needs no pointer to its table: just its index.
    class PackedRule {
      readonly index: number;
      constructor(index: number) {
        this.index = index;
      }
      get egress(): string {
        return t.egressNames[t.egress[this.index - first]!]!;
      }
      get domains(): DomainPattern[] {
        const k = t.kind[this.index - first]!;
        return k < KIND_CIDR4 ? [{ kind: KINDS[k]!, value: t.text[this.index - first]! }] : EMPTY;
      }
      get apps(): AppPattern[] {
        return t.appSets[t.apps[this.index - first]!]! as AppPattern[];
      }
      get cidrs(): Cidr[] {
        const r = this.index - first;
        const k = t.kind[r]!;
        return k >= KIND_CIDR4 ? [{ family: k === KIND_CIDR4 ? 4 : 6, address: t.text[r]!, prefix: t.prefix[r]! }] : EMPTY;
      }
      get origin(): RuleOrigin {
        const line = t.lines[this.index - first]!;
        return line > 0 ? withLine(line) : t.origin;
      }
      toJSON(): RuleConfig {
        return plainRule(this as unknown as RuleConfig);
      }
    }
    for (const [k, v] of [['name', null], ['ports', EMPTY], ['network', null]] as const) {
      Object.defineProperty(PackedRule.prototype, k, { value: v, enumerable: true });
    }
    const out = new Array<RuleConfig>(n);
    for (let i = 0; i < n; i++) out[i] = new PackedRule(first + i) as unknown as RuleConfig;
    this.out = out;
    return out;
  }
}

/** A plain-object copy of any rule (packed or not). */
export function plainRule(r: RuleConfig): RuleConfig {
  return { index: r.index, name: r.name, egress: r.egress, domains: r.domains, apps: r.apps, cidrs: r.cidrs, ports: r.ports, network: r.network, origin: r.origin };
}
