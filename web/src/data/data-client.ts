// The main thread's side of the worker: each call is a promise of its answer.

import type { RolloutMeta, SampleMeta } from "./format";
import type { FromWorker, HeadRowsRequest, SampleFiles, TablesRequest, ToWorker, VectorRequest, VisionRequest } from "./protocol";

type Pending = { resolve: (message: FromWorker & { ok: true }) => void; reject: (error: Error) => void };

// Distributes the ToWorker union over Omit so each variant keeps its own fields.
type Unsent<T> = T extends unknown ? Omit<T, "id"> : never;

export class DataClient {
  private readonly worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor() {
    this.worker.onmessage = (event: MessageEvent<FromWorker>) => this.settle(event.data);
  }

  /** Point the worker at a sample; its cache starts empty. */
  async open(sampleUrl: string, meta: SampleMeta, rollout: RolloutMeta | undefined, cacheBytes: number): Promise<void> {
    await this.send({ type: "open", sampleUrl, files: sampleFiles(meta, rollout), cacheBytes });
  }

  async vector(request: VectorRequest): Promise<Float32Array> {
    return vectorOf(await this.send({ type: "vector", request }));
  }

  /** The vision overlay's P values: saliency, or a patch's row. */
  async vision(request: VisionRequest): Promise<Float32Array> {
    return vectorOf(await this.send({ type: "vision", request }));
  }

  /** The selection's per-token tables, the measures one after another (L × H each). */
  async tables(request: TablesRequest): Promise<Float32Array> {
    return vectorOf(await this.send({ type: "tables", request }));
  }

  /** The image part of the selection's row in each picked head, one after another. */
  async headRows(request: HeadRowsRequest): Promise<Float32Array> {
    return vectorOf(await this.send({ type: "headRows", request }));
  }

  private send(message: Unsent<ToWorker>): Promise<FromWorker & { ok: true }> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id } as ToWorker);
    });
  }

  private settle(message: FromWorker): void {
    const waiting = this.pending.get(message.id);
    if (!waiting) return;
    this.pending.delete(message.id);
    if (message.ok) waiting.resolve(message);
    else waiting.reject(new Error(message.error));
  }
}

/** Only what the worker reads is cloned for it: the tokens and the tables of a long sample would cost milliseconds. */
function sampleFiles(meta: SampleMeta, rollout: RolloutMeta | undefined): SampleFiles {
  const { seqLen, numHeads, layerAttention, imageBlocks, layerFiles, headMeanFiles, headMaxFiles, vision, storage } = meta;
  const files: SampleFiles = { seqLen, numHeads, layerAttention, imageBlocks, layerFiles, headMeanFiles, headMaxFiles, storage };
  return Object.assign(files, vision && { vision }, rollout && { rollout });
}

function vectorOf(answer: FromWorker & { ok: true }): Float32Array {
  if (!answer.vector) throw new Error("the worker answered without a vector");
  return answer.vector;
}
