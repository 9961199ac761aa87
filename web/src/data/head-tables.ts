// Pure maths on a selection's (L, H) tables (SPEC.md §1, Per-token tables): the
// atlas's values, the top heads by a measure, and the per-layer curves. The
// worker reads and averages the tables; the main thread ranks and summarises.

import type { TokenMeasure } from "./format";
import { CURVES, variantsOf, type Curve, type HeadValues } from "./variants";

/** The tables of one selection, by measure: L × H values each, [layer][head] order. */
export interface HeadTables {
  numLayers: number;
  numHeads: number;
  byMeasure: Partial<Record<TokenMeasure, Float32Array>>;
}

/** Split the worker's answer (the measures one after another) into a table per measure. */
export function splitTables(flat: Float32Array, measures: TokenMeasure[], numLayers: number, numHeads: number): HeadTables {
  const size = numLayers * numHeads;
  const byMeasure: HeadTables["byMeasure"] = {};
  measures.forEach((measure, m) => (byMeasure[measure] = flat.subarray(m * size, (m + 1) * size)));
  return { numLayers, numHeads, byMeasure };
}

export interface RankedHead {
  layer: number;
  head: number;
  value: number;
}

/** The k heads with the highest (or lowest) values, best first; NaN (undefined) never ranks. Ties keep layer, head order. */
export function topHeads(values: Float32Array, numHeads: number, k: number, best: "highest" | "lowest"): RankedHead[] {
  const sign = best === "highest" ? -1 : 1;
  const ranked: RankedHead[] = [];
  values.forEach((value, i) => {
    if (!Number.isNaN(value)) ranked.push({ layer: Math.floor(i / numHeads), head: i % numHeads, value });
  });
  return ranked.sort((a, b) => sign * (a.value - b.value)).slice(0, k);
}

/** One curve: per layer, the mean over heads and the band from min to max (NaN where no head is defined). */
export interface CurveBand {
  mean: Float32Array;
  min: Float32Array;
  max: Float32Array;
}

/** The layer curves of CURVES, from the tables they read; null when a table is missing. */
export function layerCurves(tables: HeadTables): Record<Curve, CurveBand> | null {
  const { numLayers, numHeads, byMeasure } = tables;
  const { image_share, special_share, row_entropy, image_entropy } = byMeasure;
  if (!image_share || !special_share || !row_entropy || !image_entropy) return null;
  const bands = {} as Record<Curve, CurveBand>;
  for (const curve of variantsOf(CURVES)) {
    const band = { mean: new Float32Array(numLayers), min: new Float32Array(numLayers), max: new Float32Array(numLayers) };
    for (let layer = 0; layer < numLayers; layer++) {
      let [sum, count, lo, hi] = [0, 0, Infinity, -Infinity];
      for (let head = 0; head < numHeads; head++) {
        const i = layer * numHeads + head;
        const values: HeadValues = { image_share: image_share[i]!, special_share: special_share[i]!, row_entropy: row_entropy[i]!, image_entropy: image_entropy[i]! };
        const value = CURVES[curve].value(values);
        if (Number.isNaN(value)) continue;
        [sum, count, lo, hi] = [sum + value, count + 1, Math.min(lo, value), Math.max(hi, value)];
      }
      band.mean[layer] = count ? sum / count : NaN;
      band.min[layer] = count ? lo : NaN;
      band.max[layer] = count ? hi : NaN;
    }
    bands[curve] = band;
  }
  return bands;
}

/**
 * The heads' rows over a region's tokens, in grid order, from rows read over tokens first..last: the same rows
 * when the region is one block, else only its tokens (a Mistral 3 grid skips its row-break tokens).
 */
export function regionRows(flat: Float32Array, picks: number, first: number, last: number, tokens: number[]): Float32Array {
  const width = last - first + 1;
  if (tokens.length === width) return flat;
  const out = new Float32Array(picks * tokens.length);
  for (let k = 0; k < picks; k++) tokens.forEach((token, i) => (out[k * tokens.length + i] = flat[k * width + token - first]!));
  return out;
}
