// The data worker: owns fetching, the raw float16 cache and decoding. It
// answers each request with one Float32Array of length N (P for the vision
// overlay), transferred (not copied) to the main thread; nothing here decodes
// a whole matrix.

import { meanOfRows, reduceVectors, rowsNeeded, vectorFromRows } from "./attention";
import { decodeStrided } from "./float16";
import { reach, tableHeads, type LayerAttention } from "./format";
import { MatrixSource } from "./matrix-source";
import type { FromWorker, HeadRowsRequest, SampleFiles, TablesRequest, ToWorker, VectorRequest, VisionRequest } from "./protocol";
import { LAYER_REDUCTIONS } from "./variants";

let source: MatrixSource | undefined;
let files: SampleFiles | undefined;
let seqLen = 0;
let numLayers = 0;
let tableWidth = 0; // the token tables' head axis
let keptLayers: number[] = [];
let patches = 0; // P of the vision grid, when the sample has one

self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  try {
    if (message.type === "open") {
      source?.close();
      source = new MatrixSource(message.sampleUrl, message.files, message.cacheBytes);
      files = message.files;
      seqLen = message.files.seqLen;
      numLayers = message.files.layerAttention.length; // the tables cover every layer, kept or not
      tableWidth = tableHeads({ numLayers, layerAttention: message.files.layerAttention });
      keptLayers = message.files.storage.layers;
      patches = message.files.vision?.seqLen ?? 0;
      reply({ id: message.id, ok: true });
      return;
    }
    if (message.type !== "vector") {
      const vector = await answerOf(message);
      reply({ id: message.id, ok: true, vector }, [vector.buffer]);
      return;
    }
    const vector = await computeVector(message.request);
    reply({ id: message.id, ok: true, vector }, [vector.buffer]);
    prefetch(message.request);
  } catch (error) {
    reply({ id: message.id, ok: false, error: error instanceof Error ? error.message : String(error) });
  }
};

function answerOf(message: Exclude<ToWorker, { type: "open" | "vector" }>): Promise<Float32Array> {
  if (message.type === "vision") return computeVision(message.request);
  if (message.type === "tables") return computeTables(message.request);
  return computeHeadRows(message.request);
}

function reply(message: FromWorker, transfer: Transferable[] = []): void {
  (self as unknown as Worker).postMessage(message, transfer);
}

function openFiles(): SampleFiles {
  if (!files) throw new Error("no sample is open");
  return files;
}

function layerKind(layer: number): LayerAttention {
  const kind = openFiles().layerAttention[layer];
  if (!kind) throw new Error(`no layer ${layer}: meta.json lists ${openFiles().layerAttention.length}`);
  return kind;
}

function openSource(): MatrixSource {
  if (!source) throw new Error("no sample is open");
  return source;
}

/** Tokens are combined within each layer first, then the layers are reduced; the rollout is one matrix, R_lastLayer. */
async function computeVector(request: VectorRequest): Promise<Float32Array> {
  const reduction = LAYER_REDUCTIONS[request.layerReduce];
  const combined = async (read: (index: number) => Promise<Float32Array>): Promise<Float32Array> => {
    const vectors = await Promise.all(request.indices.map(read));
    return vectors.length === 1 ? vectors[0]! : reduceVectors(vectors, request.combine);
  };
  if (reduction.reads === "rollout") return combined((index) => rolloutVector(request, index));
  const layerVector = (layer: number) => combined((index) => tokenVector(request, layer, index));
  // A range of layers reduces over the ones the sample keeps (SPEC.md §1, storage profiles).
  const layers = keptLayers.filter((l) => l >= request.firstLayer && l <= request.lastLayer);
  if (layers.length === 0) throw new Error(`no layer of ${request.firstLayer}–${request.lastLayer} is stored in this sample`);
  // Rows are small reads and go in parallel; a column can need most of a
  // matrix per layer, so those go one at a time to bound memory.
  const perLayer: Float32Array[] = [];
  if (request.axis === "row") perLayer.push(...(await Promise.all(layers.map(layerVector))));
  else for (const layer of layers) perLayer.push(await layerVector(layer));
  return perLayer.length === 1 ? perLayer[0]! : reduceVectors(perLayer, reduction.fold);
}

/** One token's row or column of R_lastLayer. */
function rolloutVector(request: VectorRequest, index: number): Promise<Float32Array> {
  const [first, count] = rowsNeeded(seqLen, index, request.axis);
  return openSource().withRolloutRows(request.lastLayer, first, count, (rows) => vectorFromRows(rows, seqLen, index, request.axis));
}

/** Each measure's (L, H) table, averaged over the selected tokens; the measures one after another. */
async function computeTables(request: TablesRequest): Promise<Float32Array> {
  const source = openSource();
  const size = numLayers * tableWidth;
  const out = new Float32Array(request.measures.length * size);
  const tables = await Promise.all(
    request.measures.map(async (measure) => {
      const perToken = await Promise.all(request.indices.map((t) => source.tokenTable(measure, t)));
      return reduceVectors(perToken.map((table) => decodeStrided(table, 0, size, 1)), "mean");
    }),
  );
  tables.forEach((table, m) => out.set(table, m * size));
  return out;
}

/** For each picked head, values first..last of the selection's row (its tokens' rows combined). */
async function computeHeadRows(request: HeadRowsRequest): Promise<Float32Array> {
  const { picks, indices, combine, first, last } = request;
  const length = last - first + 1;
  const out = new Float32Array(picks.length * length);
  const rows = await Promise.all(
    picks.map(async ({ layer, head }) => {
      const perToken = await Promise.all(
        indices.map((index) => openSource().withRows(layer, head, index, 1, (row) => decodeStrided(row, first, length, 1))),
      );
      return perToken.length === 1 ? perToken[0]! : reduceVectors(perToken, combine);
    }),
  );
  rows.forEach((row, k) => out.set(row, k * length));
  return out;
}

/** One token's row or column, from the rows it needs (cached, or read alone). */
async function tokenVector(request: VectorRequest, layer: number, index: number): Promise<Float32Array> {
  const [firstRow] = reach(layerKind(layer), index, "col", openFiles().imageBlocks, seqLen);
  const [first, count] = rowsNeeded(seqLen, index, request.axis, firstRow);
  return openSource().withRows(layer, request.head, first, count, (rows) =>
    vectorFromRows(rows, seqLen, index, request.axis, firstRow),
  );
}

/**
 * The vision overlay's P values, averaged over the chosen blocks: the saliency
 * (from the small received file, over all heads), or one patch's row in the
 * chosen head or head aggregate (one row read per block).
 */
async function computeVision(request: VisionRequest): Promise<Float32Array> {
  const source = openSource();
  const { blocks, patch, head } = request;
  if (patch === null) return meanOfRows(await source.visionReceived(), patches, blocks);
  const decodeRow = (row: Uint16Array) => decodeStrided(row, 0, patches, 1);
  return reduceVectors(await Promise.all(blocks.map((i) => source.withVisionRows(i, head, patch, 1, decodeRow))), "mean");
}

/**
 * Warm the cache for what comes next: the whole matrix of this layer (the next
 * click is a cached read), then the layers ←/→ would show (same head or aggregate).
 */
function prefetch(request: VectorRequest): void {
  // A range of layers would flush the cache; the rollout's matrices are not warmed.
  if (request.firstLayer !== request.lastLayer || LAYER_REDUCTIONS[request.layerReduce].reads === "rollout") return;
  const layers = [request.firstLayer, request.firstLayer + 1, request.firstLayer - 1];
  openSource().warm(layers.filter((l) => keptLayers.includes(l)).map((l) => [l, request.head]));
}
