// The OS backend interface: one for every OS. The daemon talks only to this; src/redirect/index.ts
// is the only module that asks which OS it runs on and picks the implementation.
//
// Life cycle, as the daemon drives it:
//   apply(plan)        — install the whole plan as one transaction, read it back, verify, canary;
//                        on any failure the previous state (or the skeleton) is restored.
//   addBindings(batch) — DNS-learned destinations; resolves only once the kernel has them.
//   placeProcess(pid)  — move a process into its egress group (and reset its old TCP sockets).
//   skeleton()         — `stop`: redirects become rejects; selected and captured traffic stays
//                        blocked (fail closed) until the next apply() or down().
//   down()             — remove everything switchyard put into the OS; processes go back.
import type { Binding } from '../flow/types.ts';
import type { AppPattern, Cidr } from '../policy/types.ts';

/** Local ports of the listeners the OS backend steers traffic to. */
export interface ListenerPorts {
  /** Transparent listener per egress group (egress name → port). A group without a port is rejected. */
  groups: Record<string, number>;
  /** Transparent listener for DNS-learned (captured), static-CIDR and mode="all" destinations. */
  captured: number | null;
  /** The DNS forwarder's port (UDP and TCP) for redirected port-53 traffic; null = no DNS redirect. */
  dns: number | null;
}

/**
 * What to enforce, OS-neutral: built by buildPlan() (src/redirect/plan.ts) from the config, then
 * rendered per OS (Linux: an nft script). Pure data, so it can be printed, compared and tested.
 */
export interface RedirectPlan {
  /** Per-egress app groups whose TCP goes to the group's listener (egress names, sorted). */
  groups: string[];
  /** Egress names that captured (DNS-learned) destinations may take — informational. */
  capturedEgresses: string[];
  /** CIDRs of rules whose egress is not direct: TCP to them goes to the captured listener. */
  staticCidrs: Cidr[];
  /** CIDRs of unconditional block rules: rejected for every non-exempt socket. */
  blockCidrs: Cidr[];
  /** `all`: every non-exempt TCP flow goes to the captured listener. */
  mode: 'selected' | 'all';
  /** Loopback is never redirected; LAN only when this is `policy`. */
  lan: 'direct' | 'policy';
  /** Reject UDP 443 to captured destinations (browsers fall back to TCP). */
  blockQuic: boolean;
  /** `block_doh`: addresses of known DoH endpoints whose TCP and UDP 443 are refused (absent = off). */
  dohCidrs?: Cidr[];
  /** Numeric uids never redirected. */
  exemptUids: number[];
  /** Exempt CIDRs and egress endpoint addresses: never redirected. */
  exemptCidrs: Cidr[];
  /** Endpoint addresses of proxy egresses (never redirected, else the relay would loop). */
  egressEndpoints: Cidr[];
  ports: ListenerPorts;
}

/** Processes matching `patterns` belong in `group` (an egress group name, or `exempt`). */
export interface PlacementRule {
  group: string;
  patterns: AppPattern[];
}

export interface WatchOptions {
  /** Backstop rescan interval (Linux: /proc walk), ms. */
  rescanMs?: number;
  /** Linux: use the netlink proc connector (default true). */
  netlink?: boolean;
  /** Linux: use fanotify exec permission events (default true; env SWITCHYARD_FANOTIFY=0 turns it off). */
  fanotify?: boolean;
  /** Linux: open the proc connector in this network namespace (tests; see ProcessWatcher). */
  connectorNetns?: string;
}

/**
 * Where the Linux watcher learns of execs: `fanotify` (exec permission events: the exec waits until
 * the process is placed — no window), `netlink` (proc connector: placed just after exec — a short
 * window), `rescan` (/proc walks only — up to one rescan interval).
 */
export type WatcherMode = 'fanotify' | 'netlink' | 'rescan';

export interface WatchStart {
  /** True when exec events are used (fanotify or the proc connector); false = rescans only (reason says why). */
  netlink: boolean;
  /** Which source of exec events is in use. */
  mode?: WatcherMode;
  /** Why a better mode is not in use (e.g. fanotify unavailable). */
  reason?: string;
  /** Processes placed by the first scan. */
  initial: number;
  /** fanotify: superblocks marked, and the ones left out with why. */
  marked?: number;
  unmarked?: string[];
}

export interface ApplyOptions {
  /** Run the canary (a process per group must reach its transparent port). Default true. */
  canary?: boolean;
}

export interface ApplyResult {
  /** The script (Linux) or object list (Windows) that was installed. */
  script: string;
  /** Set elements carried over from the previous table. */
  carriedElements: number;
  /** Wall time of the transaction including read-back, in milliseconds. */
  ms: number;
}

export type BackendState = 'absent' | 'active' | 'skeleton' | 'foreign';

export interface BackendStatus {
  os: string;
  state: BackendState;
  /** Groups that exist, with the processes in them. */
  groups: { name: string; path: string; pids: number[]; id: number | null }[];
  /** Live elements per captured set. */
  setElements: Record<string, number>;
  /** Problems found by verification (a group re-created by hand, a missing chain...). */
  problems: string[];
  /** Linux: the process watcher's exec event source, null when no watcher runs. */
  watcher?: { mode: WatcherMode; reason?: string; marked?: number; unmarked?: string[] } | null;
}

export interface BindingStats {
  elements: number;
  /** Time spent installing the batch in the kernel, microseconds. */
  micros: number;
  /** How many other callers' batches went into the same kernel transaction. */
  mergedWith?: number;
}

export interface RedirectBackend {
  readonly os: string;
  /** The text apply() would install, without touching the OS (`--dry-run`). */
  render(plan: RedirectPlan): string;
  apply(plan: RedirectPlan, opts?: ApplyOptions): Promise<ApplyResult>;
  /** Adds DNS-learned destinations; resolves once they are in the kernel. Batches are one call. */
  addBindings(batch: Binding[]): Promise<BindingStats>;
  /** Moves a process into an egress group (or `exempt`); its existing TCP sockets are reset. */
  placeProcess(pid: number, group: string): Promise<void>;
  /**
   * Keeps a fail-closed skeleton in place of the active rules (`stop`). With `plan`, installs that
   * plan's skeleton instead of the applied one's (early boot: no plan was applied since boot).
   */
  skeleton(plan?: RedirectPlan): Promise<void>;
  /** Removes the table and groups; processes go back to where they came from. */
  down(): Promise<void>;
  status(): Promise<BackendStatus>;
  /**
   * argv that runs `argv` inside a group from its first instruction (`switchyard exec`): the
   * wrapper joins the group, then execs the program, so there is no window outside it.
   */
  commandInGroup(group: string, argv: string[]): string[];
  /**
   * Keeps placing processes that match the rules into their groups (Linux: at exec, plus rescans).
   * Optional: a backend that identifies processes per connection (Windows) needs no placement.
   */
  watch?(rules: PlacementRule[], opts?: WatchOptions): Promise<WatchStart>;
  /**
   * Checks the installed state against the applied plan and re-applies it when it drifted (Linux:
   * a group removed and re-created by hand leaves rules that hold a dead cgroup id). Resolves with
   * the problems it found and repaired (empty = nothing to do); throws when it cannot repair.
   */
  repair?(): Promise<string[]>;
  /**
   * Where the transparent listeners must bind, when the OS decides it (Windows: the interface
   * address, as WinDivert cannot inject towards 127.0.0.1); null = no listener for that family.
   * Absent = the configured `[inbound] transparent_listen`. May throw (no usable interface).
   */
  listenHosts?(): { host4: string | null; host6: string | null };
  /** Called when listenHosts() would answer differently: re-bind the listeners, then apply again. */
  onListenHostsChange?(handler: () => void): void;
  /** Releases in-process resources (library handles, watcher); leaves the OS state alone. */
  close(): Promise<void>;
}

/** `switchyard dns system on|off`: the OS resolver pointed at switchyard's forwarder, and back. */
export interface SystemDnsResult {
  on: boolean;
  /** Where the setting lives (Windows: the NRPT rule's registry key). */
  key: string | null;
  /** The forwarder address the OS resolver uses now. */
  server: string | null;
  /** False when the setting was changed by someone else since switchyard wrote it. */
  intact: boolean;
  warnings: string[];
}

export interface SystemDns {
  on(server: string): SystemDnsResult;
  off(): SystemDnsResult;
  status(): SystemDnsResult;
}
