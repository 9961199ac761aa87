import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, test } from "vitest";
import {
  FormatError,
  ROLLOUT_FILE,
  TOKEN_TABLES,
  type ImageBlock,
  type LayerAttention,
  attentionFileSizes,
  entropyRegion,
  reach,
  layerFileBytes,
  matrixBytes,
  parseIndex,
  parseMeta,
  parseRollout,
  rolloutFile,
  tokenTableBytes,
  tokenTableFile,
  tokenTableRange,
  visionReceivedBytes,
} from "../../src/data/format";
import { halfToFloat } from "../../src/data/float16";
import { FIXTURE_DIR, fixtureBits, fixtureMetaJson, layoutMetaJson } from "./fixture";

function fixtureRollout(): unknown {
  return JSON.parse(readFileSync(path.join(FIXTURE_DIR, ROLLOUT_FILE), "utf8"));
}

const layerAttentionCases = (
  JSON.parse(readFileSync(path.join(FIXTURE_DIR, "..", "layer_attention_cases.json"), "utf8")) as {
    cases: { value: unknown; error: string | null }[];
  }
).cases;

function broken(edit: (meta: Record<string, any>) => void): Record<string, unknown> {
  const meta = fixtureMetaJson();
  edit(meta);
  return meta;
}

describe("parseMeta on the fixture", () => {
  const meta = parseMeta(fixtureMetaJson());

  test("reads sizes, files, tokens and the image grid", () => {
    expect([meta.numLayers, meta.numHeads, meta.seqLen]).toEqual([2, 3, 40]);
    expect(meta.layerFiles).toEqual(["attn_layer_00.bin", "attn_layer_01.bin"]);
    expect(meta.headMeanFiles[1]).toBe("attn_mean_layer_01.bin");
    expect(meta.imageGrid).toEqual({ rows: 3, cols: 7, startIdx: 4, endIdx: 24 });
    expect(meta.tokens[12]).toEqual({ id: 12, text: "[IMG]", type: "image", gridPos: [1, 1], region: 0 });
    expect(meta.regions).toEqual([
      { image: 0, kind: "image", rows: 3, cols: 7, rect: [0, 0, 224, 96], tokens: Array.from({ length: 21 }, (_, k) => 4 + k) },
    ]);
    expect(meta.images).toEqual([{ path: "image.png", size: [224, 96], originalSize: [224, 96] }]);
    expect(meta.tokens[0]!.type).toBe("special");
    expect(meta.imageSize).toEqual([224, 96]);
    expect(meta.answerStart).toBeUndefined();
  });

  test("the byte sizes it expects are the fixture files' sizes", () => {
    const size = (name: string) => statSync(path.join(FIXTURE_DIR, name)).size;
    expect(size(meta.layerFiles[0]!)).toBe(layerFileBytes(meta, 0));
    expect(size(meta.headMeanFiles[0]!)).toBe(matrixBytes(meta.seqLen));
    expect(size(meta.headMaxFiles[1]!)).toBe(matrixBytes(meta.seqLen));
  });

  test("attentionFileSizes names every .bin file of the fixture, at its size", () => {
    const onDisk = readdirSync(FIXTURE_DIR).filter((name) => name.endsWith(".bin"));
    const sizes = attentionFileSizes(meta, parseRollout(fixtureRollout(), meta));
    expect(sizes.map((s) => s.file).sort()).toEqual(onDisk.sort());
    for (const { file, bytes } of sizes) expect([file, statSync(path.join(FIXTURE_DIR, file)).size]).toEqual([file, bytes]);
  });

  test("reads the vision-encoder field", () => {
    expect(meta.vision).toEqual({
      numBlocks: 4,
      numHeads: 2,
      blocks: [2, 3],
      grid: { rows: 6, cols: 14 },
      patchSize: 16,
      seqLen: 84,
      blockFiles: ["vision_attn_block_02.bin", "vision_attn_block_03.bin"],
      headMeanFiles: ["vision_mean_block_02.bin", "vision_mean_block_03.bin"],
      receivedFile: "vision_received.bin",
    });
    const size = (name: string) => statSync(path.join(FIXTURE_DIR, name)).size;
    expect(size(meta.vision!.receivedFile)).toBe(visionReceivedBytes(meta.vision!));
    expect(size(meta.vision!.headMeanFiles[1]!)).toBe(matrixBytes(meta.vision!.seqLen));
  });

  test("a sample without vision attention has no vision field", () => {
    expect(parseMeta(broken((m) => delete m.vision)).vision).toBeUndefined();
  });

  test("keeps the generate-mode fields when present", () => {
    const meta = parseMeta(
      broken((m) => {
        m.answer_start = 36;
        m.tokens[37].generated = true;
        m.tokens[37].thinking = true;
      }),
    );
    expect(meta.answerStart).toBe(36);
    expect(meta.tokens[37]).toMatchObject({ generated: true, thinking: true });
  });
});

describe("token tables and rollout on the fixture", () => {
  const meta = parseMeta(fixtureMetaJson());
  const size = (name: string) => statSync(path.join(FIXTURE_DIR, name)).size;

  test("meta.json lists the four measures, each file (N, L, H) float16", () => {
    expect(meta.tokenTables).toEqual(["image_share", "special_share", "row_entropy", "image_entropy"]);
    for (const measure of meta.tokenTables) expect(size(tokenTableFile(measure))).toBe(tokenTableBytes(meta));
    expect(tokenTableBytes(meta)).toBe(40 * 2 * 3 * 2);
  });

  test("a token's range of the image-share table holds its rows' sums over the image columns", () => {
    const table = fixtureBits(TOKEN_TABLES.image_share.file);
    const token = 30;
    const [start, end] = tokenTableRange(meta, token);
    const values = Array.from(table.subarray(start / 2, end / 2), halfToFloat);
    const { startIdx, endIdx } = meta.imageGrid!;
    const expected = [0, 1].flatMap((layer) => {
      const bits = fixtureBits(meta.layerFiles[layer]!);
      return [0, 1, 2].map((head) => {
        const row = bits.subarray((head * 40 + token) * 40, (head * 40 + token + 1) * 40);
        return Array.from(row.subarray(startIdx, endIdx + 1), halfToFloat).reduce((a, b) => a + b, 0);
      });
    });
    values.forEach((value, i) => expect(value).toBeCloseTo(expected[i]!, 2));
  });

  test("the first layer's rollout row is the head-mean row mixed half with the identity", () => {
    const rollout = parseRollout(fixtureRollout(), meta);
    expect(rollout.layers).toBe(2);
    expect(rollout.files).toEqual([rolloutFile(0), rolloutFile(1)]);
    expect(rollout.files[1]).toBe("rollout_layer_01.bin");
    const token = 30;
    const mean = Array.from(fixtureBits(meta.headMeanFiles[0]!).subarray(token * 40, (token + 1) * 40), halfToFloat);
    const mixed = mean.map((v, j) => 0.5 * v + (j === token ? 0.5 : 0));
    const total = mixed.reduce((a, b) => a + b, 0);
    const stored = Array.from(fixtureBits(rollout.files[0]!).subarray(token * 40, (token + 1) * 40), halfToFloat);
    stored.forEach((value, j) => expect(value).toBeCloseTo(mixed[j]! / total, 3));
  });

  test("text_to_image is read as L × H values in [layer][head] order; absent or of another shape, it is null", () => {
    const table = fixtureMetaJson()["text_to_image"] as number[][];
    expect(Array.from(meta.textToImage!)).toEqual(Array.from(Float32Array.from(table.flat())));
    expect(parseMeta(broken((m) => delete m.text_to_image)).textToImage).toBeNull();
    expect(parseMeta(broken((m) => (m.text_to_image = [[0.1, 0.2, 0.3]]))).textToImage).toBeNull();
  });

  test("a sample without them has no token tables and lists no rollout files", () => {
    const older = parseMeta(broken((m) => delete m.token_tables));
    expect(older.tokenTables).toEqual([]);
    expect(attentionFileSizes(older).some(({ file }) => file.startsWith("token_") || file.startsWith("rollout_"))).toBe(false);
  });

  test.each([
    ["an unknown measure", ["image_share", "attention_flow"]],
    ["a repeated measure", ["image_share", "image_share"]],
    ["not a list", "image_share"],
  ])("token_tables with %s is refused", (_name, value) => {
    expect(() => parseMeta(broken((m) => (m.token_tables = value)))).toThrow(
      new FormatError("'token_tables' must list distinct measures among image_share, special_share, row_entropy, image_entropy"),
    );
  });

  test.each([
    ["not an object", [], "rollout.json must hold an object with the string 'formula'"],
    ["no formula", { layers: 2 }, "rollout.json must hold an object with the string 'formula'"],
    ["another depth", { layers: 3, formula: "x" }, "rollout.json 'layers' must equal num_layers (2)"],
  ])("rollout.json that is %s is refused", (_name, raw, message) => {
    expect(() => parseRollout(raw, meta)).toThrow(new FormatError(message));
  });
});

describe("parseMeta refuses a broken meta.json with a message naming the problem", () => {
  const required = [
    "format_version", "model", "prompt", "image_path", "image_size", "num_layers", "num_heads", "seq_len",
    "dtype", "tokens", "image_grid", "layer_files", "head_mean_files", "head_max_files",
  ];
  test.each(required)("without '%s'", (field) => {
    expect(() => parseMeta(broken((m) => delete m[field]))).toThrow(new FormatError(`meta.json lacks the field '${field}'`));
  });

  const cases: [string, (m: Record<string, any>) => void, RegExp][] = [
    ["not an object", () => undefined, /JSON object/],
    ["a newer format_version", (m) => (m.format_version = 3), /newer than this viewer/],
    ["another dtype", (m) => (m.dtype = "float32"), /float16/],
    ["a string seq_len", (m) => (m.seq_len = "40"), /'seq_len' must be an integer/],
    ["zero heads", (m) => (m.num_heads = 0), /must be positive/],
    ["a billion heads", (m) => (m.num_heads = 1_000_000_000), /num_heads is 1000000000, beyond this viewer.s bound of 1024/],
    ["fewer tokens than seq_len", (m) => m.tokens.pop(), /tokens has 39 entries but seq_len is 40/],
    ["a token with the wrong id", (m) => (m.tokens[5].id = 6), /tokens\[5\] must be an object with id 5/],
    ["a token without text", (m) => delete m.tokens[30].text, /tokens\[30\] lacks a text string/],
    ["an unknown token type", (m) => (m.tokens[30].type = "audio"), /tokens\[30\].type/],
    ["an image token without grid_pos", (m) => delete m.tokens[6].grid_pos, /tokens\[6\] is an image token without grid_pos/],
    ["a grid that does not fit its span", (m) => (m.image_grid.rows = 4), /rows × cols/],
    ["a grid position out of order", (m) => (m.tokens[5].grid_pos = [0, 0]), /tokens\[5\] does not sit at its row-major place/],
    ["too few layer files", (m) => m.layer_files.pop(), /'layer_files' must list 2 plain file names/],
    ["a file name with a path", (m) => (m.head_max_files[0] = "../x.bin"), /'head_max_files' must list/],
    ["an image path outside the sample", (m) => (m.image_path = "/etc/passwd"), /image_path/],
  ];
  test.each(cases)("with %s", (_name, edit, message) => {
    const raw = _name === "not an object" ? [] : broken(edit);
    expect(() => parseMeta(raw)).toThrow(message);
  });
});

describe("parseMeta refuses a broken vision field with sample_format.py's message", () => {
  const cases: [string, (v: Record<string, any>) => void, string][] = [
    ["an empty object", (v) => Object.keys(v).forEach((k) => delete v[k]), "vision lacks the positive integer 'num_blocks'"],
    ["no heads", (v) => (v.num_heads = 0), "vision lacks the positive integer 'num_heads'"],
    ["no blocks", (v) => (v.blocks = []), "vision.blocks must be a non-empty list of block indices"],
    ["blocks out of order", (v) => (v.blocks = [3, 2]), "vision.blocks must be ascending, unique and below num_blocks (4)"],
    ["a block past the tower", (v) => (v.blocks = [2, 4]), "vision.blocks must be ascending, unique and below num_blocks (4)"],
    ["a missing mean file", (v) => v.head_mean_files.pop(), "vision.head_mean_files must list 2 plain file names"],
    ["a block file with a path", (v) => (v.block_files[0] = "../x.bin"), "vision.block_files must list 2 plain file names"],
    ["no received file", (v) => delete v.received_file, "vision.received_file must be a plain file name inside the sample"],
    ["a grid without cols", (v) => delete v.grid.cols, "vision.grid must hold positive integer 'rows' and 'cols'"],
    ["a grid that does not make seq_len", (v) => (v.seq_len = 85), "vision.seq_len must equal vision.grid rows × cols"],
    ["patches that miss the image", (v) => (v.patch_size = 14), "vision.grid × patch_size must cover image_size exactly"],
  ];
  test.each(cases)("with %s", (_name, edit, message) => {
    expect(() => parseMeta(broken((m) => edit(m.vision)))).toThrow(new FormatError(message));
  });

  test("a vision field that is not an object", () => {
    expect(() => parseMeta(broken((m) => (m.vision = [])))).toThrow(new FormatError("meta.json field 'vision' must be an object"));
  });
});

describe("parseIndex", () => {
  test("reads the fixture index", () => {
    const raw = JSON.parse(readFileSync(path.join(FIXTURE_DIR, "../index.json"), "utf8"));
    expect(parseIndex(raw)).toEqual([
      { name: "sample_tiny", model: "synthetic", prompt: "Describe this image in detail.", mode: "prefill", seqLen: 40, numLayers: 2, numHeads: 3 },
    ]);
  });

  test("refuses entries without a plain folder name", () => {
    expect(() => parseIndex({ samples: [{ name: "../up" }] })).toThrow(/samples\[0\] field 'name'/);
    expect(() => parseIndex({})).toThrow(/lacks the field 'samples'/);
  });
});

describe("layer_attention: each layer's kind", () => {
  test("a sample without it is causal softmax in every layer, with the sample's heads", () => {
    expect(parseMeta(fixtureMetaJson()).layerAttention).toEqual([
      { kind: "causal", numHeads: 3 },
      { kind: "causal", numHeads: 3 },
    ]);
  });

  test.each(layerAttentionCases)("the shared case $value is valid or refused as sample_format.py says", ({ value, error }) => {
    const parse = () => parseMeta(broken((m) => (m.layer_attention = value)));
    if (error === null) expect(parse).not.toThrow();
    else expect(parse).toThrow(error);
  });

  test("reads windows, flags and per-layer heads, and sizes a layer file by its own heads", () => {
    const meta = parseMeta(
      broken((m) => {
        m.layer_attention = [
          { kind: "sliding", window: 8, image_bidirectional: true },
          { kind: "linear", conv_kernel: 4, num_heads: 5 },
        ];
      }),
    );
    expect(meta.layerAttention).toEqual([
      { kind: "sliding", window: 8, imageBidirectional: true, numHeads: 3 },
      { kind: "linear", convKernel: 4, numHeads: 5 },
    ]);
    expect(layerFileBytes(meta, 1)).toBe(5 * matrixBytes(40));
  });

  test("a token's reach follows its layer's kind: causal, image bidirectional, sliding", () => {
    const meta = parseMeta(
      broken((m) => {
        m.layer_attention = [{ kind: "causal", image_bidirectional: true }, { kind: "sliding", window: 5, image_bidirectional: true }];
      }),
    );
    const [bidirectional, sliding] = meta.layerAttention as [LayerAttention, LayerAttention];
    const grid = meta.imageBlocks; // image tokens 4..24 of 40
    expect(reach(bidirectional, 12, "row", grid, 40)).toEqual([0, 24]); // an image row sees its image's later tokens
    expect(reach(bidirectional, 12, "col", grid, 40)).toEqual([4, 39]); // and is seen from the image's first row
    expect(reach(bidirectional, 30, "row", grid, 40)).toEqual([0, 30]); // text rows stay causal
    expect(reach(sliding, 12, "row", grid, 40)).toEqual([8, 24]);
    expect(reach(sliding, 30, "col", grid, 40)).toEqual([30, 34]);
    expect(reach({ kind: "causal", numHeads: 3 }, 12, "col", grid, 40)).toEqual([12, 39]);
  });

  test("two images: an image-bidirectional layer opens each image to its own tokens only, as in sample_format.py", () => {
    const meta = parseMeta(layoutMetaJson("sample_two_images"));
    const [first, second] = meta.imageBlocks as [ImageBlock, ImageBlock];
    expect(first[1]).toBeLessThan(second[0]);
    const bidirectional: LayerAttention = { kind: "causal", numHeads: 3, imageBidirectional: true };
    expect(reach(bidirectional, first[0], "row", meta.imageBlocks, meta.seqLen)).toEqual([0, first[1]]);
    expect(reach(bidirectional, second[1], "col", meta.imageBlocks, meta.seqLen)).toEqual([second[0], meta.seqLen - 1]);
    expect(reach(bidirectional, first[1] + 1, "row", meta.imageBlocks, meta.seqLen)).toEqual([0, first[1] + 1]);
  });
});

describe("parseMeta on the layout fixtures (image regions)", () => {
  test("a tiled sample: six tiles and a thumbnail, tile labels and separators marked, no image_grid", () => {
    const meta = parseMeta(layoutMetaJson("sample_tiled"));
    expect(meta.imageGrid).toBeUndefined();
    expect(meta.regions.map((r) => [r.kind, r.rect])).toEqual([
      ...[0, 1].flatMap((r) => [0, 1, 2].map((c) => ["tile", [c * 64, r * 64, 64, 64]])),
      ["global", [0, 0, 192, 128]],
    ]);
    expect(meta.tokens.filter((t) => t.type === "image").length).toBe(7 * 16);
    meta.regions.forEach((region, k) => region.tokens.forEach((t) => expect(meta.tokens[t]!.region).toBe(k)));
    expect(meta.tokens.filter((t) => t.layout === "tile_label").map((t) => t.text)).toEqual([
      ...[1, 2].flatMap((r) => [1, 2, 3].map((c) => `<row_${r}_col_${c}>`)),
      "<global-img>",
    ]);
    expect(meta.tokens.filter((t) => t.layout === "separator").length).toBe(8);
  });

  test("two images: each its own size and regions", () => {
    const meta = parseMeta(layoutMetaJson("sample_two_images"));
    expect(meta.images.map((i) => [i.path, i.size])).toEqual([
      ["image.png", [192, 128]],
      ["image_1.png", [128, 192]],
    ]);
    expect(meta.regions.map((r) => r.image)).toEqual([...Array(7).fill(0), ...Array(7).fill(1)]);
  });

  test("the padded fixture: a grid over the padding, its row ends special tokens outside every region, as in sample_format.py", () => {
    const meta = parseMeta(layoutMetaJson("sample_padded"));
    expect(meta.images[0]!.size).toEqual([192, 120]);
    expect(meta.regions.map((r) => [r.kind, r.rows, r.cols, r.rect])).toEqual([
      ["global", 4, 4, [0, 0, 192, 120]],
      ["tile", 8, 12, [0, -4, 192, 128]],
    ]);
    const rowEnds = meta.tokens.filter((t) => t.layout === "row_end");
    expect(rowEnds.map((t) => t.id)).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((r) => meta.regions[1]!.tokens[r * 12 + 11]! + 1));
    expect(rowEnds.every((t) => t.type === "special" && t.gridPos === undefined && t.region === undefined)).toBe(true);
    expect(meta.regions.indexOf(entropyRegion(meta))).toBe(0);
  });

  test("a rect may reach into padding, and the global view is still the entropy region, as in sample_format.py", () => {
    const meta = layoutMetaJson("sample_tiled") as Record<string, any>;
    meta.image_regions[0].rect = [-8, -8, 208, 144];
    const parsed = parseMeta(meta);
    expect(parsed.regions.indexOf(entropyRegion(parsed))).toBe(6);
    meta.image_regions[6].kind = "tile";
    const withoutGlobal = parseMeta(meta);
    expect(withoutGlobal.regions.indexOf(entropyRegion(withoutGlobal))).toBe(0);
  });

  const tiled = (edit: (meta: Record<string, any>) => void): Record<string, unknown> => {
    const meta = layoutMetaJson("sample_tiled");
    edit(meta);
    return meta;
  };

  test.each([
    ["an older format_version", (m: Record<string, any>) => (m.format_version = 1), "image_regions need format_version 2"],
    ["tokens out of order", (m: Record<string, any>) => m.image_regions[1].tokens.reverse(), "image_regions[1].tokens[0] is not an image token"],
    ["a rect outside the image", (m: Record<string, any>) => (m.image_regions[0].rect = [192, 0, 64, 64]), "image_regions[0].rect must overlap its image"],
    ["an unknown kind", (m: Record<string, any>) => (m.image_regions[0].kind = "thumbnail"), "image_regions[0].kind must be one of"],
    ["a missing region", (m: Record<string, any>) => m.image_regions.pop(), "every image token must belong to one of image_regions"],
    ["an unknown layout role", (m: Record<string, any>) => (m.tokens[5].layout = "label"), "tokens[5].layout must be one of"],
    ["an image outside the sample", (m: Record<string, any>) => (m.images[0].path = "../x.png"), "images[0] must hold a plain file name"],
  ])("refuses %s as sample_format.py does", (_, edit, message) => {
    expect(() => parseMeta(tiled(edit))).toThrow(message);
  });
});
