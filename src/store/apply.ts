// Atomic activation of a revision: snapshot → apply → verify → COMMIT → done.
//
// The caller (the daemon) supplies the steps: `snapshot` captures what is applied now (policy
// object, OS backend state), `apply` swaps in the candidate's policy and enforcement, `verify`
// reads the result back, `restore` puts the snapshot back. The commit point is the store's state
// write (PolicyStore.commitActivation): before it, any failure restores the snapshot and rejects
// the candidate; a crash before it leaves the previous revision active on restart (the daemon
// re-applies whatever the store says is active); a crash after it keeps the new one.
//
// `failAt` injects a failure right after the named step ran (so restore has real work to undo);
// `at` is called on entering each point (crash tests stop the process there).
import { StoreError, isSwitchyardError } from '../errors.ts';
import type { Actor } from './audit.ts';
import type { PolicyStore, Revision } from './store.ts';

export interface ApplySteps<S> {
  snapshot(): S | Promise<S>;
  apply(rev: Revision): void | Promise<void>;
  verify(rev: Revision): void | Promise<void>;
  restore(snapshot: S): void | Promise<void>;
}

export const APPLY_POINTS = ['snapshot', 'apply', 'verify', 'before-commit', 'commit', 'after-commit'] as const;
export type ApplyPoint = (typeof APPLY_POINTS)[number];

export interface ActivateOptions {
  actor: Actor;
  /** Activate as a rollback (the replaced revision becomes superseded, not last-known-good). */
  rollback?: boolean;
  failAt?: ApplyPoint;
  at?: (point: ApplyPoint) => void | Promise<void>;
}

export class InjectedFailure extends Error {
  readonly injected = true;
  constructor(point: string) {
    super(`injected failure at ${point}`);
  }
}

export interface ActivateResult {
  revision: Revision;
  previous: number | null;
}

export async function activate<S>(store: PolicyStore, n: number, steps: ApplySteps<S>, opts: ActivateOptions): Promise<ActivateResult> {
  const rev = store.get(n); // verifies HMAC and hashes before anything is touched
  const entry = store.entry(n);
  if (entry?.state !== 'pending') throw new StoreError('SY_ERR_STORE_STATE', `revision #${n} is ${entry?.state ?? 'unknown'}, not pending`);
  const previous = store.active;
  const step = async (point: ApplyPoint, fn: () => unknown) => {
    await opts.at?.(point);
    await fn();
    if (opts.failAt === point) throw new InjectedFailure(point);
  };

  let snap: { value: S } | undefined;
  let current: ApplyPoint = 'snapshot';
  try {
    await step('snapshot', async () => {
      snap = { value: await steps.snapshot() };
    });
    current = 'apply';
    await step('apply', () => steps.apply(rev));
    current = 'verify';
    await step('verify', () => steps.verify(rev));
    current = 'before-commit';
    await step('before-commit', () => {});
    current = 'commit';
    await opts.at?.('commit');
    if (opts.failAt === 'commit') throw new InjectedFailure('commit');
    store.commitActivation(n, opts.actor, { rollback: opts.rollback ?? false });
  } catch (err) {
    let restored = true;
    if (snap !== undefined) {
      try {
        await steps.restore(snap.value);
      } catch {
        restored = false;
      }
    }
    const message = err instanceof Error ? err.message : String(err);
    store.recordApplyFailure(n, opts.actor, current, message, restored);
    throw new StoreError(
      'SY_ERR_STORE_APPLY',
      `activating revision #${n} failed at ${current}: ${message}; ${restored ? 'previous state restored' : 'RESTORING THE PREVIOUS STATE FAILED'}`,
      err,
    );
  }
  // Past the commit point: the new revision is active whatever happens next.
  await opts.at?.('after-commit');
  if (opts.failAt === 'after-commit') throw new InjectedFailure('after-commit');
  return { revision: rev, previous };
}

export function isApplyError(err: unknown): boolean {
  return isSwitchyardError(err) && err.code === 'SY_ERR_STORE_APPLY';
}
