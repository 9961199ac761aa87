// What the two panels colour by, from the vectors a view fetched: pure, so
// main.ts only wires it. Normalisation is min–max per view: the token panel over
// the whole LLM vector, the LLM image overlay over the image tokens alone (so the
// spatial pattern shows even when text tokens take most of the mass), the vision
// overlay over all its patches.

import { normalisationRange, symmetricRange, type ValueRange } from "../data/attention";
import { layersSigned } from "../data/variants";
import type { Heat } from "./color";
import type { Settings } from "./controls";
import type { SampleMeta } from "../data/format";
import type { OverlayView } from "./image-panel";
import { layerSpan, shownVision, type ViewState } from "../state/state";

export interface Fetched {
  meta: SampleMeta;
  view: ViewState;
  /** 1 for tokens left out of the normalisation: the first token and special tokens. */
  sinks: Uint8Array;
  /** The LLM vector of the selected tokens, or null. */
  values: Float32Array | null;
  /** The vision overlay's P values in vision mode, or null. */
  vision: Float32Array | null;
}

function heat(values: Float32Array, range: ValueRange, settings: Settings): Heat {
  return { values, lo: range.lo, hi: range.hi, palette: settings.palette };
}

/** An LLM vector's heat: on the chosen palette, or, when the layers shown hold signed values (linear layers), on the
 * diverging scale over a range symmetric about 0, so that the sign reads at a glance. */
function llmHeat(fetched: Fetched, values: Float32Array, range: ValueRange, settings: Settings): Heat {
  if (!layersSigned(fetched.meta, ...layerSpan(fetched.view))) return heat(values, range, settings);
  const { lo, hi } = symmetricRange(range);
  return { values, lo, hi, palette: "diverging" };
}

function skipped(fetched: Fetched, settings: Settings): Uint8Array | null {
  return settings.excludeSinks ? fetched.sinks : null;
}

export function tokenHeat(fetched: Fetched, settings: Settings): Heat | null {
  const { values } = fetched;
  return values && llmHeat(fetched, values, normalisationRange(values, skipped(fetched, settings)), settings);
}

/** The image overlay: the vision patches in vision mode, else the LLM's image tokens. */
export function imageOverlay(fetched: Fetched, settings: Settings): OverlayView {
  const { meta, view, values, vision } = fetched;
  const { opacity } = settings;
  const visionMeta = shownVision(view, meta);
  if (visionMeta) {
    const grid = { kind: "vision", ...visionMeta.grid, first: 0 } as const;
    const selected = view.patch === null ? [] : [view.patch];
    return { grid, heat: vision && heat(vision, normalisationRange(vision, null), settings), selected, opacity };
  }
  const { rows, cols, startIdx, endIdx } = meta.imageGrid;
  const range = values && normalisationRange(values, skipped(fetched, settings), startIdx, endIdx + 1);
  const imageTokensHeat = values && range && llmHeat(fetched, values, range, settings);
  return { grid: { kind: "llm", rows, cols, first: startIdx }, heat: imageTokensHeat, selected: view.tokens, opacity };
}
