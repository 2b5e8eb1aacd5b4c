// The Windows backend: applies a WFP plan (filter-plan.ts) as transactions, keeps the dynamic session
// whose permits live as long as the daemon, reads the result back, and tears down in the documented
// order. The WinDivert side (diverter.ts) is attached separately once the transparent listeners are
// bound. Method names follow the shared backend interface as far as it was known when this was
// written (apply / stop / down / status); the lead adapts them to src/redirect/types.ts on merge.
//
// Order of apply:
//   1. refuse unless elevated (SY_ERR_WIN_NOT_ADMIN) — before touching anything;
//   2. persistent session, ONE transaction: provider, sublayer (both kept if present), delete our
//      previous persistent filters, add the plan's persistent filters; commit — or abort on any error;
//   3. dynamic session (opened once, kept open), ONE transaction: delete our previous dynamic filters,
//      add the plan's; commit — or abort;
//   4. read back every filter key of our provider at both layers and check the plan's are all there.
// A WFP that is not available (0x6E4 under Wine, BFE stopped) fails at step 2's engine open with
// SY_ERR_WIN_WFP_UNSUPPORTED and nothing is left behind.
//
// stop(): closes the dynamic session — WFP deletes its permits — and keeps the persistent skeleton,
// so selected apps stay blocked until `up` or `down`. down(): stop, then ONE transaction deleting
// every filter of our provider at both layers, then the sublayer, then the provider (filters first:
// a sublayer or provider still referenced by filters cannot be deleted).
import { OsCallError } from '../../errors.ts';
import { WfpEngine, type WfpFilterSpec, type WfpLayer, type WfpSession } from '../../sys/windows/wfp.ts';
import { isElevated } from '../../sys/windows/advapi32.ts';
import { WFP_PROVIDER_NAME } from '../../ids.ts';
import type { WfpPlan } from './filter-plan.ts';

export interface WindowsBackendDeps {
  /** Opens a WFP session (WfpEngine.open in production). */
  openSession: (dynamic: boolean) => WfpSession;
  /** advapi32 isElevated in production. */
  isElevated: () => boolean;
  log?: (msg: string) => void;
}

export interface BackendStatus {
  enabled: boolean;
  persistentFilters: number;
  dynamicFilters: number;
  waitingForPath: string[];
  lastError: string | null;
}

const LAYERS: readonly WfpLayer[] = ['v4', 'v6'];

/** The production dependencies: real WFP sessions over fwpuclnt.dll and the token's elevation. */
export function systemBackendDeps(log?: (msg: string) => void): WindowsBackendDeps {
  return {
    openSession: (dynamic) => WfpEngine.open({ dynamic, name: WFP_PROVIDER_NAME }),
    isElevated,
    ...(log ? { log } : {}),
  };
}

export class WindowsBackend {
  #d: WindowsBackendDeps;
  #dynamic: WfpSession | null = null;
  #dynamicKeys: string[] = [];
  #persistentKeys: string[] = [];
  #waiting: string[] = [];
  #lastError: string | null = null;

  constructor(d: WindowsBackendDeps) {
    this.#d = d;
  }

  /** Runs `body` inside one transaction of `s`; aborts and rethrows on any error. */
  static transaction(s: WfpSession, body: () => void): void {
    s.begin();
    try {
      body();
    } catch (err) {
      try {
        s.abort();
      } catch {
        // the original error is the one worth reporting; closing the session aborts anyway
      }
      throw err;
    }
    s.commit();
  }

  #keysOf(s: WfpSession, providerKey: string): string[] {
    return LAYERS.flatMap((l) => s.filterKeys(providerKey, l));
  }

  async apply(plan: WfpPlan): Promise<void> {
    try {
      if (!this.#d.isElevated()) {
        throw new OsCallError('SY_ERR_WIN_NOT_ADMIN', 'apply', undefined, 'Windows enforcement needs an elevated process (run as Administrator or as the service)');
      }
      const ids = { providerKey: plan.provider.key, sublayerKey: plan.sublayer.key };
      const add = (s: WfpSession, fs: readonly WfpFilterSpec[]) => {
        for (const f of fs) s.addFilter(f, ids);
      };

      // 2. The persistent skeleton.
      const p = this.#d.openSession(false);
      try {
        WindowsBackend.transaction(p, () => {
          p.ensureProvider(plan.provider);
          p.ensureSublayer(plan.sublayer, plan.provider.key);
          const live = new Set(this.#dynamicKeys);
          for (const k of this.#keysOf(p, plan.provider.key)) if (!live.has(k)) p.deleteFilter(k);
          add(p, plan.persistent);
        });
        this.#persistentKeys = plan.persistent.map((f) => f.key);

        // 3. The daemon's permits.
        this.#dynamic ??= this.#d.openSession(true);
        const dyn = this.#dynamic;
        WindowsBackend.transaction(dyn, () => {
          for (const k of this.#dynamicKeys) dyn.deleteFilter(k);
          add(dyn, plan.dynamic);
        });
        this.#dynamicKeys = plan.dynamic.map((f) => f.key);

        // 4. Read back.
        const present = new Set(this.#keysOf(p, plan.provider.key));
        const missing = [...plan.persistent, ...plan.dynamic].filter((f) => !present.has(f.key));
        if (missing.length) {
          throw new OsCallError('SY_ERR_WIN_WFP', 'read-back', undefined, `${missing.length} filter(s) missing after commit: ${missing.map((f) => f.name).join(', ')}`);
        }
      } finally {
        p.close();
      }
      this.#waiting = plan.waitingForPath;
      this.#lastError = null;
      this.#d.log?.(`wfp: ${plan.persistent.length} persistent and ${plan.dynamic.length} dynamic filters applied`);
    } catch (err) {
      this.#lastError = (err as Error).message;
      throw err;
    }
  }

  /** Permits go with the dynamic session; the persistent skeleton (kill-switch) stays. */
  async stop(): Promise<void> {
    const d = this.#dynamic;
    this.#dynamic = null;
    this.#dynamicKeys = [];
    d?.close();
  }

  /** Removes everything switchyard added to WFP, found by provider key (also after a crash). */
  async down(providerKey: string, sublayerKey: string): Promise<void> {
    await this.stop();
    if (!this.#d.isElevated()) throw new OsCallError('SY_ERR_WIN_NOT_ADMIN', 'down', undefined, 'removing WFP filters needs an elevated process');
    const s = this.#d.openSession(false);
    try {
      WindowsBackend.transaction(s, () => {
        for (const k of this.#keysOf(s, providerKey)) s.deleteFilter(k);
        s.deleteSublayer(sublayerKey);
        s.deleteProvider(providerKey);
      });
    } finally {
      s.close();
    }
    this.#persistentKeys = [];
  }

  status(): BackendStatus {
    return {
      enabled: this.#dynamic !== null,
      persistentFilters: this.#persistentKeys.length,
      dynamicFilters: this.#dynamicKeys.length,
      waitingForPath: this.#waiting,
      lastError: this.#lastError,
    };
  }
}
