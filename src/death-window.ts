// Counting a helper thread's deaths within a sliding window, so a supervisor (the DNS fast path's
// worker, the Windows control pipe's worker) restarts one that died once and gives up on one
// that keeps dying instead of restarting it forever.

export class DeathWindow {
  readonly #max: number;
  readonly #windowMs: number;
  #at: number[] = [];

  /** Gives up (spent) once more than `max` deaths fall within `windowMs`. */
  constructor(max: number, windowMs: number) {
    this.#max = max;
    this.#windowMs = windowMs;
  }

  /** Counts a death now; returns the deaths within the window, this one included. */
  record(): number {
    const now = Date.now();
    this.#at = this.#at.filter((t) => now - t < this.#windowMs);
    this.#at.push(now);
    return this.#at.length;
  }

  /** True once the deaths within the window exceed the maximum. */
  get spent(): boolean {
    return this.#at.length > this.#max;
  }
}
