// The reflection NAT table: one entry per reflected TCP connection, keyed by family + the app's local
// address + the app's local port. That key is visible in both directions of the reflected flow:
// the app's packets carry it as their source, the listener's replies as their destination (the
// listener's peer is "server address : app's local port"), and the accepted socket on the listener
// shows it as its local address and remote port — so FlowIdentity finds the entry the same way.
//
// Lifecycle: an entry is created by the first reflected SYN; a RST in either direction, or a FIN in
// both, moves it to `closing` and it lingers `lingerMs` (so the last ACK and retransmissions are still
// rewritten rather than leaking to the real server), then goes; an entry with no packet for `idleMs`
// goes too. A SYN for a key that is still open towards another destination is refused (the caller
// drops it: fail closed; the app retries from another port).
import type { Endpoint } from '../../flow/types.ts';
import { TCP_FIN, TCP_RST } from './packet.ts';

export interface NatEntry {
  family: 4 | 6;
  localAddress: string;
  localPort: number;
  origDst: Endpoint;
  listenerPort: number;
  /** Owning process, when the SOCKET layer (or the TCP table) told it. */
  pid: number | undefined;
  /** Egress group the classifier chose (the listener port's group). */
  group: string;
  createdAt: number;
  lastSeen: number;
  finFromApp: boolean;
  finFromListener: boolean;
  state: 'open' | 'closing';
  /** When a closing entry is removed. */
  closeAt: number;
}

export interface NatOptions {
  idleMs: number;
  lingerMs: number;
  maxEntries: number;
}

export const DEFAULT_NAT_OPTIONS: NatOptions = { idleMs: 300_000, lingerMs: 10_000, maxEntries: 65_536 };

export type CreateResult = { ok: true; entry: NatEntry } | { ok: false; reason: 'conflict' | 'full' };

export function natKey(family: 4 | 6, localAddress: string, localPort: number): string {
  return `${family}|${localAddress}|${localPort}`;
}

export class NatTable {
  readonly opts: NatOptions;
  #map = new Map<string, NatEntry>();

  constructor(opts: Partial<NatOptions> = {}) {
    this.opts = { ...DEFAULT_NAT_OPTIONS, ...opts };
  }

  get size(): number {
    return this.#map.size;
  }

  get(family: 4 | 6, localAddress: string, localPort: number): NatEntry | undefined {
    return this.#map.get(natKey(family, localAddress, localPort));
  }

  entries(): IterableIterator<NatEntry> {
    return this.#map.values();
  }

  /** For a new SYN: a fresh entry, or the existing one when it is the same connection (retransmit). */
  create(e: Omit<NatEntry, 'createdAt' | 'lastSeen' | 'finFromApp' | 'finFromListener' | 'state' | 'closeAt'>, now: number): CreateResult {
    const k = natKey(e.family, e.localAddress, e.localPort);
    const old = this.#map.get(k);
    if (old) {
      const same = old.origDst.address === e.origDst.address && old.origDst.port === e.origDst.port;
      if (same && old.state === 'open') {
        old.lastSeen = now;
        return { ok: true, entry: old };
      }
      if (!same && old.state === 'open') return { ok: false, reason: 'conflict' };
      this.#map.delete(k); // a closing entry's port is being reused: start afresh
    }
    if (this.#map.size >= this.opts.maxEntries) return { ok: false, reason: 'full' };
    const entry: NatEntry = { ...e, createdAt: now, lastSeen: now, finFromApp: false, finFromListener: false, state: 'open', closeAt: 0 };
    this.#map.set(k, entry);
    return { ok: true, entry };
  }

  /** Records a packet of the flow: `fromApp` true for app → server, false for listener → app. */
  seen(entry: NatEntry, tcpFlags: number, fromApp: boolean, now: number): void {
    entry.lastSeen = now;
    if (tcpFlags & TCP_RST) return this.#closing(entry, now);
    if (tcpFlags & TCP_FIN) {
      if (fromApp) entry.finFromApp = true;
      else entry.finFromListener = true;
      if (entry.finFromApp && entry.finFromListener) this.#closing(entry, now);
    }
  }

  #closing(entry: NatEntry, now: number): void {
    if (entry.state === 'closing') return;
    entry.state = 'closing';
    entry.closeAt = now + this.opts.lingerMs;
  }

  /** Removes finished and idle entries; returns them. */
  sweep(now: number): NatEntry[] {
    const gone: NatEntry[] = [];
    for (const [k, e] of this.#map) {
      if ((e.state === 'closing' && e.closeAt <= now) || e.lastSeen + this.opts.idleMs <= now) {
        this.#map.delete(k);
        gone.push(e);
      }
    }
    return gone;
  }

  clear(): void {
    this.#map.clear();
  }
}
