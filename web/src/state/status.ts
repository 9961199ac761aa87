// The status bar's line: layer(s), head or aggregate, token count, direction
// and the selection, e.g.
// Layer 12 of 35 · all heads (mean) · 512 tokens · Source→Target · src: #297 "cat"
// or, for the vision-encoder overlay, what it shows:
// Vision encoder · blocks 25, 26 (mean) · 180 patches (10 rows × 18 cols) · mean over 16 heads · saliency: …
// or, for a patch's row in one vision head, `· head 3 of 16 · patch #40 (row 2, col 4): where it looks`.

import type { SampleMeta, VisionMeta } from "../data/format";
import { LAYER_REDUCTIONS, VISION_HEAD_AGGREGATES, WORD_COMBINES, type VisionHead } from "../data/variants";
import { headLabel, layerSpan, shownVision, type Direction, type ViewState } from "./state";
import { storageNote } from "./stored";
import { selectionText } from "./words";

const DIRECTION: Record<Direction, string> = { src: "Source→Target", tgt: "Target←Source" };

export function statusText(view: ViewState, meta: SampleMeta): string {
  const vision = shownVision(view, meta);
  if (vision) return visionStatusText(view, vision);
  const note = storageNote(view, meta);
  return [
    `${layersText(view)} of ${meta.numLayers - 1}`,
    isRollout(view) ? `rollout R_${view.layer} over layers 0–${view.layer} (head means)` : headLabel(view.head),
    `${meta.seqLen} tokens`,
    DIRECTION[view.dir],
    describeSelection(view, meta),
    ...(note ? [note] : []),
  ].join(" · ");
}

function isRollout(view: ViewState): boolean {
  return view.layerReduce !== null && LAYER_REDUCTIONS[view.layerReduce].reads === "rollout";
}

/** `Layer 12`, or for a reduced range `Layers 3–7 (max)`. */
function layersText(view: ViewState): string {
  const [first, last] = layerSpan(view);
  if (first === last || !view.layerReduce) return `Layer ${first}`;
  return `Layers ${first}–${last} (${LAYER_REDUCTIONS[view.layerReduce].label})`;
}

/** `src: #28 " image"`, or for a word `src: #32–#33 " wooden" (mean of 2 tokens)`. */
function describeSelection(view: ViewState, meta: SampleMeta): string {
  const { tokens } = view;
  if (tokens.length === 0) return "no token selected";
  const combined = tokens.length === 1 ? "" : ` (${WORD_COMBINES[view.combine].label} of ${tokens.length} tokens)`;
  return `${view.dir}: ${selectionLabel(tokens, meta)}${combined}`;
}

/** `#28 " image"`, or for a word `#32–#33 " wooden"`. */
export function selectionLabel(tokens: number[], meta: SampleMeta): string {
  const where = tokens.length === 1 ? `#${tokens[0]}` : `#${tokens[0]}–#${tokens.at(-1)}`;
  return `${where} ${JSON.stringify(selectionText(meta.tokens, tokens))}`;
}

function visionStatusText(view: ViewState, vision: VisionMeta): string {
  const { rows, cols } = vision.grid;
  const blocks = view.vblocks === "all" ? `blocks ${vision.blocks.join(", ")} (mean)` : `block ${view.vblocks}`;
  const grid = `${vision.seqLen} patches (${rows} rows × ${cols} cols)`;
  const heads = (vhead: VisionHead): string =>
    typeof vhead === "number" ? `head ${vhead} of ${vision.numHeads}` : `${VISION_HEAD_AGGREGATES[vhead].label} over ${vision.numHeads} heads`;
  // The received file holds the head mean, so the saliency is over all heads whatever the chosen head.
  if (view.patch === null) return ["Vision encoder", blocks, grid, heads("mean"), saliencyText(view.vhead)].join(" · ");
  const patch = `patch #${view.patch} (row ${Math.floor(view.patch / cols)}, col ${view.patch % cols}): where it looks`;
  return ["Vision encoder", blocks, grid, heads(view.vhead), patch].join(" · ");
}

/** Per-head column sums are not stored, so a chosen head only colours a patch's row: the line says so. */
function saliencyText(vhead: VisionHead): string {
  const saliency = "saliency: attention each patch receives";
  return typeof vhead === "number" ? `${saliency} (over all heads; click a patch to see head ${vhead})` : saliency;
}
