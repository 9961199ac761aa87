// Pure maths on attention: pulling one row or column out of raw float16 rows,
// combining several vectors, and the per-view normalisation range.
// Shared by the worker (extraction, combining) and the main thread (range).

import { decodeStrided } from "./float16";
import { FOLDS, type Fold } from "./variants";

export type Axis = "row" | "col";

/**
 * The rows a view of token `index` needs, as [first, count]: a row is itself; a
 * column needs rows firstRow..N-1 only, because the layer's mask (SPEC §1) makes
 * every earlier row zero at column `index` (firstRow = index when causal, see
 * firstRowSeeing). For a text token late in the sequence that is a small part of the N² matrix.
 */
export function rowsNeeded(n: number, index: number, axis: Axis, firstRow = index): [number, number] {
  return axis === "row" ? [index, 1] : [firstRow, n - firstRow];
}

/**
 * attention[index, :] (axis "row") or attention[:, index] (axis "col") of an
 * (n, n) matrix, from the float16 rows that rowsNeeded() names.
 */
export function vectorFromRows(rows: Uint16Array, n: number, index: number, axis: Axis, firstRow = index): Float32Array {
  if (axis === "row") return decodeStrided(rows, 0, n, 1);
  const column = new Float32Array(n);
  column.set(decodeStrided(rows, index, n - firstRow, n), firstRow);
  return column;
}

/**
 * The mean of some rows of a row-major float16 table whose rows hold `length`
 * values. The vision saliency is this over the received file (one row per
 * captured block), for the chosen blocks.
 */
export function meanOfRows(table: Uint16Array, length: number, rows: number[]): Float32Array {
  return reduceVectors(rows.map((row) => decodeStrided(table, row * length, length, 1)), "mean");
}

/** The element-wise fold (a FOLDS entry) of equally long vectors. */
export function reduceVectors(vectors: Float32Array[], reduce: Fold): Float32Array {
  const [first, ...rest] = vectors;
  if (!first) throw new Error("reduceVectors needs at least one vector");
  const { fold, finish } = FOLDS[reduce];
  const out = Float32Array.from(first);
  for (const vector of rest) {
    for (let j = 0; j < out.length; j++) out[j] = fold(out[j]!, vector[j]!);
  }
  if (finish) for (let j = 0; j < out.length; j++) out[j] = finish(out[j]!, vectors.length);
  return out;
}

export interface ValueRange {
  lo: number;
  hi: number;
}

/** What a panel shows of a vector: its finite range, where a log scale starts, and how many values are NaN or ±Inf. */
export interface ShownStats {
  /** Min and max of the counted finite values; null when there are none. */
  range: ValueRange | null;
  /** The smallest counted value above zero, or 0 when none is. */
  minPositive: number;
  nonFinite: number;
}

/**
 * Statistics of values[start..end) whose index is not skipped. Attention
 * sinks (the first token, special tokens) take most of the mass in Qwen's
 * maps, so the viewer can leave them out to keep the rest visible. NaN and
 * ±Inf stay out of the range and are counted apart.
 */
export function shownStats(values: Float32Array, skip: Uint8Array | null, start = 0, end = values.length): ShownStats {
  const tally = new StatsTally();
  for (let j = start; j < end; j++) if (!skip?.[j]) tally.add(values[j]!);
  return tally.stats();
}

/** shownStats over the values at `indices` within visible[0]..visible[1] (an image's tokens, which need not be one block). */
export function shownStatsAt(values: Float32Array, skip: Uint8Array | null, indices: ArrayLike<number>, visible: readonly [number, number]): ShownStats {
  const tally = new StatsTally();
  for (let k = 0; k < indices.length; k++) {
    const j = indices[k]!;
    if (j >= visible[0] && j <= visible[1] && !skip?.[j]) tally.add(values[j]!);
  }
  return tally.stats();
}

class StatsTally {
  private lo = Infinity;
  private hi = -Infinity;
  private minPositive = Infinity;
  private nonFinite = 0;

  add(v: number): void {
    if (!Number.isFinite(v)) this.nonFinite++;
    else {
      if (v < this.lo) this.lo = v;
      if (v > this.hi) this.hi = v;
      if (v > 0 && v < this.minPositive) this.minPositive = v;
    }
  }

  stats(): ShownStats {
    const { lo, hi, minPositive, nonFinite } = this;
    return { range: lo <= hi ? { lo, hi } : null, minPositive: Number.isFinite(minPositive) ? minPositive : 0, nonFinite };
  }
}
