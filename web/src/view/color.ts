// Colour scales as 256-entry RGBA lookup tables: a value is normalised to
// 0..255 once and every pixel or cell is one table read.

export type PaletteName = "blue" | "viridis" | "hot";
export const PALETTE_NAMES: readonly PaletteName[] = ["blue", "viridis", "hot"];
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

export const LUTS: Record<ScaleName, Uint8ClampedArray> = {
  blue: buildLut(STOPS.blue),
  viridis: buildLut(STOPS.viridis),
  hot: buildLut(STOPS.hot),
  diverging: buildLut(STOPS.diverging),
};

/** The same tables as CSS colours, for canvas fillStyle. */
export const CSS_COLOURS: Record<ScaleName, string[]> = {
  blue: cssColours(LUTS.blue),
  viridis: cssColours(LUTS.viridis),
  hot: cssColours(LUTS.hot),
  diverging: cssColours(LUTS.diverging),
};

function cssColours(lut: Uint8ClampedArray): string[] {
  return Array.from({ length: LUT_SIZE }, (_, i) => {
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

/** What both panels colour by: one attention vector and its normalisation range. */
export interface Heat {
  values: Float32Array;
  lo: number;
  hi: number;
  palette: ScaleName;
}
