// The data worker: owns fetching, the raw float16 cache and decoding. It
// answers each request with one Float32Array of length N, transferred (not
// copied) to the main thread; nothing here decodes a whole matrix.

import { matrixVector, reduceVectors } from "./attention";
import { MatrixSource } from "./matrix-source";
import type { FromWorker, ToWorker, VectorRequest } from "./protocol";

let source: MatrixSource | undefined;
let seqLen = 0;
let numLayers = 0;

self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  try {
    if (message.type === "open") {
      source = new MatrixSource(message.sampleUrl, message.files, message.cacheBytes);
      seqLen = message.files.seqLen;
      numLayers = message.files.layerFiles.length;
      reply({ id: message.id, ok: true });
      return;
    }
    const vector = await computeVector(message.request);
    reply({ id: message.id, ok: true, vector }, [vector.buffer]);
    prefetchNeighbours(message.request);
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
  const matrices = openSource();
  const perLayer: Float32Array[] = [];
  for (let layer = request.firstLayer; layer <= request.lastLayer; layer++) {
    const matrix = await matrices.matrix(layer, request.head);
    const vectors = request.indices.map((index) => matrixVector(matrix, seqLen, index, request.axis));
    perLayer.push(vectors.length === 1 ? vectors[0]! : reduceVectors(vectors, request.combine));
  }
  return perLayer.length === 1 ? perLayer[0]! : reduceVectors(perLayer, request.layerReduce);
}

/** Warm the cache with the layers ←/→ would show next (same head or aggregate). */
function prefetchNeighbours(request: VectorRequest): void {
  if (request.firstLayer !== request.lastLayer) return;
  const matrices = openSource();
  for (const layer of [request.firstLayer + 1, request.firstLayer - 1]) {
    if (layer < 0 || layer >= numLayers || matrices.isCached(layer, request.head)) continue;
    // A failed prefetch is reported when (if) that layer is really asked for.
    matrices.matrix(layer, request.head).catch(() => undefined);
  }
}
