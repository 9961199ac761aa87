// The data worker: owns fetching, the raw float16 cache and decoding. It
// answers each request with one Float32Array of length N (P for the vision
// overlay), transferred (not copied) to the main thread; nothing here decodes
// a whole matrix.

import { meanOfRows, reduceVectors, rowsNeeded, vectorFromRows } from "./attention";
import { decodeStrided } from "./float16";
import { MatrixSource } from "./matrix-source";
import type { FromWorker, ToWorker, VectorRequest, VisionRequest } from "./protocol";

let source: MatrixSource | undefined;
let seqLen = 0;
let keptLayers: number[] = [];
let patches = 0; // P of the vision grid, when the sample has one

self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  try {
    if (message.type === "open") {
      source?.close();
      source = new MatrixSource(message.sampleUrl, message.files, message.cacheBytes);
      seqLen = message.files.seqLen;
      keptLayers = message.files.storage.layers;
      patches = message.files.vision?.seqLen ?? 0;
      reply({ id: message.id, ok: true });
      return;
    }
    if (message.type === "vision") {
      const vector = await computeVision(message.request);
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

function reply(message: FromWorker, transfer: Transferable[] = []): void {
  (self as unknown as Worker).postMessage(message, transfer);
}

function openSource(): MatrixSource {
  if (!source) throw new Error("no sample is open");
  return source;
}

/** Tokens are combined within each layer first, then the layers are reduced. */
async function computeVector(request: VectorRequest): Promise<Float32Array> {
  const layerVector = async (layer: number): Promise<Float32Array> => {
    const vectors = await Promise.all(request.indices.map((index) => tokenVector(request, layer, index)));
    return vectors.length === 1 ? vectors[0]! : reduceVectors(vectors, request.combine);
  };
  // A range of layers reduces over the ones the sample keeps (SPEC.md §1, storage profiles).
  const layers = keptLayers.filter((l) => l >= request.firstLayer && l <= request.lastLayer);
  if (layers.length === 0) throw new Error(`no layer of ${request.firstLayer}–${request.lastLayer} is stored in this sample`);
  // Rows are small reads and go in parallel; a column can need most of a
  // matrix per layer, so those go one at a time to bound memory.
  const perLayer: Float32Array[] = [];
  if (request.axis === "row") perLayer.push(...(await Promise.all(layers.map(layerVector))));
  else for (const layer of layers) perLayer.push(await layerVector(layer));
  return perLayer.length === 1 ? perLayer[0]! : reduceVectors(perLayer, request.layerReduce);
}

/** One token's row or column, from the rows it needs (cached, or read alone). */
async function tokenVector(request: VectorRequest, layer: number, index: number): Promise<Float32Array> {
  const [first, count] = rowsNeeded(seqLen, index, request.axis);
  return openSource().withRows(layer, request.head, first, count, (rows) => vectorFromRows(rows, seqLen, index, request.axis));
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
  if (request.firstLayer !== request.lastLayer) return; // a range of layers would flush the cache
  const layers = [request.firstLayer, request.firstLayer + 1, request.firstLayer - 1];
  openSource().warm(layers.filter((l) => keptLayers.includes(l)).map((l) => [l, request.head]));
}
