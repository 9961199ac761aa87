// Where the worker gets raw float16 attention: (N, N) matrices through the
// byte-bounded cache (one range request each; concurrent asks share a fetch),
// and runs of rows, which a cold view reads with a small range instead of
// waiting for the N² block (128 MiB at N=8,192). Every read in flight holds a
// reservation in the cache's budget, so the worker's attention bytes (cache +
// in flight) stay within it: whole matrices are only ever prefetched, and a
// prefetch that does not fit is skipped rather than pushing memory over.
// Vision-encoder attention goes the same way: the small received file whole,
// and single rows of a block's head aggregate or of one head of its block file.

import { ByteLru } from "./cache";
import { fetchSpan, type FileSpan } from "./fetch-range";
import {
  BYTES_PER_VALUE,
  layerFileBytes,
  matrixBytes,
  tokenTableBytes,
  tokenTableFile,
  tokenTableRange,
  visionBlockFileBytes,
  visionReceivedBytes,
  type TokenMeasure,
  storedHeads,
  storedMatrixValues,
  type VisionMeta,
} from "./format";
import type { SampleFiles } from "./protocol";
import { fullRows, storedSpan } from "./stored-rows";
import { HEAD_AGGREGATES, VISION_HEAD_AGGREGATES, type HeadChoice, type VisionHead } from "./variants";

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
      if (evicted.byteLength === this.storedMatrixBytes) this.spare = evicted.buffer as ArrayBuffer;
    });
  }

  /** Bytes of one LLM matrix as the sample stores it (SPEC.md §1, storage profiles). */
  private get storedMatrixBytes(): number {
    return storedMatrixValues(this.files) * BYTES_PER_VALUE;
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
   * The raw float16 matrix of one layer (a head's block, or a head aggregate),
   * or null when the budget has no room for it beside the reads in flight.
   * Use it at once and keep no reference: once evicted, its memory is refilled.
   */
  matrix(layer: number, head: HeadChoice): Promise<Uint16Array | null> {
    return this.stored({ key: this.key(layer, head), span: this.matrixSpan(layer, head) }, "optional");
  }

  /**
   * The vision received file (blocks × P float16), fetched whole with one closed
   * range and kept in the cache: it is small, and every saliency view reads it.
   */
  async visionReceived(): Promise<Uint16Array> {
    const vision = this.visionFiles();
    const span = this.spanOf(vision.receivedFile, visionReceivedBytes(vision));
    return (await this.stored({ key: "vision:received", span }, "required"))!;
  }

  /**
   * Token `token`'s (L, H) table of one measure: one range of L × H × 2 bytes,
   * kept in the cache (an atlas revisited reads nothing).
   */
  async tokenTable(measure: TokenMeasure, token: number): Promise<Uint16Array> {
    const shape = { seqLen: this.files.seqLen, numLayers: this.files.layerFiles.length, layerAttention: this.files.layerAttention };
    const [start, end] = tokenTableRange(shape, token);
    const span = { ...this.spanOf(tokenTableFile(measure), tokenTableBytes(shape)), start, length: end - start };
    return (await this.stored({ key: `table:${measure}:${token}`, span }, "required"))!;
  }

  /** Fetch a stored array once (concurrent asks share the fetch) and keep it in the cache. */
  private stored(item: { key: string; span: FileSpan }, need: "optional" | "required"): Promise<Uint16Array | null> {
    const cached = this.cache.get(item.key);
    if (cached) return Promise.resolve(cached);
    let pending = this.inFlight.get(item.key);
    if (!pending) {
      const bytes = item.span.length;
      if (need === "required") this.cache.reserve(bytes);
      else if (!this.cache.tryReserve(bytes)) return Promise.resolve(null);
      pending = fetchSpan(item.span, this.takeSpare(bytes) ?? undefined)
        .finally(() => {
          this.cache.release(bytes);
          this.inFlight.delete(item.key);
        })
        .then((buffer) => {
          const array = new Uint16Array(buffer);
          this.cache.set(item.key, array);
          this.spare = null; // only a fetch starting now could use what this evicted
          return array;
        });
      this.inFlight.set(item.key, pending);
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
    const fitting = wanted.slice(0, Math.floor(this.cache.maxBytes / this.storedMatrixBytes));
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
    const { storage, seqLen: n } = this.files;
    const matrix = { key: this.key(layer, head), span: this.matrixSpan(layer, head), n };
    const [start, end] = storedSpan(storage, first, count);
    return this.valuesOf(matrix, start, end - start, (values) => use(fullRows(storage, n, values, start, first, count)));
  }

  /** withRows() for R_layer, the rollout up to a layer: a (N, N) matrix laid out as a head-mean file. */
  withRolloutRows<T>(layer: number, first: number, count: number, use: (rows: Uint16Array) => T): Promise<T> {
    const rollout = this.files.rollout;
    if (!rollout) throw new Error("this sample has no rollout (no rollout.json)");
    const span = this.spanOf(listed(rollout.files, layer), matrixBytes(this.files.seqLen));
    return this.rowsOf({ key: `rollout:${layer}`, span, n: this.files.seqLen }, first, count, use);
  }

  /**
   * withRows() for captured vision block `index` (into vision.blocks): a head
   * aggregate (P, P), or head h's (P, P) matrix in its (Hv, P, P) block file.
   */
  withVisionRows<T>(index: number, head: VisionHead, first: number, count: number, use: (rows: Uint16Array) => T): Promise<T> {
    const P = this.visionFiles().seqLen;
    return this.rowsOf({ key: `vision:${index}:${head}`, span: this.visionMatrixSpan(index, head), n: P }, first, count, use);
  }

  private rowsOf<T>(matrix: { key: string; span: FileSpan; n: number }, first: number, count: number, use: (rows: Uint16Array) => T): Promise<T> {
    return this.valuesOf(matrix, first * matrix.n, count * matrix.n, use);
  }

  /** Hand `length` stored values of a matrix from element `start` on to `use`: from the cache, or one range read. */
  private async valuesOf<T>(matrix: { key: string; span: FileSpan }, start: number, length: number, use: (values: Uint16Array) => T): Promise<T> {
    const { key, span } = matrix;
    const cached = this.cache.get(key);
    if (cached) return use(cached.subarray(start, start + length));
    const bytes = length * BYTES_PER_VALUE;
    if (bytes === 0) return use(new Uint16Array(0)); // rows the sample does not store: nothing to read
    this.cache.reserve(bytes);
    this.spare = null; // a row read has no use for it: let the GC have it
    try {
      return use(new Uint16Array(await fetchSpan({ ...span, start: span.start + start * BYTES_PER_VALUE, length: bytes })));
    } finally {
      this.cache.release(bytes);
    }
  }

  /** The spare buffer when it has the wanted length; the read then fills it. */
  private takeSpare(length: number): ArrayBuffer | null {
    const spare = this.spare?.byteLength === length ? this.spare : null;
    this.spare = null;
    return spare;
  }

  private visionFiles(): VisionMeta {
    if (!this.files.vision) throw new Error("this sample has no vision-encoder attention");
    return this.files.vision;
  }

  /** A whole file of the sample, as a span of `length` bytes from its start. */
  private spanOf(name: string, fileBytes: number): FileSpan {
    return { url: new URL(encodeURIComponent(name), this.sampleUrl).href, name, fileBytes, start: 0, length: fileBytes };
  }

  /** Where a vision block's matrix lives: its whole head-aggregate file, or head h's block of its block file. */
  private visionMatrixSpan(index: number, head: VisionHead): FileSpan {
    const vision = this.visionFiles();
    const bytes = matrixBytes(vision.seqLen);
    if (typeof head !== "number") return this.spanOf(listed(vision[VISION_HEAD_AGGREGATES[head].files], index), bytes);
    const file = this.spanOf(listed(vision.blockFiles, index), visionBlockFileBytes(vision));
    return { ...file, start: head * bytes, length: bytes };
  }

  /**
   * Where a matrix lives: one kept head's block of a kept layer's file, or a whole head-aggregate file; the
   * file lists follow storage.layers, a layer file's blocks its stored heads (storedHeads).
   */
  private matrixSpan(layer: number, head: HeadChoice): FileSpan {
    const { storage } = this.files;
    const bytes = this.storedMatrixBytes;
    const position = storedPosition(storage.layers, layer, "layer");
    if (typeof head !== "number") return this.spanOf(listed(this.files[HEAD_AGGREGATES[head].files], position), bytes);
    const file = this.spanOf(listed(this.files.layerFiles, position), layerFileBytes(this.files, position));
    return { ...file, start: storedPosition(storedHeads(this.files, layer), head, "head") * bytes, length: bytes };
  }
}

/** Where a kept layer or head sits among the kept ones; asking for one the sample does not keep is a bug of the caller. */
function storedPosition(kept: number[], index: number, what: string): number {
  const position = kept.indexOf(index);
  if (position < 0) throw new Error(`${what} ${index} is not stored in this sample (it keeps ${what}s ${kept.join(", ")})`);
  return position;
}

/** The file a list of meta.json names for a layer or block; a request past the list is a bug, said plainly. */
function listed(files: string[], index: number): string {
  const name = files[index];
  if (name === undefined) throw new Error(`no file for layer or block ${index}: meta.json lists ${files.length}`);
  return name;
}
