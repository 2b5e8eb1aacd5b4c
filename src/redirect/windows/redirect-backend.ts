// The Windows RedirectBackend: the OS-neutral interface (src/redirect/types.ts) over the WFP backend
// (backend.ts) and, once wired, the WinDivert reflection (diverter.ts + reflector.ts).
//
// apply(plan) checks everything that can refuse BEFORE it changes anything, so a refusal leaves
// nothing behind:
//   1. elevated? (SY_ERR_WIN_NOT_ADMIN)
//   2. enforce.windivertPath holds WinDivert.dll and WinDivert64.sys? (SY_ERR_WIN_WINDIVERT_PATH)
//   3. WFP answers? An engine is opened and closed again — no object is added. Wine and a stopped
//      BFE service say 0x6E4 / EPT_S_NOT_REGISTERED here (SY_ERR_WIN_WFP_UNSUPPORTED).
//   4. a reflection was given? Selected apps' TCP is permitted by WFP only because WinDivert
//      reflects it to the transparent listeners; without that, a permit would let them leave
//      directly, so apply refuses (SY_ERR_REDIRECT_UNAVAILABLE) — fail closed, nothing installed.
//      src/redirect/index.ts gives the real one (reflection.ts) when the daemon passes its policy.
//   5. the WFP plan (filter-plan.ts, built from the current config: WFP needs the app patterns and
//      block rules, which the neutral plan does not carry), as backend.ts's transactions;
//   6. the reflection starts; if it fails, the WFP objects of a first apply are removed again.
//
// Windows has no process groups: a connection's process is found per connection (the SOCKET layer's
// PID), so placeProcess is a no-op and commandInGroup runs the program as it is — an exempt core is
// exempt by its path in `[[exempt]] apps`, not by how it was started.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { OsCallError, RedirectUnavailableError } from '../../errors.ts';
import type { Binding } from '../../flow/types.ts';
import type { Config } from '../../policy/types.ts';
import { WFP_PROVIDER_GUID, WFP_SUBLAYER_GUID } from '../../ids.ts';
import type { ApplyResult, BackendStatus, BindingStats, PlacementRule, RedirectBackend, RedirectPlan, WatchStart } from '../types.ts';
import { WindowsBackend, systemBackendDeps, type WindowsBackendDeps } from './backend.ts';
import { buildWfpPlan, type WfpPlan } from './filter-plan.ts';
import type { NatEntry } from './nat.ts';

/** The WinDivert side, started once the WFP filters are in (reflection.ts; tests give fakes). */
export interface Reflection {
  start(plan: RedirectPlan, config: Config): Promise<void>;
  /** A re-apply while reflecting: new listener ports or addresses. */
  update?(plan: RedirectPlan): Promise<void>;
  addBindings(batch: Binding[]): void;
  stop(): Promise<void>;
  /** Where the transparent listeners must bind (the interface address), and its changes. */
  listenHosts?(): { host4: string | null; host6: string | null };
  onListenHostsChange?(handler: () => void): void;
  /** A PID never reflected. */
  exempt?(pid: number): void;
  /** NAT entry of an accepted connection, for the FlowIdentity. */
  lookup?(family: 4 | 6, listenerAddress: string, peerAddress: string, peerPort: number): NatEntry | undefined;
  /** Releases watchers (backend closed). */
  close?(): void;
}

export interface WindowsRedirectOptions {
  /** The config the daemon runs (WFP filters need its app patterns and block rules). */
  config: () => Config | undefined;
  /** WFP sessions and elevation; default the real ones (fwpuclnt.dll, advapi32.dll). */
  wfp?: WindowsBackendDeps;
  /** Does `folder` hold WinDivert.dll and WinDivert64.sys? Default: the file system. */
  hasWinDivert?: (folder: string) => boolean;
  /** The WinDivert side (reflection.ts). Absent: apply refuses before touching the OS. */
  reflection?: Reflection;
  /** The daemon's executable, permitted while it runs (default process.execPath). */
  selfExe?: string;
  /** Executable paths seen so far, for app rules given by name or glob. */
  seenPaths?: () => Iterable<string>;
  log?: (msg: string) => void;
}

const ids = () => ({ provider: WFP_PROVIDER_GUID.replace(/[{}]/g, ''), sublayer: WFP_SUBLAYER_GUID.replace(/[{}]/g, '') });

function winDivertPresent(folder: string): boolean {
  return existsSync(join(folder, 'WinDivert.dll')) && existsSync(join(folder, 'WinDivert64.sys'));
}

export class WindowsRedirectBackend implements RedirectBackend {
  readonly os = 'windows';
  #o: WindowsRedirectOptions;
  #wfpDeps: WindowsBackendDeps;
  #wfp: WindowsBackend;
  #active = false;
  #skeleton = false;
  #reflecting = false;
  #bindings = 0;
  #lastPlan: RedirectPlan | null = null;

  constructor(o: WindowsRedirectOptions) {
    this.#o = o;
    this.#wfpDeps = o.wfp ?? systemBackendDeps(o.log);
    this.#wfp = new WindowsBackend(this.#wfpDeps);
  }

  #config(): Config {
    const c = this.#o.config();
    if (!c) throw new RedirectUnavailableError('the Windows backend was given no config to build WFP filters from');
    return c;
  }

  #wfpPlan(config: Config): WfpPlan {
    return buildWfpPlan(config, { selfExe: this.#o.selfExe ?? process.execPath, seenPaths: this.#o.seenPaths?.() ?? [] });
  }

  render(_plan: RedirectPlan): string {
    const p = this.#wfpPlan(this.#config());
    const line = (s: 'persistent' | 'dynamic') => (f: WfpPlan['persistent'][number]) =>
      `${s.padEnd(10)} ${f.layer} w${String(f.weight).padStart(2)} ${f.action.padEnd(6)} ${f.name} ${JSON.stringify(f.conditions)}`;
    return [
      `provider ${p.provider.key} ${p.provider.name}`,
      `sublayer ${p.sublayer.key} ${p.sublayer.name} weight ${p.sublayer.weight}`,
      ...p.persistent.map(line('persistent')),
      ...p.dynamic.map(line('dynamic')),
      ...p.waitingForPath.map((w) => `waiting   ${w} (no path seen yet)`),
    ].join('\n') + '\n';
  }

  /** Steps 1–4: every reason to refuse, with no change made. */
  #preflight(config: Config): void {
    if (!this.#wfpDeps.isElevated()) {
      throw new OsCallError('SY_ERR_WIN_NOT_ADMIN', 'apply', undefined, 'Windows enforcement needs an elevated process (run as Administrator or as the service)');
    }
    const folder = config.enforce.windivertPath;
    if (!folder || !(this.#o.hasWinDivert ?? winDivertPresent)(folder)) {
      throw new OsCallError('SY_ERR_WIN_WINDIVERT_PATH', 'apply', undefined, folder ? `${folder} does not hold WinDivert.dll and WinDivert64.sys (see docs/windows.md)` : 'set [enforce] windivert_path to the folder holding WinDivert.dll and WinDivert64.sys (see docs/windows.md)');
    }
    // Opens and closes an engine: no object is added. This is where Wine says 0x6E4.
    this.#wfpDeps.openSession(false).close();
    if (!this.#o.reflection) {
      throw new RedirectUnavailableError('the Windows backend was made without the WinDivert reflection (no policy was given to it), and WFP permits without it would let selected apps leave directly; nothing was changed');
    }
  }

  async apply(plan: RedirectPlan): Promise<ApplyResult> {
    const t0 = performance.now();
    const config = this.#config();
    this.#preflight(config);
    const wfpPlan = this.#wfpPlan(config);
    const first = !this.#active && !this.#skeleton;
    try {
      await this.#wfp.apply(wfpPlan);
      if (!this.#reflecting) {
        await this.#o.reflection!.start(plan, config);
        this.#reflecting = true;
      } else {
        await this.#o.reflection!.update?.(plan);
      }
    } catch (err) {
      // A first apply that failed half-way takes its WFP objects out again; a re-apply keeps the
      // previous (fail-closed) state the backend's transactions left.
      if (first) await this.#wfp.down(ids().provider, ids().sublayer).catch(() => {});
      throw err;
    }
    this.#active = true;
    this.#skeleton = false;
    this.#lastPlan = plan;
    return { script: this.render(plan), carriedElements: 0, ms: performance.now() - t0 };
  }

  async addBindings(batch: Binding[]): Promise<BindingStats> {
    const t0 = performance.now();
    this.#o.reflection?.addBindings(batch);
    this.#bindings += batch.length;
    return { elements: batch.length, micros: Math.round((performance.now() - t0) * 1000) };
  }

  /**
   * Windows identifies the process per connection; there is nothing to move. A PID placed `exempt`
   * (the daemon, a supervised core) is never reflected.
   */
  async placeProcess(pid: number, group: string): Promise<void> {
    if (group === 'exempt') this.#o.reflection?.exempt?.(pid);
  }

  /** The interface address the transparent listeners must bind (WinDivert cannot inject to 127.0.0.1). */
  listenHosts(): { host4: string | null; host6: string | null } {
    // Asked before the listeners start, so every refusal (not elevated, no WinDivert, 0x6E4) comes
    // first, before anything is bound or watched.
    this.#preflight(this.#config());
    const r = this.#o.reflection;
    if (!r?.listenHosts) throw new RedirectUnavailableError('the Windows reflection is not available, so there is no listener address');
    return r.listenHosts();
  }

  onListenHostsChange(handler: () => void): void {
    this.#o.reflection?.onListenHostsChange?.(handler);
  }

  /** NAT lookup for the FlowIdentity: undefined (= not reflected) while nothing reflects. */
  natLookup(family: 4 | 6, listenerAddress: string, peerAddress: string, peerPort: number): NatEntry | undefined {
    return this.#reflecting ? this.#o.reflection?.lookup?.(family, listenerAddress, peerAddress, peerPort) : undefined;
  }

  async skeleton(): Promise<void> {
    await this.#stopReflection();
    await this.#wfp.stop();
    if (this.#active) this.#skeleton = true;
    this.#active = false;
  }

  async down(): Promise<void> {
    await this.#stopReflection();
    await this.#wfp.down(ids().provider, ids().sublayer);
    this.#active = false;
    this.#skeleton = false;
  }

  async #stopReflection(): Promise<void> {
    if (!this.#reflecting) return;
    this.#reflecting = false;
    await this.#o.reflection?.stop();
  }

  async status(): Promise<BackendStatus> {
    const s = this.#wfp.status();
    const problems = [...(s.lastError ? [s.lastError] : []), ...s.waitingForPath.map((w) => `app ${w}: no filter until its path is seen`)];
    return {
      os: this.os,
      state: this.#active ? 'active' : this.#skeleton ? 'skeleton' : 'absent',
      groups: [],
      setElements: { captured: this.#bindings, persistentFilters: s.persistentFilters, dynamicFilters: s.dynamicFilters },
      problems,
    };
  }

  commandInGroup(_group: string, argv: string[]): string[] {
    return argv;
  }

  /** App rules changed: the WFP filters name apps, so they are rebuilt (when active). */
  async watch(_rules: PlacementRule[]): Promise<WatchStart> {
    if (this.#active && this.#lastPlan) await this.apply(this.#lastPlan);
    return { netlink: false, reason: 'Windows matches apps per connection (WFP app ids, SOCKET-layer PIDs); no placement watcher', initial: 0 };
  }

  async close(): Promise<void> {
    // The dynamic session stays open while the daemon runs; closing it is skeleton()'s job.
    this.#o.reflection?.close?.();
  }
}
