// The status bar's line: layer(s), head or aggregate, token count, direction
// and the selection, e.g.
// Layer 12 of 35 · all heads (mean) · 512 tokens · Source→Target · src: #297 "cat"
// or, for the vision-encoder overlay, what it shows:
// Vision encoder · blocks 25, 26 (mean) · 180 patches (10 rows × 18 cols) · mean over 16 heads · saliency: …
// or, for a patch's row in one vision head, `· head 3 of 16 · patch #40 (row 2, col 4): where it looks`.

import type { SampleMeta, VisionMeta } from "../data/format";
import { headLabel, layerSpan, type Direction, type ViewState } from "./state";
import { selectionText } from "./words";

const DIRECTION: Record<Direction, string> = { src: "Source→Target", tgt: "Target←Source" };

export function statusText(view: ViewState, meta: SampleMeta): string {
  if (view.overlay === "vision" && meta.vision) return visionStatusText(view, meta.vision);
  const [first, last] = layerSpan(view);
  const layers = first === last ? `Layer ${first}` : `Layers ${first}–${last} (${view.layerReduce})`;
  return [
    `${layers} of ${meta.numLayers - 1}`,
    headLabel(view.head),
    `${meta.seqLen} tokens`,
    DIRECTION[view.dir],
    describeSelection(view, meta),
  ].join(" · ");
}

/** `src: #28 " image"`, or for a word `src: #32–#33 " wooden" (mean of 2 tokens)`. */
function describeSelection(view: ViewState, meta: SampleMeta): string {
  const { tokens } = view;
  if (tokens.length === 0) return "no token selected";
  const where = tokens.length === 1 ? `#${tokens[0]}` : `#${tokens[0]}–#${tokens.at(-1)}`;
  const combined = tokens.length === 1 ? "" : ` (${view.combine} of ${tokens.length} tokens)`;
  return `${view.dir}: ${where} ${JSON.stringify(selectionText(meta.tokens, tokens))}${combined}`;
}

function visionStatusText(view: ViewState, vision: VisionMeta): string {
  const { rows, cols } = vision.grid;
  const blocks = view.vblocks === "all" ? `blocks ${vision.blocks.join(", ")} (mean)` : `block ${view.vblocks}`;
  const grid = `${vision.seqLen} patches (${rows} rows × ${cols} cols)`;
  const allHeads = `mean over ${vision.numHeads} heads`;
  if (view.patch === null) {
    // Per-head column sums are not stored, so a chosen head cannot colour the saliency.
    const saliency = "saliency: attention each patch receives";
    const shown = view.vhead === "mean" ? saliency : `${saliency} (over all heads; click a patch to see head ${view.vhead})`;
    return ["Vision encoder", blocks, grid, allHeads, shown].join(" · ");
  }
  const heads = view.vhead === "mean" ? allHeads : `head ${view.vhead} of ${vision.numHeads}`;
  const patch = `patch #${view.patch} (row ${Math.floor(view.patch / cols)}, col ${view.patch % cols}): where it looks`;
  return ["Vision encoder", blocks, grid, heads, patch].join(" · ");
}
