// What the two panels colour by, from the vectors a view fetched: pure, so
// main.ts only wires it. The range is that of what is shown: the token panel
// over the LLM vector, the LLM image overlay over the image tokens alone (so the
// spatial pattern shows even when text tokens take most of the mass), the vision
// overlay over all its patches; always only where the selection can see under
// the causal mask, and without NaN or ±Inf. The scale mode (SCALE_MODES) then
// says what the palette spans; each heat carries the legend its colour bar draws.

import { shownStats, type ShownStats } from "../data/attention";
import type { SampleMeta } from "../data/format";
import type { Settings } from "../state/settings";
import { layerSpan, shownVision, type ViewState } from "../state/state";
import { unstoredCells } from "../state/stored";
import type { Heat, Scale } from "./color";
import type { OverlayView } from "./image-panel";
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

/** Where a vector's values count: [start, end) minus the skipped ones, within what the selection sees. */
interface Span {
  start: number;
  end: number;
  skip: Uint8Array | null;
  visible: [number, number];
  /** What the legend says the range is over. */
  over: string;
  /** 1 for entries the sample does not store: left out of the range, drawn as masked. */
  unstored?: Uint8Array | null;
}

/** The span of indices the selection sees: a row sees up to its last token, a column is seen from its first. */
export function visibleSpan(view: ViewState, n: number): [number, number] {
  if (view.tokens.length === 0) return [0, n - 1];
  return view.dir === "src" ? [0, Math.max(...view.tokens)] : [Math.min(...view.tokens), n - 1];
}

function statsOver(values: Float32Array, span: Span): ShownStats {
  return shownStats(values, skipped(span), Math.max(span.start, span.visible[0]), Math.min(span.end, span.visible[1] + 1));
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

/** Entries of [start, end) the selection sees but the sample does not store. */
function unstoredCount(span: Span): number {
  let count = 0;
  const [from, to] = [Math.max(span.start, span.visible[0]), Math.min(span.end, span.visible[1] + 1)];
  for (let i = from; i < to; i++) count += span.unstored?.[i] ?? 0;
  return count;
}

/** Cells of [start, end) that the selection cannot see. */
function maskedCount(span: Span): number {
  const seen = Math.max(0, Math.min(span.end, span.visible[1] + 1) - Math.max(span.start, span.visible[0]));
  return span.end - span.start - seen;
}

function panelHeat(values: Float32Array, shared: Float32Array | null, span: Span, settings: Settings, title: string, sharedOver: string): PanelHeat {
  const shown = statsOver(values, span);
  const scale = scaleOf(shown, shared, span, settings);
  const legend: Legend = {
    title,
    palette: settings.palette,
    scale,
    shown: shown.range,
    over: scale.mode === "shared" ? `${span.over}; ${sharedOver}` : span.over,
    masked: maskedCount(span),
    nonFinite: shown.nonFinite,
    unstored: unstoredCount(span),
  };
  return { heat: { values, scale, palette: settings.palette, visible: span.visible, unstored: span.unstored ?? null }, legend };
}

function llmTitle(view: ViewState, meta: SampleMeta): string {
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
  const unstored = unstoredCells(view, meta);
  const span: Span = { start: 0, end: values.length, skip: sinks, visible: visibleSpan(view, values.length), over, unstored };
  // In vision mode the image shows the vision encoder, while the tokens still show the LLM: the title says so.
  const title = shownVision(view, meta) ? `Tokens: ${llmTitle(view, meta)} (not the vision encoder)` : `Tokens: ${llmTitle(view, meta)}`;
  return panelHeat(values, fetched.shared, span, settings, title, llmSharedOver(meta));
}

/** The image overlay: the vision patches in vision mode, else the LLM's image tokens. */
export function imageOverlay(fetched: Fetched, settings: Settings): OverlayView & { legend: PanelHeat["legend"] | null } {
  const { meta, view, values, vision } = fetched;
  const { opacity } = settings;
  const visionMeta = shownVision(view, meta);
  if (visionMeta) {
    const grid = { kind: "vision", ...visionMeta.grid, first: 0 } as const;
    const selected = view.patch === null ? [] : [view.patch];
    const span: Span = { start: 0, end: visionMeta.seqLen, skip: null, visible: [0, visionMeta.seqLen - 1], over: "over all patches" };
    const what = view.patch === null ? "saliency (attention each patch receives)" : `patch #${view.patch}'s row`;
    const blocks = view.vblocks === "all" ? "all captured blocks" : `block ${view.vblocks}`;
    const sharedOver = `scale shared over blocks ${visionMeta.blocks.join(", ")}${view.patch === null ? "" : ", this head"}`;
    const shown = vision && panelHeat(vision, fetched.visionShared, span, settings, `Image: vision encoder · ${blocks} · ${what}`, sharedOver);
    return { grid, heat: shown?.heat ?? null, legend: shown?.legend ?? null, selected, opacity };
  }
  const { rows, cols, startIdx, endIdx } = meta.imageGrid;
  const grid = { kind: "llm", rows, cols, first: startIdx } as const;
  const span = (n: number): Span => ({
    start: startIdx,
    end: endIdx + 1,
    skip: settings.excludeSinks ? fetched.sinks : null,
    visible: visibleSpan(view, n),
    over: `over the image tokens the selection sees, sinks ${settings.excludeSinks ? "left out" : "included"}`,
    unstored: unstoredCells(view, meta),
  });
  const shown = values && panelHeat(values, fetched.shared, span(values.length), settings, `Image: ${llmTitle(view, meta)}`, llmSharedOver(meta));
  return { grid, heat: shown?.heat ?? null, legend: shown?.legend ?? null, selected: view.tokens, opacity };
}
