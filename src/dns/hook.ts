// Batches calls to the binding hook: when a call slot is free the bindings go out at once (no
// added latency when idle); while maxInFlight calls are running, new bindings queue up and leave
// together in the next call (up to maxBatch bindings) — batching under load. Each call has a
// timeout. Each answer waits for the batch that carries its bindings; a failed or timed-out batch
// fails every answer in it (the forwarder then answers SERVFAIL for non-direct names).
import type { Binding, BindingHook } from '../flow/types.ts';
import { DnsError } from './errors.ts';

interface Waiter {
  bindings: Binding[];
  resolve: () => void;
  reject: (err: Error) => void;
}

export interface HookBatcherOptions {
  maxBatch?: number;
  maxInFlight?: number;
  timeoutMs?: number;
}

export class HookBatcher {
  readonly #hook: BindingHook;
  readonly #maxBatch: number;
  readonly #maxInFlight: number;
  readonly #timeoutMs: number;
  #queue: Waiter[] = [];
  #inFlight = 0;
  /** Calls made and bindings handed over (for status output and tests). */
  calls = 0;
  bindings = 0;

  constructor(hook: BindingHook, opts: HookBatcherOptions = {}) {
    this.#hook = hook;
    this.#maxBatch = opts.maxBatch ?? 512;
    this.#maxInFlight = opts.maxInFlight ?? 4;
    this.#timeoutMs = opts.timeoutMs ?? 2000;
  }

  submit(bindings: Binding[]): Promise<void> {
    if (bindings.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ bindings, resolve, reject });
      this.#flush();
    });
  }

  #flush(): void {
    while (this.#inFlight < this.#maxInFlight && this.#queue.length > 0) {
      const take: Waiter[] = [];
      let n = 0;
      while (this.#queue.length > 0 && (take.length === 0 || n + this.#queue[0]!.bindings.length <= this.#maxBatch)) {
        const w = this.#queue.shift()!;
        take.push(w);
        n += w.bindings.length;
      }
      this.#run(take);
    }
  }

  #run(take: Waiter[]): void {
    // One entry per ip+name, the longest hold wins (one waiter, the common case when idle: its own list).
    let batch: Binding[];
    if (take.length === 1 && take[0]!.bindings.length === 1) batch = take[0]!.bindings;
    else {
      const merged = new Map<string, Binding>();
      for (const w of take) {
        for (const b of w.bindings) {
          const k = `${b.ip} ${b.name}`;
          const old = merged.get(k);
          if (!old || old.holdSeconds < b.holdSeconds) merged.set(k, b);
        }
      }
      batch = [...merged.values()];
    }
    this.#inFlight++;
    this.calls++;
    this.bindings += batch.length;
    // One settle for the call and its timeout (whichever comes first), without a race of promises.
    let done = false;
    const settle = (err: unknown): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      this.#inFlight--;
      if (err === undefined) for (const w of take) w.resolve();
      else {
        const e = err instanceof DnsError ? err : new DnsError('SY_ERR_DNS_HOOK', `binding hook failed: ${(err as Error)?.message ?? String(err)}`, err);
        for (const w of take) w.reject(e);
      }
      this.#flush();
    };
    const timer = setTimeout(() => settle(new DnsError('SY_ERR_DNS_HOOK', `binding hook took longer than ${this.#timeoutMs} ms`)), this.#timeoutMs);
    let call: Promise<void>;
    try {
      call = Promise.resolve(this.#hook(batch));
    } catch (err) {
      call = Promise.reject(err);
    }
    call.then(
      () => settle(undefined),
      (err: unknown) => settle(err ?? new Error('binding hook rejected')),
    );
  }
}
