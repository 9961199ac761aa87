// The view state and its home in the URL: sample, layer (or layer range), head,
// selected tokens and direction, the image shown (which image, which of its
// regions), and the image overlay (LLM or vision encoder, with its blocks, head
// and patch), so a link reopens the same view and Back/Forward step through it.

import type { SampleMeta, VisionMeta } from "../data/format";
import {
  HEAD_AGGREGATES,
  LAYER_REDUCTIONS,
  OVERLAYS,
  REGION_VIEWS,
  VISION_HEAD_AGGREGATES,
  WORD_COMBINES,
  availableOverlays,
  layerReductionAvailable,
  overlayAvailable,
  overlayVision,
  shownRegionView,
  variantNamed,
  variantsOf,
  type Combine,
  type HeadChoice,
  type Overlay,
  type Reduce,
  type RegionView,
  type VisionHead,
} from "../data/variants";

export type Direction = "src" | "tgt";
/** The vision blocks averaged: every captured block, or one (its index in the vision tower). */
export type VisionBlocks = "all" | number;

export interface ViewState {
  sample: string;
  layer: number;
  /** With a reduction, the view covers layers layer..layerEnd (either order). */
  layerEnd: number;
  layerReduce: Reduce | null;
  head: HeadChoice;
  /** The selected tokens in order (one, or a word's); empty when nothing is selected. */
  tokens: number[];
  /** How several selected tokens' vectors are combined. */
  combine: Combine;
  dir: Direction;
  /** The image the image panel shows (index into meta.images), and which of its regions. */
  image: number;
  regions: RegionView;
  overlay: Overlay;
  vblocks: VisionBlocks;
  /** The vision head a selected patch's row shows (the saliency is always over all heads). */
  vhead: VisionHead;
  /** The selected vision patch (row-major), or null for the saliency. */
  patch: number | null;
}

/** The view a URL asks for; fields it lacks or garbles stay undefined. */
export function viewFromParams(params: URLSearchParams): Partial<ViewState> {
  const view: Partial<ViewState> = {};
  const sample = params.get("sample");
  if (sample) view.sample = sample;
  const layer = parseIndexParam(params.get("layer"));
  if (layer !== undefined) view.layer = layer;
  const layerEnd = parseIndexParam(params.get("layerEnd"));
  if (layerEnd !== undefined) view.layerEnd = layerEnd;
  const layerReduce = variantNamed(LAYER_REDUCTIONS, params.get("lreduce"));
  if (layerReduce) view.layerReduce = layerReduce;
  const head = parseHead(params.get("head"));
  if (head !== undefined) view.head = head;
  const tokens = parseTokens(params.get("token"));
  if (tokens) view.tokens = tokens;
  const combine = parseCombine(params.get("combine"));
  if (combine) view.combine = combine;
  const dir = params.get("dir");
  if (dir === "src" || dir === "tgt") view.dir = dir;
  const image = parseIndexParam(params.get("image"));
  if (image !== undefined) view.image = image;
  const regions = variantNamed(REGION_VIEWS, params.get("regions"));
  if (regions) view.regions = regions;
  const overlay = parseOverlay(params.get("overlay"));
  if (overlay) view.overlay = overlay;
  const vblocks = parseVisionBlocks(params.get("vblocks"));
  if (vblocks !== undefined) view.vblocks = vblocks;
  const vhead = parseVisionHead(params.get("vhead"));
  if (vhead !== undefined) view.vhead = vhead;
  const patch = params.get("patch");
  if (patch === "none") view.patch = null;
  else if (parseIndexParam(patch) !== undefined) view.patch = parseIndexParam(patch)!;
  return view;
}

function parseIndexParam(value: string | null): number | undefined {
  return value !== null && /^\d+$/.test(value) ? Number(value) : undefined;
}

/** A head aggregate's name or a head index, as the URL and the head control write it. */
export function parseHead(value: string | null): HeadChoice | undefined {
  return variantNamed(HEAD_AGGREGATES, value) ?? parseIndexParam(value);
}

export function parseCombine(value: string | null): Combine | undefined {
  return variantNamed(WORD_COMBINES, value);
}

export function parseOverlay(value: string | null): Overlay | undefined {
  return variantNamed(OVERLAYS, value);
}

/** A vision head aggregate's name or a vision head index. */
export function parseVisionHead(value: string | null): VisionHead | undefined {
  return variantNamed(VISION_HEAD_AGGREGATES, value) ?? parseIndexParam(value);
}

/** "all" or a vision block index. */
export function parseVisionBlocks(value: string | null): VisionBlocks | undefined {
  return value === "all" ? value : parseIndexParam(value);
}

/** "none", one index, or a comma-separated list of indices. */
function parseTokens(value: string | null): number[] | undefined {
  if (value === "none") return [];
  return value !== null && /^\d+(,\d+)*$/.test(value) ? value.split(",").map(Number) : undefined;
}

/** The URL parameters of a view, keeping the others (data, cacheMB) as they were. */
export function viewToParams(view: ViewState, base: URLSearchParams): URLSearchParams {
  const params = new URLSearchParams(base);
  params.set("sample", view.sample);
  params.set("layer", String(view.layer));
  params.set("head", String(view.head));
  params.set("token", view.tokens.length ? view.tokens.join(",") : "none");
  params.set("dir", view.dir);
  for (const key of ["layerEnd", "lreduce", "combine", "image", "regions", "overlay", "vblocks", "vhead", "patch"]) params.delete(key);
  if (view.layerReduce) {
    params.set("lreduce", view.layerReduce);
    params.set("layerEnd", String(view.layerEnd));
  }
  if (view.tokens.length > 1) params.set("combine", view.combine);
  if (view.image !== DEFAULTS.image) params.set("image", String(view.image));
  if (view.regions !== DEFAULTS.regions) params.set("regions", view.regions);
  if (view.overlay !== DEFAULTS.overlay) params.set("overlay", view.overlay);
  if (OVERLAYS[view.overlay].source === "vision") {
    params.set("vblocks", String(view.vblocks));
    params.set("vhead", String(view.vhead));
    params.set("patch", view.patch === null ? "none" : String(view.patch));
  }
  return params;
}

/** The first token a sample opens on: the answer's first token, else the last token. */
export function defaultToken(meta: SampleMeta): number {
  return meta.answerStart ?? meta.seqLen - 1;
}

/** What a view shows when the URL does not say (or asks for what the sample lacks). */
const DEFAULTS = {
  head: "mean",
  combine: "mean",
  dir: "src",
  image: 0,
  regions: variantsOf(REGION_VIEWS)[0]!,
  overlay: "llm",
  vblocks: "all",
  vhead: "mean",
} as const satisfies Partial<ViewState>;

/**
 * A full, valid view for this sample: what the URL asked for, clamped, plus
 * defaults; a layer reduction the sample lacks the data for (the rollout without rollout.json) is none.
 */
export function completeView(asked: Partial<ViewState>, sample: string, meta: SampleMeta, hasRollout = false): ViewState {
  const lastLayer = meta.numLayers - 1;
  const layer = Math.min(asked.layer ?? 0, lastLayer);
  const layers = {
    layer,
    layerEnd: Math.min(asked.layerEnd ?? layer, lastLayer),
    layerReduce: asked.layerReduce && layerReductionAvailable(asked.layerReduce, hasRollout) ? asked.layerReduce : null,
  };
  const head = asked.head;
  const validHead = head !== undefined && (typeof head !== "number" || head < viewHeads(layers, meta));
  const tokens = asked.tokens ?? [defaultToken(meta)];
  return {
    sample,
    ...layers,
    head: validHead ? head : DEFAULTS.head,
    tokens: tokens.every((t) => t < meta.seqLen) ? tokens : [defaultToken(meta)],
    combine: asked.combine ?? DEFAULTS.combine,
    dir: asked.dir ?? DEFAULTS.dir,
    ...completeImageChoice(asked, meta),
    overlay: asked.overlay && overlayAvailable(asked.overlay, meta) ? asked.overlay : DEFAULTS.overlay,
    ...completeVisionView(asked, meta.vision),
  };
}

/** The image shown: one the sample has (else the first), in a region view it has (else the default). */
function completeImageChoice(asked: Partial<ViewState>, meta: SampleMeta): Pick<ViewState, "image" | "regions"> {
  const image = asked.image !== undefined && asked.image < meta.images.length ? asked.image : DEFAULTS.image;
  return { image, regions: shownRegionView(meta, image, asked.regions ?? DEFAULTS.regions) };
}

/** The vision part of a view: only the sample's own blocks, heads and patches. */
function completeVisionView(asked: Partial<ViewState>, vision: VisionMeta | undefined): Pick<ViewState, "vblocks" | "vhead" | "patch"> {
  const { vblocks, vhead, patch } = asked;
  const validHead = vhead !== undefined && (typeof vhead !== "number" || (vision !== undefined && vhead < vision.numHeads));
  return {
    vblocks: typeof vblocks === "number" && vision?.blocks.includes(vblocks) ? vblocks : DEFAULTS.vblocks,
    vhead: validHead ? vhead : DEFAULTS.vhead,
    patch: typeof patch === "number" && vision && patch < vision.seqLen ? patch : null,
  };
}

/** The sample's vision attention when the view shows it on the image, else null. */
export function shownVision(view: ViewState, meta: SampleMeta): VisionMeta | null {
  return overlayVision(view.overlay, meta);
}

/** The overlay `v` shows next: the next one the sample has data for, wrapping. */
export function stepOverlay(overlay: Overlay, meta: SampleMeta): Overlay {
  return stepCycle(availableOverlays(meta), overlay, 1);
}

/** The chosen vision blocks as indices into vision.blocks (and its file lists). */
export function visionBlockIndices(vblocks: VisionBlocks, vision: VisionMeta): number[] {
  return vblocks === "all" ? vision.blocks.map((_, i) => i) : [vision.blocks.indexOf(vblocks)];
}

/** The order ←/→ step through in vision mode: all blocks, then each captured block. */
export function visionBlockCycle(vision: VisionMeta): VisionBlocks[] {
  return ["all", ...vision.blocks];
}

export function stepVisionBlocks(vblocks: VisionBlocks, delta: number, vision: VisionMeta): VisionBlocks {
  return stepCycle(visionBlockCycle(vision), vblocks, delta);
}

/** The order ↑/↓ step through in vision mode: the head aggregates, then each vision head. */
export function visionHeadCycle(vision: VisionMeta): VisionHead[] {
  return [...variantsOf(VISION_HEAD_AGGREGATES), ...headIndices(vision.numHeads)];
}

export function stepVisionHead(vhead: VisionHead, delta: number, vision: VisionMeta): VisionHead {
  return stepCycle(visionHeadCycle(vision), vhead, delta);
}

/** The entry `delta` steps from `current`, wrapping round; an empty cycle stays put. */
function stepCycle<T>(cycle: T[], current: T, delta: number): T {
  return cycle[(cycle.indexOf(current) + delta + cycle.length) % cycle.length] ?? current;
}

/** The layers a view covers, lowest first; the rollout's row is R_layer's alone. */
export function layerSpan(view: Pick<ViewState, "layer" | "layerEnd" | "layerReduce">): [number, number] {
  if (!view.layerReduce || LAYER_REDUCTIONS[view.layerReduce].reads === "rollout") return [view.layer, view.layer];
  return [Math.min(view.layer, view.layerEnd), Math.max(view.layer, view.layerEnd)];
}

/**
 * How many heads the view can pick from: its layer's own (a linear layer may have more than the sample's
 * num_heads), the fewest of them over a range of layers.
 */
export function viewHeads(view: Pick<ViewState, "layer" | "layerEnd" | "layerReduce">, meta: Pick<SampleMeta, "layerAttention">): number {
  const [first, last] = layerSpan(view);
  return Math.min(...meta.layerAttention.slice(first, last + 1).map((layer) => layer.numHeads));
}

/** The view with its head brought within its layers' heads: a head past them becomes their last. */
export function clampHead(view: ViewState, meta: Pick<SampleMeta, "layerAttention">): ViewState {
  const heads = viewHeads(view, meta);
  return typeof view.head === "number" && view.head >= heads ? { ...view, head: heads - 1 } : view;
}

/** The order ↑/↓ step through: the head aggregates, then every head. */
export function headCycle(numHeads: number): HeadChoice[] {
  return [...variantsOf(HEAD_AGGREGATES), ...headIndices(numHeads)];
}

function headIndices(numHeads: number): number[] {
  return Array.from({ length: numHeads }, (_, h) => h);
}

export function stepHead(head: HeadChoice, delta: number, numHeads: number): HeadChoice {
  return stepCycle(headCycle(numHeads), head, delta);
}

export function headLabel(head: HeadChoice): string {
  return typeof head === "number" ? `head ${head}` : `all heads (${HEAD_AGGREGATES[head].label})`;
}
