import { describe, expect, test } from "vitest";
import { decodeStrided, halfTable, halfToFloat } from "../../src/data/float16";
import { fixtureBits } from "./fixture";

describe("halfToFloat", () => {
  const cases: [string, number, number][] = [
    ["zero", 0x0000, 0],
    ["one", 0x3c00, 1],
    ["minus two", 0xc000, -2],
    ["a third (rounded)", 0x3555, 0.333251953125],
    ["the largest finite", 0x7bff, 65504],
    ["the smallest normal", 0x0400, 2 ** -14],
    ["the smallest subnormal", 0x0001, 2 ** -24],
    ["the largest subnormal", 0x03ff, 1023 * 2 ** -24],
    ["a negative subnormal", 0x8200, -512 * 2 ** -24],
    ["+infinity", 0x7c00, Infinity],
    ["-infinity", 0xfc00, -Infinity],
  ];
  test.each(cases)("%s", (_name, bits, value) => expect(halfToFloat(bits)).toBe(value));

  test("signed zero keeps its sign", () => {
    expect(Object.is(halfToFloat(0x8000), -0)).toBe(true);
    expect(Object.is(halfToFloat(0x0000), 0)).toBe(true);
  });

  test("every NaN pattern decodes to NaN", () => {
    for (const bits of [0x7c01, 0x7e00, 0x7fff, 0xfc01, 0xfe00]) expect(halfToFloat(bits)).toBeNaN();
  });
});

describe("the decode table", () => {
  test("agrees with halfToFloat on all 65,536 patterns", () => {
    const table = halfTable();
    const disagreeing: number[] = [];
    for (let bits = 0; bits < 65536; bits++) {
      if (!Object.is(table[bits], Math.fround(halfToFloat(bits)))) disagreeing.push(bits);
    }
    expect(disagreeing).toEqual([]);
  });
});

describe("decodeStrided on the fixture's head-mean matrix", () => {
  const n = 40;
  const bits = fixtureBits("attn_mean_layer_00.bin");

  test("matches numpy's float16 reading of the same bytes", () => {
    // np.fromfile("attn_mean_layer_00.bin", np.float16)[index] for these indices
    const numpy: [number, number][] = [[0, 1.0], [40, 0.49560546875], [41, 0.50439453125], [1599, 0.005096435546875], [820, 0.00225830078125], [1234, 0]];
    for (const [index, value] of numpy) expect(decodeStrided(bits, index, 1, 1)[0]).toBe(value);
  });

  test("rows are causal attention: zero past the diagonal, summing to 1", () => {
    for (let i = 0; i < n; i++) {
      const row = decodeStrided(bits, i * n, n, 1);
      expect(row.slice(i + 1).every((v) => v === 0)).toBe(true);
      expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 2);
    }
  });

  test("a column reads every n-th value", () => {
    const column = decodeStrided(bits, 7, n, n);
    for (let i = 0; i < n; i++) expect(column[i]).toBe(halfToFloat(bits[i * n + 7]!));
    expect(column.slice(0, 7).every((v) => v === 0)).toBe(true); // causal: rows before 7 never see token 7
  });
});
