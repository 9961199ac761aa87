// Rows of a stored matrix in the full (rows, N) layout the rest of the viewer
// reads, whatever the storage profile (SPEC.md §1): which stored values a run of
// rows occupies (one range read, in every profile), and those values laid out
// as full rows: a triangle's missing columns are 0 (the causal mask's zeros),
// a text-rows sample's missing rows NaN (not stored; the view greys them).

import type { Storage } from "./format";

/** float16 NaN: what a row the sample does not store reads as. */
export const NOT_STORED = 0x7e00;

/** Values of the first `rows` rows of a packed triangle. */
function triangleEnd(rows: number): number {
  return (rows * (rows + 1)) / 2;
}

/** The first stored row at or after token `token` (storage.rows is ascending). */
function storedRowAtOrAfter(rows: number[], token: number): number {
  let [lo, hi] = [0, rows.length];
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (rows[mid]! < token) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** [start, end) in values of one stored matrix: where rows first..first+count-1 lie (the stored ones among them). */
export function storedSpan(storage: Storage, n: number, first: number, count: number): [number, number] {
  if (storage.profile === "triangle") return [triangleEnd(first), triangleEnd(first + count)];
  if (storage.profile === "text-rows") {
    return [storedRowAtOrAfter(storage.rows, first) * n, storedRowAtOrAfter(storage.rows, first + count) * n];
  }
  return [first * n, (first + count) * n];
}

/**
 * Rows first..first+count-1 as (count, N) float16, from `values`: the stored
 * values from element `start` of the matrix on (at least storedSpan's).
 */
export function fullRows(storage: Storage, n: number, values: Uint16Array, start: number, first: number, count: number): Uint16Array {
  if (storage.profile === "full") return values.subarray(first * n - start, (first + count) * n - start);
  const out = new Uint16Array(count * n);
  if (storage.profile === "triangle") {
    for (let r = first; r < first + count; r++) {
      const from = triangleEnd(r) - start;
      out.set(values.subarray(from, from + r + 1), (r - first) * n);
    }
    return out;
  }
  out.fill(NOT_STORED);
  for (let r = first; r < first + count; r++) {
    const k = storage.rowIndex[r]!;
    if (k >= 0) out.set(values.subarray(k * n - start, (k + 1) * n - start), (r - first) * n);
  }
  return out;
}
