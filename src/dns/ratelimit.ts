// Per-client token bucket: `rate` queries per second with a burst of twice that. The table of
// clients is bounded: when it grows past maxClients it is cleared (every client starts with a full
// bucket again), which costs little and cannot be used to exhaust memory.
interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  readonly #rate: number;
  readonly #burst: number;
  readonly #maxClients: number;
  #buckets = new Map<string | number, Bucket>();
  // The last client's bucket: most queries come from one or two local addresses, and comparing
  // the address string is cheaper than hashing it for the Map on every query.
  #lastClient: string | number | null = null;
  #lastBucket: Bucket | undefined;
  dropped = 0;

  /** rate <= 0 disables the limit. */
  constructor(rate: number, maxClients = 65536) {
    this.#rate = rate;
    this.#burst = Math.max(1, rate * 2);
    this.#maxClients = maxClients;
  }

  /** `client`: its address as text, or (the UDP fast path) an IPv4 address as a number. */
  allow(client: string | number, now: number): boolean {
    if (this.#rate <= 0) return true;
    let b = client === this.#lastClient ? this.#lastBucket : this.#buckets.get(client);
    if (!b) {
      if (this.#buckets.size >= this.#maxClients) this.#buckets = new Map();
      b = { tokens: this.#burst, at: now };
      this.#buckets.set(client, b);
      this.#lastClient = client;
      this.#lastBucket = b;
    } else {
      this.#lastClient = client;
      this.#lastBucket = b;
      b.tokens = Math.min(this.#burst, b.tokens + ((now - b.at) / 1000) * this.#rate);
      b.at = now;
    }
    if (b.tokens < 1) {
      this.dropped++;
      return false;
    }
    b.tokens -= 1;
    return true;
  }
}
