import { describe, expect, test } from "vitest";
import { CSS_COLOURS, LUTS, LUT_SIZE, MASKED, MASKED_RGBA, NON_FINITE, PALETTE_NAMES, buildLut, lutIndex, scaleIndex } from "../../src/view/color";

const rgba = (lut: Uint8ClampedArray, i: number) => Array.from(lut.subarray(i * 4, i * 4 + 4));

describe("lookup tables", () => {
  test.each(PALETTE_NAMES)("%s has 256 RGBA entries, the masked and NaN/Inf entries, and CSS twins", (name) => {
    expect(LUTS[name].length).toBe((LUT_SIZE + 2) * 4);
    expect(CSS_COLOURS[name]).toHaveLength(LUT_SIZE + 2);
    const [r, g, b, a] = rgba(LUTS[name], 200);
    expect(CSS_COLOURS[name][200]).toBe(`rgba(${r},${g},${b},${(a! / 255).toFixed(3)})`);
  });

  test("blue goes from transparent to saturated blue, alpha rising throughout", () => {
    const lut = LUTS.blue;
    expect(rgba(lut, 0)[3]).toBe(0);
    expect(rgba(lut, 255)).toEqual([8, 48, 107, 235]);
    for (let i = 1; i < LUT_SIZE; i++) expect(rgba(lut, i)[3]).toBeGreaterThanOrEqual(rgba(lut, i - 1)[3]!);
  });

  test("viridis runs from dark purple to yellow, opaque", () => {
    expect(rgba(LUTS.viridis, 0)).toEqual([68, 1, 84, 255]);
    expect(rgba(LUTS.viridis, 255)).toEqual([253, 231, 37, 255]);
  });

  test("hot runs black → red → yellow → white", () => {
    expect(rgba(LUTS.hot, 0)).toEqual([0, 0, 0, 255]);
    const [r, g, b] = rgba(LUTS.hot, 96); // 96/255 ≈ 0.376, just past pure red
    expect([r, b]).toEqual([255, 0]);
    expect(g).toBeLessThanOrEqual(2);
    expect(rgba(LUTS.hot, 191).slice(0, 3)).toEqual([255, 254, 0]); // ≈ 0.749, nearly yellow
    expect(rgba(LUTS.hot, 255)).toEqual([255, 255, 255, 255]);
  });

  test("buildLut interpolates linearly between stops", () => {
    const lut = buildLut([[0, 0, 0, 0, 0], [1, 255, 255, 255, 255]]);
    for (const i of [0, 1, 128, 254, 255]) expect(rgba(lut, i)).toEqual([i, i, i, i]);
  });
});

describe("lutIndex", () => {
  test("maps the view's min to 0 and max to 255", () => {
    expect(lutIndex(0.2, 0.2, 0.6)).toBe(0);
    expect(lutIndex(0.6, 0.2, 0.6)).toBe(255);
    expect(lutIndex(0.4, 0.2, 0.6)).toBe(128);
  });
  test("clamps values outside the range (the excluded sinks)", () => {
    expect(lutIndex(0.9, 0.2, 0.6)).toBe(255);
    expect(lutIndex(0, 0.2, 0.6)).toBe(0);
  });
  test("a flat view maps to 0", () => {
    expect(lutIndex(0.5, 0.5, 0.5)).toBe(0);
  });
});

describe("the looks every palette shares", () => {
  test("masked cells and NaN/Inf have one colour in every palette", () => {
    for (const name of PALETTE_NAMES) {
      expect(Array.from(rgba(LUTS[name], MASKED))).toEqual([...MASKED_RGBA]);
      expect(CSS_COLOURS[name][NON_FINITE]).toBe(CSS_COLOURS.blue[NON_FINITE]);
    }
  });
});

describe("scaleIndex", () => {
  test("linear scales map lo..hi; NaN and Inf get their own entry", () => {
    expect(scaleIndex(0.5, { mode: "absolute", lo: 0, hi: 1 })).toBe(128);
    expect(scaleIndex(NaN, { mode: "view", lo: 0, hi: 1 })).toBe(NON_FINITE);
    expect(scaleIndex(-Infinity, { mode: "log", lo: 0.01, hi: 1 })).toBe(NON_FINITE);
  });
  test("log scales map log(value); the geometric middle is the middle, zero sits at the bottom", () => {
    expect(scaleIndex(0.1, { mode: "log", lo: 0.01, hi: 1 })).toBe(128);
    expect(scaleIndex(0, { mode: "log", lo: 0.01, hi: 1 })).toBe(0);
  });
});
