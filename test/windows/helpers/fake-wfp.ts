// A recording WfpSession that models WFP's transaction semantics (changes become visible on commit,
// vanish on abort; a dynamic session's filters vanish when it closes), shared by the backend tests.
import assert from 'node:assert/strict';
import { WindowsBackend } from '../../../src/redirect/windows/backend.ts';
import type { WfpFilterSpec, WfpLayer, WfpProviderSpec, WfpSession, WfpSublayerSpec } from '../../../src/sys/windows/wfp.ts';
import { OsCallError } from '../../../src/errors.ts';

export interface WfpState {
  provider: boolean;
  sublayer: boolean;
  filters: Map<string, { spec: WfpFilterSpec; dynamicOwner: FakeSession | null }>;
}

export class FakeSession implements WfpSession {
  readonly dynamic: boolean;
  readonly log: string[];
  #state: WfpState;
  #staged: WfpState | null = null;
  #fail: (call: string, n: number) => boolean;
  #n = 0;
  closed = false;

  constructor(state: WfpState, dynamic: boolean, log: string[], fail: (call: string, n: number) => boolean) {
    this.#state = state;
    this.dynamic = dynamic;
    this.log = log;
    this.#fail = fail;
  }

  #call(name: string): WfpState {
    this.log.push(`${this.dynamic ? 'dyn' : 'per'}.${name}`);
    if (this.#fail(name, this.#n++)) throw new OsCallError('SY_ERR_WIN_WFP', name, 0x80320009, 'injected');
    return this.#staged ?? this.#state;
  }

  begin(): void {
    this.#call('begin');
    this.#staged = { provider: this.#state.provider, sublayer: this.#state.sublayer, filters: new Map(this.#state.filters) };
  }
  commit(): void {
    const s = this.#call('commit');
    this.#state.provider = s.provider;
    this.#state.sublayer = s.sublayer;
    this.#state.filters.clear();
    for (const [k, v] of s.filters) this.#state.filters.set(k, v);
    this.#staged = null;
  }
  abort(): void {
    this.log.push(`${this.dynamic ? 'dyn' : 'per'}.abort`);
    this.#staged = null;
  }
  ensureProvider(_p: WfpProviderSpec): void {
    this.#call('ensureProvider').provider = true;
  }
  ensureSublayer(_s: WfpSublayerSpec): void {
    const s = this.#call('ensureSublayer');
    assert.ok(s.provider, 'sublayer after provider');
    s.sublayer = true;
  }
  addFilter(f: WfpFilterSpec): void {
    const s = this.#call(`addFilter ${f.name}`);
    assert.ok(s.sublayer, 'filters need the sublayer');
    assert.ok(!s.filters.has(f.key), `duplicate key ${f.name}`);
    s.filters.set(f.key, { spec: f, dynamicOwner: this.dynamic ? this : null });
  }
  deleteFilter(key: string): void {
    this.#call('deleteFilter').filters.delete(key);
  }
  filterKeys(_p: string, layer: WfpLayer): string[] {
    const s = this.#call(`filterKeys ${layer}`);
    return [...s.filters.values()].filter((v) => v.spec.layer === layer).map((v) => v.spec.key);
  }
  deleteSublayer(): void {
    const s = this.#call('deleteSublayer');
    assert.equal(s.filters.size, 0, 'sublayer deleted only when no filter is left');
    s.sublayer = false;
  }
  deleteProvider(): void {
    const s = this.#call('deleteProvider');
    assert.ok(!s.sublayer, 'provider after sublayer');
    s.provider = false;
  }
  close(): void {
    this.log.push(`${this.dynamic ? 'dyn' : 'per'}.close`);
    this.closed = true;
    this.#staged = null;
    // WFP removes a dynamic session's objects when it closes (or its process dies).
    for (const [k, v] of this.#state.filters) if (v.dynamicOwner === this) this.#state.filters.delete(k);
  }
}

export function world(opts: { fail?: (call: string, n: number, dynamic: boolean) => boolean; elevated?: boolean } = {}) {
  const state: WfpState = { provider: false, sublayer: false, filters: new Map() };
  const log: string[] = [];
  const sessions: FakeSession[] = [];
  const backend = new WindowsBackend({
    openSession: (dynamic) => {
      const s = new FakeSession(state, dynamic, log, (c, n) => opts.fail?.(c, n, dynamic) ?? false);
      sessions.push(s);
      return s;
    },
    isElevated: () => opts.elevated ?? true,
  });
  return { state, log, sessions, backend };
}

