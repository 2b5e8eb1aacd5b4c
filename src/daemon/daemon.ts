// The daemon: owns every long-lived resource and wires the parts together.
//
// Start order (each step's resources are released if a later one fails):
//   config → policy → OS backend (only when [enforce] asks; unavailable = refuse to start) →
//   DNS forwarder → egress set → mixed + transparent inbounds → plan applied → control server →
//   supervised egress processes → health probes → config watcher.
// Stop order is the reverse. With enforcement on, stop leaves the backend's fail-closed skeleton
// (selected traffic refused, nothing direct) until the next `up` or `down`.
//
// This file is the lifecycle and the live half of an activation; the OS enforcement (plan,
// transparent listeners, repair, `enforce on|off`) is src/daemon/enforcement.ts and the supervised
// egress processes are src/daemon/supervision.ts.
import { mkdirSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import type { AddressInfo } from 'node:net';
import { loadConfigFile } from '../config-file.ts';
import { expandLists, listPath } from '../lists-load.ts';
import { DaemonLists } from './lists.ts';
import { DaemonError, SwitchyardError, isSwitchyardError } from '../errors.ts';
import { createLogger, type Logger } from '../log.ts';
import { resolvePaths, type Paths } from '../paths.ts';
import { compilePolicy, defaultConfig, type Config } from '../policy/index.ts';
import { startDnsForwarder, type DnsForwarder, type DnsLog } from '../dns/index.ts';
import { createEgressSet, type EgressSet } from '../egress/index.ts';
import { SessionTable, startMixedInbound, type FrontDeps, type MixedInbound } from '../front/index.ts';
import type { TransparentInbounds } from '../front/transparent.ts';
import type { FlowIdentity, FlowRecord } from '../flow/types.ts';
import { createRedirectBackend, type RedirectBackend, type BackendOptions } from '../redirect/index.ts';
import { ControlServer, MethodRegistry } from '../control/index.ts';
import { unixPeerIdentity } from '../control/identity-unix.ts';
import { windowsPipeListener } from '../control/identity-windows.ts';
import { isPipeEndpoint } from '../control/endpoint.ts';
import { LivePolicy } from './live-policy.ts';
import type { Supervisor } from './supervisor.ts';
import { Enforcement, type RepairReport } from './enforcement.ts';
import { captureEgresses } from './capture.ts';
import { Supervision } from './supervision.ts';
import { NO_GLUE, osGlue, sessionsForFdLimit, type OsGlue } from './os-glue.ts';
import { ConfigWatcher } from './watch.ts';
import { registerMethods } from './methods.ts';
import { egressFingerprint, restartOnlyChanges } from './config-diff.ts';
import { Revisions } from './revisions.ts';
import type { Actor } from '../store/index.ts';

export interface DaemonOptions {
  /** Config file; null/undefined = the embedded default. */
  configPath?: string | null;
  logLevel?: string;
  log?: Logger;
  paths?: Paths;
  /** Injection point: a FlowIdentity to use instead of the OS one (tests, other platforms). */
  identity?: FlowIdentity;
  /** Watch the config file and reload on change (default true when a file is given). */
  watch?: boolean;
  /** Debounce of the file watcher, ms. */
  watchDebounceMs?: number;
  backend?: BackendOptions;
  /**
   * While enforcing: how often the OS state is checked against the plan and repaired (a group
   * removed and re-created by hand), ms. Default 5000; 0 = never.
   */
  repairIntervalMs?: number;
}

export interface ReloadResult {
  /** The candidate became active. */
  applied: boolean;
  /** The candidate revision (null when the file holds the running policy already). */
  revision: number | null;
  /** `active`, `pending` (waits for `switchyard approve`) or `unchanged`. */
  state: 'active' | 'pending' | 'unchanged';
  risk: { level: string; reasons: string[] } | null;
  generation: number;
  trigger: string;
  /** Parts of the config that changed but need a restart (listen addresses, control, enforce). */
  restartNeeded: string[];
  egressRebuilt: boolean;
  /** Live flows whose decision differs under the new policy (`switchyard close --changed`). */
  changedFlows: number;
}

export interface LastReload {
  at: number;
  trigger: string;
  ok: boolean;
  error: { code: string; message: string } | null;
  /** The candidate revision the reload made (or reused), and what became of it. */
  revision: number | null;
  state: string | null;
}

export interface LiveSnapshot {
  config: Config;
  policy: import('../policy/types.ts').Policy;
  egress: EgressSet;
  plan: import('../redirect/index.ts').RedirectPlan | null;
}

export interface ApplyOutcome {
  restartNeeded: string[];
  egressRebuilt: boolean;
}

/** Who a flow belongs to, for the control privacy filter: uid on Unix, user SID on Windows (null: unknown). */
export interface FlowOwner {
  uid: number | null;
  sid: string | null;
}

export class Daemon {
  readonly opts: DaemonOptions;
  readonly log: Logger;
  readonly paths: Paths;
  readonly startedAt = Date.now();
  configPath: string | null;
  config!: Config;
  live!: LivePolicy;
  dns: DnsForwarder | null = null;
  egress!: EgressSet;
  sessions!: SessionTable;
  deps!: FrontDeps;
  mixed: MixedInbound | null = null;
  transparent: TransparentInbounds | null = null;
  backend: RedirectBackend | null = null;
  enforcing = false;
  glue: OsGlue = NO_GLUE;
  control: ControlServer | null = null;
  lastReload: LastReload | null = null;
  revisions!: Revisions;
  lists!: DaemonLists;
  /** flow id → owner (uid on Unix, SID on Windows; null = looked up, unknown), for the privacy of conns/rdns. */
  readonly owners = new Map<string, FlowOwner>();
  #watcher: ConfigWatcher | null = null;
  /** Plan, transparent listeners, repair check, `enforce on|off` (src/daemon/enforcement.ts). */
  readonly #enforcement: Enforcement;
  /** The supervised egress processes (src/daemon/supervision.ts). */
  readonly #supervision: Supervision;
  #reloading: Promise<unknown> = Promise.resolve();
  #stopping: Promise<void> | null = null;
  #resolveDone!: () => void;
  /** Settles when the daemon has stopped (by stop(), a signal or `switchyard stop`). */
  readonly done: Promise<void> = new Promise((r) => (this.#resolveDone = r));

  constructor(opts: DaemonOptions = {}) {
    this.opts = opts;
    this.configPath = opts.configPath ? resolvePath(opts.configPath) : null;
    this.log = opts.log ?? createLogger({ level: opts.logLevel, component: 'daemon' });
    this.paths = opts.paths ?? resolvePaths();
    const stopping = () => this.#stopping !== null;
    this.#enforcement = new Enforcement(this, { stopping, queued: () => this.#reloading });
    this.#supervision = new Supervision(this, { stopping, wrap: () => this.#enforcement.exemptWrap() });
  }

  /** Enforcement switched off at run time (`switchyard enforce off`): nothing is installed in the OS. */
  get suspended(): boolean {
    return this.#enforcement.suspended;
  }

  /** Last periodic check of the OS state: what it found, and whether it could repair it. */
  get lastRepair(): RepairReport | null {
    return this.#enforcement.lastRepair;
  }

  /** egress name → the supervisor of its process. */
  get supervisors(): Map<string, Supervisor> {
    return this.#supervision.all;
  }

  /** Watchers of the running config's `path` lists: an edited list file is a changed config. */
  #listWatchers = new Map<string, ConfigWatcher>();

  #watchListFiles(config: Config): void {
    if (!this.configPath || this.opts.watch === false) return;
    // Lists of the config file only: an imported list file has its own (linked/snapshot) watcher.
    const want = new Set((config.lists ?? []).filter((l) => l.path !== null).map((l) => listPath(l, this.configPath)).filter((p) => !this.revisions.isImportSource(p)));
    for (const [p, w] of this.#listWatchers) if (!want.has(p)) (w.close(), this.#listWatchers.delete(p));
    for (const p of want) {
      if (this.#listWatchers.has(p)) continue;
      // Like the config file's watcher: never activates by itself, the change becomes pending.
      const w = new ConfigWatcher(p, this.opts.watchDebounceMs ?? 300, () => void this.reload('file change').catch(() => {}));
      w.start();
      this.#listWatchers.set(p, w);
    }
  }

  /** The config (a revision's) the running policy was compiled from, before its lists were expanded. */
  #compiledFrom: Config | null = null;

  async #expand(config: Config) {
    const platform = process.platform === 'win32' ? ('windows' as const) : ('linux' as const);
    return expandLists(config, { configPath: this.configPath, cache: this.lists.cache, platform });
  }

  get generation(): number {
    return this.live.current.generation;
  }

  loadConfig(): Config {
    return this.configPath ? loadConfigFile(this.configPath) : defaultConfig();
  }

  async start(): Promise<void> {
    try {
      await this.#start();
    } catch (err) {
      this.log.error({ err }, 'daemon failed to start; releasing what was started');
      await this.#release(false);
      this.#resolveDone();
      throw err;
    }
  }

  async #start(): Promise<void> {
    mkdirSync(this.paths.stateDir, { recursive: true, mode: 0o700 });
    // The policy that runs is the store's active revision (integrity-checked), not the file: see
    // src/daemon/revisions.ts for the first start and a file changed while the daemon was down.
    this.revisions = Revisions.open(this);
    const config = this.revisions.startupConfig();
    this.config = config;
    this.lists = new DaemonLists(this);
    const expanded = await this.#expand(config);
    this.live = new LivePolicy(compilePolicy(expanded.config));
    this.#compiledFrom = config;
    this.lists.result = expanded.result;
    this.enforcing = config.enforce.enabled;

    // The backend tells which OS this is (src/redirect/index.ts asks); it touches the OS only when
    // enforcing. When it cannot even be made, enforcement is refused below.
    let os: string | null = null;
    try {
      this.backend = await createRedirectBackend({ config: () => this.config, policy: () => this.live, ...this.opts.backend });
      os = this.backend.os;
    } catch (err) {
      if (this.enforcing) throw new DaemonError('SY_ERR_DAEMON_ENFORCE', `[enforce] enabled, but the OS backend cannot start: ${(err as Error).message}; refusing to run unenforced`, err);
      this.backend = null;
    }
    if (!this.enforcing && this.backend) {
      await this.backend.close();
      this.backend = null;
    }
    const groupOfPort = (port: number) => this.transparent?.listeners.find((l) => l.port4 === port || l.port6 === port)?.group ?? undefined;
    this.glue = await osGlue(os, this.enforcing, groupOfPort, this.backend);
    const identity = this.opts.identity ?? this.glue.identity;

    const dnsLog: DnsLog = this.log.child({ component: 'dns' });
    this.dns = await startDnsForwarder({
      config,
      projectDomain: (n) => this.dnsProjection(n),
      stateDir: this.paths.stateDir,
      log: dnsLog,
      // While enforcement is switched off at run time (`switchyard enforce off`) there are no sets to fill.
      // Captured sets are for what neither groups nor static CIDR sets already redirect: the DNS-side
      // projection counts app and CIDR rules for every name, so one such rule would put every
      // resolved address into the captured set (projectDomain's `capture` option leaves them out).
      ...(this.enforcing && this.backend
        ? {
            onBindings: async (b) => {
              if (this.#enforcement.suspended) return;
              const batch = b.map((x) => ({ ...x, egresses: captureEgresses(x.name, x.egresses, this.live) }));
              await this.backend!.addBindings(batch);
            },
          }
        : {}),
      // While enforcing, the captured sets outlive a crash (the table stays) but the names behind
      // them live in the store: flush it often (a journal append of what changed, docs/dns.md), so
      // that after a SIGKILL and `up` the front door still knows which domain (and so which egress)
      // a captured address belongs to.
      ...(this.enforcing ? { autosaveSeconds: 2 } : {}),
      ...(this.glue.dnsConnectTcp ? { connectTcp: this.glue.dnsConnectTcp } : {}),
      ...(this.glue.dnsUdpSocket ? { udpSocket: this.glue.dnsUdpSocket } : {}),
      ...(this.glue.dnsInterfaceSockets ? { interfaceSockets: this.glue.dnsInterfaceSockets } : {}),
      ...(this.glue.dnsReadAdapters ? { readAdapters: this.glue.dnsReadAdapters } : {}),
    });
    this.egress = this.#makeEgressSet(config);
    this.sessions = new SessionTable({ maxSessions: config.inbound.maxSessions });
    this.#checkFdLimit(config.inbound.maxSessions);
    this.deps = {
      policy: this.live,
      egress: this.egress,
      sessions: this.sessions,
      inbound: config.inbound,
      store: this.dns.store,
      ...(identity ? { identity } : {}),
      onFlow: (e) => {
        this.live.count(e.record.decision, e.outcome);
        if (e.outcome === 'refused') this.log.debug({ egress: e.record.egress, error: e.error }, 'flow refused');
      },
    };
    if (config.inbound.mixed) this.mixed = await startMixedInbound(this.deps);

    // The OS plan is built from the compiled config: list rules (apps too) included.
    if (this.enforcing) await this.#enforcement.start(this.live.config);

    this.control = new ControlServer({
      endpoint: this.paths.controlEndpoint,
      mode: this.paths.mode,
      registry: registerMethods(new MethodRegistry(), this),
      // Windows: the daemon serves its own pipe instances and identifies each caller by its token.
      ...(isPipeEndpoint(this.paths.controlEndpoint)
        ? { listenPipe: windowsPipeListener({ mode: this.paths.mode, group: config.control.group, readUsers: config.control.readUsers }) }
        : { identify: unixPeerIdentity }),
      group: config.control.group,
      readUsers: config.control.readUsers,
      log: this.log.child({ component: 'control' }),
    });
    await this.control.listen();

    this.#supervision.reconcile(config);
    this.egress.start();
    this.lists.schedule(config);
    if (this.configPath && this.opts.watch !== false) {
      this.#watcher = new ConfigWatcher(this.configPath, this.opts.watchDebounceMs ?? 300, () => {
        // Never activates by itself: the change becomes a pending revision (with an alert).
        void this.reload('file change').catch(() => {
          /* logged and recorded in lastReload */
        });
      });
      this.#watcher.start();
      this.#watchListFiles(config);
    }
    this.revisions.startWatchers(this.opts.watchDebounceMs ?? 300);
    this.log.info(
      {
        generation: this.generation,
        enforcing: this.enforcing,
        mode: this.paths.mode,
        dnsPorts: this.dns.addresses.map((a) => a.port),
        mixedPort: this.mixed?.address.port ?? null,
        egresses: Object.keys(config.egress).length,
        rules: config.rules.length,
      },
      'switchyard is up',
    );
  }

  /**
   * The forwarder's view of a name: the policy's projection, except that with `block_doh` (while
   * enforcing) known DoH endpoint names are answered as blocked, so browsers use system DNS.
   */
  dnsProjection(name: string): import('../policy/types.ts').DomainProjection {
    return this.#enforcement.dohBlocked(name) ?? this.live.projectDomain(name);
  }

  /** The session cap must fit the fd limit raised at start; a cap that does not is logged. */
  #checkFdLimit(maxSessions: number): void {
    if (this.glue.fdLimitError) this.log.warn({ error: this.glue.fdLimitError }, 'cannot raise the open-file limit');
    const lim = this.glue.fdLimit;
    if (!lim) return;
    const fits = sessionsForFdLimit(lim.soft);
    if (maxSessions > fits) this.log.warn({ maxSessions, fdSoftLimit: lim.soft, fits }, '[inbound] max_sessions exceeds what the open-file limit holds; a flood of flows could starve DNS of sockets (docs/front.md)');
    else this.log.debug({ maxSessions, fdSoftLimit: lim.soft, fdHardLimit: lim.hard }, 'open-file limit raised');
  }

  #makeEgressSet(config: Config): EgressSet {
    const set = createEgressSet({
      egresses: config.egress,
      resolver: this.dns!.resolver,
      connectTimeoutMs: config.inbound.connectTimeoutMs,
      ...(this.glue.socketFactory ? { socketFactory: this.glue.socketFactory } : {}),
      ...(this.glue.udpSocketHook ? { udpSocketHook: this.glue.udpSocketHook } : {}),
      ...(this.glue.udpDeviceBinder ? { udpDeviceBinder: this.glue.udpDeviceBinder } : {}),
    });
    set.on('health', (s) => this.log.info({ egress: s.egress, state: s.state }, 'egress health changed'));
    return set;
  }

  /**
   * `switchyard enforce on|off` for a daemon started with [enforce] enabled. Off removes what the
   * backend installed (table and groups; processes go back) — traffic is then not steered at the
   * OS level at all, on purpose, until `on`. On applies the plan again, puts the daemon and the
   * supervised cores back into the exempt group and makes cached DNS answers re-fill the sets.
   * Serialised with reloads.
   */
  setEnforcement(on: boolean): Promise<{ active: boolean; changed: boolean }> {
    return this.serial(() => this.#enforcement.set(on));
  }

  /**
   * `switchyard reload` (trigger `control`) and the file watcher (`file change`): the config file
   * becomes a candidate revision (src/daemon/revisions.ts decides whether it is activated at once
   * or waits for `switchyard approve`). Calls are serialised with every other store change.
   */
  reload(trigger: string, opts: { interactive?: boolean; actor?: Actor } = {}): Promise<ReloadResult> {
    return this.serial(async () => {
      if (this.#stopping) throw new DaemonError('SY_ERR_DAEMON_STOPPING', 'the daemon is stopping');
      try {
        const r = await this.revisions.fromConfigFile(trigger, opts.interactive === true, opts.actor ?? this.revisions.selfActor);
        this.lastReload = { at: Date.now(), trigger, ok: true, error: null, revision: r.revision, state: r.state };
        return r;
      } catch (err) {
        const e = isSwitchyardError(err) ? err : new SwitchyardError('SY_ERR_INTERNAL', String(err));
        this.lastReload = { at: Date.now(), trigger, ok: false, error: { code: e.code, message: e.message }, revision: null, state: null };
        this.log.warn({ trigger, code: e.code }, 'config refused; the running policy stays');
        // Only an invalid file is "refused"; an activation that failed says so with its own code.
        if (!e.code.startsWith('SY_ERR_CONFIG')) throw e;
        throw new DaemonError('SY_ERR_DAEMON_RELOAD', `config refused, the running policy stays (generation ${this.generation}): ${e.code}: ${e.message}`, e);
      }
    });
  }

  /** Runs store-changing work one at a time (reload, approve, reject, rollback, import, watchers). */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#reloading.then(fn);
    this.#reloading = next.catch(() => {});
    return next;
  }

  // ---- the live half of an atomic activation (src/store/apply.ts calls these through revisions.ts)

  /** What is running now, to put back if an activation fails before its commit point. */
  snapshotLive(): LiveSnapshot {
    return { config: this.config, policy: this.live.current.policy, egress: this.egress, plan: this.#enforcement.plan };
  }

  /**
   * Swaps in `config`: OS plan first (one backend transaction), then policy, egress set and the
   * DNS projection in one synchronous step. The old egress set keeps running until commit, so a
   * restore can put it back untouched.
   */
  async applyLive(config: Config): Promise<ApplyOutcome> {
    // [[list]] rules come from the bodies the revision pins (src/lists-load.ts); a list that
    // cannot be read fails the activation and the running policy stays.
    const expanded = await this.#expand(config);
    const policy = compilePolicy(expanded.config);
    const old = this.config;
    const restartNeeded = restartOnlyChanges(old, config);
    const egressRebuilt = egressFingerprint(old) !== egressFingerprint(config);
    if (this.enforcing && egressRebuilt) {
      // The OS groups and transparent listeners were made for the egress list at start.
      throw new DaemonError('SY_ERR_DAEMON_RELOAD', 'this revision changes the egress list, which cannot change while enforcing (the OS groups and transparent listeners are made at start); the running policy stays');
    }
    if (this.enforcing && !this.#enforcement.suspended) {
      await this.#enforcement.apply(expanded.config);
      // Addresses the store already holds follow the new policy too: a cached name that now takes a
      // proxy is captured before the swap, not only when its app asks again.
      await this.#enforcement.captureStored(policy);
    }
    const newSet = egressRebuilt ? this.#makeEgressSet(config) : this.egress;
    // The swap: synchronous, so no flow is decided between its parts.
    this.live.swap(policy);
    this.#compiledFrom = config;
    this.lists.result = expanded.result;
    this.egress = newSet;
    this.deps.egress = newSet;
    this.config = config;
    this.dns?.setPolicy((n) => this.dnsProjection(n), config.egress);
    if (egressRebuilt) newSet.start();
    return { restartNeeded, egressRebuilt };
  }

  /** Reads back what runs: the policy object holds `config`, and the OS plan is the one built for it. */
  async verifyLive(config: Config): Promise<void> {
    if (this.#compiledFrom !== config || this.config !== config || this.deps.egress !== this.egress) {
      throw new DaemonError('SY_ERR_DAEMON_RELOAD', 'verify: the running policy is not the revision just applied');
    }
    if (this.enforcing && this.backend) {
      const st = await this.backend.status();
      if (st.state !== 'active') throw new DaemonError('SY_ERR_DAEMON_ENFORCE', `verify: the OS backend reports ${st.state}${st.problems.length ? `: ${st.problems.join('; ')}` : ''}`);
    }
  }

  async restoreLive(snap: LiveSnapshot): Promise<void> {
    if (this.enforcing && snap.plan && this.#enforcement.plan !== snap.plan) await this.#enforcement.apply(snap.policy.config);
    const replaced = this.egress;
    this.live.swap(snap.policy);
    this.#compiledFrom = snap.config;
    this.egress = snap.egress;
    this.deps.egress = snap.egress;
    this.config = snap.config;
    this.dns?.setPolicy((n) => this.dnsProjection(n), snap.config.egress);
    if (replaced !== snap.egress) replaced.stop();
  }

  /** After the commit point: release what the old revision used, start what the new one needs. */
  afterCommit(snap: LiveSnapshot): void {
    if (snap.egress !== this.egress) snap.egress.stop();
    if (this.#watcher) this.#watchListFiles(this.config);
    this.#supervision.reconcile(this.config);
  }

  /** Would the running policy send this live flow elsewhere now? */
  decisionChanged(f: FlowRecord): boolean {
    const q = queryOfFlow(f);
    let now: string;
    try {
      now = this.live.decide(q).egress;
    } catch {
      return true;
    }
    return now !== f.decision.egress;
  }

  /** Stops everything; safe to call more than once (later calls wait for the first). */
  stop(reason = 'stop requested'): Promise<void> {
    this.#stopping ??= (async () => {
      this.log.info({ reason }, 'stopping');
      await this.#release(true);
      this.log.info('stopped');
      this.#resolveDone();
    })();
    return this.#stopping;
  }

  async #release(leaveSkeleton: boolean): Promise<void> {
    const step = async (what: string, fn: () => Promise<unknown> | unknown) => {
      try {
        await fn();
      } catch (err) {
        this.log.warn({ err, what }, 'release step failed');
      }
    };
    this.#watcher?.close();
    this.#watcher = null;
    for (const w of this.#listWatchers.values()) w.close();
    this.#listWatchers.clear();
    this.lists?.stop();
    this.revisions?.close();
    this.#enforcement.stopRepairCheck();
    if (this.mixed) await step('mixed inbound', () => this.mixed!.close());
    if (this.transparent) await step('transparent inbounds', () => this.transparent!.close());
    this.sessions?.closeAll('daemon stopping');
    if (this.egress) this.egress.stop();
    await this.#supervision.stopAll(step);
    if (this.dns) await step('dns', () => this.dns!.close());
    if (this.backend) {
      const b = this.backend;
      // Fail closed: selected traffic stays refused until the next `up` or `down`.
      if (leaveSkeleton && this.#enforcement.leavesSkeleton) await step('backend skeleton', () => b.skeleton());
      await step('backend close', () => b.close());
    }
    if (this.control) await step('control server', () => this.control!.close());
    this.mixed = null;
    this.transparent = null;
    this.dns = null;
    this.backend = null;
    this.control = null;
  }

  mixedAddress(): AddressInfo | null {
    return this.mixed?.address ?? null;
  }
}

/** The policy question a live flow answers, rebuilt from its record. */
export function queryOfFlow(f: FlowRecord): import('../policy/types.ts').FlowQuery {
  const q: import('../policy/types.ts').FlowQuery = { network: f.network, port: f.dst.port };
  if ('address' in f.dst) q.ip = f.dst.address;
  if (f.domain) q.domain = f.domain;
  if (f.process?.name) q.process = f.process.name;
  if (f.process?.exe) q.exe = f.process.exe;
  if (f.process?.user) q.user = f.process.user;
  return q;
}
