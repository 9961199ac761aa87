import { describe, expect, test } from "vitest";
import { meanOfRows, reduceVectors, shownStats, rowsNeeded, vectorFromRows } from "../../src/data/attention";
import { halfToFloat } from "../../src/data/float16";
import { fixtureBits } from "./fixture";

const N = 40;
const HEADS = 3;

/** Head h of a fixture layer file as its own (N, N) matrix: the block the worker fetches by range. */
function headBlock(layer: number, head: number): Uint16Array {
  return fixtureBits(`attn_layer_0${layer}.bin`).slice(head * N * N, (head + 1) * N * N);
}

/** A token's vector from a whole matrix, through the rows the worker would read. */
function vectorOf(matrix: Uint16Array, index: number, axis: "row" | "col"): Float32Array {
  const [first, count] = rowsNeeded(N, index, axis);
  return vectorFromRows(matrix.subarray(first * N, (first + count) * N), N, index, axis);
}

describe("rows and columns of a matrix", () => {
  const block = headBlock(1, 2);
  test("a row is attention[i, :], read from that row alone", () => {
    expect(rowsNeeded(N, 30, "row")).toEqual([30, 1]);
    const row = vectorOf(block, 30, "row");
    for (let j = 0; j < N; j++) expect(row[j]).toBe(Math.fround(halfToFloat(block[30 * N + j]!)));
  });
  test("a column is attention[:, j], read from rows j..N-1: the rows before are zero under the causal mask", () => {
    expect(rowsNeeded(N, 5, "col")).toEqual([5, N - 5]);
    for (const j of [0, 5, 24, 39]) {
      const column = vectorOf(block, j, "col");
      for (let i = 0; i < N; i++) expect(column[i]).toBe(Math.fround(halfToFloat(block[i * N + j]!)));
    }
  });
});

describe("head aggregation agrees with the sample's stored head mean and max", () => {
  for (const layer of [0, 1]) {
    for (const axis of ["row", "col"] as const) {
      test(`layer ${layer}, ${axis}s`, () => {
        const mean = fixtureBits(`attn_mean_layer_0${layer}.bin`);
        const max = fixtureBits(`attn_max_layer_0${layer}.bin`);
        for (const index of [0, 4, 25, 39]) {
          const heads = Array.from({ length: HEADS }, (_, h) => vectorOf(headBlock(layer, h), index, axis));
          const storedMean = vectorOf(mean, index, axis);
          reduceVectors(heads, "mean").forEach((v, j) => expect(v).toBeCloseTo(storedMean[j]!, 3)); // float16 rounding
          expect(reduceVectors(heads, "max")).toEqual(vectorOf(max, index, axis)); // max is exact
        }
      });
    }
  }
});

describe("reduceVectors", () => {
  const a = Float32Array.of(1, 5, -2);
  const b = Float32Array.of(3, 1, -4);
  test("mean, max and min element-wise", () => {
    expect(Array.from(reduceVectors([a, b], "mean"))).toEqual([2, 3, -3]);
    expect(Array.from(reduceVectors([a, b], "max"))).toEqual([3, 5, -2]);
    expect(Array.from(reduceVectors([a, b], "min"))).toEqual([1, 1, -4]);
  });
  test("leaves its inputs alone", () => {
    reduceVectors([a, b], "mean");
    expect(Array.from(a)).toEqual([1, 5, -2]);
  });
  test("refuses an empty list", () => {
    expect(() => reduceVectors([], "max")).toThrow(/at least one/);
  });
});

describe("shownStats", () => {
  const values = Float32Array.of(0.9, 0.05, 0.3, 0.01, 0.6);
  test("min and max over all values", () => {
    expect(shownStats(values, null).range).toEqual({ lo: Math.fround(0.01), hi: Math.fround(0.9) });
  });
  test("skips the masked sinks", () => {
    const skip = Uint8Array.of(1, 0, 0, 0, 1);
    expect(shownStats(values, skip).range).toEqual({ lo: Math.fround(0.01), hi: Math.fround(0.3) });
  });
  test("over a span only", () => {
    expect(shownStats(values, null, 1, 3).range).toEqual({ lo: Math.fround(0.05), hi: Math.fround(0.3) });
  });
  test("an empty selection has no range", () => {
    expect(shownStats(values, Uint8Array.of(1, 1, 1, 1, 1)).range).toBeNull();
  });
  test("NaN and Inf stay out of the range and are counted; zeros do not start a log scale", () => {
    const stats = shownStats(Float32Array.of(0, NaN, 0.2, Infinity, 0.5, -Infinity), null);
    expect(stats.range).toEqual({ lo: 0, hi: 0.5 });
    expect(stats.nonFinite).toBe(3);
    expect(stats.minPositive).toBe(Math.fround(0.2));
  });
});

describe("vision saliency: meanOfRows over the received file", () => {
  const P = 84; // the fixture's vision grid, 6 × 14
  const received = fixtureBits("vision_received.bin"); // (2 blocks, P)
  const value = (bits: Uint16Array, at: number) => halfToFloat(bits[at]!);

  test("one block's row is that block's received attention: the column sums of its head mean", () => {
    const mean = fixtureBits("vision_mean_block_03.bin");
    const saliency = meanOfRows(received, P, [1]);
    for (const p of [0, 17, 83]) {
      let columnSum = 0;
      for (let q = 0; q < P; q++) columnSum += value(mean, q * P + p);
      expect(saliency[p]).toBeCloseTo(columnSum, 1); // float16 rounding of P summands
    }
  });

  test("all blocks: the mean of the rows, which averages 1 over the patches", () => {
    const saliency = meanOfRows(received, P, [0, 1]);
    for (let p = 0; p < P; p++) expect(saliency[p]).toBeCloseTo((value(received, p) + value(received, P + p)) / 2, 6);
    expect(saliency.reduce((a, b) => a + b, 0) / P).toBeCloseTo(1, 2);
  });
});
