// A string → int32 index for deduplicating a million list entries. A Map of 1M string keys costs
// V8 a large hash table of tagged entries plus rehashing as it grows; this keeps only the key
// references (one array), the values (an Int32Array) and an open-addressing table of positions
// (an Int32Array), hashing the characters once with FNV-1a. Transient: it lives while lists load.
export class StringIndex {
  private keys: string[] = [];
  private vals = new Int32Array(1024);
  private hashes = new Int32Array(1024);
  /** Slot → position + 1 (0 = empty). Capacity is a power of two, load ≤ 1/2. */
  private table = new Int32Array(2048);
  private mask = 2047;

  get size(): number {
    return this.keys.length;
  }

  private static hash(s: string): number {
    let h = 0x811c9dc5 | 0;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
    return h;
  }

  get(key: string): number | undefined {
    const h = StringIndex.hash(key);
    for (let slot = h & this.mask; ; slot = (slot + 1) & this.mask) {
      const p = this.table[slot]!;
      if (p === 0) return undefined;
      if (this.hashes[p - 1] === h && this.keys[p - 1] === key) return this.vals[p - 1];
    }
  }

  /**
   * Returns the value of `key`, or inserts it with `value` and returns undefined (one probe where
   * get-then-set would take two). setLast() then fixes the value of the key just inserted.
   */
  addIfAbsent(key: string, value: number): number | undefined {
    const h = StringIndex.hash(key);
    for (let slot = h & this.mask; ; slot = (slot + 1) & this.mask) {
      const p = this.table[slot]!;
      if (p === 0) {
        this.insert(slot, key, h, value);
        return undefined;
      }
      if (this.hashes[p - 1] === h && this.keys[p - 1] === key) return this.vals[p - 1];
    }
  }

  /** Sets the value of the most recently inserted key. */
  setLast(value: number): void {
    this.vals[this.keys.length - 1] = value;
  }

  /** Inserts or overwrites. */
  set(key: string, value: number): void {
    const h = StringIndex.hash(key);
    for (let slot = h & this.mask; ; slot = (slot + 1) & this.mask) {
      const p = this.table[slot]!;
      if (p === 0) {
        this.insert(slot, key, h, value);
        return;
      }
      if (this.hashes[p - 1] === h && this.keys[p - 1] === key) {
        this.vals[p - 1] = value;
        return;
      }
    }
  }

  private insert(slot: number, key: string, h: number, value: number): void {
    const pos = this.keys.length;
    this.keys.push(key);
    if (pos >= this.vals.length) this.growArrays();
    this.vals[pos] = value;
    this.hashes[pos] = h;
    this.table[slot] = pos + 1;
    if ((pos + 1) * 2 > this.table.length) this.rehash(this.table.length * 2);
  }

  /** Removes every entry whose value fails `keep` (rebuilds; used only when a list fails). */
  retain(keep: (value: number) => boolean): void {
    const keys = this.keys;
    const vals = this.vals;
    this.keys = [];
    this.vals = new Int32Array(1024);
    this.hashes = new Int32Array(1024);
    this.table = new Int32Array(2048);
    this.mask = 2047;
    for (let i = 0; i < keys.length; i++) if (keep(vals[i]!)) this.set(keys[i]!, vals[i]!);
  }

  private growArrays(): void {
    const n = this.vals.length * 2;
    const v = new Int32Array(n);
    v.set(this.vals);
    this.vals = v;
    const h = new Int32Array(n);
    h.set(this.hashes);
    this.hashes = h;
  }

  private rehash(capacity: number): void {
    this.table = new Int32Array(capacity);
    this.mask = capacity - 1;
    for (let pos = 0; pos < this.keys.length; pos++) {
      let slot = this.hashes[pos]! & this.mask;
      while (this.table[slot] !== 0) slot = (slot + 1) & this.mask;
      this.table[slot] = pos + 1;
    }
  }
}
