// What of a view a sample stores (SPEC.md §1, storage profiles): whether its
// LLM vector can be read at all, which cells of it are not stored, and the one
// line the status bar adds to say so. A view of something not stored is greyed
// with this note instead of read.

import { storedHeads, type SampleMeta } from "../data/format";
import { layerSpan, type ViewState } from "./state";

type Stored = Pick<SampleMeta, "storage" | "numLayers" | "numHeads" | "layerAttention">;

/** Why the view's LLM vector cannot be read, or null when it can. */
function missing(view: ViewState, meta: Stored): string | null {
  const { storage } = meta;
  const [first, last] = layerSpan(view);
  if (!storage.layers.some((l) => l >= first && l <= last)) {
    return `${first === last ? `layer ${first} is` : `layers ${first}–${last} are`} not stored: this sample keeps layers ${storage.layers.join(", ")}`;
  }
  const heads = storedHeads(meta, view.layer); // a subset of heads is the same in every layer
  if (typeof view.head === "number" && !heads.includes(view.head)) {
    return `head ${view.head} is not stored: this sample keeps heads ${heads.join(", ")}`;
  }
  const unstoredRow = view.dir === "src" && view.tokens.some((t) => storage.rowIndex[t]! < 0);
  if (unstoredRow) return `this token's row is not stored: a ${storage.profile} sample keeps only the rows of non-image tokens`;
  return null;
}

/** Whether the view's LLM vector can be read from what the sample stores. */
export function vectorStored(view: ViewState, meta: Stored): boolean {
  return view.tokens.length > 0 && missing(view, meta) === null;
}

/** The status bar's note on what the view lacks, or null when the sample stores all of it. */
export function storageNote(view: ViewState, meta: Stored): string | null {
  const reason = view.tokens.length > 0 ? missing(view, meta) : null;
  if (reason) return reason;
  const notes: string[] = [];
  const [first, last] = layerSpan(view);
  const kept = meta.storage.layers.filter((l) => l >= first && l <= last);
  if (kept.length < last - first + 1) notes.push(`over the stored layers ${kept.join(", ")} only`);
  if (view.dir === "tgt" && unstoredCells(view, meta)) notes.push(`the rows of image tokens are not stored (${meta.storage.profile}): grey`);
  return notes.length ? notes.join("; ") : null;
}

/**
 * 1 for the entries of the view's vector the sample does not store: all of them when the vector is not stored
 * at all, a column's image-token rows in text-rows; null when every entry is stored.
 */
export function unstoredCells(view: ViewState, meta: Stored): Uint8Array | null {
  const { storage } = meta;
  if (view.tokens.length > 0 && !vectorStored(view, meta)) return new Uint8Array(storage.rowIndex.length).fill(1);
  if (view.dir !== "tgt" || storage.rows.length === storage.rowIndex.length) return null;
  return Uint8Array.from(storage.rowIndex, (k) => (k < 0 ? 1 : 0));
}

/** The kept layer ←/→ step to from `layer`: the nearest one `delta`'s way, else `layer` itself. */
export function stepKeptLayer(layer: number, delta: number, kept: number[]): number {
  const ahead = kept.filter((l) => (delta > 0 ? l > layer : l < layer));
  if (!ahead.length) return layer;
  return delta > 0 ? ahead[Math.min(delta, ahead.length) - 1]! : ahead[Math.max(0, ahead.length + delta)]!;
}
