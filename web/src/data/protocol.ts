// Messages between the main thread (data-client.ts) and the worker (worker.ts).

import type { Axis } from "./attention";
import type { Storage, VisionMeta } from "./format";
import type { Combine, HeadChoice, Reduce, VisionHead } from "./variants";

/** The files and sizes the worker needs; a subset of SampleMeta. */
export interface SampleFiles {
  seqLen: number;
  numHeads: number;
  layerFiles: string[];
  headMeanFiles: string[];
  headMaxFiles: string[];
  vision?: VisionMeta;
  /** Which layers, heads and rows the files keep: the file lists follow storage.layers. */
  storage: Storage;
}

/**
 * One vector for the view. The simple case is one layer and one token; the
 * same request also asks for a range of layers reduced (LAYER_REDUCTIONS), and
 * for several tokens (a word) combined (WORD_COMBINES).
 */
export interface VectorRequest {
  firstLayer: number;
  lastLayer: number;
  layerReduce: Reduce;
  head: HeadChoice;
  axis: Axis;
  indices: number[];
  combine: Combine;
}

/**
 * One vector of P values for the vision overlay, over the captured blocks
 * `blocks` (indices into vision.blocks) averaged: the saliency (attention each
 * patch receives, always over all heads: per-head column sums are not stored),
 * or, with a patch, that patch's own attention row in head `head` (or a head aggregate).
 */
export interface VisionRequest {
  blocks: number[];
  patch: number | null;
  head: VisionHead;
}

export type ToWorker =
  | { type: "open"; id: number; sampleUrl: string; files: SampleFiles; cacheBytes: number }
  | { type: "vector"; id: number; request: VectorRequest }
  | { type: "vision"; id: number; request: VisionRequest };

export type FromWorker =
  | { id: number; ok: true; vector?: Float32Array }
  | { id: number; ok: false; error: string };
