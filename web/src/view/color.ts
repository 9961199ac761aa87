// Colour scales as 256-entry RGBA lookup tables: a value is normalised to
// 0..255 once and every pixel or cell is one table read.

import type { ScaleMode } from "../data/variants";
import type { PaletteName } from "../state/settings";

export { PALETTE_NAMES, type PaletteName } from "../state/settings";
/** The tables a heat can use: a palette the user picks, or the diverging one signed values always get. */
export type ScaleName = PaletteName | "diverging";
export const LUT_SIZE = 256;

type Stop = [position: number, r: number, g: number, b: number, a: number];

const STOPS: Record<ScaleName, Stop[]> = {
  // Low = transparent, high = saturated blue: readable over an image and under text.
  blue: [
    [0, 198, 219, 239, 0],
    [0.5, 66, 146, 198, 150],
    [1, 8, 48, 107, 235],
  ],
  viridis: [
    [0, 68, 1, 84, 255],
    [0.125, 71, 44, 122, 255],
    [0.25, 59, 81, 139, 255],
    [0.375, 44, 113, 142, 255],
    [0.5, 33, 144, 141, 255],
    [0.625, 39, 173, 129, 255],
    [0.75, 92, 200, 99, 255],
    [0.875, 170, 220, 50, 255],
    [1, 253, 231, 37, 255],
  ],
  hot: [
    [0, 0, 0, 0, 255],
    [0.375, 255, 0, 0, 255],
    [0.75, 255, 255, 0, 255],
    [1, 255, 255, 255, 255],
  ],
  // Signed values on a range symmetric about 0: negative blue, 0 transparent, positive red.
  diverging: [
    [0, 33, 102, 172, 235],
    [0.5, 247, 247, 247, 0],
    [1, 178, 24, 43, 235],
  ],
};

/** Linear interpolation between stops into LUT_SIZE RGBA entries (4 bytes each). */
export function buildLut(stops: Stop[]): Uint8ClampedArray {
  const lut = new Uint8ClampedArray(LUT_SIZE * 4);
  for (let i = 0; i < LUT_SIZE; i++) {
    const t = i / (LUT_SIZE - 1);
    const upper = stops.findIndex((stop) => stop[0] >= t);
    const hi = stops[Math.max(upper, 1)]!;
    const lo = stops[Math.max(upper, 1) - 1]!;
    const f = hi[0] === lo[0] ? 0 : (t - lo[0]) / (hi[0] - lo[0]);
    for (let c = 0; c < 4; c++) lut[i * 4 + c] = Math.round(lo[c + 1]! + f * (hi[c + 1]! - lo[c + 1]!));
  }
  return lut;
}

/**
 * Two entries after the palette's LUT_SIZE, the same in every palette: cells the
 * selection cannot see under the causal mask (a neutral grey, never a low value),
 * and NaN or ±Inf in the file (magenta, which no palette uses).
 */
export const MASKED = LUT_SIZE;
export const NON_FINITE = LUT_SIZE + 1;
export const MASKED_RGBA = [128, 128, 128, 110] as const;
export const NON_FINITE_RGBA = [255, 0, 255, 255] as const;

function withSpecialEntries(lut: Uint8ClampedArray): Uint8ClampedArray {
  const table = new Uint8ClampedArray((LUT_SIZE + 2) * 4);
  table.set(lut);
  table.set(MASKED_RGBA, MASKED * 4);
  table.set(NON_FINITE_RGBA, NON_FINITE * 4);
  return table;
}

export const LUTS: Record<ScaleName, Uint8ClampedArray> = {
  blue: withSpecialEntries(buildLut(STOPS.blue)),
  viridis: withSpecialEntries(buildLut(STOPS.viridis)),
  hot: withSpecialEntries(buildLut(STOPS.hot)),
  diverging: withSpecialEntries(buildLut(STOPS.diverging)),
};

/** The same tables as CSS colours, for canvas fillStyle. */
export const CSS_COLOURS: Record<ScaleName, string[]> = {
  blue: cssColours(LUTS.blue),
  viridis: cssColours(LUTS.viridis),
  hot: cssColours(LUTS.hot),
  diverging: cssColours(LUTS.diverging),
};

function cssColours(lut: Uint8ClampedArray): string[] {
  return Array.from({ length: lut.length / 4 }, (_, i) => {
    const [r, g, b, a] = lut.subarray(i * 4, i * 4 + 4);
    return `rgba(${r},${g},${b},${(a! / 255).toFixed(3)})`;
  });
}

/** Table index of a value under per-view min–max normalisation; values outside clamp. */
export function lutIndex(value: number, lo: number, hi: number): number {
  if (!(hi > lo)) return 0;
  const t = (value - lo) / (hi - lo);
  return Math.min(LUT_SIZE - 1, Math.max(0, Math.round(t * (LUT_SIZE - 1))));
}

/** The value range a palette spans, and whether it spans it linearly or in log. */
export interface Scale {
  mode: ScaleMode;
  lo: number;
  hi: number;
}

/** What both panels colour by: one attention vector, its scale, and the span the selection can see. */
export interface Heat {
  values: Float32Array;
  scale: Scale;
  palette: ScaleName;
  /** Indices visible[0]..visible[1] are seen by the selection; the rest are masked. */
  visible: [number, number];
  /** What masks the rest, e.g. "causal mask" (LAYER_KIND_VIEWS). */
  mask: string;
  /** 1 for the entries the sample does not store (SPEC.md §1, storage profiles): drawn as masked. */
  unstored?: Uint8Array | null;
}

/** Table index of a value on a scale: log scales map log(value); zero and below sit at the bottom. */
export function scaleIndex(value: number, scale: Scale): number {
  if (!Number.isFinite(value)) return NON_FINITE;
  if (scale.mode !== "log") return lutIndex(value, scale.lo, scale.hi);
  if (!(value > 0) || !(scale.lo > 0)) return 0;
  return lutIndex(Math.log(value), Math.log(scale.lo), Math.log(scale.hi));
}

/** Table index of entry `index` of a heat: MASKED outside what the selection sees. */
export function heatIndex(heat: Heat, index: number): number {
  if (index < heat.visible[0] || index > heat.visible[1] || heat.unstored?.[index]) return MASKED;
  return scaleIndex(heat.values[index]!, heat.scale);
}
