// The sample format as the viewer reads it: the TypeScript twin of
// vlm_attention_viz/sample_format.py (SPEC.md §1). Parsing validates everything
// the viewer relies on, so the rest of the code can trust a SampleMeta.

export const FORMAT_VERSION = 2;
/** The version that brings image_regions and images: earlier readers could not place their tokens. */
export const REGIONS_FORMAT_VERSION = 2;
export const BYTES_PER_VALUE = 2; // float16
/** The sidecar whose presence says a sample holds its rollout; meta.json does not mention it. */
export const ROLLOUT_FILE = "rollout.json";

/**
 * The per-token measures (SPEC.md §1), named once: sample_format.py's TOKEN_TABLES.
 * Each is a float16 (N, L, H) file: row t holds query token t's value for every
 * layer and head, so one token's (L, H) table is one range of L × H × 2 bytes.
 */
export const TOKEN_TABLES = {
  image_share: { file: "token_image_share.bin", label: "image share" },
  special_share: { file: "token_special_share.bin", label: "special-token share" },
  row_entropy: { file: "token_row_entropy.bin", label: "row entropy (nats)" },
  image_entropy: { file: "token_image_entropy.bin", label: "spatial entropy on the image" },
} as const satisfies Record<string, { file: string; label: string }>;
export type TokenMeasure = keyof typeof TOKEN_TABLES;

/** What a reader serves from a sample: a token's row, a token's column, the rollout (sample_format.py's STORAGE_VIEWS). */
export type StorageView = "row" | "col" | "rollout";

interface StorageProfileKind {
  /** Where row i of an (N, N) matrix lies in its stored form. */
  layout: string;
  /** Whether the rows of image tokens are stored. */
  imageRows: boolean;
  /** Whether a row stores only its causal columns 0..i (else all N). */
  causalColumns: boolean;
  /** float16 values one stored matrix holds, for N tokens of which `text` are not image tokens. */
  matrixValues: (n: number, text: number) => number;
  views: readonly StorageView[];
}

/**
 * The storage profiles (SPEC.md §1), named once: sample_format.py's STORAGE_PROFILES.
 * A layer file stacks its kept heads' matrices; the head mean and max files hold one each.
 */
export const STORAGE_PROFILES = {
  full: {
    layout: "row i at element i·N, all N columns",
    imageRows: true,
    causalColumns: false,
    matrixValues: (n) => n * n,
    views: ["row", "col", "rollout"],
  },
  triangle: {
    layout: "row i holds columns 0..i at element i(i+1)/2",
    imageRows: true,
    causalColumns: true,
    matrixValues: (n) => (n * (n + 1)) / 2,
    views: ["row", "col", "rollout"],
  },
  "text-rows": {
    layout: "only the rows of non-image tokens, in token order, all N columns",
    imageRows: false,
    causalColumns: false,
    matrixValues: (n, text) => text * n,
    views: ["row", "col"],
  },
} as const satisfies Record<string, StorageProfileKind>;
export type StorageProfile = keyof typeof STORAGE_PROFILES;
/** The profile of a meta.json without `storage`. */
export const DEFAULT_PROFILE: StorageProfile = "full";

/** meta.json's `storage` (absent: full, every layer and head), with the stored rows worked out. */
export interface Storage {
  profile: StorageProfile;
  /** The kept layers (model indices, ascending); meta.json's file lists follow this order. */
  layers: number[];
  /** The kept query heads, in the order a layer file stacks them. */
  heads: number[];
  /** The token rows each matrix stores, in stored order. */
  rows: number[];
  /** Per token: its stored row, or -1 when its row is not stored. */
  rowIndex: Int32Array;
  /** Where each stored row begins in a stored matrix, in values; the last entry is the matrix's size. */
  rowStarts: Float64Array;
}

export type TokenType = "text" | "image" | "special";
/** What a region of image tokens covers (sample_format.REGION_KINDS): a whole image, a tile, a downscaled whole. */
export const REGION_KINDS = ["image", "tile", "global"] as const;
export type RegionKind = (typeof REGION_KINDS)[number];
/** Tokens of an image's layout that are not patches (sample_format.LAYOUT_ROLES); never drawn on the image. */
export const LAYOUT_ROLES = ["tile_label", "separator", "row_break", "row_end"] as const;
export type LayoutRole = (typeof LAYOUT_ROLES)[number];

export interface Token {
  id: number;
  text: string;
  type: TokenType;
  gridPos?: [number, number];
  /** Image tokens: the index into SampleMeta.regions of the region holding it. */
  region?: number;
  /** A token of an image's layout that is not a patch: a tile label, a separator, a row break or end. */
  layout?: LayoutRole;
  /** Generate mode: the token was written by the model. */
  generated?: boolean;
  /** Generate mode: the token belongs to the model's thinking span. */
  thinking?: boolean;
}

/**
 * What a layer's stored matrices are (meta.json `layer_attention`, SPEC.md §1),
 * named once: the twin of ATTENTION_KINDS in sample_format.py. A sample without
 * the field has causal softmax in every layer.
 */
export const ATTENTION_KINDS = {
  causal: { label: "causal softmax", signed: false },
  sliding: { label: "sliding-window softmax", signed: false },
  linear: { label: "linear attention (implicit, signed, unnormalised)", signed: true },
} as const satisfies Record<string, { label: string; signed: boolean }>;
export type AttentionKind = keyof typeof ATTENTION_KINDS;

export interface LayerAttention {
  kind: AttentionKind;
  /** Sliding layers: row i weighs the keys after i - window. */
  window?: number;
  /** Image tokens also see the later tokens of their own image. */
  imageBidirectional?: boolean;
  /** The weights are taken before the layer's sigmoid output gate. */
  beforeOutputGate?: boolean;
  /** Linear layers: q, k and v pass a causal convolution of this many tokens first. */
  convKernel?: number;
  /** This layer's heads (the sample's numHeads when absent in meta.json). */
  numHeads: number;
}

export interface ImageGrid {
  rows: number;
  cols: number;
  startIdx: number;
  endIdx: number;
}

/** One image of the prompt: its file, the size the model saw it at (the regions' coordinates), its own size. */
export interface ImageInfo {
  path: string;
  size: [number, number];
  originalSize: [number, number];
}

/** rows × cols image tokens of one image covering rect = [x, y, w, h] of it; tokens[r × cols + c] sits at (r, c). */
export interface ImageRegion {
  image: number;
  kind: RegionKind;
  rows: number;
  cols: number;
  rect: [number, number, number, number];
  tokens: number[];
}

export interface SampleMeta {
  model: string;
  prompt: string;
  mode: string;
  imagePath: string;
  imageSize: [number, number];
  numLayers: number;
  numHeads: number;
  seqLen: number;
  tokens: Token[];
  /** Samples of one image as one grid; the same grid is also regions[0]. */
  imageGrid?: ImageGrid;
  /** Every image, in prompt order (one for a sample without the `images` field). */
  images: ImageInfo[];
  /** Every region of image tokens; each image token is in exactly one (its Token.region). */
  regions: ImageRegion[];
  /** Per image, its first and last image token: what an image-bidirectional layer opens up (imageBlocks). */
  imageBlocks: ImageBlock[];
  layerFiles: string[];
  headMeanFiles: string[];
  headMaxFiles: string[];
  /** One entry per layer; every layer causal softmax when meta.json has no `layer_attention`. */
  layerAttention: LayerAttention[];
  /** Generate mode: index of the first answer token, when the sample holds one. */
  answerStart?: number;
  /** The vision encoder's self-attention, when the sample was made with --vision-layers. */
  vision?: VisionMeta;
  /** The per-token tables the sample holds; empty for samples written before they existed. */
  tokenTables: TokenMeasure[];
  /** meta.json's `text_to_image`, L × H values in [layer][head] order; null when the sample has none (or not of that shape). */
  textToImage: Float32Array | null;
  /** What the layer, mean and max files keep (SPEC.md §1, storage profiles). */
  storage: Storage;
}

/** rollout.json: R_l = Ā_l ⋯ Ā_0 is stored as one float16 (N, N) file per layer. */
export interface RolloutMeta {
  layers: number;
  formula: string;
  /** rolloutFile(l) for every layer l. */
  files: string[];
}

/**
 * The vision tower's captured blocks (SPEC.md §1): per block a float16
 * (heads, P, P) file and its head mean (P, P), plus one (blocks, P) file of the
 * attention each patch receives. Patch p = r × cols + c, row-major.
 */
export interface VisionMeta {
  numBlocks: number;
  numHeads: number;
  /** The captured block indices, ascending; files are listed in the same order. */
  blocks: number[];
  grid: { rows: number; cols: number };
  patchSize: number;
  /** P = rows × cols. */
  seqLen: number;
  blockFiles: string[];
  headMeanFiles: string[];
  receivedFile: string;
}

export interface SampleEntry {
  name: string;
  model: string;
  prompt: string;
  mode: string;
  seqLen: number;
  numLayers: number;
  numHeads: number;
}

export class FormatError extends Error {
  override name = "FormatError";
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function field<T>(obj: Json, key: string, check: (v: unknown) => v is T, what: string, where = "meta.json"): T {
  if (!(key in obj)) throw new FormatError(`${where} lacks the field '${key}'`);
  const value = obj[key];
  if (!check(value)) throw new FormatError(`${where} field '${key}' must be ${what}`);
  return value;
}

const isString = (v: unknown): v is string => typeof v === "string";
const isInt = (v: unknown): v is number => Number.isInteger(v);
const isList = (v: unknown): v is unknown[] => Array.isArray(v);
const isIntPair = (v: unknown): v is [number, number] => isList(v) && v.length === 2 && v.every(isInt);

function isPlainName(name: unknown): name is string {
  return isString(name) && name !== "" && name !== "." && name !== ".." && !/[\\/]/.test(name);
}

function fileList(obj: Json, key: string, layers: number): string[] {
  const names = field(obj, key, isList, "a list");
  if (names.length !== layers || !names.every(isPlainName)) {
    throw new FormatError(`'${key}' must list ${layers} plain file names`);
  }
  return names as string[];
}

/**
 * Far beyond any model the viewer is made for (36 layers × 32 heads at
 * N = 8,192): a meta.json past these is broken, and is refused before any
 * list of that length is built.
 */
export const META_BOUNDS = { num_layers: 1024, num_heads: 1024, seq_len: 1 << 20 } as const;

function checkBounds(sizes: Record<keyof typeof META_BOUNDS, number>): void {
  for (const key of Object.keys(META_BOUNDS) as (keyof typeof META_BOUNDS)[]) {
    if (sizes[key] > META_BOUNDS[key]) throw new FormatError(`${key} is ${sizes[key]}, beyond this viewer's bound of ${META_BOUNDS[key]}`);
  }
}

/** Parse and validate a meta.json value; throws FormatError naming the first problem. */
export function parseMeta(raw: unknown): SampleMeta {
  if (!isObject(raw)) throw new FormatError("meta.json must hold a JSON object");
  const version = field(raw, "format_version", isInt, "an integer");
  if (version > FORMAT_VERSION) {
    throw new FormatError(`format_version ${version} is newer than this viewer (${FORMAT_VERSION})`);
  }
  if (field(raw, "dtype", isString, "a string") !== "float16") throw new FormatError("dtype must be float16");
  const numLayers = field(raw, "num_layers", isInt, "an integer");
  const numHeads = field(raw, "num_heads", isInt, "an integer");
  const seqLen = field(raw, "seq_len", isInt, "an integer");
  if (numLayers < 1 || numHeads < 1 || seqLen < 1) {
    throw new FormatError("seq_len, num_layers and num_heads must be positive");
  }
  checkBounds({ num_layers: numLayers, num_heads: numHeads, seq_len: seqLen });
  const imagePath = field(raw, "image_path", isString, "a string");
  if (!isPlainName(imagePath)) throw new FormatError("'image_path' must be a plain file name inside the sample");
  const tokens = parseTokens(field(raw, "tokens", isList, "a list"), seqLen);
  const storage = parseStorage(raw["storage"], numLayers, numHeads, tokens);
  const answerStart = raw["answer_start"];
  const imageSize = field(raw, "image_size", isIntPair, "[width, height]");
  const layout = "image_regions" in raw ? parseRegions(raw, version, tokens, imagePath, imageSize) : singleGrid(raw, tokens, imagePath, imageSize);
  return {
    model: field(raw, "model", isString, "a string"),
    prompt: field(raw, "prompt", isString, "a string"),
    mode: isString(raw["mode"]) ? raw["mode"] : "prefill",
    imagePath,
    imageSize,
    numLayers,
    numHeads,
    seqLen,
    tokens,
    ...layout,
    imageBlocks: imageBlocks(layout.regions),
    layerFiles: fileList(raw, "layer_files", storage.layers.length),
    headMeanFiles: fileList(raw, "head_mean_files", storage.layers.length),
    headMaxFiles: fileList(raw, "head_max_files", storage.layers.length),
    layerAttention: parseLayerAttention(raw["layer_attention"], numLayers, numHeads),
    ...(isInt(answerStart) && answerStart >= 0 && answerStart < seqLen ? { answerStart } : {}),
    ...("vision" in raw ? { vision: parseVision(raw["vision"], imageSize) } : {}),
    tokenTables: "token_tables" in raw ? parseTokenTables(raw["token_tables"]) : [],
    textToImage: parseLayerHeadTable(raw["text_to_image"], numLayers, numHeads),
    storage,
  };
}

/**
 * An L × H table of numbers (lists of lists), flattened in [layer][head] order;
 * null when it has another shape: it is an overview only, and no file depends on it.
 */
function parseLayerHeadTable(raw: unknown, numLayers: number, numHeads: number): Float32Array | null {
  const isRow = (row: unknown): row is number[] => isList(row) && row.length === numHeads && row.every((v) => typeof v === "number");
  return isList(raw) && raw.length === numLayers && raw.every(isRow) ? Float32Array.from(raw.flat()) : null;
}

const range = (count: number): number[] => Array.from({ length: count }, (_, i) => i);

/** The `storage` field, checked as sample_format.py checks it and with the same messages; absent = full, everything. */
function parseStorage(raw: unknown, numLayers: number, numHeads: number, tokens: Token[]): Storage {
  if (raw === undefined) return storageOf(DEFAULT_PROFILE, range(numLayers), range(numHeads), tokens);
  const profile = isObject(raw) ? raw["profile"] : undefined;
  if (!isObject(raw) || !isString(profile) || !Object.hasOwn(STORAGE_PROFILES, profile)) {
    throw new FormatError(`'storage' must be an object whose 'profile' is one of ${Object.keys(STORAGE_PROFILES).join(", ")}`);
  }
  const indices = (key: string, count: number): number[] => {
    const list = raw[key];
    const ascending =
      isList(list) && list.length > 0 && list.every((v, i) => isInt(v) && v >= 0 && v < count && (i === 0 || v > (list[i - 1] as number)));
    if (!ascending) throw new FormatError(`storage.${key} must list ascending, unique indices below ${count}`);
    return list as number[];
  };
  const storage = storageOf(profile as StorageProfile, indices("layers", numLayers), indices("heads", numHeads), tokens);
  if (storage.rows.length === 0) throw new FormatError("a text-rows sample needs at least one token that is not an image token");
  return storage;
}

function storageOf(profile: StorageProfile, layers: number[], heads: number[], tokens: Token[]): Storage {
  const { imageRows, causalColumns } = STORAGE_PROFILES[profile];
  const rows = imageRows ? range(tokens.length) : tokens.filter((t) => t.type !== "image").map((t) => t.id);
  const rowIndex = new Int32Array(tokens.length).fill(-1);
  const rowStarts = new Float64Array(rows.length + 1);
  rows.forEach((row, k) => {
    rowIndex[row] = k;
    rowStarts[k + 1] = rowStarts[k]! + (causalColumns ? row + 1 : tokens.length);
  });
  return { profile, layers, heads, rows, rowIndex, rowStarts };
}

/** Whether the sample can serve a view: the rollout also needs every layer's whole head mean. */
export function storageServes(meta: Pick<SampleMeta, "storage" | "numLayers">, view: StorageView): boolean {
  const { profile, layers } = meta.storage;
  const views: readonly StorageView[] = STORAGE_PROFILES[profile].views;
  return views.includes(view) && (view !== "rollout" || layers.length === meta.numLayers);
}

/** float16 values of one stored matrix (a head of a layer file, or a mean or max file). */
export function storedMatrixValues(meta: Pick<SampleMeta, "storage" | "seqLen">): number {
  return STORAGE_PROFILES[meta.storage.profile].matrixValues(meta.seqLen, meta.storage.rows.length);
}

function isTokenMeasure(value: unknown): value is TokenMeasure {
  return isString(value) && Object.hasOwn(TOKEN_TABLES, value);
}

function parseTokenTables(raw: unknown): TokenMeasure[] {
  if (!isList(raw) || !raw.every(isTokenMeasure) || new Set(raw).size !== raw.length) {
    throw new FormatError(`'token_tables' must list distinct measures among ${Object.keys(TOKEN_TABLES).join(", ")}`);
  }
  return raw;
}

/** Parse rollout.json against its sample's meta; throws FormatError with sample_format.py's messages. */
export function parseRollout(raw: unknown, meta: Pick<SampleMeta, "numLayers" | "storage">): RolloutMeta {
  if (!storageServes(meta, "rollout")) throw new FormatError(`${ROLLOUT_FILE} is there, but this sample's storage holds no rollout`);
  if (!isObject(raw) || !isString(raw["formula"])) {
    throw new FormatError(`${ROLLOUT_FILE} must hold an object with the string 'formula'`);
  }
  if (raw["layers"] !== meta.numLayers) {
    throw new FormatError(`${ROLLOUT_FILE} 'layers' must equal num_layers (${meta.numLayers})`);
  }
  return { layers: meta.numLayers, formula: raw["formula"], files: Array.from({ length: meta.numLayers }, (_, l) => rolloutFile(l)) };
}

function twoDigits(index: number): string {
  return String(index).padStart(2, "0");
}

/** R_layer's file: float16 (N, N), row t = token t's rollout row, as a head-mean file is laid out. */
export function rolloutFile(layer: number): string {
  return `rollout_layer_${twoDigits(layer)}.bin`;
}

export function tokenTableFile(measure: TokenMeasure): string {
  return TOKEN_TABLES[measure].file;
}

type TableShape = Pick<SampleMeta, "numLayers" | "layerAttention">;

/** The head axis of the token tables: the most heads of any layer (one with fewer holds NaN in the rest). */
export function tableHeads(meta: TableShape): number {
  return Math.max(...meta.layerAttention.map((layer) => layer.numHeads));
}

/** Bytes of one (N, L, H) token table. */
export function tokenTableBytes(meta: TableShape & Pick<SampleMeta, "seqLen">): number {
  return meta.seqLen * meta.numLayers * tableHeads(meta) * BYTES_PER_VALUE;
}

/** The byte range of token t's (L, H) table in a token-table file: [start, end), [layer][head] order. */
export function tokenTableRange(meta: TableShape, token: number): [number, number] {
  const bytes = meta.numLayers * tableHeads(meta) * BYTES_PER_VALUE;
  return [token * bytes, (token + 1) * bytes];
}

function parseTokens(list: unknown[], seqLen: number): Token[] {
  if (list.length !== seqLen) {
    throw new FormatError(`tokens has ${list.length} entries but seq_len is ${seqLen}`);
  }
  return list.map((raw, i) => {
    if (!isObject(raw) || raw["id"] !== i) throw new FormatError(`tokens[${i}] must be an object with id ${i}`);
    if (!isString(raw["text"])) throw new FormatError(`tokens[${i}] lacks a text string`);
    const type = raw["type"];
    if (type !== "text" && type !== "image" && type !== "special") {
      throw new FormatError(`tokens[${i}].type must be text, image or special`);
    }
    const token: Token = { id: i, text: raw["text"], type };
    if (type === "image") {
      if (!isIntPair(raw["grid_pos"])) throw new FormatError(`tokens[${i}] is an image token without grid_pos [row, col]`);
      token.gridPos = raw["grid_pos"];
      if (isInt(raw["region"])) token.region = raw["region"];
    }
    if ("layout" in raw) {
      const role = raw["layout"];
      if (!LAYOUT_ROLES.includes(role as LayoutRole) || type === "image") {
        throw new FormatError(`tokens[${i}].layout must be one of ${LAYOUT_ROLES.join(", ")}, on a token that is not a patch`);
      }
      token.layout = role as LayoutRole;
    }
    if (raw["generated"] === true) token.generated = true;
    if (raw["thinking"] === true) token.thinking = true;
    return token;
  });
}

function parseGrid(raw: Json, tokens: Token[]): ImageGrid {
  const where = "image_grid";
  const grid: ImageGrid = {
    rows: field(raw, "rows", isInt, "an integer", where),
    cols: field(raw, "cols", isInt, "an integer", where),
    startIdx: field(raw, "start_idx", isInt, "an integer", where),
    endIdx: field(raw, "end_idx", isInt, "an integer", where),
  };
  const { rows, cols, startIdx, endIdx } = grid;
  if (!(0 <= startIdx && startIdx <= endIdx && endIdx < tokens.length) || endIdx - startIdx + 1 !== rows * cols) {
    throw new FormatError("image_grid span does not match rows × cols inside the sequence");
  }
  for (let i = startIdx; i <= endIdx; i++) {
    const offset = i - startIdx;
    const pos = tokens[i]!.gridPos;
    if (tokens[i]!.type !== "image" || pos?.[0] !== Math.floor(offset / cols) || pos[1] !== offset % cols) {
      throw new FormatError(`tokens[${i}] does not sit at its row-major place in image_grid`);
    }
  }
  return grid;
}

/** The `layer_attention` field, checked as sample_format.py checks it and with the same messages. */
function parseLayerAttention(raw: unknown, numLayers: number, numHeads: number): LayerAttention[] {
  if (raw === undefined) return Array.from({ length: numLayers }, () => ({ kind: "causal", numHeads }));
  if (!isList(raw) || raw.length !== numLayers) {
    throw new FormatError(`'layer_attention' must list ${numLayers} entries, one per layer`);
  }
  return raw.map((entry, i) => {
    const where = `layer_attention[${i}]`;
    if (!isObject(entry) || !isString(entry["kind"]) || !Object.hasOwn(ATTENTION_KINDS, entry["kind"])) {
      throw new FormatError(`${where} must be an object whose kind is one of ${Object.keys(ATTENTION_KINDS).join(", ")}`);
    }
    const kind = entry["kind"] as AttentionKind;
    const positive = (key: string, wanted: boolean, what: string): number | undefined => {
      const value = entry[key];
      if ((key in entry) !== wanted || (value !== undefined && !(isInt(value) && value >= 1))) {
        throw new FormatError(`${where}: a positive integer '${key}' is required for ${what} layers and only there`);
      }
      return value as number | undefined;
    };
    const flag = (key: string): boolean => {
      if (key in entry && (entry[key] !== true || kind === "linear")) {
        throw new FormatError(`${where}: '${key}' is true on a softmax layer or absent`);
      }
      return entry[key] === true;
    };
    const window = positive("window", kind === "sliding", "sliding");
    const convKernel = positive("conv_kernel", kind === "linear", "linear");
    const imageBidirectional = flag("image_bidirectional");
    const beforeOutputGate = flag("before_output_gate");
    const heads = entry["num_heads"] ?? numHeads;
    if (!isInt(heads) || heads < 1) throw new FormatError(`${where}: 'num_heads' must be a positive integer`);
    return {
      kind,
      numHeads: heads,
      ...(window !== undefined ? { window } : {}),
      ...(convKernel !== undefined ? { convKernel } : {}),
      ...(imageBidirectional ? { imageBidirectional } : {}),
      ...(beforeOutputGate ? { beforeOutputGate } : {}),
    };
  });
}

/** An image's first and last image token, inclusive. */
export type ImageBlock = readonly [number, number];

/** Per image, in prompt order, its first and last image token (sample_format.image_blocks). */
export function imageBlocks(regions: readonly ImageRegion[]): ImageBlock[] {
  const blocks = new Map<number, [number, number]>();
  for (const region of regions) {
    const [first, last] = [region.tokens[0]!, region.tokens[region.tokens.length - 1]!];
    const block = blocks.get(region.image);
    blocks.set(region.image, block ? [Math.min(block[0], first), Math.max(block[1], last)] : [first, last]);
  }
  return [...blocks.keys()].sort((a, b) => a - b).map((image) => blocks.get(image)!);
}

/**
 * The cells [first, last] that token `index`'s row ("row": the keys it may weigh)
 * or column ("col": the queries that may weigh it) can hold in a layer of this
 * kind; every other cell is 0 by the layer's mask (SPEC §1, layer kinds). Causal:
 * keys up to the row's own token. An image token of an image-bidirectional layer
 * also sees its own image's later tokens. A sliding layer sees the last `window` keys.
 */
export function reach(layer: LayerAttention, index: number, axis: "row" | "col", blocks: readonly ImageBlock[], n: number): [number, number] {
  const block = layer.imageBidirectional === true ? blocks.find(([first, last]) => index >= first && index <= last) : undefined;
  const window = layer.window ?? n;
  if (axis === "row") return [Math.max(0, index - window + 1), block ? block[1] : index];
  return [block ? block[0] : index, Math.min(n - 1, index + window - 1)];
}

/**
 * The region whose map the spatial entropy is taken over, as sample_format.entropy_region picks it: the first
 * image's global view if it has one, else of its regions the one covering the most of it (a single grid), then
 * the one with more tokens, then the first. The atlas draws its top heads' maps over it too.
 */
export function entropyRegion(meta: Pick<SampleMeta, "regions">): ImageRegion {
  const rank = (r: ImageRegion): [number, number, number] => [r.kind === "global" ? 1 : 0, r.rect[2] * r.rect[3], r.tokens.length];
  const better = (a: ImageRegion, b: ImageRegion): boolean => {
    const [ra, rb] = [rank(a), rank(b)];
    const differs = ra.findIndex((v, i) => v !== rb[i]);
    return differs >= 0 && ra[differs]! > rb[differs]!;
  };
  const firstImage = meta.regions.filter((r) => r.image === 0);
  return firstImage.reduce((best, r) => (better(r, best) ? r : best));
}

type ImageLayout = Pick<SampleMeta, "imageGrid" | "images" | "regions">;

/** A sample of one image as one grid: image_grid, seen as one region over the whole image. */
function singleGrid(raw: Json, tokens: Token[], imagePath: string, imageSize: [number, number]): ImageLayout {
  const grid = parseGrid(field(raw, "image_grid", isObject, "an object"), tokens);
  const positions = Array.from({ length: grid.endIdx - grid.startIdx + 1 }, (_, k) => grid.startIdx + k);
  for (const p of positions) tokens[p]!.region = 0;
  const originalSize = isIntPair(raw["original_image_size"]) ? raw["original_image_size"] : imageSize;
  return {
    imageGrid: grid,
    images: [{ path: imagePath, size: imageSize, originalSize }],
    regions: [{ image: 0, kind: "image", rows: grid.rows, cols: grid.cols, rect: [0, 0, ...imageSize], tokens: positions }],
  };
}

const isPositivePair = (v: unknown): v is [number, number] => isIntPair(v) && v[0] >= 1 && v[1] >= 1;

/** image_regions and images (format 2), checked as sample_format.py checks them and with the same messages. */
function parseRegions(raw: Json, version: number, tokens: Token[], imagePath: string, imageSize: [number, number]): ImageLayout {
  if (version < REGIONS_FORMAT_VERSION) throw new FormatError(`image_regions need format_version ${REGIONS_FORMAT_VERSION}`);
  const rawImages = raw["images"];
  if (!isList(rawImages) || rawImages.length === 0) throw new FormatError("'images' must be a non-empty list");
  const images = rawImages.map((image, i): ImageInfo => {
    if (!isObject(image) || !isPlainName(image["path"]) || !isPositivePair(image["size"]) || !isPositivePair(image["original_size"])) {
      throw new FormatError(`images[${i}] must hold a plain file name 'path' and positive [w, h] 'size', 'original_size'`);
    }
    return { path: image["path"], size: image["size"], originalSize: image["original_size"] };
  });
  const first = images[0]!;
  if (first.path !== imagePath || first.size[0] !== imageSize[0] || first.size[1] !== imageSize[1]) {
    throw new FormatError("image_path and image_size must be those of images[0]");
  }
  const rawRegions = raw["image_regions"];
  if (!isList(rawRegions) || rawRegions.length === 0) throw new FormatError("'image_regions' must be a non-empty list");
  const regions = rawRegions.map((region, k) => parseRegion(region, k, images, tokens));
  const placed = regions.reduce((sum, region) => sum + region.tokens.length, 0);
  if (placed !== tokens.filter((t) => t.type === "image").length) {
    throw new FormatError("every image token must belong to one of image_regions");
  }
  return { images, regions };
}

function parseRegion(raw: unknown, k: number, images: ImageInfo[], tokens: Token[]): ImageRegion {
  const where = `image_regions[${k}]`;
  if (!isObject(raw) || !["image", "rows", "cols"].every((key) => isInt(raw[key]))) {
    throw new FormatError(`${where} must hold the integers 'image', 'rows' and 'cols'`);
  }
  const [image, rows, cols] = [raw["image"] as number, raw["rows"] as number, raw["cols"] as number];
  if (image < 0 || image >= images.length || rows < 1 || cols < 1) {
    throw new FormatError(`${where}: image must index images, rows and cols must be positive`);
  }
  const kind = raw["kind"];
  if (!REGION_KINDS.includes(kind as RegionKind)) throw new FormatError(`${where}.kind must be one of ${REGION_KINDS.join(", ")}`);
  const rect = raw["rect"];
  if (!isList(rect) || rect.length !== 4 || !rect.every(isInt)) throw new FormatError(`${where}.rect must be [x, y, w, h]`);
  const [x, y, w, h] = rect as [number, number, number, number];
  const [width, height] = images[image]!.size;
  // A rect may reach past its image where the processor padded the image before cutting the grid.
  if (w < 1 || h < 1 || x >= width || y >= height || x + w <= 0 || y + h <= 0) {
    throw new FormatError(`${where}.rect must overlap its image's size ${width}x${height}`);
  }
  const positions = raw["tokens"];
  if (!isList(positions) || positions.length !== rows * cols) throw new FormatError(`${where}.tokens must list rows × cols token positions`);
  positions.forEach((p, offset) => {
    const token = isInt(p) ? tokens[p] : undefined;
    const pos = token?.gridPos;
    if (token?.type !== "image" || token.region !== k || pos?.[0] !== Math.floor(offset / cols) || pos[1] !== offset % cols) {
      throw new FormatError(`${where}.tokens[${offset}] is not an image token of this region at its row-major place`);
    }
  });
  return { image, kind: kind as RegionKind, rows, cols, rect: [x, y, w, h], tokens: positions as number[] };
}

/** The `vision` field, checked as sample_format.py checks it and with the same messages. */
function parseVision(raw: unknown, imageSize: [number, number]): VisionMeta {
  if (!isObject(raw)) throw new FormatError("meta.json field 'vision' must be an object");
  const positive = (key: string): number => {
    const value = raw[key];
    if (!isInt(value) || value < 1) throw new FormatError(`vision lacks the positive integer '${key}'`);
    return value;
  };
  const numBlocks = positive("num_blocks");
  const numHeads = positive("num_heads");
  const patchSize = positive("patch_size");
  const seqLen = positive("seq_len");
  const blocks = raw["blocks"];
  if (!isList(blocks) || blocks.length === 0 || !blocks.every(isInt)) {
    throw new FormatError("vision.blocks must be a non-empty list of block indices");
  }
  if (!blocks.every((b, i) => b >= 0 && b < numBlocks && (i === 0 || b > blocks[i - 1]!))) {
    throw new FormatError(`vision.blocks must be ascending, unique and below num_blocks (${numBlocks})`);
  }
  const names = (key: string): string[] => {
    const list = raw[key];
    if (!isList(list) || list.length !== blocks.length || !list.every(isPlainName)) {
      throw new FormatError(`vision.${key} must list ${blocks.length} plain file names`);
    }
    return list;
  };
  const blockFiles = names("block_files");
  const headMeanFiles = names("head_mean_files");
  const receivedFile = raw["received_file"];
  if (!isPlainName(receivedFile)) throw new FormatError("vision.received_file must be a plain file name inside the sample");
  const grid = raw["grid"];
  if (!isObject(grid) || ![grid["rows"], grid["cols"]].every((v) => isInt(v) && v >= 1)) {
    throw new FormatError("vision.grid must hold positive integer 'rows' and 'cols'");
  }
  const [rows, cols] = [grid["rows"] as number, grid["cols"] as number];
  if (rows * cols !== seqLen) throw new FormatError("vision.seq_len must equal vision.grid rows × cols");
  if (cols * patchSize !== imageSize[0] || rows * patchSize !== imageSize[1]) {
    throw new FormatError("vision.grid × patch_size must cover image_size exactly");
  }
  return { numBlocks, numHeads, blocks, grid: { rows, cols }, patchSize, seqLen, blockFiles, headMeanFiles, receivedFile };
}

/** Parse index.json: the list of samples under a data root. */
export function parseIndex(raw: unknown): SampleEntry[] {
  if (!isObject(raw)) throw new FormatError("index.json must hold a JSON object");
  const samples = field(raw, "samples", isList, "a list", "index.json");
  return samples.map((entry, i) => {
    const where = `index.json samples[${i}]`;
    if (!isObject(entry)) throw new FormatError(`${where} must be an object`);
    const name = field(entry, "name", isPlainName, "a plain folder name", where);
    return {
      name,
      model: isString(entry["model"]) ? entry["model"] : "",
      prompt: isString(entry["prompt"]) ? entry["prompt"] : "",
      mode: isString(entry["mode"]) ? entry["mode"] : "prefill",
      seqLen: isInt(entry["seq_len"]) ? entry["seq_len"] : 0,
      numLayers: isInt(entry["num_layers"]) ? entry["num_layers"] : 0,
      numHeads: isInt(entry["num_heads"]) ? entry["num_heads"] : 0,
    };
  });
}

/** Bytes of one (N, N) float16 matrix: one head of a layer file, or a whole mean/max file. */
export function matrixBytes(seqLen: number): number {
  return seqLen * seqLen * BYTES_PER_VALUE;
}

type HeadShape = Pick<SampleMeta, "storage" | "layerAttention" | "numHeads">;

/**
 * The heads a layer's file holds, in file order: the kept ones of `--heads`, else every one of that layer's own
 * (a subset is kept only where every layer has the sample's heads; a linear layer may have more).
 */
export function storedHeads(meta: HeadShape, layer: number): number[] {
  if (meta.storage.heads.length < meta.numHeads) return meta.storage.heads;
  return range(meta.layerAttention[layer]?.numHeads ?? 0);
}

/** Bytes the stored layer file at `position` (of storage.layers) must have: its heads' stored matrices, stacked. */
export function layerFileBytes(meta: HeadShape & Pick<SampleMeta, "seqLen">, position: number): number {
  const layer = meta.storage.layers[position];
  if (layer === undefined || !meta.layerAttention[layer]) throw new Error(`no stored layer ${position}: meta.json keeps ${meta.storage.layers.length}`);
  return storedHeads(meta, layer).length * storedMatrixValues(meta) * BYTES_PER_VALUE;
}

/** Bytes a vision block file must have: Hv stacked (P, P) matrices. */
export function visionBlockFileBytes(vision: Pick<VisionMeta, "numHeads" | "seqLen">): number {
  return vision.numHeads * matrixBytes(vision.seqLen);
}

/** Bytes of the received file: one float16 row of P per captured block. */
export function visionReceivedBytes(vision: Pick<VisionMeta, "blocks" | "seqLen">): number {
  return vision.blocks.length * vision.seqLen * BYTES_PER_VALUE;
}

export interface SizedFile {
  file: string;
  bytes: number;
}

/**
 * Every attention file meta.json lists (and, given rollout.json, the rollout's), with the byte size the
 * format gives it: what a complete sample holds.
 */
export function attentionFileSizes(meta: SampleMeta, rollout?: RolloutMeta): SizedFile[] {
  const stored = storedMatrixValues(meta) * BYTES_PER_VALUE;
  return [
    ...meta.layerFiles.map((file, position) => ({ file, bytes: layerFileBytes(meta, position) })),
    ...sized(meta.headMeanFiles, stored),
    ...sized(meta.headMaxFiles, stored),
    ...(meta.vision ? visionFileSizes(meta.vision) : []),
    ...sized(meta.tokenTables.map(tokenTableFile), tokenTableBytes(meta)),
    ...(rollout ? sized(rollout.files, matrixBytes(meta.seqLen)) : []),
  ];
}

function visionFileSizes(vision: VisionMeta): SizedFile[] {
  return [
    ...sized(vision.blockFiles, visionBlockFileBytes(vision)),
    ...sized(vision.headMeanFiles, matrixBytes(vision.seqLen)),
    { file: vision.receivedFile, bytes: visionReceivedBytes(vision) },
  ];
}

function sized(files: string[], bytes: number): SizedFile[] {
  return files.map((file) => ({ file, bytes }));
}
