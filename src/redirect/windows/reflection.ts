// The WinDivert reflection as the Windows RedirectBackend runs it: the pieces of reflector.ts,
// classify.ts, diverter.ts and listen-address.ts put together with the daemon's live state.
//
//  - listener addresses: the interface address listen-address.ts chooses (WinDivert cannot inject
//    towards 127.0.0.1); the daemon binds its transparent listeners there (listenHosts) and re-binds
//    them when the choice changes (onListenHostsChange), then applies again, which calls update();
//  - the classifier runs on the live policy (re-made when the policy's config object changes: a
//    reload swaps it), with the daemon's own PID and the PIDs placed as `exempt` never reflected;
//  - destinations captured from DNS (addBindings, as the captured sets on Linux) are reflected to the
//    captured listener until their hold time ends;
//  - the NAT lookup (lookup) is what the Windows FlowIdentity asks for every accepted connection.
//
// The loop that owns the WinDivert handles is injected (`openLoop`, default the real Diverter over
// WinDivert.dll from enforce.windivertPath), so the wiring can be tested without the driver.
import type { Binding } from '../../flow/types.ts';
import type { Config, Policy } from '../../policy/types.ts';
import type { RedirectPlan } from '../types.ts';
import { makeClassifier } from './classify.ts';
import type { NatEntry } from './nat.ts';
import type { FlowTuple } from './pending.ts';
import { Reflector, type ListenerSet, type ReflectorOptions, type Verdict } from './reflector.ts';
import { watchListenAddresses, type ListenAddresses, type WatcherDeps } from './listen-address.ts';
import type { Reflection } from './redirect-backend.ts';

/**
 * Key of the captured (DNS-learned / mode "all") listener in the reflector's port map. Not an egress
 * name (those are non-empty); the FlowIdentity reports it as "no group", as Linux's captured listener.
 */
export const CAPTURED_GROUP = '';

/** What runs the two WinDivert handles for a Reflector (diverter.ts). */
export interface ReflectionLoop {
  start(): void;
  stop(): void;
}

export interface ReflectionDeps {
  /** The policy the daemon runs now (its LivePolicy). */
  policy: () => Policy | undefined;
  ownPid: number;
  /** QueryFullProcessImageNameW. Results are cached per PID by this module. */
  imagePath: (pid: number) => string | undefined;
  /** GetExtendedTcpTable(OWNER_PID) owner of a local endpoint, for SYNs whose event never came. */
  tcpOwner: (family: 4 | 6, localAddress: string, localPort: number, remote?: { address: string; port: number }) => number | undefined;
  /** Interfaces, best interface and their change notification (iphlpapi). */
  interfaces: WatcherDeps;
  /** Opens the WinDivert loop for a reflector (throws when WinDivert cannot be opened). */
  openLoop: (reflector: Reflector, config: Config) => ReflectionLoop;
  now?: () => number;
  log?: (msg: string) => void;
  /** Passed to the Reflector (tests shorten the SYN timeout). */
  reflector?: Pick<ReflectorOptions, 'nat' | 'pending'>;
}

export class WinDivertReflection implements Reflection {
  #d: ReflectionDeps;
  #watch: { current: () => ListenAddresses; stop: () => void } | null = null;
  #changeHandlers: (() => void)[] = [];
  #reflector: Reflector | null = null;
  #loop: ReflectionLoop | null = null;
  #plan: RedirectPlan | null = null;
  #captured = new Map<string, number>();
  #exempt = new Set<number>();
  #images = new Map<number, { path: string | undefined; at: number }>();
  #classifier: { config: Config; fn: (pid: number | undefined, t: FlowTuple) => Verdict } | null = null;

  constructor(d: ReflectionDeps) {
    this.#d = d;
  }

  #now(): number {
    return (this.#d.now ?? Date.now)();
  }

  /** Starts watching interfaces (first call) and returns the addresses the listeners must bind. */
  listenHosts(): { host4: string | null; host6: string | null } {
    if (!this.#watch) {
      this.#watch = watchListenAddresses(this.#d.interfaces, (next) => {
        this.#d.log?.(`listener address changed to ${next[4]?.address ?? '-'} / ${next[6]?.address ?? '-'}`);
        // Until the daemon re-binds, the old addresses stay in the reflector: a SYN from the new
        // address is dropped as "source-not-listener-address" (fail closed), never passed.
        for (const h of this.#changeHandlers) h();
      });
    }
    const c = this.#watch.current();
    return { host4: c[4]?.address ?? null, host6: c[6]?.address ?? null };
  }

  onListenHostsChange(handler: () => void): void {
    this.#changeHandlers.push(handler);
  }

  /** The reflector's listener sets for a plan's ports on the current addresses. */
  #listeners(plan: RedirectPlan): ReflectorOptions['listeners'] {
    const ports = new Map<string, number>(Object.entries(plan.ports.groups));
    if (plan.ports.captured !== null) ports.set(CAPTURED_GROUP, plan.ports.captured);
    const h = this.listenHosts();
    const out: { 4?: ListenerSet; 6?: ListenerSet } = {};
    if (h.host4) out[4] = { address: h.host4, ports };
    if (h.host6) out[6] = { address: h.host6, ports };
    return out;
  }

  #imagePath(pid: number): string | undefined {
    // PIDs are reused: a cached path is trusted for a short while only.
    const now = this.#now();
    const c = this.#images.get(pid);
    if (c && now - c.at < 5_000) return c.path;
    const path = this.#d.imagePath(pid);
    if (this.#images.size > 4096) this.#images.clear();
    this.#images.set(pid, { path, at: now });
    return path;
  }

  #capturedGroup(ip: string): string | undefined {
    const until = this.#captured.get(ip);
    if (until === undefined) return undefined;
    if (until < this.#now()) {
      this.#captured.delete(ip);
      return undefined;
    }
    return CAPTURED_GROUP;
  }

  /** The classifier for the live policy; re-made when a reload swapped the config. */
  #classify(pid: number | undefined, t: FlowTuple): Verdict {
    const policy = this.#d.policy();
    if (!policy) return { action: 'block' }; // no policy: nothing can be told apart — fail closed
    if (!this.#classifier || this.#classifier.config !== policy.config) {
      this.#classifier = {
        config: policy.config,
        fn: makeClassifier({
          policy,
          ownPid: this.#d.ownPid,
          exemptPids: () => this.#exempt,
          imagePath: (p) => this.#imagePath(p),
          capturedGroup: (ip) => this.#capturedGroup(ip),
        }),
      };
    }
    const v = this.#classifier.fn(pid, t);
    // A group without a listener of its own (mode "all" deciding `direct`, an egress added since the
    // listeners were made) goes to the captured listener: the front door decides there with the whole
    // policy, so nothing leaves without a decision.
    if (v.action === 'reflect' && v.group !== CAPTURED_GROUP && this.#plan && !Object.hasOwn(this.#plan.ports.groups, v.group)) {
      return { action: 'reflect', group: CAPTURED_GROUP };
    }
    return v;
  }

  async start(plan: RedirectPlan, config: Config): Promise<void> {
    if (this.#loop) return this.update(plan);
    this.#plan = plan;
    const r = new Reflector({
      ownPid: this.#d.ownPid,
      listeners: this.#listeners(plan),
      localAddresses: () => this.#localAddresses(),
      classify: (pid, t) => this.#classify(pid, t),
      pidFallback: (t) => this.#d.tcpOwner(t.family, t.localAddress, t.localPort, { address: t.remoteAddress, port: t.remotePort }),
      now: () => this.#now(),
      ...(this.#d.reflector ?? {}),
    });
    const loop = this.#d.openLoop(r, config);
    loop.start(); // throws when WinDivert cannot be opened: nothing is kept
    this.#loop = loop;
    this.#reflector = r;
  }

  #localSet: { at: number; set: Set<string> } | null = null;
  #localAddresses(): ReadonlySet<string> {
    const now = this.#now();
    if (!this.#localSet || now - this.#localSet.at > 2_000) {
      let set: Set<string>;
      try {
        set = new Set(this.#d.interfaces.adapters().map((a) => a.address));
      } catch {
        set = this.#localSet?.set ?? new Set();
      }
      this.#localSet = { at: now, set };
    }
    return this.#localSet.set;
  }

  /** A re-apply: new ports or (after a re-bind) new addresses. */
  async update(plan: RedirectPlan): Promise<void> {
    this.#plan = plan;
    this.#reflector?.setListeners(this.#listeners(plan));
  }

  addBindings(batch: Binding[]): void {
    const now = this.#now();
    // Entries expire when looked up; a big set is swept so it cannot grow without bound.
    if (this.#captured.size > 100_000) for (const [ip, until] of this.#captured) if (until < now) this.#captured.delete(ip);
    for (const b of batch) {
      if (b.egresses.length === 0 || b.egresses.every((e) => e === 'direct')) continue;
      const until = now + Math.max(1, b.holdSeconds) * 1000;
      if ((this.#captured.get(b.ip) ?? 0) < until) this.#captured.set(b.ip, until);
    }
  }

  /** A PID never reflected (supervised cores placed `exempt`). */
  exempt(pid: number): void {
    this.#exempt.add(pid);
  }

  /** The NAT entry behind a connection a transparent listener accepted (FlowIdentity). */
  lookup(family: 4 | 6, listenerAddress: string, peerAddress: string, peerPort: number): NatEntry | undefined {
    return this.#reflector?.lookupAccepted(family, listenerAddress, peerAddress, peerPort);
  }

  get reflector(): Reflector | null {
    return this.#reflector;
  }

  async stop(): Promise<void> {
    this.#loop?.stop();
    this.#loop = null;
    // The NAT table goes with the loop: nothing is reflected any more, so no accepted connection
    // can belong to an entry (a later start begins empty).
    this.#reflector = null;
  }

  /** Stops the interface watcher too (the backend is closed). */
  close(): void {
    this.#watch?.stop();
    this.#watch = null;
  }
}

/** The production reflection: WinDivert.dll from enforce.windivertPath, iphlpapi, kernel32. */
export async function systemReflection(policy: () => Policy | undefined, log?: (msg: string) => void): Promise<WinDivertReflection> {
  const { processImagePath } = await import('../../sys/windows/kernel32.ts');
  const iph = await import('../../sys/windows/iphlpapi.ts');
  const { windivertLibrary } = await import('../../sys/windows/windivert.ts');
  const { Diverter } = await import('./diverter.ts');
  const probe = { 4: '8.8.8.8', 6: '2001:4860:4860::8888' } as const; // only asked for a route, never contacted
  return new WinDivertReflection({
    policy,
    ownPid: process.pid, // GetCurrentProcessId, without loading kernel32 before it is needed
    imagePath: processImagePath,
    tcpOwner: iph.tcpOwnerPid,
    interfaces: {
      adapters: iph.unicastAddresses,
      bestInterface: (f) => {
        try {
          return iph.bestInterface(probe[f]);
        } catch {
          return undefined;
        }
      },
      watch: iph.watchInterfaces,
    },
    openLoop: (r, config) => new Diverter(windivertLibrary(config.enforce.windivertPath), r, { onError: (e) => log?.(`WinDivert loop: ${(e as Error).message}`) }),
    ...(log ? { log } : {}),
  });
}
