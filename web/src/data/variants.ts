// Every variant the viewer offers, named once. A table's key is the variant's
// value in the URL and in its control; the entry says how it is labelled and
// what it reads or computes. The URL parser, the view's defaults and cycles,
// the controls, the panels and the worker all read these tables, so adding a
// variant is one entry here (plus the data it needs, if that is new).

import type { AttentionKind, LayerAttention, RegionKind, SampleMeta, TokenMeasure, VisionMeta } from "./format";

/** A head aggregate: its label, and the meta.json list of its precomputed files (SPEC.md §1), one per layer or block. */
interface HeadAggregateKind<Files extends string> {
  label: string;
  files: Files;
}

/** The file lists a table of head aggregates reads. */
type FilesOf<Table extends Record<string, { files: string }>> = Table[keyof Table]["files"];

const headAggregates = {
  mean: { label: "mean", files: "headMeanFiles" },
  max: { label: "max", files: "headMaxFiles" },
} satisfies Record<string, HeadAggregateKind<keyof SampleMeta>>;

/** The LLM's head aggregates, in the order ↑/↓ step through them before the single heads. */
export const HEAD_AGGREGATES: Readonly<Record<HeadAggregate, HeadAggregateKind<FilesOf<typeof headAggregates>>>> = headAggregates;
export type HeadAggregate = keyof typeof headAggregates;
/** Which matrix of a layer: one head, or an aggregate over heads. */
export type HeadChoice = number | HeadAggregate;

const visionHeadAggregates = {
  mean: { label: "mean", files: "headMeanFiles" },
} satisfies Record<string, HeadAggregateKind<keyof VisionMeta>>;

/** The vision encoder's head aggregates, before its single heads. */
export const VISION_HEAD_AGGREGATES: Readonly<Record<VisionHeadAggregate, HeadAggregateKind<FilesOf<typeof visionHeadAggregates>>>> =
  visionHeadAggregates;
export type VisionHeadAggregate = keyof typeof visionHeadAggregates;
/** Which vision attention a patch's row comes from: an aggregate over heads, or one vision head. */
export type VisionHead = number | VisionHeadAggregate;

interface FoldKind {
  label: string;
  /** Folds one more value into the running result. */
  fold: (acc: number, value: number) => number;
  /** Turns the running result of `count` values into the answer; absent: it already is. */
  finish?: (acc: number, count: number) => number;
}

const folds = {
  mean: { label: "mean", fold: (acc, value) => acc + value, finish: (acc, count) => acc / count },
  max: { label: "max", fold: Math.max },
  min: { label: "min", fold: Math.min },
} satisfies Record<string, FoldKind>;

/** Element-wise reductions of equally long vectors: over a range of layers, or (some of them) over a word's tokens. */
export const FOLDS: Readonly<Record<Fold, FoldKind>> = folds;
export type Fold = keyof typeof folds;

/**
 * A layer reduction: an element-wise fold of the vectors of a range of layers,
 * or the attention rollout R_l = Ā_l ⋯ Ā_0 up to the chosen layer, read from its
 * own files (SPEC.md §1, Rollout), which only some samples hold.
 */
type LayerReductionKind = { label: string; reads: "layers"; fold: Fold } | { label: string; reads: "rollout" };

const layerReductions = {
  mean: { label: "mean", reads: "layers", fold: "mean" },
  max: { label: "max", reads: "layers", fold: "max" },
  min: { label: "min", reads: "layers", fold: "min" },
  rollout: { label: "rollout", reads: "rollout" },
} satisfies Record<string, LayerReductionKind>;

export const LAYER_REDUCTIONS: Readonly<Record<Reduce, LayerReductionKind>> = layerReductions;
export type Reduce = keyof typeof layerReductions;

/** Whether a sample holds what a layer reduction reads: the rollout needs rollout.json. */
export function layerReductionAvailable(reduce: Reduce, hasRollout: boolean): boolean {
  return LAYER_REDUCTIONS[reduce].reads !== "rollout" || hasRollout;
}

/** What the viewer says where the rollout is offered but the sample lacks it. */
export const ROLLOUT_MISSING = "this sample has no rollout: python -m vlm_attention_viz rollout DIR adds it";

const wordCombines = { mean: folds.mean, max: folds.max } satisfies Partial<Record<Fold, FoldKind>>;

/** How the vectors of a word's tokens are combined into one. */
export const WORD_COMBINES: Readonly<Record<Combine, FoldKind>> = wordCombines;
export type Combine = keyof typeof wordCombines;

/** Whose attention an image overlay shows: the LLM's (always there) or the vision encoder's (needs meta.vision). */
export type OverlaySource = "llm" | "vision";

interface OverlayKind {
  label: string;
  source: OverlaySource;
}

const overlays = {
  llm: { label: "LLM attention", source: "llm" },
  vision: { label: "vision encoder", source: "vision" },
} satisfies Record<string, OverlayKind>;

/** What the image panel shows, in the order `v` steps through those a sample has. */
export const OVERLAYS: Readonly<Record<Overlay, OverlayKind>> = overlays;
export type Overlay = keyof typeof overlays;

/** Whether a sample holds the data an overlay reads. */
export function overlayAvailable(overlay: Overlay, meta: Pick<SampleMeta, "vision">): boolean {
  return OVERLAYS[overlay].source !== "vision" || meta.vision !== undefined;
}

/** The overlays a sample holds the data for, in table order. */
export function availableOverlays(meta: Pick<SampleMeta, "vision">): Overlay[] {
  return variantsOf(OVERLAYS).filter((overlay) => overlayAvailable(overlay, meta));
}

/** The sample's vision attention when the overlay shows it, else null. */
export function overlayVision(overlay: Overlay, meta: Pick<SampleMeta, "vision">): VisionMeta | null {
  return (OVERLAYS[overlay].source === "vision" && meta.vision) || null;
}

/** How the viewer shows a layer of each kind (format.ts ATTENTION_KINDS): its mark on the layer control, and
 * whether its values are signed, so coloured on the diverging scale around 0 rather than the chosen palette. */
interface LayerKindView {
  mark: string;
  signed: boolean;
  /** What masks the cells a selection cannot see, as the colour bar and the tooltip name it. */
  mask: string;
}

const layerKindViews = {
  causal: { mark: "causal", signed: false, mask: "causal mask" },
  sliding: { mark: "sliding window", signed: false, mask: "sliding window" },
  linear: { mark: "linear layer: signed, unnormalised", signed: true, mask: "causal mask" },
} satisfies Record<AttentionKind, LayerKindView>;

export const LAYER_KIND_VIEWS: Readonly<Record<AttentionKind, LayerKindView>> = layerKindViews;

/** The layer control's mark for one layer, e.g. "sliding window of 512, image bidirectional". */
export function layerMark(layer: LayerAttention): string {
  const parts = [LAYER_KIND_VIEWS[layer.kind].mark + (layer.window === undefined ? "" : ` of ${layer.window}`)];
  if (layer.imageBidirectional) parts.push("image bidirectional");
  if (layer.beforeOutputGate) parts.push("before the output gate");
  if (layer.convKernel !== undefined) parts.push(`q, k, v through a ${layer.convKernel}-token causal convolution`);
  return parts.join(", ");
}

/** The masks of layers first..last, each named once: e.g. "causal mask", "sliding window, image bidirectional". */
export function maskNames(meta: Pick<SampleMeta, "layerAttention">, first: number, last: number): string {
  const names = meta.layerAttention
    .slice(first, last + 1)
    .map((layer) => LAYER_KIND_VIEWS[layer.kind].mask + (layer.imageBidirectional ? ", image bidirectional" : ""));
  return [...new Set(names)].join(" / ");
}

/** Whether any of the layers first..last holds signed values. */
export function layersSigned(meta: Pick<SampleMeta, "layerAttention">, first: number, last: number): boolean {
  return meta.layerAttention.slice(first, last + 1).some((layer) => LAYER_KIND_VIEWS[layer.kind].signed);
}

/** A table's variants, in table order. */
export function variantsOf<K extends string>(table: Readonly<Record<K, unknown>>): K[] {
  return Object.keys(table) as K[];
}

/** The variant a URL or control value names, or undefined when it names none. */
export function variantNamed<K extends string>(table: Readonly<Record<K, unknown>>, value: string | null): K | undefined {
  return value !== null && Object.hasOwn(table, value) ? (value as K) : undefined;
}

interface RegionViewKind {
  label: string;
  /** What the colour bar says is drawn. */
  drawn: string;
  /** The image panel's panes, left to right: each a copy of the image with the kinds of region drawn on it. */
  panes: readonly (readonly RegionKind[])[];
}

const regionViews = {
  tiles: { label: "tiles (full resolution)", drawn: "tiles' image tokens", panes: [["tile", "image"]] },
  global: { label: "global thumbnail", drawn: "global thumbnail's image tokens", panes: [["global", "image"]] },
  both: {
    label: "tiles and thumbnail side by side",
    drawn: "tiles' (left) and global thumbnail's (right) image tokens",
    panes: [["tile"], ["global"]],
  },
} satisfies Record<string, RegionViewKind>;

/** Which of a tiled image's regions the image panel draws, and where; the first is the default. */
export const REGION_VIEWS: Readonly<Record<RegionView, RegionViewKind>> = regionViews;
export type RegionView = keyof typeof regionViews;

/** Whether an image has tiles and a global view, so that the region view changes what it shows. */
export function hasTiles(meta: Pick<SampleMeta, "regions">, image: number): boolean {
  const kinds = new Set(meta.regions.filter((region) => region.image === image).map((region) => region.kind));
  return kinds.has("tile") && kinds.has("global");
}

/** The region view an image is drawn in: the one asked for where the image has tiles and a global view, else the default. */
export function shownRegionView(meta: Pick<SampleMeta, "regions">, image: number, asked: RegionView): RegionView {
  return hasTiles(meta, image) ? asked : variantsOf(REGION_VIEWS)[0]!;
}

interface ScaleModeKind {
  label: string;
}

const scaleModes = {
  view: { label: "per view (min–max of what is shown)" },
  shared: { label: "shared over all layers and heads" },
  absolute: { label: "absolute (0 to 1)" },
  log: { label: "log (min–max of what is shown)" },
} satisfies Record<string, ScaleModeKind>;

/** How a panel maps values to colours; the first is the default. */
export const SCALE_MODES: Readonly<Record<ScaleMode, ScaleModeKind>> = scaleModes;
export type ScaleMode = keyof typeof scaleModes;

/**
 * What the atlas colours its L × H grid by, and how the small multiples rank
 * heads: each reads one per-token table (SPEC.md §1, Per-token tables).
 */
interface AtlasMeasureKind {
  label: string;
  table: TokenMeasure;
  /** The top heads are those with the highest values, or the lowest. */
  best: "highest" | "lowest";
  /** What a value means, for the colour bar. */
  meaning: string;
}

const atlasMeasures = {
  image_share: { label: "image share", table: "image_share", best: "highest", meaning: "share of the row's attention on image tokens" },
  image_entropy: {
    label: "spatial entropy",
    table: "image_entropy",
    best: "lowest",
    meaning: "spatial entropy of the image map (nats): lower = more localized",
  },
} satisfies Record<string, AtlasMeasureKind>;

/** The atlas's measures; the first is the default. */
export const ATLAS_MEASURES: Readonly<Record<AtlasMeasure, AtlasMeasureKind>> = atlasMeasures;
export type AtlasMeasure = keyof typeof atlasMeasures;

/** One head's values of every per-token table, for one selection and layer. */
export type HeadValues = Readonly<Record<TokenMeasure, number>>;

interface CurveKind {
  label: string;
  /** The plot it is drawn in: shares (0 to 1) or entropies (nats). */
  plot: "share" | "entropy";
  value: (head: HeadValues) => number;
}

const curves = {
  image: { label: "image", plot: "share", value: (h) => h.image_share },
  text: { label: "text", plot: "share", value: (h) => 1 - h.image_share - h.special_share },
  special: { label: "special", plot: "share", value: (h) => h.special_share },
  row_entropy: { label: "row entropy", plot: "entropy", value: (h) => h.row_entropy },
  image_entropy: { label: "spatial entropy", plot: "entropy", value: (h) => h.image_entropy },
} satisfies Record<string, CurveKind>;

/** The layer curves: per layer, the mean over heads of each, with a band from min to max. */
export const CURVES: Readonly<Record<Curve, CurveKind>> = curves;
export type Curve = keyof typeof curves;
