// A least-recently-used cache bounded in bytes, not entries: one cached head
// block is 2·N² bytes (128 MiB at N=8,192), so a count limit would mean nothing.

export class ByteLru<V extends { byteLength: number }> {
  private readonly entries = new Map<string, V>(); // iteration order = least recent first
  private bytes = 0;

  constructor(readonly maxBytes: number) {}

  get usedBytes(): number {
    return this.bytes;
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
   * Store a value, evicting the least recently used until it fits. A value
   * larger than the whole budget is not stored (the caller still has it).
   */
  set(key: string, value: V): void {
    this.delete(key);
    if (value.byteLength > this.maxBytes) return;
    while (this.bytes + value.byteLength > this.maxBytes) this.evictOldest();
    this.entries.set(key, value);
    this.bytes += value.byteLength;
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

  private evictOldest(): void {
    const oldest = this.entries.keys().next();
    if (!oldest.done) this.delete(oldest.value);
  }
}
