// The live session table: O(1) lookup by id, a listing of FlowRecords with live byte counts,
// closing one flow or every flow of an egress, and a cap. A slot is taken at accept time (before
// any handshake work) so that a flood of half-open handshakes counts against the cap too.
import { randomBytes } from 'node:crypto';
import type { FlowRecord, ProcessInfo } from '../flow/types.ts';

export interface SessionHandle {
  readonly id: string;
  /** Filled once the flow is decided and connected. */
  record: FlowRecord | null;
  /** Live counters (the relay's). */
  counters: { bytesUp: number; bytesDown: number } | null;
  close(reason: string): void;
  /** Lazy process lookup for listings (set when the decision did not need the process). */
  lookupProcess?: () => Promise<ProcessInfo | undefined>;
}

export interface SessionTableOptions {
  maxSessions: number;
}

export class SessionTable {
  private readonly sessions = new Map<string, SessionHandle>();
  private readonly prefix = randomBytes(3).toString('hex');
  private seq = 0;
  readonly maxSessions: number;
  /** Flows refused because the cap was reached. */
  refusedByCap = 0;

  constructor(o: SessionTableOptions) {
    this.maxSessions = o.maxSessions;
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Takes a slot, or returns undefined when the cap is reached. */
  open(close: (reason: string) => void): SessionHandle | undefined {
    if (this.sessions.size >= this.maxSessions) {
      this.refusedByCap++;
      return undefined;
    }
    const id = `${this.prefix}-${(++this.seq).toString(36)}`;
    const h: SessionHandle = { id, record: null, counters: null, close };
    this.sessions.set(id, h);
    return h;
  }

  release(id: string): void {
    this.sessions.delete(id);
  }

  get(id: string): SessionHandle | undefined {
    return this.sessions.get(id);
  }

  /** Established flows with live byte counts. */
  list(): FlowRecord[] {
    const out: FlowRecord[] = [];
    for (const h of this.sessions.values()) {
      if (!h.record) continue;
      out.push({ ...h.record, bytesUp: h.counters?.bytesUp ?? 0, bytesDown: h.counters?.bytesDown ?? 0 });
    }
    return out;
  }

  /**
   * Like list(), but fills in the process of flows whose decision did not need it (the lookup
   * runs now, once per flow, and is kept in the record). At most `maxLookups` lookups run per
   * call, so a listing of many new flows costs a bounded amount; the rest are filled by later
   * listings (and show no process until then).
   */
  async listWithProcesses(maxLookups = 64): Promise<FlowRecord[]> {
    const handles: SessionHandle[] = [];
    for (const h of this.sessions.values()) {
      if (handles.length >= maxLookups) break;
      if (h.record && h.record.process === null && h.lookupProcess) handles.push(h);
    }
    await Promise.all(
      handles.map(async (h) => {
        if (h.record && h.record.process === null && h.lookupProcess) {
          const look = h.lookupProcess;
          h.lookupProcess = undefined;
          h.record.process = (await look().catch(() => undefined)) ?? null;
        }
      }),
    );
    return this.list();
  }

  close(id: string, reason = 'closed by request'): boolean {
    const h = this.sessions.get(id);
    if (!h) return false;
    h.close(reason);
    return true;
  }

  /** Closes every established flow carried by `egress`; returns how many. */
  closeEgress(egress: string, reason = `egress ${egress} closed`): number {
    let n = 0;
    for (const h of [...this.sessions.values()]) {
      if (h.record?.egress === egress) {
        h.close(reason);
        n++;
      }
    }
    return n;
  }

  closeAll(reason = 'shutting down'): void {
    for (const h of [...this.sessions.values()]) h.close(reason);
  }
}
