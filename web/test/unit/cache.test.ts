import { describe, expect, test } from "vitest";
import { ByteLru } from "../../src/data/cache";

const block = (bytes: number) => new Uint8Array(bytes);

describe("ByteLru", () => {
  test("counts the bytes of what it holds", () => {
    const cache = new ByteLru<Uint8Array>(100);
    cache.set("a", block(30));
    cache.set("b", block(20));
    expect(cache.usedBytes).toBe(50);
    cache.set("a", block(10)); // replacing a key replaces its bytes
    expect(cache.usedBytes).toBe(30);
    cache.delete("b");
    expect([cache.usedBytes, cache.size]).toEqual([10, 1]);
    cache.clear();
    expect([cache.usedBytes, cache.size, cache.has("a")]).toEqual([0, 0, false]);
  });

  test("evicts the least recently used until the new value fits", () => {
    const cache = new ByteLru<Uint8Array>(100);
    cache.set("a", block(40));
    cache.set("b", block(40));
    cache.set("c", block(20));
    cache.get("a"); // a is now the most recent; b is the oldest
    cache.set("d", block(30));
    expect(["a", "b", "c", "d"].map((k) => cache.has(k))).toEqual([true, false, true, true]);
    expect(cache.usedBytes).toBe(90);
    cache.set("e", block(100)); // needs everything gone
    expect(["a", "c", "d", "e"].map((k) => cache.has(k))).toEqual([false, false, false, true]);
    expect(cache.usedBytes).toBe(100);
  });

  test("does not store a value larger than the whole budget, and keeps the rest", () => {
    const cache = new ByteLru<Uint8Array>(100);
    cache.set("a", block(60));
    cache.set("huge", block(101));
    expect(cache.has("huge")).toBe(false);
    expect(cache.has("a")).toBe(true);
    expect(cache.usedBytes).toBe(60);
  });

  test("has() does not refresh recency; get() does", () => {
    const cache = new ByteLru<Uint8Array>(2);
    cache.set("a", block(1));
    cache.set("b", block(1));
    cache.has("a");
    cache.set("c", block(1));
    expect(cache.has("a")).toBe(false);
    cache.get("b");
    cache.set("d", block(1));
    expect([cache.has("b"), cache.has("c")]).toEqual([true, false]);
  });

  test("reservations for reads in flight share the budget: room is made before the bytes arrive", () => {
    const cache = new ByteLru<Uint8Array>(100);
    cache.set("a", block(40));
    cache.set("b", block(40));
    expect(cache.tryReserve(50)).toBe(true); // evicts a, the oldest
    expect([cache.has("a"), cache.has("b"), cache.usedBytes, cache.reservedBytes]).toEqual([false, true, 40, 50]);
    cache.set("c", block(20)); // fits beside b and the reservation only by evicting b
    expect([cache.has("b"), cache.usedBytes + cache.reservedBytes]).toEqual([false, 70]);
    cache.release(50);
    cache.set("d", block(50)); // the landed read
    expect([cache.usedBytes, cache.reservedBytes]).toEqual([70, 0]);
  });

  test("an optional read that cannot fit beside the others is refused and evicts nothing", () => {
    const cache = new ByteLru<Uint8Array>(100);
    cache.set("a", block(30));
    expect(cache.tryReserve(60)).toBe(true);
    expect(cache.tryReserve(60)).toBe(false);
    expect([cache.has("a"), cache.reservedBytes]).toEqual([true, 60]);
  });

  test("a read the view waits for is reserved even over the budget, after evicting everything", () => {
    const cache = new ByteLru<Uint8Array>(100);
    cache.set("a", block(30));
    cache.reserve(80);
    cache.reserve(40);
    expect([cache.size, cache.reservedBytes]).toEqual([0, 120]);
    cache.release(120);
    expect(cache.reservedBytes).toBe(0);
  });

  test("onEvict sees what is pushed out to make room, not what is deleted or replaced", () => {
    const evicted: number[] = [];
    const cache = new ByteLru<Uint8Array>(100, (value) => evicted.push(value.byteLength));
    cache.set("a", block(60));
    cache.set("a", block(50)); // replaced
    cache.set("b", block(10));
    cache.delete("b");
    cache.set("c", block(30));
    expect(evicted).toEqual([]);
    cache.tryReserve(40); // a must go
    expect(evicted).toEqual([50]);
  });
});

