// The WinDivert reflection logic, pure and clock-injected: it is handed what the two WinDivert handles
// receive (outbound TCP packets from the NETWORK layer, CONNECT events from the SOCKET layer) and
// answers with the packets to send back. The loop that owns the handles (diverter.ts) only shuttles
// bytes; everything that decides is here and is tested on Linux with golden packets.
//
// Per outbound TCP packet, in this order:
//  1. a reply of a transparent listener (source = listener address and port) with a NAT entry:
//     rewritten to look like the server's packet and injected inbound to the app;
//  2. a packet of a reflected connection (NAT entry for its source, same destination): rewritten and
//     injected inbound to the listener;
//  3. a new connection (SYN without ACK): loopback and own-address destinations pass; otherwise the
//     PID is needed — from the SOCKET layer's CONNECT event, which may come before or after the SYN
//     (pending.ts) — and the classifier says reflect, pass or block. The daemon's own PID passes.
//  4. anything else (a flow that was never reflected) passes unchanged.
// A packet we cannot parse is dropped (fail closed) and counted by reason.
import { decodeAddress, setOutbound, clearChecksumFlags } from '../../sys/windows/windivert.ts';
import { isLoopback } from '../../sys/windows/addr.ts';
import { parseTcp, reflectToApp, reflectToListener, TCP_ACK, TCP_SYN, type TcpPacket } from './packet.ts';
import { NatTable, type NatEntry, type NatOptions } from './nat.ts';
import { SynPending, type FlowTuple, type PendingOptions } from './pending.ts';

export type Verdict = { action: 'reflect'; group: string } | { action: 'pass' } | { action: 'block' };

export interface ListenerSet {
  /** Interface address the transparent listeners of this family are bound to. */
  address: string;
  /** Egress group → listener port. */
  ports: ReadonlyMap<string, number>;
}

export interface ReflectorOptions {
  ownPid: number;
  listeners: { 4?: ListenerSet; 6?: ListenerSet };
  /** This machine's unicast addresses: connections to them are never reflected. */
  localAddresses: () => ReadonlySet<string>;
  /** Reflect, pass or block a new connection; `pid` undefined when no CONNECT event came in time. */
  classify: (pid: number | undefined, t: FlowTuple) => Verdict;
  /** Owner PID from the TCP table, tried when a held SYN times out (GetExtendedTcpTable). */
  pidFallback?: (t: FlowTuple) => number | undefined;
  now: () => number;
  nat?: Partial<NatOptions>;
  pending?: Partial<PendingOptions>;
}

export interface Outgoing {
  packet: Buffer;
  /** The WINDIVERT_ADDRESS to send with (a modified copy for reflected packets). */
  addr: Buffer;
}

interface HeldSyn {
  packet: Buffer;
  addr: Buffer;
  pkt: TcpPacket;
}

export interface ReflectorStats {
  reflectedToListener: number;
  reflectedToApp: number;
  passed: number;
  blocked: number;
  held: number;
  timedOut: number;
  dropped: Record<string, number>;
}

export class Reflector {
  readonly nat: NatTable;
  readonly pending: SynPending<HeldSyn>;
  readonly stats: ReflectorStats = { reflectedToListener: 0, reflectedToApp: 0, passed: 0, blocked: 0, held: 0, timedOut: 0, dropped: {} };
  #o: ReflectorOptions;

  constructor(o: ReflectorOptions) {
    this.#o = o;
    this.nat = new NatTable(o.nat);
    this.pending = new SynPending<HeldSyn>(o.pending);
  }

  /** Replaces the listener set (interface address change re-binds the listeners). */
  setListeners(l: ReflectorOptions['listeners']): void {
    this.#o = { ...this.#o, listeners: l };
  }

  #drop(reason: string): Outgoing[] {
    this.stats.dropped[reason] = (this.stats.dropped[reason] ?? 0) + 1;
    return [];
  }

  #pass(packet: Buffer, addr: Buffer): Outgoing[] {
    this.stats.passed++;
    return [{ packet, addr }];
  }

  /** A packet from the NETWORK-layer handle. */
  onPacket(packet: Buffer, addr: Buffer): Outgoing[] {
    const a = decodeAddress(addr);
    // The filter asks for outbound non-loopback TCP only; anything else goes back untouched.
    if (!a.outbound || a.loopback) return this.#pass(packet, addr);
    const r = parseTcp(packet);
    if (!r.ok) return this.#drop(r.reason);
    const p = r.pkt;
    const now = this.#o.now();

    // 1. Listener reply: source is a listener, the NAT key is (family, listener address, peer port).
    const ls = this.#o.listeners[p.family];
    if (ls && p.src === ls.address && isListenerPort(ls, p.srcPort)) {
      const e = this.nat.get(p.family, p.src, p.dstPort);
      if (e && e.origDst.address === p.dst && e.listenerPort === p.srcPort) {
        this.nat.seen(e, p.flags, false, now);
        this.stats.reflectedToApp++;
        return [{ packet: reflectToApp(packet, p, e.origDst.port), addr: inboundCopy(addr) }];
      }
      // A listener packet towards a peer without an entry (the listener resetting a stranger): as is.
      return this.#pass(packet, addr);
    }

    // 2. A reflected connection's packet.
    const e = this.nat.get(p.family, p.src, p.srcPort);
    if (e && e.origDst.address === p.dst && e.origDst.port === p.dstPort) {
      if ((p.flags & (TCP_SYN | TCP_ACK)) === TCP_SYN && e.state === 'closing') {
        // Port reused for a new connection to the same server: decide afresh below.
      } else {
        this.nat.seen(e, p.flags, true, now);
        this.stats.reflectedToListener++;
        return [{ packet: reflectToListener(packet, p, e.listenerPort), addr: inboundCopy(addr) }];
      }
    }

    // 3. New connection.
    if ((p.flags & (TCP_SYN | TCP_ACK)) === TCP_SYN) {
      if (isLoopback(p.dst) || this.#o.localAddresses().has(p.dst)) return this.#pass(packet, addr);
      const t = tupleOf(p);
      const out = this.pending.onSyn(t, { packet, addr, pkt: p }, now);
      if (out.kind === 'refused') return this.#drop(out.reason);
      if (out.kind === 'known') return this.#decide(out.pid, { packet, addr, pkt: p }, now);
      this.stats.held++;
      return []; // held until its CONNECT event or its timeout
    }

    // 4. Not ours.
    return this.#pass(packet, addr);
  }

  /** A CONNECT event from the SOCKET-layer handle. */
  onConnect(t: FlowTuple, pid: number): Outgoing[] {
    const now = this.#o.now();
    const h = this.pending.onConnect(t, pid, now);
    return h ? this.#decide(pid, h.item, now) : [];
  }

  /** Timeouts: held SYNs and NAT entries. Call on a timer (nextDeadline tells when). */
  tick(): Outgoing[] {
    const now = this.#o.now();
    const out: Outgoing[] = [];
    for (const h of this.pending.expire(now)) {
      this.stats.timedOut++;
      const pid = this.#o.pidFallback?.(h.tuple);
      out.push(...this.#decide(pid, h.item, now));
    }
    this.nat.sweep(now);
    return out;
  }

  nextDeadline(): number | undefined {
    return this.pending.nextDeadline();
  }

  #decide(pid: number | undefined, s: HeldSyn, now: number): Outgoing[] {
    const p = s.pkt;
    if (pid !== undefined && pid === this.#o.ownPid) return this.#pass(s.packet, s.addr);
    const t = tupleOf(p);
    const v = this.#o.classify(pid, t);
    if (v.action === 'pass') return this.#pass(s.packet, s.addr);
    if (v.action === 'block') {
      this.stats.blocked++;
      return [];
    }
    const ls = this.#o.listeners[p.family];
    const port = ls?.ports.get(v.group);
    // No listener for this family or group, or the app's source address is not the listener's
    // (Windows' strong host model would drop the injected packet): cannot reflect, so block.
    if (!ls || port === undefined) return this.#drop('no-listener');
    if (p.src !== ls.address) return this.#drop('source-not-listener-address');
    const c = this.nat.create(
      { family: p.family, localAddress: p.src, localPort: p.srcPort, origDst: { address: p.dst, port: p.dstPort, family: p.family }, listenerPort: port, pid, group: v.group },
      now,
    );
    if (!c.ok) return this.#drop(`nat-${c.reason}`);
    this.nat.seen(c.entry, p.flags, true, now);
    this.stats.reflectedToListener++;
    return [{ packet: reflectToListener(s.packet, p, port), addr: inboundCopy(s.addr) }];
  }

  /** The entry behind a connection the listener accepted (FlowIdentity). */
  lookupAccepted(family: 4 | 6, listenerAddress: string, peerAddress: string, peerPort: number): NatEntry | undefined {
    const e = this.nat.get(family, listenerAddress, peerPort);
    return e && e.origDst.address === peerAddress ? e : undefined;
  }
}

function isListenerPort(ls: ListenerSet, port: number): boolean {
  for (const p of ls.ports.values()) if (p === port) return true;
  return false;
}

function tupleOf(p: TcpPacket): FlowTuple {
  return { family: p.family, localAddress: p.src, localPort: p.srcPort, remoteAddress: p.dst, remotePort: p.dstPort };
}

/** Copy of the address with Outbound cleared (inject inbound) and the checksum-valid bits cleared. */
function inboundCopy(addr: Buffer): Buffer {
  const c = Buffer.from(addr);
  setOutbound(c, false);
  clearChecksumFlags(c);
  return c;
}
