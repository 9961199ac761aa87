// The view state and its home in the URL: sample, layer, head, token and
// direction, so a link reopens the same view and Back/Forward step through it.

import type { SampleMeta } from "./format";
import type { HeadChoice } from "./protocol";

export type Direction = "src" | "tgt";

export interface ViewState {
  sample: string;
  layer: number;
  head: HeadChoice;
  /** The selected token, or null when nothing is selected. */
  token: number | null;
  dir: Direction;
}

/** The view a URL asks for; fields it lacks or garbles stay undefined (token null = "none"). */
export function viewFromParams(params: URLSearchParams): Partial<ViewState> {
  const view: Partial<ViewState> = {};
  const sample = params.get("sample");
  if (sample) view.sample = sample;
  const layer = parseIndexParam(params.get("layer"));
  if (layer !== undefined) view.layer = layer;
  const head = params.get("head");
  if (head === "mean" || head === "max") view.head = head;
  else if (parseIndexParam(head) !== undefined) view.head = parseIndexParam(head)!;
  const token = params.get("token");
  if (token === "none") view.token = null;
  else if (parseIndexParam(token) !== undefined) view.token = parseIndexParam(token)!;
  const dir = params.get("dir");
  if (dir === "src" || dir === "tgt") view.dir = dir;
  return view;
}

function parseIndexParam(value: string | null): number | undefined {
  return value !== null && /^\d+$/.test(value) ? Number(value) : undefined;
}

/** The URL parameters of a view, keeping the others (data, cacheMB) as they were. */
export function viewToParams(view: ViewState, base: URLSearchParams): URLSearchParams {
  const params = new URLSearchParams(base);
  params.set("sample", view.sample);
  params.set("layer", String(view.layer));
  params.set("head", String(view.head));
  params.set("token", view.token === null ? "none" : String(view.token));
  params.set("dir", view.dir);
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
  const token = asked.token === undefined ? defaultToken(meta) : asked.token;
  return {
    sample,
    layer: Math.min(asked.layer ?? 0, meta.numLayers - 1),
    head: validHead ? head : "mean",
    token: token !== null && token < meta.seqLen ? token : token === null ? null : defaultToken(meta),
    dir: asked.dir ?? "src",
  };
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
