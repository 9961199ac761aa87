// Where the worker gets raw float16 attention: (N, N) matrices through the
// byte-bounded cache (one range request each; concurrent asks share a fetch),
// and runs of rows, which a cold view reads with a small range instead of
// waiting for the N² block (128 MiB at N=8,192). Every read in flight holds a
// reservation in the cache's budget, so the worker's attention bytes (cache +
// in flight) stay within it: whole matrices are only ever prefetched, and a
// prefetch that does not fit is skipped rather than pushing memory over.

import { ByteLru } from "./cache";
import { fetchSpan, type FileSpan } from "./fetch-range";
import { BYTES_PER_VALUE, layerFileBytes, matrixBytes } from "./format";
import type { HeadChoice, SampleFiles } from "./protocol";

export class MatrixSource {
  private readonly cache: ByteLru<Uint16Array>;
  private readonly inFlight = new Map<string, Promise<Uint16Array | null>>();
  private wanted: [number, HeadChoice][] = [];
  /**
   * The buffer of the matrix evicted last, for the next matrix fetch to fill,
   * so an eviction frees memory at once instead of when the GC gets to it.
   * Cached matrices are only read synchronously, so nothing still sees it.
   */
  private spare: ArrayBuffer | null = null;
  private warming = false;

  constructor(
    private readonly sampleUrl: string,
    private readonly files: SampleFiles,
    cacheBytes: number,
  ) {
    this.cache = new ByteLru(cacheBytes, (evicted) => {
      if (evicted.byteLength === matrixBytes(files.seqLen)) this.spare = evicted.buffer as ArrayBuffer;
    });
  }

  get cachedBytes(): number {
    return this.cache.usedBytes;
  }

  /** Bytes of reads in flight, counted against the same budget. */
  get inFlightBytes(): number {
    return this.cache.reservedBytes;
  }

  isCached(layer: number, head: HeadChoice): boolean {
    return this.cache.has(this.key(layer, head));
  }

  /**
   * The raw float16 matrix of one layer (a head's block, or the head mean or
   * max), or null when the budget has no room for it beside the reads in flight.
   * Use it at once and keep no reference: once evicted, its memory is refilled.
   */
  matrix(layer: number, head: HeadChoice): Promise<Uint16Array | null> {
    const key = this.key(layer, head);
    const cached = this.cache.get(key);
    if (cached) return Promise.resolve(cached);
    let pending = this.inFlight.get(key);
    if (!pending) {
      const bytes = matrixBytes(this.files.seqLen);
      if (!this.cache.tryReserve(bytes)) return Promise.resolve(null);
      pending = this.fetchMatrix(layer, head, this.takeSpare())
        .finally(() => {
          this.cache.release(bytes);
          this.inFlight.delete(key);
        })
        .then((matrix) => {
          this.cache.set(key, matrix);
          this.spare = null; // only a fetch starting now could use what this evicted
          return matrix;
        });
      this.inFlight.set(key, pending);
    }
    return pending;
  }

  private key(layer: number, head: HeadChoice): string {
    return `${layer}:${head}`;
  }

  /**
   * Fetch these matrices into the cache in the background, most wanted first,
   * one at a time: a browser opens only six connections to a host, and a view's
   * own reads must not queue behind 128 MiB prefetches. A newer call replaces the list.
   * Only as many as the budget holds are kept, and the cached ones among them
   * become the most recent, so making room for the others evicts older views first.
   */
  warm(wanted: [number, HeadChoice][]): void {
    const fitting = wanted.slice(0, Math.floor(this.cache.maxBytes / matrixBytes(this.files.seqLen)));
    for (const [layer, head] of [...fitting].reverse()) this.cache.get(this.key(layer, head));
    this.wanted = fitting.filter(([layer, head]) => !this.isCached(layer, head));
    if (!this.warming) void this.warmNext();
  }

  private async warmNext(): Promise<void> {
    this.warming = true;
    for (let next = this.wanted.shift(); next; next = this.wanted.shift()) {
      // A failed prefetch is reported when (if) that matrix is really asked for.
      if (!this.isCached(...next)) await this.matrix(...next).catch(() => undefined);
    }
    this.warming = false;
  }

  /** Stop warming and let go of the cache: another sample is being opened. */
  close(): void {
    this.wanted = [];
    this.spare = null;
    this.cache.clear();
  }

  /**
   * Hand rows first..first+count-1 of a matrix (row-major) to `use`: a view
   * into the cached matrix, or one range read of just those rows, whose bytes
   * are reserved in the budget until `use` is done with them.
   */
  async withRows<T>(layer: number, head: HeadChoice, first: number, count: number, use: (rows: Uint16Array) => T): Promise<T> {
    const n = this.files.seqLen;
    const cached = this.cache.get(this.key(layer, head));
    if (cached) return use(cached.subarray(first * n, (first + count) * n));
    const span = this.matrixSpan(layer, head);
    const rowBytes = n * BYTES_PER_VALUE;
    const bytes = count * rowBytes;
    this.cache.reserve(bytes);
    this.spare = null; // a row read has no use for it: let the GC have it
    try {
      return use(new Uint16Array(await fetchSpan({ ...span, start: span.start + first * rowBytes, length: bytes })));
    } finally {
      this.cache.release(bytes);
    }
  }

  private async fetchMatrix(layer: number, head: HeadChoice, into: ArrayBuffer | null): Promise<Uint16Array> {
    return new Uint16Array(await fetchSpan(this.matrixSpan(layer, head), into ?? undefined));
  }

  private takeSpare(): ArrayBuffer | null {
    const spare = this.spare;
    this.spare = null;
    return spare;
  }

  /** Where a matrix lives: one head's block of a layer file, or a whole mean/max file. */
  private matrixSpan(layer: number, head: HeadChoice): FileSpan {
    const bytes = matrixBytes(this.files.seqLen);
    const name = this.fileName(layer, head);
    const isHead = typeof head === "number";
    return {
      url: new URL(encodeURIComponent(name), this.sampleUrl).href,
      name,
      fileBytes: isHead ? layerFileBytes(this.files) : bytes,
      start: isHead ? head * bytes : 0,
      length: bytes,
    };
  }

  private fileName(layer: number, head: HeadChoice): string {
    const { layerFiles, headMeanFiles, headMaxFiles } = this.files;
    if (head === "mean") return headMeanFiles[layer]!;
    if (head === "max") return headMaxFiles[layer]!;
    return layerFiles[layer]!;
  }
}
