// Where the worker gets (N, N) float16 matrices: the byte-bounded cache first,
// then one range request. Concurrent asks for the same matrix share one fetch.

import { ByteLru } from "./cache";
import { fetchSpan } from "./fetch-range";
import { layerFileBytes, matrixBytes } from "./format";
import type { HeadChoice, SampleFiles } from "./protocol";

export class MatrixSource {
  private readonly cache: ByteLru<Uint16Array>;
  private readonly inFlight = new Map<string, Promise<Uint16Array>>();

  constructor(
    private readonly sampleUrl: string,
    private readonly files: SampleFiles,
    cacheBytes: number,
  ) {
    this.cache = new ByteLru(cacheBytes);
  }

  get cachedBytes(): number {
    return this.cache.usedBytes;
  }

  isCached(layer: number, head: HeadChoice): boolean {
    return this.cache.has(this.key(layer, head));
  }

  /** The raw float16 matrix of one layer: a head's block, or the head mean or max. */
  matrix(layer: number, head: HeadChoice): Promise<Uint16Array> {
    const key = this.key(layer, head);
    const cached = this.cache.get(key);
    if (cached) return Promise.resolve(cached);
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.fetchMatrix(layer, head)
        .then((matrix) => {
          this.cache.set(key, matrix);
          return matrix;
        })
        .finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    return pending;
  }

  private key(layer: number, head: HeadChoice): string {
    return `${layer}:${head}`;
  }

  private async fetchMatrix(layer: number, head: HeadChoice): Promise<Uint16Array> {
    const { seqLen } = this.files;
    const bytes = matrixBytes(seqLen);
    const name = this.fileName(layer, head);
    const isHead = typeof head === "number";
    const buffer = await fetchSpan({
      url: new URL(encodeURIComponent(name), this.sampleUrl).href,
      name,
      fileBytes: isHead ? layerFileBytes(this.files) : bytes,
      start: isHead ? head * bytes : 0,
      length: bytes,
    });
    return new Uint16Array(buffer);
  }

  private fileName(layer: number, head: HeadChoice): string {
    const { layerFiles, headMeanFiles, headMaxFiles } = this.files;
    if (head === "mean") return headMeanFiles[layer]!;
    if (head === "max") return headMaxFiles[layer]!;
    return layerFiles[layer]!;
  }
}
