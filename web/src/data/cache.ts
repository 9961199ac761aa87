// A least-recently-used cache bounded in bytes, not entries: one cached head
// block is 2·N² bytes (128 MiB at N=8,192), so a count limit would mean nothing.
// Bytes still on their way (a fetch in flight, a buffer being filled) count
// against the same budget as reservations, so cache + in flight ≤ maxBytes and
// room is made by evicting before a fetch starts, not after it lands.

export class ByteLru<V extends { byteLength: number }> {
  private readonly entries = new Map<string, V>(); // iteration order = least recent first
  private bytes = 0;
  private reserved = 0;

  /** `onEvict` sees each value pushed out to make room (its memory can be reused). */
  constructor(
    readonly maxBytes: number,
    private readonly onEvict?: (value: V) => void,
  ) {}

  /** Bytes held by cached values. */
  get usedBytes(): number {
    return this.bytes;
  }

  /** Bytes promised to reads in flight. */
  get reservedBytes(): number {
    return this.reserved;
  }

  get size(): number {
    return this.entries.size;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** The value, marked as most recently used. */
  get(key: string): V | undefined {
    const value = this.entries.get(key);
    if (value !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }

  /**
   * Store a value, evicting the least recently used until it fits beside the
   * reservations. A value larger than the whole budget is not stored (the
   * caller still has it).
   */
  set(key: string, value: V): void {
    this.delete(key);
    if (value.byteLength > this.maxBytes) return;
    this.evictUntilFree(value.byteLength);
    this.entries.set(key, value);
    this.bytes += value.byteLength;
  }

  /**
   * Reserve room for an optional read (a prefetch): evict until `bytes` fit,
   * or, when even an empty cache would leave too little beside the other
   * reservations, reserve and evict nothing and answer false.
   */
  tryReserve(bytes: number): boolean {
    if (this.reserved + bytes > this.maxBytes) return false;
    this.reserve(bytes);
    return true;
  }

  /**
   * Reserve room for a read the view waits for: evict what it takes; if the
   * other reservations leave too little, it goes over the budget until released.
   */
  reserve(bytes: number): void {
    this.evictUntilFree(bytes);
    this.reserved += bytes;
  }

  /** The read has landed (and was stored with set()) or was dropped. */
  release(bytes: number): void {
    this.reserved = Math.max(0, this.reserved - bytes);
  }

  delete(key: string): void {
    const old = this.entries.get(key);
    if (old === undefined) return;
    this.entries.delete(key);
    this.bytes -= old.byteLength;
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }

  private evictUntilFree(bytes: number): void {
    while (this.entries.size > 0 && this.bytes + this.reserved + bytes > this.maxBytes) this.evictOldest();
  }

  private evictOldest(): void {
    const oldest = this.entries.entries().next();
    if (oldest.done) return;
    this.delete(oldest.value[0]);
    this.onEvict?.(oldest.value[1]);
  }
}
