// The atlas's pure parts on the fixture's tables (2 layers, 3 heads): splitting
// the worker's answer, ranking heads, and the per-layer curves.
import { describe, expect, test } from "vitest";
import { parseMeta, tokenTableFile } from "../../src/data/format";
import { halfToFloat } from "../../src/data/float16";
import { layerCurves, splitTables, topHeads } from "../../src/data/head-tables";
import { fixtureBits, fixtureMetaJson } from "./fixture";

const meta = parseMeta(fixtureMetaJson());
const [L, H] = [meta.numLayers, meta.numHeads];

function tokenTables(token: number): Float32Array {
  const flat = meta.tokenTables.flatMap((m) => Array.from(fixtureBits(tokenTableFile(m)).subarray(token * L * H, (token + 1) * L * H), halfToFloat));
  return Float32Array.from(flat);
}

describe("splitTables", () => {
  test("cuts the measures apart in the order they were asked for", () => {
    const tables = splitTables(tokenTables(30), meta.tokenTables, L, H);
    meta.tokenTables.forEach((measure) => {
      const expected = Array.from(fixtureBits(tokenTableFile(measure)).subarray(30 * L * H, 31 * L * H), halfToFloat);
      expect(Array.from(tables.byMeasure[measure]!)).toEqual(Array.from(Float32Array.from(expected)));
    });
  });
});

describe("topHeads", () => {
  const values = Float32Array.of(0.2, NaN, 0.9, 0.5, 0.2, 0.1);

  test("highest first, NaN left out, ties in layer-head order", () => {
    expect(topHeads(values, 3, 10, "highest").map((h) => [h.layer, h.head])).toEqual([[0, 2], [1, 0], [0, 0], [1, 1], [1, 2]]);
  });

  test("lowest first, cut at k, with the values", () => {
    expect(topHeads(values, 3, 2, "lowest")).toEqual([
      { layer: 1, head: 2, value: Float32Array.of(0.1)[0] },
      { layer: 0, head: 0, value: Float32Array.of(0.2)[0] },
    ]);
  });
});

describe("layerCurves", () => {
  test("per layer: mean, min and max over the heads where the value is defined", () => {
    const tables = splitTables(Float32Array.of(...[0.5, 0.1, 0.3, 0, 0, 0], ...[0.1, 0.2, 0, 0, 0, 0], ...[1, 2, 3, 4, 5, 6], ...[NaN, 0.4, 0.8, NaN, NaN, NaN]), ["image_share", "special_share", "row_entropy", "image_entropy"], 2, 3);
    const curves = layerCurves(tables)!;
    expect(Array.from(curves.image.mean)).toEqual([0.3, 0].map((v) => Math.fround(v)));
    expect(Array.from(curves.text.min)).toEqual([Math.fround(0.4), 1]);
    expect(Array.from(curves.text.max)).toEqual([Math.fround(0.7), 1]);
    expect(Array.from(curves.row_entropy.max)).toEqual([3, 6]);
    expect(curves.image_entropy.mean[0]).toBeCloseTo(0.6, 6);
    expect(curves.image_entropy.mean[1]).toBeNaN();
  });

  test("is null when a table is missing", () => {
    expect(layerCurves(splitTables(tokenTables(30).subarray(0, L * H), ["image_share"], L, H))).toBeNull();
  });
});
