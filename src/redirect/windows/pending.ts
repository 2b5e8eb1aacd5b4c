// Joining the two halves WinDivert gives us about a new outbound TCP connection:
//  - the SOCKET layer's CONNECT event carries the PID and the 5-tuple, but no packet;
//  - the NETWORK layer's SYN carries the packet, but no PID.
// They arrive in either order (two handles, two queues). A SYN whose CONNECT event has not been seen
// is held here until the event comes or `synTimeoutMs` passes; a CONNECT event without its SYN is
// remembered for `connectTtlMs` (long enough for the SYN and its retransmissions).
//
// State per tuple:  (none) --SYN--> held --CONNECT--> released(pid)
//                   (none) --CONNECT--> known(pid) --SYN--> decided(pid) (known stays for retransmits)
//                   held --timeout--> expired (the caller decides without the event)
//
// The key is family + local port + remote address + remote port. The local address is left out on
// purpose: it is the one part of the tuple a socket event may report differently from the packet
// (a socket bound to the wildcard address), and the local port already tells connections of one
// machine apart for a given remote endpoint.
import type { Endpoint } from '../../flow/types.ts';

export interface FlowTuple {
  family: 4 | 6;
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
}

export function tupleKey(t: FlowTuple): string {
  return `${t.family}|${t.localPort}|${t.remoteAddress}|${t.remotePort}`;
}

export interface Held<T> {
  tuple: FlowTuple;
  item: T;
  heldAt: number;
  deadline: number;
}

export interface PendingOptions {
  synTimeoutMs: number;
  connectTtlMs: number;
  /** Bound on held SYNs; beyond it new SYNs are refused (the caller drops them: fail closed). */
  maxHeld: number;
  maxKnown: number;
}

export const DEFAULT_PENDING_OPTIONS: PendingOptions = { synTimeoutMs: 500, connectTtlMs: 10_000, maxHeld: 4096, maxKnown: 65_536 };

export type SynOutcome<T> =
  | { kind: 'known'; pid: number }
  | { kind: 'held'; replaced?: Held<T> }
  | { kind: 'refused'; reason: 'too-many-held' };

export class SynPending<T> {
  readonly opts: PendingOptions;
  #held = new Map<string, Held<T>>();
  #known = new Map<string, { pid: number; expires: number }>();

  constructor(opts: Partial<PendingOptions> = {}) {
    this.opts = { ...DEFAULT_PENDING_OPTIONS, ...opts };
  }

  get heldCount(): number {
    return this.#held.size;
  }

  /** A CONNECT event: releases the held SYN of this tuple, if any. */
  onConnect(t: FlowTuple, pid: number, now: number): Held<T> | undefined {
    const k = tupleKey(t);
    if (this.#known.size >= this.opts.maxKnown) this.#pruneKnown(now);
    if (this.#known.size < this.opts.maxKnown) this.#known.set(k, { pid, expires: now + this.opts.connectTtlMs });
    const h = this.#held.get(k);
    if (!h) return undefined;
    this.#held.delete(k);
    return h;
  }

  /** A SYN: decided at once when its CONNECT was seen, else held (a retransmission replaces the copy). */
  onSyn(t: FlowTuple, item: T, now: number): SynOutcome<T> {
    const k = tupleKey(t);
    const known = this.#known.get(k);
    if (known && known.expires > now) return { kind: 'known', pid: known.pid };
    const old = this.#held.get(k);
    if (!old && this.#held.size >= this.opts.maxHeld) return { kind: 'refused', reason: 'too-many-held' };
    const h: Held<T> = { tuple: t, item, heldAt: old?.heldAt ?? now, deadline: old?.deadline ?? now + this.opts.synTimeoutMs };
    this.#held.set(k, h);
    return old ? { kind: 'held', replaced: old } : { kind: 'held' };
  }

  pidOf(t: FlowTuple, now: number): number | undefined {
    const k = this.#known.get(tupleKey(t));
    return k && k.expires > now ? k.pid : undefined;
  }

  /** Held SYNs whose time is up, removed from the table. */
  expire(now: number): Held<T>[] {
    const out: Held<T>[] = [];
    for (const [k, h] of this.#held) {
      if (h.deadline <= now) {
        this.#held.delete(k);
        out.push(h);
      }
    }
    this.#pruneKnown(now);
    return out;
  }

  /** Earliest deadline of a held SYN (for the caller's timer), or undefined. */
  nextDeadline(): number | undefined {
    let d: number | undefined;
    for (const h of this.#held.values()) if (d === undefined || h.deadline < d) d = h.deadline;
    return d;
  }

  #pruneKnown(now: number): void {
    for (const [k, v] of this.#known) if (v.expires <= now) this.#known.delete(k);
  }

  clear(): void {
    this.#held.clear();
    this.#known.clear();
  }
}

export function remoteOf(t: FlowTuple): Endpoint {
  return { address: t.remoteAddress, port: t.remotePort, family: t.family };
}
