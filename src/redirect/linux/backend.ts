// The Linux OS backend: table `inet switchyard` + cgroup v2 groups. Owns the nft transaction
// (apply / skeleton / down), the in-process set updates (libnftables), the cgroup manager and the
// state file that lets `down` undo everything after a crash.
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Binding } from '../../flow/types.ts';
import { RedirectError } from '../../errors.ts';
import { resolvePaths } from '../../paths.ts';
import type { ApplyOptions, ApplyResult, BackendStatus, BindingStats, PlacementRule, RedirectBackend, RedirectPlan, WatchOptions, WatchStart } from '../types.ts';
import { findCgroup2Mount, type Cgroup2Mount } from './cgroup-mount.ts';
import { CgroupManager, EXEMPT_GROUP } from './cgroups.ts';
import { deleteTable, listTable, nftRunner, runScript, type ListedTable, type NftRunner } from './nft-cli.ts';
import { CANARY_ADDR, CANARY_PORT, DYNAMIC_SETS, SET, TABLE_REF, renderElements, renderScript, type SetElement, type TableModel } from './nft-script.ts';
import { onlyStaleCgroups, verifyTable } from './verify.ts';
import { NftContext } from '../../sys/linux/nftables.ts';
import { destroyTcpSocketsOfPid } from './sock-destroy.ts';
import { ProcessWatcher } from './watcher.ts';

export interface LinuxBackendOptions {
  /** cgroup root relative to the cgroup2 mount (default `switchyard`; tests use a per-run root). */
  cgroupRoot?: string;
  /** Where the cgroup2 hierarchy is mounted (default: read from /proc/self/mountinfo). */
  mount?: Cgroup2Mount;
  /** State file (default: <runtime dir>/redirect-linux.json). */
  statePath?: string;
  /** nft binary (default `nft`). */
  nftBin?: string;
  /** Milliseconds a canary may take to reach its port (default 5000). */
  canaryTimeoutMs?: number;
  /** Reset a moved process's existing TCP sockets (default true). */
  destroySockets?: boolean;
  /** The watcher opens the proc connector in this network namespace (tests; see ProcessWatcher). */
  connectorNetns?: string;
  /** Use fanotify exec permission events (default true; env SWITCHYARD_FANOTIFY=0 also turns it off). */
  fanotify?: boolean;
}

interface StateFile {
  version: 1;
  cgroupRoot: string;
  mount: Cgroup2Mount;
  mode: 'active' | 'skeleton';
  plan: RedirectPlan;
  originals: [number, string][];
  ids: [string, number][];
}

const CANARY_TOKEN = 'switchyard-canary-ok';

export class LinuxBackend implements RedirectBackend {
  readonly os = 'linux';
  readonly cgroups: CgroupManager;
  readonly runner: NftRunner;
  readonly statePath: string;
  #opts: LinuxBackendOptions;
  #plan: RedirectPlan | null = null;
  #mode: 'active' | 'skeleton' | null = null;
  #model: TableModel | null = null;
  #ctx: NftContext | null = null;
  /** ip → ms epoch when its set entry expires, so a shorter TTL never shortens a live entry. */
  #expiry = new Map<string, number>();
  /** Group → cgroup id when the table was installed: the ids the rules hold. */
  #ids = new Map<string, number>();
  #queue: Promise<unknown> = Promise.resolve();
  #watcher: ProcessWatcher | null = null;
  #pending: { elements: SetElement[]; resolve: (s: BindingStats) => void; reject: (e: unknown) => void }[] = [];

  constructor(opts: LinuxBackendOptions = {}) {
    this.#opts = opts;
    const mount = opts.mount ?? findCgroup2Mount();
    this.cgroups = new CgroupManager({ mount, ...(opts.cgroupRoot === undefined ? {} : { root: opts.cgroupRoot }) });
    this.runner = nftRunner(mount, opts.nftBin);
    this.statePath = opts.statePath ?? join(resolvePaths().runtimeDir, 'redirect-linux.json');
    this.#loadState();
  }

  /** Serialises operations: one nft transaction at a time. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => {});
    return next;
  }

  render(plan: RedirectPlan, mode: 'active' | 'skeleton' = 'active'): string {
    return renderScript(plan, { mode, cgroups: this.cgroups }).script;
  }

  apply(plan: RedirectPlan, opts: ApplyOptions = {}): Promise<ApplyResult> {
    return this.#serial(() => this.#install(plan, 'active', opts.canary ?? true));
  }

  skeleton(given?: RedirectPlan): Promise<void> {
    return this.#serial(async () => {
      const plan = given ?? this.#plan;
      if (!plan) throw new RedirectError('SY_ERR_REDIRECT_UNAVAILABLE', 'no plan was applied and no state file exists: nothing to keep as a skeleton');
      await this.#install(plan, 'skeleton', false);
    });
  }

  async #install(plan: RedirectPlan, mode: 'active' | 'skeleton', canary: boolean): Promise<ApplyResult> {
    const t0 = performance.now();
    // Groups first: nft resolves each path to an id when it parses the rule.
    let ids = this.cgroups.ensure(plan.groups);
    const previous = await listTable(this.runner);
    const carried = previous ? liveElements(previous.json) : [];
    let canaryServer: Server | null = null;
    let canaryPort: number | undefined;
    if (canary && mode === 'active' && plan.groups.some((g) => plan.ports.groups[g] !== undefined)) {
      canaryServer = await listenCanary();
      canaryPort = (canaryServer.address() as { port: number }).port;
    }
    try {
      const { script, model } = renderScript(plan, { mode, cgroups: this.cgroups, carried, ...(canaryPort === undefined ? {} : { canaryPort }) });
      // nft applies the batch atomically: when it refuses, the kernel still holds the previous
      // table and there is nothing to roll back.
      await runScript(this.runner, script);
      try {
        // Read back: the kernel must hold every set, chain and rule, naming the right cgroups.
        let problems = await this.#verify(model);
        if (onlyStaleCgroups(problems) || this.#staleGroups(ids).length > 0) {
          // A group directory changed under us between ensure() and nft: apply once more.
          ids = this.cgroups.ensure(plan.groups);
          await runScript(this.runner, script);
          problems = [...(await this.#verify(model)), ...this.#staleGroups(ids)];
        }
        if (problems.length > 0) throw new RedirectError('SY_ERR_REDIRECT_VERIFY', `ruleset read back differs: ${problems.join('; ')}`);
        if (canaryPort !== undefined) await this.#canaries(plan, canaryPort);
      } catch (err) {
        await this.#rollback(previous, plan);
        throw err;
      }
      this.#plan = plan;
      this.#mode = mode;
      this.#model = model;
      this.#ids = ids;
      this.#dropStaleGroups(plan);
      this.#saveState();
      return { script, carriedElements: carried.length, ms: performance.now() - t0 };
    } finally {
      canaryServer?.close();
    }
  }

  /** Groups whose directory now has another id than the one the rules were built with. */
  #staleGroups(ids: Map<string, number>): string[] {
    const out: string[] = [];
    for (const [g, id] of ids) {
      const now = this.cgroups.id(g);
      if (now !== id) out.push(`group ${g} (${this.cgroups.nftPath(g)}) was removed${now === null ? '' : ' and re-created'} by hand: rules hold cgroup id ${id}, the directory has ${now ?? 'none'}`);
    }
    return out;
  }

  /**
   * Groups of egresses no longer in the plan: no rule refers to them any more, so their processes
   * would run unredirected in a group nothing watches. Put the processes back where they came
   * from (the watcher re-places them by the new rules) and remove the directories.
   */
  #dropStaleGroups(plan: RedirectPlan): void {
    for (const g of this.cgroups.existing()) {
      if (g === EXEMPT_GROUP || plan.groups.includes(g)) continue;
      this.cgroups.restoreGroup(g);
      try {
        this.cgroups.removeGroup(g);
      } catch {
        // a process joined meanwhile: the next apply tries again
      }
    }
  }

  async #verify(model: TableModel): Promise<string[]> {
    const now = await listTable(this.runner);
    if (!now) return [`table ${TABLE_REF} is missing`];
    return verifyTable(model, now.json);
  }

  /**
   * Back to the state before the failed transaction: the previous plan re-rendered (with the live
   * set elements), else the previous table's text, else no table (there was none before).
   */
  async #rollback(previous: { json: ListedTable; text: string } | null, failedPlan: RedirectPlan): Promise<void> {
    try {
      if (this.#plan && this.#mode) {
        const now = await listTable(this.runner);
        const carried = now ? liveElements(now.json) : previous ? liveElements(previous.json) : [];
        await runScript(this.runner, renderScript(this.#plan, { mode: this.#mode, cgroups: this.cgroups, carried }).script);
      } else if (previous && previous.text.trim() !== '') {
        await runScript(this.runner, `table ${TABLE_REF}\ndelete table ${TABLE_REF}\n${previous.text}`);
      } else if (previous) {
        // A table we cannot reproduce: keep traffic refused rather than direct.
        await runScript(this.runner, renderScript(failedPlan, { mode: 'skeleton', cgroups: this.cgroups }).script);
      } else {
        await deleteTable(this.runner);
      }
    } catch (err) {
      // Last resort: the skeleton of the plan we were given (fail closed).
      await runScript(this.runner, renderScript(failedPlan, { mode: 'skeleton', cgroups: this.cgroups }).script).catch(() => {});
      throw new RedirectError('SY_ERR_REDIRECT_NFT', `rollback failed, skeleton installed: ${(err as Error).message}`, err);
    }
  }

  /** A process in each group with a listener must be redirected (see CANARY_ADDR). */
  async #canaries(plan: RedirectPlan, canaryPort: number): Promise<void> {
    const timeout = this.#opts.canaryTimeoutMs ?? 5000;
    const groups = plan.groups.filter((g) => plan.ports.groups[g] !== undefined);
    const results = await Promise.all(groups.map((g) => runCanary(join(this.cgroups.fsPath(g), 'cgroup.procs'), timeout)));
    const failed = groups.map((g, i) => [g, results[i]!] as const).filter(([, r]) => r !== CANARY_TOKEN);
    if (failed.length > 0) {
      throw new RedirectError(
        'SY_ERR_REDIRECT_CANARY',
        `canary in group ${failed.map(([g, r]) => `${g} (${r})`).join(', ')} did not reach the canary listener: ` +
          'cgroup v2 socket matching does not work here (kernel without nft socket cgroupv2, or a cgroup namespace); refusing to enforce',
      );
    }
  }

  /**
   * Adds DNS-learned destinations. Calls that arrive while another nft operation runs are merged
   * into one libnftables batch (one netlink transaction), so a burst of answers costs one call.
   */
  addBindings(batch: Binding[]): Promise<BindingStats> {
    const now = Date.now();
    const elements: SetElement[] = [];
    for (const b of batch) {
      if (b.egresses.length === 0 || b.egresses.every((e) => e === 'direct')) continue;
      const blocked = b.egresses.every((e) => e === 'block');
      const set = blocked ? (b.family === 4 ? SET.blocked4 : SET.blocked6) : b.family === 4 ? SET.captured4 : SET.captured6;
      const key = `${set} ${b.ip}`;
      // A later answer with a shorter TTL must not shorten the entry another name still needs
      // (adding an existing element sets its timeout): keep the longer of the two. Always send it,
      // so an entry removed behind our back (a flushed ruleset) comes back with the next answer.
      const known = Math.ceil(((this.#expiry.get(key) ?? 0) - now) / 1000);
      const hold = Math.max(1, Math.ceil(b.holdSeconds), known);
      this.#expiry.set(key, now + hold * 1000);
      elements.push({ set, value: b.ip, timeoutSec: hold, expiresSec: hold });
    }
    if (elements.length === 0) return Promise.resolve({ elements: 0, micros: 0 });
    if (this.#expiry.size > 200_000) for (const [k, t] of this.#expiry) if (t < now) this.#expiry.delete(k);
    return new Promise((resolve, reject) => {
      this.#pending.push({ elements, resolve, reject });
      if (this.#pending.length === 1) void this.#serial(async () => this.#flushBindings());
    });
  }

  #flushBindings(): void {
    const waiting = this.#pending;
    this.#pending = [];
    // One element per set and address (two names may share an address): the longest timeout wins.
    const byKey = new Map<string, SetElement>();
    for (const e of waiting.flatMap((w) => w.elements)) {
      const k = `${e.set} ${e.value}`;
      const prev = byKey.get(k);
      if (!prev || prev.timeoutSec < e.timeoutSec) byKey.set(k, e);
    }
    const all = [...byKey.values()];
    const t0 = performance.now();
    try {
      this.#ctx ??= new NftContext();
      this.#ctx.run(renderElements(all).join('\n') + '\n');
    } catch (err) {
      for (const e of all) this.#expiry.delete(`${e.set} ${e.value}`);
      for (const w of waiting) w.reject(err);
      return;
    }
    const micros = Math.round((performance.now() - t0) * 1000);
    for (const w of waiting) w.resolve({ elements: w.elements.length, micros, ...(waiting.length > 1 ? { mergedWith: waiting.length - 1 } : {}) });
  }

  async placeProcess(pid: number, group: string): Promise<void> {
    if (group !== EXEMPT_GROUP && this.#plan && !this.#plan.groups.includes(group)) {
      throw new RedirectError('SY_ERR_REDIRECT_CGROUP', `no group '${group}' in the applied plan`);
    }
    // The daemon may place itself in the exempt group before the first apply.
    if (group === EXEMPT_GROUP) this.cgroups.ensure([]);
    this.cgroups.move(pid, group);
    this.#saveState();
    // Connections opened before the move went direct; reset them so they come back redirected.
    if ((this.#opts.destroySockets ?? true) && group !== EXEMPT_GROUP) await destroyTcpSocketsOfPid(pid);
  }

  commandInGroup(group: string, argv: string[]): string[] {
    if (argv.length === 0) throw new RedirectError('SY_ERR_REDIRECT_CGROUP', 'no command to run');
    if (this.cgroups.id(group) === null) {
      throw new RedirectError(
        'SY_ERR_REDIRECT_UNAVAILABLE',
        `group '${group}' does not exist (${this.cgroups.fsPath(group)}): switchyard is not enforcing, or has no egress '${group}'. Start it with \`switchyard up\` first`,
      );
    }
    // sh writes its own pid ($$) into cgroup.procs, then becomes the program (exec keeps the pid):
    // the program's first instruction already runs inside the group. Exit 96 = could not join.
    return ['sh', '-c', 'echo $$ > "$0" || exit 96; exec "$@"', join(this.cgroups.fsPath(group), 'cgroup.procs'), ...argv];
  }

  /**
   * Starts the process watcher for the applied plan's groups: matching processes are moved at exec
   * (and by rescans); each move is recorded for down() and the process's TCP sockets are reset.
   */
  async watch(rules: PlacementRule[], opts: WatchOptions = {}): Promise<WatchStart> {
    if (!this.#plan) throw new RedirectError('SY_ERR_REDIRECT_WATCHER', 'apply a plan before starting the watcher');
    // The old watcher keeps placing until the new one runs (a reload leaves no gap without exec events).
    const old = this.#watcher;
    const procs: Record<string, string> = {};
    for (const g of [EXEMPT_GROUP, ...this.#plan.groups]) procs[g] = join(this.cgroups.fsPath(g), 'cgroup.procs');
    const w = new ProcessWatcher({
      rules: rules.filter((r) => procs[r.group] !== undefined),
      placer: { procs, rootPath: this.cgroups.hierarchyRootPath() },
      ...(this.#opts.connectorNetns ? { connectorNetns: this.#opts.connectorNetns } : {}),
      ...(this.#opts.fanotify === false || process.env['SWITCHYARD_FANOTIFY'] === '0' ? { fanotify: false } : {}),
      ...opts,
      onPlaced: async (p) => {
        if (!this.cgroups.originals.has(p.pid)) this.cgroups.originals.set(p.pid, p.from);
        this.#saveState();
        // Placed by fanotify: the new image has not run yet, so it has opened no connection; the
        // TCP sockets it holds are its parent's, inherited (e.g. an inetd-style stdin): leave them.
        if (p.via === 'fanotify') return;
        if ((this.#opts.destroySockets ?? true) && p.group !== EXEMPT_GROUP) await destroyTcpSocketsOfPid(p.pid);
      },
    });
    w.on('error', () => {}); // rescans continue; status() shows the watcher state
    this.#watcher = w;
    try {
      return await w.start();
    } finally {
      await old?.stop();
    }
  }

  get watcher(): ProcessWatcher | null {
    return this.#watcher;
  }

  down(): Promise<void> {
    return this.#serial(async () => {
      await this.#watcher?.stop();
      this.#watcher = null;
      // Table first: once it is gone nothing refers to the groups, then empty and remove them.
      await deleteTable(this.runner);
      this.cgroups.restoreAll();
      this.cgroups.removeAll();
      this.#plan = null;
      this.#mode = null;
      this.#model = null;
      this.#ids = new Map();
      this.#expiry.clear();
      rmSync(this.statePath, { force: true });
    });
  }

  async status(): Promise<BackendStatus> {
    const listed = await listTable(this.runner);
    const groups = this.cgroups.existing().map((name) => ({
      name,
      path: this.cgroups.nftPath(name),
      pids: this.cgroups.pids(name),
      id: this.cgroups.id(name),
    }));
    const setElements: Record<string, number> = {};
    const problems: string[] = [];
    if (listed) {
      for (const s of DYNAMIC_SETS) setElements[s] = listed.json.sets.get(s)?.elements.length ?? 0;
      if (this.#model) problems.push(...this.#staleGroups(this.#ids), ...verifyTable(this.#model, listed.json));
    }
    const state = !listed ? 'absent' : !this.#mode ? 'foreign' : this.#mode;
    const w = this.#watcher;
    const m = w?.marks;
    const watcher = w ? { mode: w.mode, ...(w.reason === undefined ? {} : { reason: w.reason }), ...(m ? { marked: m.marked, ...(m.unmarked.length ? { unmarked: m.unmarked } : {}) } : {}) } : null;
    return { os: this.os, state, groups, setElements, problems, watcher };
  }

  /**
   * Checks the live table against the applied plan; repairs a group removed and re-created by hand
   * (the rule holds the old id) by re-applying. Throws when it cannot.
   */
  repair(): Promise<string[]> {
    return this.#serial(async () => {
      if (!this.#plan || !this.#mode || !this.#model) return [];
      const problems = [...this.#staleGroups(this.#ids), ...(await this.#verify(this.#model))];
      if (problems.length === 0) return [];
      await this.#install(this.#plan, this.#mode, false);
      return problems;
    });
  }

  async close(): Promise<void> {
    await this.#watcher?.stop();
    this.#watcher = null;
    await this.#queue;
    this.#ctx?.free();
    this.#ctx = null;
  }

  // ------------------------------------------------------------ state file

  #saveState(): void {
    if (!this.#plan || !this.#mode) return;
    const s: StateFile = {
      version: 1,
      cgroupRoot: this.cgroups.root,
      mount: this.cgroups.mount,
      mode: this.#mode,
      plan: this.#plan,
      originals: [...this.cgroups.originals],
      ids: [...this.#ids],
    };
    mkdirSync(dirname(this.statePath), { recursive: true, mode: 0o755 });
    const tmp = `${this.statePath}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(s), { mode: 0o600 });
    renameSync(tmp, this.statePath);
  }

  #loadState(): void {
    let s: StateFile;
    try {
      s = JSON.parse(readFileSync(this.statePath, 'utf8')) as StateFile;
    } catch {
      return;
    }
    if (s.version !== 1 || s.cgroupRoot !== this.cgroups.root) return;
    this.#plan = s.plan;
    this.#mode = s.mode;
    this.#model = renderScript(s.plan, { mode: s.mode, cgroups: this.cgroups }).model;
    for (const [pid, path] of s.originals ?? []) this.cgroups.originals.set(pid, path);
    this.#ids = new Map(s.ids ?? []);
  }
}

/** Elements of the dynamic sets with the time they have left, to carry into the new table. */
export function liveElements(t: ListedTable): SetElement[] {
  const out: SetElement[] = [];
  for (const name of DYNAMIC_SETS) {
    for (const e of t.sets.get(name)?.elements ?? []) {
      if (e.timeout === undefined || e.expires === undefined || e.expires <= 0) continue;
      out.push({ set: name, value: e.value, timeoutSec: e.timeout, expiresSec: e.expires });
    }
  }
  return out;
}

function listenCanary(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const srv = createServer((s) => {
      s.on('error', () => {});
      s.end(CANARY_TOKEN);
    });
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

/**
 * Starts a tiny client that puts itself into the group (sh writes its pid into cgroup.procs
 * before exec, so the socket is created inside the group) and connects to the canary address.
 * Resolves with what it read, or why not.
 */
function runCanary(procsPath: string, timeoutMs: number): Promise<string> {
  // bash opens the connection itself (/dev/tcp) and starts in milliseconds; node is the fallback.
  const client = existsSync('/bin/bash')
    ? ['/bin/bash', '-c', `exec 3<>/dev/tcp/${CANARY_ADDR}/${CANARY_PORT} && cat <&3`]
    : [
        process.execPath,
        '-e',
        `const s=require('net').connect(${CANARY_PORT},'${CANARY_ADDR}');let d='';` +
          `s.on('data',b=>d+=b);s.on('end',()=>process.stdout.write(d));s.on('error',e=>process.stdout.write('error '+e.code));`,
      ];
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', 'echo $$ > "$0" || exit 96; exec "$@"', procsPath, ...client], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', (e) => resolve(`cannot start: ${e.message}`));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 96) resolve(`cannot join the group: ${err.trim()}`);
      else if (signal === 'SIGKILL') resolve('timeout');
      else resolve(out.trim() || `exit ${code}: ${err.trim().split('\n').pop() ?? ''}`);
    });
  });
}
