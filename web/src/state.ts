// The view state and its home in the URL: sample, layer (or layer range), head,
// selected tokens and direction, so a link reopens the same view and
// Back/Forward step through it.

import type { Reduce } from "./attention";
import type { SampleMeta } from "./format";
import type { HeadChoice } from "./protocol";

export type Direction = "src" | "tgt";
export type Combine = "mean" | "max";

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
  const layerReduce = params.get("lreduce");
  if (layerReduce === "mean" || layerReduce === "max" || layerReduce === "min") view.layerReduce = layerReduce;
  const head = params.get("head");
  if (head === "mean" || head === "max") view.head = head;
  else if (parseIndexParam(head) !== undefined) view.head = parseIndexParam(head)!;
  const tokens = parseTokens(params.get("token"));
  if (tokens) view.tokens = tokens;
  const combine = params.get("combine");
  if (combine === "mean" || combine === "max") view.combine = combine;
  const dir = params.get("dir");
  if (dir === "src" || dir === "tgt") view.dir = dir;
  return view;
}

function parseIndexParam(value: string | null): number | undefined {
  return value !== null && /^\d+$/.test(value) ? Number(value) : undefined;
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
  for (const key of ["layerEnd", "lreduce", "combine"]) params.delete(key);
  if (view.layerReduce) {
    params.set("lreduce", view.layerReduce);
    params.set("layerEnd", String(view.layerEnd));
  }
  if (view.tokens.length > 1) params.set("combine", view.combine);
  return params;
}

/** The first token a sample opens on: the answer's first token, else the last token. */
export function defaultToken(meta: SampleMeta): number {
  return meta.answerStart ?? meta.seqLen - 1;
}

/** A full, valid view for this sample: what the URL asked for, clamped, plus defaults. */
export function completeView(asked: Partial<ViewState>, sample: string, meta: SampleMeta): ViewState {
  const head = asked.head;
  const validHead = head === "mean" || head === "max" || (typeof head === "number" && head < meta.numHeads);
  const lastLayer = meta.numLayers - 1;
  const layer = Math.min(asked.layer ?? 0, lastLayer);
  const tokens = asked.tokens ?? [defaultToken(meta)];
  return {
    sample,
    layer,
    layerEnd: Math.min(asked.layerEnd ?? layer, lastLayer),
    layerReduce: asked.layerReduce ?? null,
    head: validHead ? head : "mean",
    tokens: tokens.every((t) => t < meta.seqLen) ? tokens : [defaultToken(meta)],
    combine: asked.combine ?? "mean",
    dir: asked.dir ?? "src",
  };
}

/** The layers a view covers, lowest first. */
export function layerSpan(view: ViewState): [number, number] {
  if (!view.layerReduce) return [view.layer, view.layer];
  return [Math.min(view.layer, view.layerEnd), Math.max(view.layer, view.layerEnd)];
}

/** The order ↑/↓ step through: the two aggregates, then every head. */
export function headCycle(numHeads: number): HeadChoice[] {
  return ["mean", "max", ...Array.from({ length: numHeads }, (_, h) => h)];
}

export function stepHead(head: HeadChoice, delta: number, numHeads: number): HeadChoice {
  const cycle = headCycle(numHeads);
  const at = cycle.indexOf(head);
  return cycle[(at + delta + cycle.length) % cycle.length]!;
}

export function headLabel(head: HeadChoice): string {
  return typeof head === "number" ? `head ${head}` : `all heads (${head})`;
}
