// What the two panels colour by, from the vectors a view fetched: pure, so
// main.ts only wires it. The range is that of what is shown: the token panel
// over the LLM vector, the LLM image overlay over the image tokens alone (so the
// spatial pattern shows even when text tokens take most of the mass), the vision
// overlay over all its patches; always only where the selection can see under
// the causal mask, and without NaN or ±Inf. The scale mode (SCALE_MODES) then
// says what the palette spans; each heat carries the legend its colour bar draws.

import { shownStats, shownStatsAt, type ShownStats } from "../data/attention";
import { reach, type ImageRegion, type SampleMeta, type VisionMeta } from "../data/format";
import { hasTiles, LAYER_REDUCTIONS, layersSigned, maskNames, REGION_VIEWS, shownRegionView, type RegionView } from "../data/variants";
import type { Settings } from "../state/settings";
import { layerSpan, shownVision, type ViewState } from "../state/state";
import { unstoredCells } from "../state/stored";
import type { Heat, Scale } from "./color";
import type { OverlayPart, OverlayView } from "./image-panel";
import type { Legend } from "./legend";

export interface Fetched {
  meta: SampleMeta;
  view: ViewState;
  /** 1 for tokens left out of the normalisation: the first token and special tokens. */
  sinks: Uint8Array;
  /** The LLM vector of the selected tokens, or null. */
  values: Float32Array | null;
  /** The vision overlay's P values in vision mode, or null. */
  vision: Float32Array | null;
  /** With the shared scale: the element-wise max of `values`' kind over every layer and head (vision: block). */
  shared: Float32Array | null;
  visionShared: Float32Array | null;
}

/** A panel's heat and the legend its colour bar shows. */
export interface PanelHeat {
  heat: Heat;
  legend: Legend;
}

/** Where a vector's values count: [start, end), or the drawn regions' tokens (not one block where an image is
 * tiled), minus the skipped ones, within what the selection sees. */
interface Span {
  cells: { start: number; end: number } | { indices: ArrayLike<number> };
  skip: Uint8Array | null;
  visible: [number, number];
  /** What the legend says the range is over. */
  over: string;
  /** What masks the cells outside `visible`. */
  mask: string;
  /** 1 for entries the sample does not store: left out of the range, drawn as masked. */
  unstored?: Uint8Array | null;
}

/**
 * The span of indices the selection sees under the masks of the layers shown (format.ts reach): under a causal
 * mask a row sees up to its last token and a column is seen from its first; an image token of an
 * image-bidirectional layer also sees its image's later tokens; a sliding window cuts the far side.
 */
export function visibleSpan(view: ViewState, meta: Pick<SampleMeta, "layerAttention" | "imageBlocks">, n: number): [number, number] {
  if (view.tokens.length === 0) return [0, n - 1];
  const [first, last] = layerSpan(view);
  let lo = n - 1;
  let hi = 0;
  for (const layer of meta.layerAttention.slice(first, last + 1)) {
    for (const token of view.tokens) {
      const [a, b] = reach(layer, token, view.dir === "src" ? "row" : "col", meta.imageBlocks, n);
      lo = Math.min(lo, a);
      hi = Math.max(hi, b);
    }
  }
  return [lo, hi];
}

function statsOver(values: Float32Array, span: Span): ShownStats {
  const { cells, visible } = span;
  const skip = skipped(span);
  if ("indices" in cells) return shownStatsAt(values, skip, cells.indices, visible);
  return shownStats(values, skip, Math.max(cells.start, visible[0]), Math.min(cells.end, visible[1] + 1));
}

function scaleOf(shown: ShownStats, shared: Float32Array | null, span: Span, settings: Settings): Scale {
  const mode = settings.scale;
  const range = shown.range ?? { lo: 0, hi: 0 };
  if (mode === "absolute") return { mode, lo: 0, hi: 1 };
  if (mode === "log") return { mode, lo: shown.minPositive, hi: range.hi };
  if (mode === "shared" && shared) return { mode, lo: 0, hi: statsOver(shared, span).range?.hi ?? 0 };
  return { mode: "view", ...range };
}

/** The entries the range leaves out: the skipped ones and those not stored. */
function skipped(span: Span): Uint8Array | null {
  const { skip, unstored } = span;
  if (!unstored) return skip;
  return skip ? unstored.map((u, i) => u | skip[i]!) : unstored;
}

/** Entries of the span's cells the selection sees but the sample does not store. */
function unstoredCount(span: Span): number {
  const { unstored, visible, cells } = span;
  if (!unstored) return 0;
  let count = 0;
  const add = (i: number): void => void (i >= visible[0] && i <= visible[1] && (count += unstored[i] ?? 0));
  if ("indices" in cells) for (let k = 0; k < cells.indices.length; k++) add(cells.indices[k]!);
  else for (let i = cells.start; i < cells.end; i++) add(i);
  return count;
}

/** Cells of [start, end) that the selection cannot see. */
function maskedCount(span: Span): number {
  const { cells, visible } = span;
  if ("indices" in cells) {
    let masked = 0;
    for (let k = 0; k < cells.indices.length; k++) if (cells.indices[k]! < visible[0] || cells.indices[k]! > visible[1]) masked++;
    return masked;
  }
  const seen = Math.max(0, Math.min(cells.end, visible[1] + 1) - Math.max(cells.start, visible[0]));
  return cells.end - cells.start - seen;
}

/** Signed values (a linear layer's) span a range symmetric about 0 on the diverging scale, whatever the mode, so that
 * the sign reads at a glance; the legend says so. */
function signedScale(shown: ShownStats): Scale {
  const m = Math.max(Math.abs(shown.range?.lo ?? 0), Math.abs(shown.range?.hi ?? 0));
  return { mode: "view", lo: -(m || 1), hi: m || 1 }; // all zeros: any range centres them on the transparent middle
}

function panelHeat(
  values: Float32Array,
  shared: Float32Array | null,
  span: Span,
  settings: Settings,
  title: string,
  sharedOver: string,
  signed = false,
): PanelHeat {
  const shown = statsOver(values, span);
  const scale = signed ? signedScale(shown) : scaleOf(shown, shared, span, settings);
  const palette = signed ? "diverging" : settings.palette;
  const legend: Legend = {
    title,
    palette,
    scale,
    shown: shown.range,
    over: signed
      ? `${span.over}; signed values (linear layer), symmetric about 0`
      : scale.mode === "shared"
        ? `${span.over}; ${sharedOver}`
        : span.over,
    masked: maskedCount(span),
    mask: span.mask,
    nonFinite: shown.nonFinite,
    unstored: unstoredCount(span),
  };
  return { heat: { values, scale, palette, visible: span.visible, mask: span.mask, unstored: span.unstored ?? null }, legend };
}

function llmTitle(view: ViewState, meta: SampleMeta): string {
  if (view.layerReduce && LAYER_REDUCTIONS[view.layerReduce].reads === "rollout") {
    return `LLM attention rollout R_${view.layer} (layers 0–${view.layer}, head means)`;
  }
  const [first, last] = layerSpan(view);
  const layers = first === last ? `layer ${first}` : `layers ${first}–${last} (${view.layerReduce})`;
  const head = typeof view.head === "number" ? `head ${view.head}` : `${view.head} of ${meta.numHeads} heads`;
  return `LLM attention · ${layers} · ${head}`;
}

function llmSharedOver(meta: SampleMeta): string {
  return `scale shared over layers 0–${meta.numLayers - 1} × all ${meta.numHeads} heads`;
}

export function tokenHeat(fetched: Fetched, settings: Settings): PanelHeat | null {
  const { values, meta, view } = fetched;
  if (!values) return null;
  const sinks = settings.excludeSinks ? fetched.sinks : null;
  const over = `over the tokens the selection sees, sinks ${sinks ? "left out" : "included"}`;
  const visible = visibleSpan(view, meta, values.length);
  const unstored = unstoredCells(view, meta);
  const span: Span = { cells: { start: 0, end: values.length }, skip: sinks, visible, over, mask: maskNames(meta, ...layerSpan(view)), unstored };
  // In vision mode the image shows the vision encoder, while the tokens still show the LLM: the title says so.
  const title = shownVision(view, meta) ? `Tokens: ${llmTitle(view, meta)} (not the vision encoder)` : `Tokens: ${llmTitle(view, meta)}`;
  return panelHeat(values, fetched.shared, span, settings, title, llmSharedOver(meta), layersSigned(meta, ...layerSpan(view)));
}

/** The image overlay: the vision patches in vision mode, else the LLM's image tokens. */
export function imageOverlay(fetched: Fetched, settings: Settings): OverlayView & { legend: PanelHeat["legend"] | null } {
  const { meta, view, values, vision } = fetched;
  const { opacity } = settings;
  const visionMeta = shownVision(view, meta);
  if (visionMeta) {
    const grid = { kind: "vision", size: meta.imageSize, panes: 1, parts: [visionPart(visionMeta, meta.imageSize)] } as const;
    const selected = view.patch === null ? [] : [view.patch];
    const span: Span = { cells: { start: 0, end: visionMeta.seqLen }, skip: null, visible: [0, visionMeta.seqLen - 1], over: "over all patches", mask: "none" };
    const what = view.patch === null ? "saliency (attention each patch receives)" : `patch #${view.patch}'s row`;
    const blocks = view.vblocks === "all" ? "all captured blocks" : `block ${view.vblocks}`;
    const sharedOver = `scale shared over blocks ${visionMeta.blocks.join(", ")}${view.patch === null ? "" : ", this head"}`;
    const shown = vision && panelHeat(vision, fetched.visionShared, span, settings, `Image: vision encoder · ${blocks} · ${what}`, sharedOver);
    return { grid, heat: shown?.heat ?? null, legend: shown?.legend ?? null, selected, opacity };
  }
  const { image } = view;
  const regions = shownRegionView(meta, image, view.regions);
  const parts = regionParts(meta, image, regions);
  const panes = REGION_VIEWS[regions].panes.length;
  const grid = { kind: "llm", size: meta.images[image]!.size, panes, parts } as const;
  const sinks = settings.excludeSinks ? "left out" : "included";
  const what = meta.regions.length > 1 ? `the ${shownRegionsLabel(meta, image, regions)}` : "the image tokens";
  const span = (n: number): Span => ({
    cells: { indices: partIndices(parts) },
    skip: settings.excludeSinks ? fetched.sinks : null,
    visible: visibleSpan(view, meta, n),
    mask: maskNames(meta, ...layerSpan(view)),
    over: `over ${what} the selection sees, sinks ${sinks}`,
    unstored: unstoredCells(view, meta),
  });
  const signed = layersSigned(meta, ...layerSpan(view));
  const title = `Image: ${llmTitle(view, meta)}`;
  const shown = values && panelHeat(values, fetched.shared, span(values.length), settings, title, llmSharedOver(meta), signed);
  return { grid, heat: shown?.heat ?? null, legend: shown?.legend ?? null, selected: view.tokens, opacity };
}

// Parts keep their identity per sample and choice, so the image panel reuses each part's ImageData.
const partsBySample = new WeakMap<SampleMeta, Map<string, OverlayPart[]>>();
const indicesOfParts = new WeakMap<readonly OverlayPart[], Int32Array>();
const visionParts = new WeakMap<VisionMeta, OverlayPart>();

/** The regions of one image that a region view draws, as overlay parts on the view's panes. */
export function regionParts(meta: SampleMeta, image: number, view: RegionView): OverlayPart[] {
  const cached = partsBySample.get(meta) ?? new Map<string, OverlayPart[]>();
  partsBySample.set(meta, cached);
  const key = `${image}:${view}`;
  let parts = cached.get(key);
  if (!parts) {
    const ofImage = meta.regions.filter((region) => region.image === image);
    parts = REGION_VIEWS[view].panes.flatMap((shows, pane) =>
      ofImage.filter((region) => shows.includes(region.kind)).map((region) => ({ ...region, pane, indices: region.tokens, label: regionLabel(meta, region) })),
    );
    cached.set(key, parts);
  }
  return parts;
}

/** Every token the parts draw, in part order. */
function partIndices(parts: readonly OverlayPart[]): Int32Array {
  let indices = indicesOfParts.get(parts);
  if (!indices) {
    indices = Int32Array.from(parts.flatMap((part) => Array.from(part.indices)));
    indicesOfParts.set(parts, indices);
  }
  return indices;
}

/** What the image panel draws of a sample with several regions, for the legend. */
function shownRegionsLabel(meta: SampleMeta, image: number, view: RegionView): string {
  const which = meta.images.length > 1 ? ` of image ${image + 1}` : "";
  return hasTiles(meta, image) ? `${REGION_VIEWS[view].drawn}${which}` : `image tokens${which}`;
}

/** A region as the tooltips name it ("" for a sample's only grid): its image where there are several, its tile. */
export function regionLabel(meta: SampleMeta, region: ImageRegion): string {
  const image = meta.images.length > 1 ? `image ${region.image + 1}` : "";
  const tiles = meta.regions.filter((r) => r.image === region.image && r.kind === "tile");
  // One tile region is the crops stitched into one grid (LLaVA's anyres), not one tile among several.
  const tile = tiles.length === 1 ? "full-resolution grid" : `tile ${tiles.indexOf(region) + 1} of ${tiles.length}`;
  const own = region.kind === "tile" ? tile : region.kind === "global" ? "global thumbnail" : "";
  return [image, own].filter(Boolean).join(", ");
}

function visionPart(vision: VisionMeta, size: [number, number]): OverlayPart {
  let part = visionParts.get(vision);
  if (!part) {
    const indices = Int32Array.from({ length: vision.seqLen }, (_, p) => p);
    visionParts.set(vision, (part = { ...vision.grid, rect: [0, 0, ...size], pane: 0, indices, label: "" }));
  }
  return part;
}
