// The control methods a daemon offers, each with its permission class. Registering a method
// without one is impossible, so no method is reachable by accident without a check.
import { ControlError, InternalError } from '../errors.ts';
import type { Caller } from './auth.ts';

/** `read`: changes nothing (status, explain, conns); `change`: changes state (reload, stop, ...). */
export type PermissionClass = 'read' | 'change';

/**
 * Marks a method whose answer reveals browsing (conns, rdns): a caller who is not privileged
 * sees only entries owned by its own uid (on Windows: its own user SID). The server applies the filter, not the handler, so a
 * handler cannot forget it. `items` names the array field of an object result; without it the
 * result itself must be the array.
 */
export interface Privacy {
  items?: string;
  /** The uid that owns an entry; undefined = unknown owner, hidden from non-privileged callers. */
  ownerOf(item: unknown): number | undefined;
  /**
   * Windows: the user SID that owns an entry (a caller on the pipe has a SID, not a uid: it is
   * matched by this instead of ownerOf). Absent or undefined = unknown owner, hidden.
   */
  ownerSidOf?(item: unknown): string | undefined;
}

/**
 * True when an entry owned by (uid, sid) is the caller's own: by SID for a caller identified by a
 * SID (the Windows pipe, whose uid is -1), else by uid. An unknown owner is nobody's.
 */
export function ownedBy(caller: Caller, uid: number | undefined | null, sid?: string | null): boolean {
  if (caller.sid !== undefined) return typeof sid === 'string' && sid.toUpperCase() === caller.sid.toUpperCase();
  return typeof uid === 'number' && uid >= 0 && uid === caller.uid;
}

export interface CallContext {
  caller: Caller;
  /** True when the caller may see entries owned by `uid` (Unix) / `sid` (Windows; see ownedBy). */
  sees(uid: number | undefined, sid?: string): boolean;
  /**
   * Sends a partial result before the final one (`conns --watch`); same shape as the result, and
   * filtered the same way for private methods. Resolves when the bytes are handed to the socket;
   * throws SY_ERR_CONTROL_CLOSED once the caller has gone.
   */
  send(partial: unknown): Promise<void>;
  /** Aborted when the caller disconnects: long-running handlers stop on it. */
  signal: AbortSignal;
}

export interface MethodSpec {
  name: string;
  permission: PermissionClass;
  summary: string;
  privacy?: Privacy;
  handler(params: unknown, ctx: CallContext): unknown;
}

export class MethodRegistry {
  readonly #methods = new Map<string, MethodSpec>();

  register(spec: MethodSpec): this {
    if (!/^[a-z][a-z0-9.-]*$/.test(spec.name)) throw new InternalError(`bad control method name '${spec.name}'`);
    if (spec.permission !== 'read' && spec.permission !== 'change') {
      throw new InternalError(`control method '${spec.name}' lacks a permission class`);
    }
    if (this.#methods.has(spec.name)) throw new InternalError(`control method '${spec.name}' registered twice`);
    this.#methods.set(spec.name, spec);
    return this;
  }

  get(name: string): MethodSpec | undefined {
    return this.#methods.get(name);
  }

  list(): { name: string; permission: PermissionClass; private: boolean; summary: string }[] {
    return [...this.#methods.values()]
      .map((m) => ({ name: m.name, permission: m.permission, private: m.privacy !== undefined, summary: m.summary }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }
}

/** Applies a method's privacy filter to its result for this caller. Fails closed on a shape it cannot filter. */
export function applyPrivacy(spec: MethodSpec, result: unknown, caller: Caller): unknown {
  const p = spec.privacy;
  if (p === undefined || caller.privileged) return result;
  const keep = (arr: unknown[]) => arr.filter((item) => ownedBy(caller, p.ownerOf(item), p.ownerSidOf?.(item)));
  if (p.items === undefined) {
    if (!Array.isArray(result)) throw new InternalError(`private method '${spec.name}' returned a non-array`);
    return keep(result);
  }
  if (result === null || typeof result !== 'object' || !Array.isArray((result as Record<string, unknown>)[p.items])) {
    throw new InternalError(`private method '${spec.name}' result lacks array field '${p.items}'`);
  }
  return { ...(result as Record<string, unknown>), [p.items]: keep((result as Record<string, unknown[]>)[p.items]!) };
}

export function checkPermission(spec: MethodSpec, caller: Caller): void {
  if (spec.permission === 'change' && !caller.privileged) {
    throw new ControlError(
      'SY_ERR_CONTROL_PERMISSION',
      `'${spec.name}' changes state: only root, the daemon's user (user mode) or the control group may call it`,
    );
  }
  if (!caller.mayRead) {
    throw new ControlError('SY_ERR_CONTROL_PERMISSION', `${caller.sid ?? `uid ${caller.uid}`} is not in [control] read_users`);
  }
}
