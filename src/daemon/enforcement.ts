// The daemon's OS enforcement: installing the redirect plan, the transparent listeners it points
// at (and their re-bind when the backend's address moves), the periodic repair check, and
// `switchyard enforce on|off`. The daemon (src/daemon/daemon.ts) owns the backend and the other
// resources; this file only reads them through EnforcementHost and keeps the state that describes
// what is installed (plan, ports, watcher rules, DoH names, suspended).
import { DaemonError, isSwitchyardError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Config, DomainProjection } from '../policy/types.ts';
import { captureEgresses, storedBindings, type Projector } from './capture.ts';
import type { DnsForwarder } from '../dns/index.ts';
import type { FrontDeps } from '../front/index.ts';
import { startTransparentInbounds, type TransparentInbounds } from '../front/transparent.ts';
import { readDohList } from '../redirect/doh-file.ts';
import { dohNameMatcher } from '../redirect/doh.ts';
import { buildPlan, type ListenerPorts, type RedirectBackend, type RedirectPlan } from '../redirect/index.ts';
import type { LivePolicy } from './live-policy.ts';
import type { OsGlue } from './os-glue.ts';
import type { Supervisor } from './supervisor.ts';

/** What enforcement reads from the daemon (the Daemon itself satisfies it). */
export interface EnforcementHost {
  readonly log: Logger;
  readonly opts: { readonly repairIntervalMs?: number };
  readonly backend: RedirectBackend | null;
  /** [enforce] enabled in the config the daemon started with. */
  readonly enforcing: boolean;
  readonly glue: OsGlue;
  readonly deps: FrontDeps;
  readonly dns: DnsForwarder | null;
  readonly live: LivePolicy;
  readonly config: Config;
  /** Written here: the listeners are bound (and re-bound) by enforcement. */
  transparent: TransparentInbounds | null;
  readonly supervisors: ReadonlyMap<string, Supervisor>;
  /** Runs store-changing work one at a time (the daemon's queue). */
  serial<T>(fn: () => Promise<T>): Promise<T>;
}

/** The daemon's private state enforcement needs to see. */
export interface EnforcementHooks {
  stopping(): boolean;
  /** Settles when the serialised work queued so far has run. */
  queued(): Promise<unknown>;
}

/** Bindings per addBindings call when the store is re-projected. */
const CAPTURE_SLICE = 2048;

export interface RepairReport {
  at: number;
  problems: string[];
  ok: boolean;
  error: string | null;
}

export class Enforcement {
  readonly #d: EnforcementHost;
  readonly #hooks: EnforcementHooks;
  /** Enforcement switched off at run time (`switchyard enforce off`): nothing is installed in the OS. */
  suspended = false;
  /** Last periodic check of the OS state: what it found, and whether it could repair it. */
  lastRepair: RepairReport | null = null;
  #repairTimer: NodeJS.Timeout | null = null;
  #ports: ListenerPorts | null = null;
  #plan: RedirectPlan | null = null;
  /** `block_doh`: names of known DoH endpoints, answered as blocked while enforcing (null = off). */
  #dohNames: ((name: string) => boolean) | null = null;
  #watchRules: unknown[] | null = null;

  constructor(host: EnforcementHost, hooks: EnforcementHooks) {
    this.#d = host;
    this.#hooks = hooks;
  }

  /** The plan installed now (null: none, or the skeleton after a failure). */
  get plan(): RedirectPlan | null {
    return this.#plan;
  }

  /**
   * With `block_doh` (while enforcing) known DoH endpoint names are answered as blocked, so
   * browsers use system DNS: the projection the forwarder gets for such a name, else null.
   */
  dohBlocked(name: string): DomainProjection | null {
    if (this.#dohNames && !this.suspended && this.#dohNames(name)) return { egresses: ['block'], uniform: true, egress: 'block', rule: null };
    return null;
  }

  /**
   * How a supervised core is started: while enforcement is switched off there is no exempt group
   * (and nothing is redirected): a core that restarts then starts plainly, and `enforce on` moves
   * it into the group. Without this it could not restart at all until `on` (commandInGroup refuses).
   */
  exemptWrap(): ((argv: string[]) => string[]) | null {
    const d = this.#d;
    return d.enforcing && d.backend ? (argv: string[]) => (this.suspended ? argv : d.backend!.commandInGroup('exempt', argv)) : null;
  }

  /** Does stopping the daemon leave the fail-closed skeleton (enforcing and not switched off)? */
  get leavesSkeleton(): boolean {
    return this.#d.enforcing && !this.suspended;
  }

  /** At start, with [enforce] enabled: listeners, plan, the daemon in the exempt group, repair check. */
  async start(config: Config): Promise<void> {
    const d = this.#d;
    const backend = d.backend;
    if (!backend) throw new DaemonError('SY_ERR_DAEMON_ENFORCE', '[enforce] enabled, but no OS backend exists here; refusing to run unenforced');
    if (!d.deps.identity) throw new DaemonError('SY_ERR_DAEMON_ENFORCE', `[enforce] enabled, but no FlowIdentity exists for ${backend.os}; refusing to run unenforced`);
    await this.#bindTransparent(config);
    await this.apply(d.live.config); // the expanded config: list rules count too
    // Backends whose listener address follows the interfaces (Windows) ask for a re-bind.
    backend.onListenHostsChange?.(() => {
      void d.serial(() => this.#rebindTransparent()).catch(() => {
        /* logged in #rebindTransparent */
      });
    });
    // Besides the fwmark on every socket it opens, the daemon itself joins the exempt group: a
    // socket opened by some path that forgot the mark is still never redirected into itself.
    try {
      await backend.placeProcess(process.pid, 'exempt');
    } catch (err) {
      throw new DaemonError('SY_ERR_DAEMON_ENFORCE', `cannot place the daemon in the exempt group: ${(err as Error).message}`, err);
    }
    // The store came back from disk: its addresses follow the policy running now.
    await this.captureStored(d.live);
    d.log.info({ groups: this.#plan?.groups.length ?? 0 }, 'enforcement active');
    this.#startRepairCheck();
  }

  /**
   * `switchyard enforce on|off` (the daemon serialises it with reloads). Off removes what the
   * backend installed (table and groups; processes go back). On applies the plan again, puts the
   * daemon and the supervised cores back into the exempt group and makes cached DNS answers
   * re-fill the sets.
   */
  async set(on: boolean): Promise<{ active: boolean; changed: boolean }> {
    const d = this.#d;
    if (this.#hooks.stopping()) throw new DaemonError('SY_ERR_DAEMON_STOPPING', 'the daemon is stopping');
    const backend = d.backend;
    if (!d.enforcing || !backend) {
      throw new DaemonError('SY_ERR_DAEMON_ENFORCE', 'enforcement is not enabled in the running config: set [enforce] enabled = true and restart the daemon');
    }
    if (on === !this.suspended) return { active: on, changed: false };
    if (!on) {
      this.stopRepairCheck();
      this.suspended = true;
      await backend.down();
      this.#plan = null;
      this.#watchRules = null;
      d.log.warn('enforcement switched off at run time (`switchyard enforce on` or a restart turns it on again)');
      return { active: false, changed: true };
    }
    await this.apply(d.live.config);
    try {
      await backend.placeProcess(process.pid, 'exempt');
      for (const sup of d.supervisors.values()) {
        const pid = sup.status().pid;
        if (pid !== null && pid !== undefined) await backend.placeProcess(pid, 'exempt').catch((err) => d.log.warn({ err, egress: sup.egress }, 'cannot put a supervised core back into the exempt group'));
      }
    } catch (err) {
      await backend.skeleton().catch(() => {});
      throw new DaemonError('SY_ERR_DAEMON_ENFORCE', `cannot place the daemon in the exempt group: ${(err as Error).message}; the skeleton is installed`, err);
    }
    this.suspended = false;
    // The sets start empty: cached answers must run the hook again on their next hit, and what the
    // store knows goes back in now (an app may connect to an address it resolved before `off`).
    d.dns?.forwarder.invalidateHooks();
    try {
      await this.captureStored(d.live);
    } catch (err) {
      await backend.skeleton().catch(() => {});
      throw err;
    }
    this.#startRepairCheck();
    d.log.info('enforcement switched on');
    return { active: true, changed: true };
  }

  /**
   * Installs the plan for `config` (one transaction in the backend, rolled back by it on failure)
   * and (re)starts the process watcher that places apps into their groups. Skipped when nothing
   * changed. Throws SY_ERR_DAEMON_ENFORCE; the caller refuses to start, or refuses the reload.
   */
  async apply(config: Config): Promise<void> {
    const d = this.#d;
    const backend = d.backend!;
    let doh;
    try {
      doh = readDohList(config);
    } catch (err) {
      throw new DaemonError('SY_ERR_DAEMON_ENFORCE', `the OS backend refused the plan: ${isSwitchyardError(err) ? `${err.code}: ` : ''}${(err as Error).message}`, err);
    }
    const plan = buildPlan({ config, ports: this.#ports!, ...(doh ? { doh } : {}) });
    const rules = d.glue.watchRules?.(config) ?? [];
    const planChanged = JSON.stringify(plan) !== JSON.stringify(this.#plan);
    const rulesChanged = JSON.stringify(rules) !== JSON.stringify(this.#watchRules);
    try {
      if (planChanged) await backend.apply(plan);
      this.#plan = plan;
      this.#dohNames = doh ? dohNameMatcher(doh.names) : null;
      // The watcher is the Linux backend's (not in the RedirectBackend interface yet).
      const watch = (backend as unknown as { watch?: (r: unknown[]) => Promise<{ netlink: boolean; mode?: string; initial: number; reason?: string }> }).watch;
      if ((planChanged || rulesChanged) && typeof watch === 'function' && rules.length > 0) {
        const w = await watch.call(backend, rules);
        d.log.info({ mode: w.mode, netlink: w.netlink, placed: w.initial, reason: w.reason }, 'process watcher started');
      }
      this.#watchRules = rules;
    } catch (err) {
      throw new DaemonError('SY_ERR_DAEMON_ENFORCE', `the OS backend refused the plan: ${isSwitchyardError(err) ? `${err.code}: ` : ''}${(err as Error).message}`, err);
    }
  }

  /**
   * Puts the addresses the correlation store holds into the captured sets, projected by `policy`
   * (the one about to run) with `capture: true`, as the binding hook does for a new answer. Runs
   * after a policy swap's plan is installed, at start and after `enforce on`: an address an app
   * resolved earlier (a name that was direct, or learned before a restart) is then redirected
   * from its next connection, not only after the app asks again. Throws SY_ERR_DAEMON_ENFORCE.
   */
  async captureStored(policy: Projector): Promise<number> {
    const d = this.#d;
    const store = d.dns?.store;
    if (!store || !d.backend || this.suspended) return 0;
    const forwarderView = (name: string) => (this.dohBlocked(name) ?? policy.projectDomain(name)).egresses;
    const batch = storedBindings(store.entries(), Date.now(), store.graceSeconds, (name) => captureEgresses(name, forwarderView(name), policy));
    try {
      // In slices: one libnftables transaction each, so a large store does not build one huge batch.
      for (let i = 0; i < batch.length; i += CAPTURE_SLICE) await d.backend.addBindings(batch.slice(i, i + CAPTURE_SLICE));
    } catch (err) {
      throw new DaemonError('SY_ERR_DAEMON_ENFORCE', `cannot put the stored DNS destinations into the OS sets: ${(err as Error).message}`, err);
    }
    if (batch.length > 0) d.log.debug({ bindings: batch.length }, 'stored DNS destinations re-projected into the OS sets');
    return batch.length;
  }

  stopRepairCheck(): void {
    if (this.#repairTimer) clearInterval(this.#repairTimer);
    this.#repairTimer = null;
  }

  /**
   * Starts the transparent listeners where the backend says (Windows: the interface address) or on
   * the configured address, and records their ports for the plan.
   */
  async #bindTransparent(config: Config): Promise<void> {
    const d = this.#d;
    const groups = Object.keys(config.egress).filter((n) => n !== 'direct' && n !== 'block');
    let hosts: { host4: string | null; host6: string | null } | undefined;
    try {
      hosts = d.backend?.listenHosts?.();
    } catch (err) {
      // The backend's own refusals (Windows: not elevated, no WinDivert, WFP 0x6E4) keep their code.
      if (isSwitchyardError(err)) throw err;
      throw new DaemonError('SY_ERR_DAEMON_ENFORCE', `no address for the transparent listeners: ${(err as Error).message}`, err);
    }
    const transparent = await startTransparentInbounds(d.deps, { groups, ...(hosts ?? {}) });
    d.transparent = transparent;
    // The nft rules name one port per listener for both families (`redirect to :port`): IPv6 flows
    // would land on a port where the IPv4 listener's twin is not. Refuse instead of half-working.
    const split = transparent.listeners.find((l) => l.port4 !== null && l.port6 !== null && l.port4 !== l.port6);
    if (split) throw new DaemonError('SY_ERR_DAEMON_ENFORCE', `transparent listener ${split.group ?? 'captured'} got port ${split.port4} on IPv4 but ${split.port6} on IPv6; the OS rules need one port for both (try again)`);
    // A family may have no listener (Windows: an interface without IPv4); the port is either's.
    const portOf = (l: { port4: number | null; port6: number | null }) => l.port4 ?? l.port6;
    this.#ports = {
      groups: Object.fromEntries(transparent.listeners.filter((l) => l.group !== null && portOf(l) !== null).map((l) => [l.group!, portOf(l)!])),
      captured: (() => {
        const c = transparent.listeners.find((l) => l.group === null);
        return c ? portOf(c) : null;
      })(),
      dns: d.dns?.addresses[0]?.port ?? null,
    };
  }

  /**
   * The backend's listener address changed (Windows: another interface carries the default route):
   * the listeners are re-bound there and the plan applied again with their new ports. Until then
   * the reflection drops SYNs from the new address (fail closed). If it fails, the skeleton is
   * installed: selected traffic refused rather than direct.
   */
  async #rebindTransparent(): Promise<void> {
    const d = this.#d;
    if (this.#hooks.stopping() || !d.enforcing || this.suspended || !d.backend) return;
    try {
      // The old listeners stop accepting; their live connections run on (close() would wait for them).
      const old = d.transparent;
      d.transparent = null;
      void old?.close();
      await this.#bindTransparent(d.config);
      await this.apply(d.live.config);
      d.log.info({ ports: this.#ports }, 'transparent listeners re-bound to the new interface address');
    } catch (err) {
      d.log.error({ err }, 'cannot re-bind the transparent listeners; installing the fail-closed skeleton');
      await d.backend.skeleton().catch(() => {});
      this.#plan = null;
      throw err;
    }
  }

  /**
   * A group removed and re-created by hand (or a table edited behind our back) silently stops
   * matching: the rules hold the old cgroup id. Check periodically and re-apply the plan; when
   * that fails, install the skeleton (selected traffic refused rather than direct) and say so.
   */
  #startRepairCheck(): void {
    const d = this.#d;
    const every = d.opts.repairIntervalMs ?? 5000;
    const backend = d.backend;
    if (every <= 0 || !backend || typeof backend.repair !== 'function') return;
    let busy = false;
    this.#repairTimer = setInterval(() => {
      if (busy || this.#hooks.stopping()) return;
      busy = true;
      // Serialised with reloads: a reload's apply must not interleave with a repair.
      const check = this.#hooks.queued().then(() => backend.repair!());
      void check
        .then(
          (problems) => {
            if (problems.length === 0) return;
            this.lastRepair = { at: Date.now(), problems, ok: true, error: null };
            d.log.warn({ problems }, 'OS enforcement state drifted from the plan; re-applied');
          },
          async (err: unknown) => {
            this.lastRepair = { at: Date.now(), problems: [], ok: false, error: (err as Error).message };
            d.log.error({ err }, 'OS enforcement state drifted and could not be repaired; installing the fail-closed skeleton');
            await backend.skeleton().catch(() => {});
          },
        )
        .finally(() => {
          busy = false;
        });
    }, every);
    this.#repairTimer.unref();
  }
}
