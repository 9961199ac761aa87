// Messages between the main thread (data-client.ts) and the worker (worker.ts).

import type { Axis } from "./attention";
import type { ImageBlock, LayerAttention, RolloutMeta, Storage, TokenMeasure, VisionMeta } from "./format";
import type { Combine, HeadChoice, Reduce, VisionHead } from "./variants";

/** The files and sizes the worker needs; a subset of SampleMeta. */
export interface SampleFiles {
  seqLen: number;
  /** The sample's query heads (a layer may have its own count, in layerAttention). */
  numHeads: number;
  layerAttention: LayerAttention[];
  imageBlocks: ImageBlock[];
  layerFiles: string[];
  headMeanFiles: string[];
  headMaxFiles: string[];
  vision?: VisionMeta;
  /** The rollout's files, when the sample has rollout.json. */
  rollout?: RolloutMeta;
  /** Which layers, heads and rows the files keep: the file lists follow storage.layers. */
  storage: Storage;
}

/**
 * One vector for the view. The simple case is one layer and one token; the
 * same request also asks for a range of layers reduced (LAYER_REDUCTIONS), and
 * for several tokens (a word) combined (WORD_COMBINES). With the rollout, the
 * vector is R_lastLayer's row (or column), whatever the head.
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

/**
 * The per-token tables of a selection: for each measure, the tokens' (L, H)
 * tables (one range read each), averaged over the tokens. The answer holds the
 * measures one after another, L × H values each, in [layer][head] order.
 */
export interface TablesRequest {
  indices: number[];
  measures: TokenMeasure[];
}

/**
 * The image part of the selection's row in each of some heads: for every pick,
 * values first..last of the row (the image tokens), the tokens' rows combined.
 * The answer holds the picks one after another, last - first + 1 values each.
 */
export interface HeadRowsRequest {
  picks: { layer: number; head: number }[];
  indices: number[];
  combine: Combine;
  first: number;
  last: number;
}

export type ToWorker =
  | { type: "open"; id: number; sampleUrl: string; files: SampleFiles; cacheBytes: number }
  | { type: "vector"; id: number; request: VectorRequest }
  | { type: "vision"; id: number; request: VisionRequest }
  | { type: "tables"; id: number; request: TablesRequest }
  | { type: "headRows"; id: number; request: HeadRowsRequest };

export type FromWorker =
  | { id: number; ok: true; vector?: Float32Array }
  | { id: number; ok: false; error: string };
