// The daemon: owns every long-lived resource and wires the parts together.
//
// Start order (each step's resources are released if a later one fails):
//   config → policy → OS backend (only when [enforce] asks; unavailable = refuse to start) →
//   DNS forwarder → egress set → mixed + transparent inbounds → plan applied → control server →
//   supervised egress processes → health probes → config watcher.
// Stop order is the reverse. With enforcement on, stop leaves the backend's fail-closed skeleton
// (selected traffic refused, nothing direct) until the next `up` or `down`.
import { mkdirSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import type { AddressInfo } from 'node:net';
import { loadConfigFile } from '../config-file.ts';
import { expandLists, listPath } from '../lists-load.ts';
import { DaemonLists } from './lists.ts';
import { ControlError, DaemonError, SwitchyardError, isSwitchyardError } from '../errors.ts';
import { createLogger, type Logger } from '../log.ts';
import { resolvePaths, type Paths } from '../paths.ts';
import { compilePolicy, defaultConfig, type Config } from '../policy/index.ts';
import { startDnsForwarder, type DnsForwarder, type DnsLog } from '../dns/index.ts';
import { createEgressSet, type EgressSet } from '../egress/index.ts';
import { SessionTable, startMixedInbound, type FrontDeps, type MixedInbound } from '../front/index.ts';
import { startTransparentInbounds, type TransparentInbounds } from '../front/transparent.ts';
import type { FlowIdentity, FlowRecord } from '../flow/types.ts';
import { readDohList } from '../redirect/doh-file.ts';
import { dohNameMatcher } from '../redirect/doh.ts';
import { createRedirectBackend, buildPlan, type RedirectBackend, type BackendOptions } from '../redirect/index.ts';
import { ControlServer, MethodRegistry } from '../control/index.ts';
import { unixPeerIdentity } from '../control/identity-unix.ts';
import { windowsPipeCaller } from '../control/identity-windows.ts';
import { isPipeEndpoint } from '../control/endpoint.ts';
import { LivePolicy } from './live-policy.ts';
import { Supervisor } from './supervisor.ts';
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
  /** Enforcement switched off at run time (`switchyard enforce off`): nothing is installed in the OS. */
  suspended = false;
  glue: OsGlue = NO_GLUE;
  control: ControlServer | null = null;
  supervisors = new Map<string, Supervisor>();
  lastReload: LastReload | null = null;
  revisions!: Revisions;
  lists!: DaemonLists;
  /** flow id → owner uid (null = looked up, unknown), for the privacy of conns/rdns. */
  readonly owners = new Map<string, number | null>();
  #watcher: ConfigWatcher | null = null;
  #repairTimer: NodeJS.Timeout | null = null;
  /** Last periodic check of the OS state: what it found, and whether it could repair it. */
  lastRepair: { at: number; problems: string[]; ok: boolean; error: string | null } | null = null;
  #ports: import('../redirect/index.ts').ListenerPorts | null = null;
  #plan: import('../redirect/index.ts').RedirectPlan | null = null;
  /** `block_doh`: names of known DoH endpoints, answered as blocked while enforcing (null = off). */
  #dohNames: ((name: string) => boolean) | null = null;
  #watchRules: unknown[] | null = null;
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
              if (this.suspended) return;
              const batch = b.map((x) => (x.egresses.every((e) => e === 'direct') ? x : { ...x, egresses: this.live.projectDomain(x.name, { capture: true }).egresses }));
              await this.backend!.addBindings(batch);
            },
          }
        : {}),
      // While enforcing, the captured sets outlive a crash (the table stays) but the names behind
      // them live in the store: save it often, so that after a SIGKILL and `up` the front door
      // still knows which domain (and so which egress) a captured address belongs to.
      ...(this.enforcing ? { autosaveSeconds: 2 } : {}),
      ...(this.glue.dnsConnectTcp ? { connectTcp: this.glue.dnsConnectTcp } : {}),
      ...(this.glue.dnsUdpSocket ? { udpSocket: this.glue.dnsUdpSocket } : {}),
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
    if (this.enforcing) await this.#enforce(this.live.config);

    this.control = new ControlServer({
      endpoint: this.paths.controlEndpoint,
      mode: this.paths.mode,
      registry: registerMethods(new MethodRegistry(), this),
      identify: isPipeEndpoint(this.paths.controlEndpoint) ? () => windowsPipeCaller(this.paths.mode) : unixPeerIdentity,
      group: config.control.group,
      readUsers: config.control.readUsers,
      log: this.log.child({ component: 'control' }),
    });
    await this.control.listen();
    if (isPipeEndpoint(this.paths.controlEndpoint) && config.control.readUsers.length > 0) {
      this.log.warn('[control] read_users has no effect on Windows yet: only the daemon user, elevated Administrators and LocalSystem can open the control pipe (docs/windows.md)');
    }

    this.#reconcileSupervisors(config);
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

  async #enforce(config: Config): Promise<void> {
    const backend = this.backend;
    if (!backend) throw new DaemonError('SY_ERR_DAEMON_ENFORCE', '[enforce] enabled, but no OS backend exists here; refusing to run unenforced');
    if (!this.deps.identity) throw new DaemonError('SY_ERR_DAEMON_ENFORCE', `[enforce] enabled, but no FlowIdentity exists for ${backend.os}; refusing to run unenforced`);
    await this.#bindTransparent(config);
    await this.#applyEnforcement(this.live.config); // the expanded config: list rules count too
    // Backends whose listener address follows the interfaces (Windows) ask for a re-bind.
    backend.onListenHostsChange?.(() => {
      void this.serial(() => this.#rebindTransparent()).catch(() => {
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
    this.log.info({ groups: this.#plan?.groups.length ?? 0 }, 'enforcement active');
    this.#startRepairCheck();
  }

  /**
   * Starts the transparent listeners where the backend says (Windows: the interface address) or on
   * the configured address, and records their ports for the plan.
   */
  async #bindTransparent(config: Config): Promise<void> {
    const groups = Object.keys(config.egress).filter((n) => n !== 'direct' && n !== 'block');
    let hosts: { host4: string | null; host6: string | null } | undefined;
    try {
      hosts = this.backend?.listenHosts?.();
    } catch (err) {
      // The backend's own refusals (Windows: not elevated, no WinDivert, WFP 0x6E4) keep their code.
      if (isSwitchyardError(err)) throw err;
      throw new DaemonError('SY_ERR_DAEMON_ENFORCE', `no address for the transparent listeners: ${(err as Error).message}`, err);
    }
    this.transparent = await startTransparentInbounds(this.deps, { groups, ...(hosts ?? {}) });
    // The nft rules name one port per listener for both families (`redirect to :port`): IPv6 flows
    // would land on a port where the IPv4 listener's twin is not. Refuse instead of half-working.
    const split = this.transparent.listeners.find((l) => l.port4 !== null && l.port6 !== null && l.port4 !== l.port6);
    if (split) throw new DaemonError('SY_ERR_DAEMON_ENFORCE', `transparent listener ${split.group ?? 'captured'} got port ${split.port4} on IPv4 but ${split.port6} on IPv6; the OS rules need one port for both (try again)`);
    // A family may have no listener (Windows: an interface without IPv4); the port is either's.
    const portOf = (l: { port4: number | null; port6: number | null }) => l.port4 ?? l.port6;
    this.#ports = {
      groups: Object.fromEntries(this.transparent.listeners.filter((l) => l.group !== null && portOf(l) !== null).map((l) => [l.group!, portOf(l)!])),
      captured: (() => {
        const c = this.transparent.listeners.find((l) => l.group === null);
        return c ? portOf(c) : null;
      })(),
      dns: this.dns?.addresses[0]?.port ?? null,
    };
  }

  /**
   * The backend's listener address changed (Windows: another interface carries the default route):
   * the listeners are re-bound there and the plan applied again with their new ports. Until then
   * the reflection drops SYNs from the new address (fail closed). If it fails, the skeleton is
   * installed: selected traffic refused rather than direct.
   */
  async #rebindTransparent(): Promise<void> {
    if (this.#stopping || !this.enforcing || this.suspended || !this.backend) return;
    try {
      // The old listeners stop accepting; their live connections run on (close() would wait for them).
      const old = this.transparent;
      this.transparent = null;
      void old?.close();
      await this.#bindTransparent(this.config);
      await this.#applyEnforcement(this.live.config);
      this.log.info({ ports: this.#ports }, 'transparent listeners re-bound to the new interface address');
    } catch (err) {
      this.log.error({ err }, 'cannot re-bind the transparent listeners; installing the fail-closed skeleton');
      await this.backend.skeleton().catch(() => {});
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
    const every = this.opts.repairIntervalMs ?? 5000;
    const backend = this.backend;
    if (every <= 0 || !backend || typeof backend.repair !== 'function') return;
    let busy = false;
    this.#repairTimer = setInterval(() => {
      if (busy || this.#stopping) return;
      busy = true;
      // Serialised with reloads: a reload's apply must not interleave with a repair.
      const check = this.#reloading.then(() => backend.repair!());
      void check
        .then(
          (problems) => {
            if (problems.length === 0) return;
            this.lastRepair = { at: Date.now(), problems, ok: true, error: null };
            this.log.warn({ problems }, 'OS enforcement state drifted from the plan; re-applied');
          },
          async (err: unknown) => {
            this.lastRepair = { at: Date.now(), problems: [], ok: false, error: (err as Error).message };
            this.log.error({ err }, 'OS enforcement state drifted and could not be repaired; installing the fail-closed skeleton');
            await backend.skeleton().catch(() => {});
          },
        )
        .finally(() => {
          busy = false;
        });
    }, every);
    this.#repairTimer.unref();
  }

  /**
   * Installs the plan for `config` (one transaction in the backend, rolled back by it on failure)
   * and (re)starts the process watcher that places apps into their groups. Skipped when nothing
   * changed. Throws SY_ERR_DAEMON_ENFORCE; the caller refuses to start, or refuses the reload.
   */
  /**
   * The forwarder's view of a name: the policy's projection, except that with `block_doh` (while
   * enforcing) known DoH endpoint names are answered as blocked, so browsers use system DNS.
   */
  dnsProjection(name: string): import('../policy/types.ts').DomainProjection {
    if (this.#dohNames && !this.suspended && this.#dohNames(name)) return { egresses: ['block'], uniform: true, egress: 'block', rule: null };
    return this.live.projectDomain(name);
  }

  async #applyEnforcement(config: Config): Promise<void> {
    const backend = this.backend!;
    let doh;
    try {
      doh = readDohList(config);
    } catch (err) {
      throw new DaemonError('SY_ERR_DAEMON_ENFORCE', `the OS backend refused the plan: ${isSwitchyardError(err) ? `${err.code}: ` : ''}${(err as Error).message}`, err);
    }
    const plan = buildPlan({ config, ports: this.#ports!, ...(doh ? { doh } : {}) });
    const rules = this.glue.watchRules?.(config) ?? [];
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
        this.log.info({ mode: w.mode, netlink: w.netlink, placed: w.initial, reason: w.reason }, 'process watcher started');
      }
      this.#watchRules = rules;
    } catch (err) {
      throw new DaemonError('SY_ERR_DAEMON_ENFORCE', `the OS backend refused the plan: ${isSwitchyardError(err) ? `${err.code}: ` : ''}${(err as Error).message}`, err);
    }
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

  /** Starts, keeps or stops the supervised process of each egress to match the config. */
  #reconcileSupervisors(config: Config): void {
    const want = new Map<string, NonNullable<Config['egress'][string]['process']>>();
    for (const [name, e] of Object.entries(config.egress)) if (e.process) want.set(name, e.process);
    for (const [name, sup] of this.supervisors) {
      const w = want.get(name);
      if (!w || JSON.stringify(w) !== JSON.stringify(sup.config)) {
        void sup.stop();
        this.supervisors.delete(name);
      }
    }
    for (const [name, proc] of want) {
      if (this.supervisors.has(name)) continue;
      const sup = new Supervisor({
        egress: name,
        process: proc,
        log: this.log,
        // While enforcement is switched off there is no exempt group (and nothing is redirected):
        // a core that restarts then starts plainly, and `enforce on` moves it into the group.
        // Without this it could not restart at all until `on` (commandInGroup refuses).
        wrap: this.enforcing && this.backend ? (argv: string[]) => (this.suspended ? argv : this.backend!.commandInGroup('exempt', argv)) : null,
        onState: (s) => this.#onSupervised(s.egress, s.state),
      });
      this.supervisors.set(name, sup);
      sup.start();
    }
  }

  /**
   * Health follows the process at once instead of at the next probe: an exited core is probed
   * (and found down) before a flow has to find out; a started one is probed until it answers.
   */
  #onSupervised(egress: string, state: string): void {
    if (state !== 'running' && state !== 'backoff') return;
    const probe = (left: number) => {
      if (this.#stopping || !this.egress.config(egress)) return;
      void this.egress.probe(egress).then((h) => {
        if (state === 'running' && h.state !== 'up' && left > 0) setTimeout(() => probe(left - 1), 200).unref();
      }, () => {});
    };
    probe(state === 'running' ? 25 : 0);
  }

  /**
   * `switchyard enforce on|off` for a daemon started with [enforce] enabled. Off removes what the
   * backend installed (table and groups; processes go back) — traffic is then not steered at the
   * OS level at all, on purpose, until `on`. On applies the plan again, puts the daemon and the
   * supervised cores back into the exempt group and makes cached DNS answers re-fill the sets.
   * Serialised with reloads.
   */
  setEnforcement(on: boolean): Promise<{ active: boolean; changed: boolean }> {
    return this.serial(() => this.#setEnforcement(on));
  }

  async #setEnforcement(on: boolean): Promise<{ active: boolean; changed: boolean }> {
    if (this.#stopping) throw new DaemonError('SY_ERR_DAEMON_STOPPING', 'the daemon is stopping');
    const backend = this.backend;
    if (!this.enforcing || !backend) {
      throw new DaemonError('SY_ERR_DAEMON_ENFORCE', 'enforcement is not enabled in the running config: set [enforce] enabled = true and restart the daemon');
    }
    if (on === !this.suspended) return { active: on, changed: false };
    if (!on) {
      if (this.#repairTimer) clearInterval(this.#repairTimer);
      this.#repairTimer = null;
      this.suspended = true;
      await backend.down();
      this.#plan = null;
      this.#watchRules = null;
      this.log.warn('enforcement switched off at run time (`switchyard enforce on` or a restart turns it on again)');
      return { active: false, changed: true };
    }
    await this.#applyEnforcement(this.live.config);
    try {
      await backend.placeProcess(process.pid, 'exempt');
      for (const sup of this.supervisors.values()) {
        const pid = sup.status().pid;
        if (pid !== null && pid !== undefined) await backend.placeProcess(pid, 'exempt').catch((err) => this.log.warn({ err, egress: sup.egress }, 'cannot put a supervised core back into the exempt group'));
      }
    } catch (err) {
      await backend.skeleton().catch(() => {});
      throw new DaemonError('SY_ERR_DAEMON_ENFORCE', `cannot place the daemon in the exempt group: ${(err as Error).message}; the skeleton is installed`, err);
    }
    this.suspended = false;
    // The sets start empty: cached answers must run the hook again on their next hit.
    this.dns?.forwarder.invalidateHooks();
    this.#startRepairCheck();
    this.log.info('enforcement switched on');
    return { active: true, changed: true };
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
    return { config: this.config, policy: this.live.current.policy, egress: this.egress, plan: this.#plan };
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
    if (this.enforcing && !this.suspended) await this.#applyEnforcement(expanded.config);
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
    if (this.enforcing && snap.plan && this.#plan !== snap.plan) await this.#applyEnforcement(snap.policy.config);
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
    this.#reconcileSupervisors(this.config);
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
    if (this.#repairTimer) clearInterval(this.#repairTimer);
    this.#repairTimer = null;
    if (this.mixed) await step('mixed inbound', () => this.mixed!.close());
    if (this.transparent) await step('transparent inbounds', () => this.transparent!.close());
    this.sessions?.closeAll('daemon stopping');
    if (this.egress) this.egress.stop();
    await Promise.all([...this.supervisors.values()].map((s) => step(`egress process ${s.egress}`, () => s.stop())));
    this.supervisors.clear();
    if (this.dns) await step('dns', () => this.dns!.close());
    if (this.backend) {
      const b = this.backend;
      // Fail closed: selected traffic stays refused until the next `up` or `down`.
      if (leaveSkeleton && this.enforcing && !this.suspended) await step('backend skeleton', () => b.skeleton());
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
