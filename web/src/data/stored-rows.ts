// Rows of a stored matrix in the full (rows, N) layout the rest of the viewer
// reads, whatever the storage profile (SPEC.md §1): which stored values a run of
// rows occupies (one range read, in every profile: the stored rows lie back to
// back), and those values laid out as full rows. Columns a row does not store
// are 0 (the causal mask's zeros); rows the sample does not store are NaN (the
// view greys them).

import { STORAGE_PROFILES, type Storage } from "./format";

/** float16 NaN: what a row the sample does not store reads as. */
export const NOT_STORED = 0x7e00;

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
export function storedSpan(storage: Storage, first: number, count: number): [number, number] {
  const starts = storage.rowStarts;
  return [starts[storedRowAtOrAfter(storage.rows, first)]!, starts[storedRowAtOrAfter(storage.rows, first + count)]!];
}

/**
 * Rows first..first+count-1 as (count, N) float16, from `values`: the stored
 * values from element `start` of the matrix on (at least storedSpan's).
 */
export function fullRows(storage: Storage, n: number, values: Uint16Array, start: number, first: number, count: number): Uint16Array {
  const { imageRows, causalColumns } = STORAGE_PROFILES[storage.profile];
  if (imageRows && !causalColumns) return values.subarray(first * n - start, (first + count) * n - start); // the plain layout
  const out = new Uint16Array(count * n);
  for (let r = first; r < first + count; r++) {
    const k = storage.rowIndex[r]!;
    if (k < 0) out.fill(NOT_STORED, (r - first) * n, (r - first + 1) * n);
    else out.set(values.subarray(storage.rowStarts[k]! - start, storage.rowStarts[k + 1]! - start), (r - first) * n);
  }
  return out;
}
