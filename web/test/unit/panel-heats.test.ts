import { describe, expect, test } from "vitest";
import { parseMeta } from "../../src/data/format";
import type { RegionView } from "../../src/data/variants";
import { DEFAULT_SETTINGS, type Settings } from "../../src/state/settings";
import { completeView } from "../../src/state/state";
import { LUT_SIZE, MASKED, heatIndex } from "../../src/view/color";
import { legendText } from "../../src/view/legend";
import { imageOverlay, regionLabel, tokenHeat, type Fetched } from "../../src/view/panel-heats";
import { describeValue } from "../../src/view/tooltip";
import { fixtureMetaJson, layoutMetaJson } from "./fixture";

const meta = parseMeta(fixtureMetaJson()); // 40 tokens, image tokens 4..24 (3 × 7); vision grid 6 × 14
const settings: Settings = { ...DEFAULT_SETTINGS, opacity: 0.5 };
const sinks = new Uint8Array(40).fill(0);
sinks[0] = 1;
const values = Float32Array.from({ length: 40 }, (_, i) => (i === 0 ? 100 : i / 100));
const vision = Float32Array.from({ length: 84 }, (_, p) => 2 + Math.sin(p));

function fetched(asked: Parameters<typeof completeView>[0], extra: Partial<Fetched> = {}): Fetched {
  return { meta, view: completeView(asked, "s", meta), sinks, values, vision, shared: null, visionShared: null, ...extra };
}

describe("the LLM overlay and the token panel", () => {
  test("the overlay covers the image tokens, scaled over them alone; the tokens over what the row sees but the sinks", () => {
    const overlay = imageOverlay(fetched({ tokens: [30] }), settings);
    const imageTokens = Array.from({ length: 21 }, (_, k) => 4 + k);
    expect(overlay.grid).toMatchObject({ kind: "llm", size: [224, 96], parts: [{ rows: 3, cols: 7, rect: [0, 0, 224, 96], indices: imageTokens }] });
    expect(overlay.heat!.scale).toEqual({ mode: "view", lo: Math.fround(0.04), hi: Math.fround(0.24) });
    expect([overlay.selected, overlay.opacity]).toEqual([[30], 0.5]);
    const tokens = tokenHeat(fetched({ tokens: [30] }), settings)!;
    expect(tokens.heat.scale).toMatchObject({ lo: Math.fround(0.01), hi: Math.fround(0.3) });
    expect(tokens.legend.shown).toEqual({ lo: Math.fround(0.01), hi: Math.fround(0.3) });
    expect(tokens.legend.over).toContain("sinks left out");
  });

  test("tokens after a row's token are masked, and so are tokens before a column's", () => {
    const row = tokenHeat(fetched({ tokens: [30] }), settings)!;
    expect(row.heat.visible).toEqual([0, 30]);
    expect(heatIndex(row.heat, 31)).toBe(MASKED);
    expect(row.legend.masked).toBe(9);
    const column = tokenHeat(fetched({ tokens: [30], dir: "tgt" }), settings)!;
    expect(column.heat.visible).toEqual([30, 39]);
    expect(heatIndex(column.heat, 29)).toBe(MASKED);
    // A selection before the image masks the whole overlay.
    const early = imageOverlay(fetched({ tokens: [2] }), settings);
    expect(early.legend!.masked).toBe(21);
    expect(early.legend!.shown).toBeNull();
  });

  test("the scale modes: absolute spans 0..1, log starts at the smallest positive value, shared at 0 up to the shared max", () => {
    const at = (scale: Settings["scale"], extra: Partial<Fetched> = {}) => tokenHeat(fetched({ tokens: [30] }, extra), { ...settings, scale })!;
    expect(at("absolute").heat.scale).toEqual({ mode: "absolute", lo: 0, hi: 1 });
    expect(at("log").heat.scale).toEqual({ mode: "log", lo: Math.fround(0.01), hi: Math.fround(0.3) });
    const shared = Float32Array.from(values, (v) => v * 2);
    expect(at("shared", { shared }).heat.scale).toEqual({ mode: "shared", lo: 0, hi: Math.fround(0.3) * 2 });
    expect(at("shared", { shared }).legend.over).toContain("shared over layers 0–1 × all 3 heads");
    // The legend's numbers stay those of the shown vector whatever the scale.
    expect(at("absolute").legend.shown).toEqual({ lo: Math.fround(0.01), hi: Math.fround(0.3) });
  });

  test("NaN and Inf stay out of the range and are counted", () => {
    const broken = Float32Array.from(values);
    [broken[5], broken[6]] = [NaN, Infinity];
    const heat = tokenHeat(fetched({ tokens: [30] }, { values: broken }), settings)!;
    expect(heat.legend.nonFinite).toBe(2);
    expect(heat.legend.shown!.hi).toBe(Math.fround(0.3));
  });

  test("in vision mode the token panel's title says it shows the LLM, not the vision encoder", () => {
    expect(tokenHeat(fetched({ overlay: "vision" }), settings)!.legend.title).toMatch(/LLM attention.*not the vision encoder/);
  });
});

describe("layer kinds", () => {
  const hybrid = parseMeta({
    ...fixtureMetaJson(),
    layer_attention: [{ kind: "linear", conv_kernel: 4 }, { kind: "causal", before_output_gate: true }],
  });
  const signed = Float32Array.from({ length: 40 }, (_, i) => (i === 0 ? 100 : i - 30));
  const view = (asked: Parameters<typeof completeView>[0]): Fetched => ({
    ...fetched(asked, { values: signed }),
    meta: hybrid,
    view: completeView(asked, "s", hybrid),
  });

  test("a linear layer's signed values take the diverging scale, symmetric about 0, in both panels", () => {
    const tokens = tokenHeat(view({ tokens: [30], layer: 0 }), settings)!;
    expect([tokens.heat.palette, tokens.heat.scale]).toEqual(["diverging", { mode: "view", lo: -29, hi: 29 }]);
    expect(tokens.legend.over).toContain("signed values (linear layer), symmetric about 0");
    const image = imageOverlay(view({ tokens: [30], layer: 0 }), settings).heat!;
    expect([image.palette, image.scale]).toEqual(["diverging", { mode: "view", lo: -26, hi: 26 }]);
  });

  test("an all-zero signed view sits on the scale's transparent middle, not at its blue end", () => {
    const zeros = { ...view({ tokens: [30], layer: 0 }), values: new Float32Array(40) };
    const heat = tokenHeat(zeros, settings)!.heat;
    expect(heatIndex(heat, 5)).toBe(Math.round((LUT_SIZE - 1) / 2));
  });

  test("a softmax layer keeps the chosen palette; a layer range holding a linear layer is signed", () => {
    expect(tokenHeat(view({ tokens: [30], layer: 1 }), settings)!.heat.palette).toBe("blue");
    const range = view({ tokens: [30], layer: 1, layerReduce: "mean", layerEnd: 0 });
    expect(tokenHeat(range, settings)!.heat.palette).toBe("diverging");
  });

  test("an image token's row in an image-bidirectional layer sees the later image tokens; a sliding row is cut", () => {
    const gemma = parseMeta({
      ...fixtureMetaJson(),
      layer_attention: [{ kind: "causal", image_bidirectional: true }, { kind: "sliding", window: 4, image_bidirectional: true }],
    });
    const at = (asked: Parameters<typeof completeView>[0]): Fetched => ({
      ...fetched(asked),
      meta: gemma,
      view: completeView(asked, "s", gemma),
    });
    const global = tokenHeat(at({ tokens: [10], layer: 0 }), settings)!.heat;
    expect(global.visible).toEqual([0, 24]);
    expect(heatIndex(global, 20)).not.toBe(MASKED); // a later image token is coloured
    expect(heatIndex(global, 25)).toBe(MASKED); // the text after the image is not
    const sliding = tokenHeat(at({ tokens: [10], layer: 1 }), settings)!;
    expect(sliding.heat.visible).toEqual([7, 24]);
    expect(heatIndex(sliding.heat, 6)).toBe(MASKED);
    expect(legendText(sliding.legend).items.map((item) => item.text)).toContain(
      "masked (sliding window, image bidirectional): 22",
    );
    expect(describeValue(sliding.heat, 6)).toBe("masked: the selection cannot see it (sliding window, image bidirectional)");
    expect(tokenHeat(at({ tokens: [10], layer: 0, dir: "tgt" }), settings)!.heat.visible).toEqual([4, 39]);
  });
});

describe("the vision overlay", () => {
  test("covers the patch grid, scaled over all patches, with the selected patch", () => {
    const overlay = imageOverlay(fetched({ overlay: "vision", patch: 17 }), settings);
    expect(overlay.grid).toMatchObject({ kind: "vision", size: [224, 96], parts: [{ rows: 6, cols: 14, rect: [0, 0, 224, 96] }] });
    expect(Array.from(overlay.grid.parts[0]!.indices)).toEqual(Array.from({ length: 84 }, (_, p) => p));
    expect(overlay.heat!.scale).toMatchObject({ lo: Math.min(...vision), hi: Math.max(...vision) });
    expect(overlay.selected).toEqual([17]);
    expect(imageOverlay(fetched({ overlay: "vision" }), settings).selected).toEqual([]);
  });

  test("a sample without vision attention keeps the LLM overlay", () => {
    const plain = { ...fetched({ overlay: "vision" }), meta: { ...meta, vision: undefined } };
    expect(imageOverlay(plain, settings).grid.kind).toBe("llm");
  });
});

describe("a tiled sample's overlay", () => {
  const tiled = parseMeta(layoutMetaJson("sample_tiled")); // 2 × 3 tiles of 4 × 4 tokens (64 px) and a 4 × 4 thumbnail
  const n = tiled.seqLen;
  const ramp = Float32Array.from({ length: n }, (_, i) => i);
  const shown = (regions: RegionView, tokens = [n - 1]): Fetched => ({
    meta: tiled,
    view: completeView({ tokens, regions }, "s", tiled),
    sinks: new Uint8Array(n),
    values: ramp,
    vision: null,
    shared: null,
    visionShared: null,
  });

  test("the tiles view draws each tile on its own 64 px, scaled over the tiles' tokens alone", () => {
    const overlay = imageOverlay(shown("tiles"), settings);
    expect(overlay.grid.size).toEqual([192, 128]);
    expect(overlay.grid.parts.map((p) => p.rect)).toEqual([0, 1].flatMap((r) => [0, 1, 2].map((c) => [c * 64, r * 64, 64, 64])));
    expect(overlay.grid.parts.map((p) => p.label)).toEqual([1, 2, 3, 4, 5, 6].map((t) => `tile ${t} of 6`));
    const tileTokens = tiled.regions.slice(0, 6).flatMap((r) => r.tokens);
    expect(overlay.heat!.scale).toMatchObject({ lo: Math.min(...tileTokens), hi: Math.max(...tileTokens) });
    expect(overlay.legend!.shown).toEqual({ lo: Math.min(...tileTokens), hi: Math.max(...tileTokens) });
    expect(overlay.legend!.over).toContain("tiles' image tokens");
  });

  test("a row inside the tiles sees only the tile tokens before it: the rest are masked and out of the range", () => {
    const within = tiled.regions[2]!.tokens[5]!;
    const overlay = imageOverlay(shown("tiles", [within]), settings);
    const tileTokens = tiled.regions.slice(0, 6).flatMap((r) => r.tokens);
    expect(overlay.legend!.masked).toBe(tileTokens.filter((t) => t > within).length);
    expect(overlay.legend!.shown).toEqual({ lo: tileTokens[0], hi: within });
    expect(heatIndex(overlay.heat!, within + 1)).toBe(MASKED);
    expect(imageOverlay(shown("global", [within]), settings).legend!.shown).toBeNull();
  });

  test("the global view draws the thumbnail's tokens over the whole image", () => {
    const overlay = imageOverlay(shown("global"), settings);
    expect(overlay.grid.parts).toHaveLength(1);
    expect(overlay.grid.parts[0]).toMatchObject({ rows: 4, cols: 4, rect: [0, 0, 192, 128], label: "global thumbnail" });
    expect(overlay.grid.parts[0]!.indices).toEqual(tiled.regions[6]!.tokens);
  });

  test("side by side, the tiles lie on the left pane and the thumbnail on the right; the bar's range spans both", () => {
    const overlay = imageOverlay(shown("both"), settings);
    expect(overlay.grid.panes).toBe(2);
    expect(overlay.grid.parts.map((p) => [p.pane, p.label])).toEqual([
      ...[1, 2, 3, 4, 5, 6].map((t) => [0, `tile ${t} of 6`]),
      [1, "global thumbnail"],
    ]);
    const drawn = tiled.regions.flatMap((r) => r.tokens);
    expect(overlay.legend!.shown).toEqual({ lo: Math.min(...drawn), hi: Math.max(...drawn) });
    expect(overlay.legend!.over).toContain("tiles' (left) and global thumbnail's (right) image tokens");
  });

  test("an image without tiles and a global view is drawn on one pane, whatever view is asked", () => {
    const two = parseMeta(layoutMetaJson("sample_two_images"));
    const flat = { ...two, regions: two.regions.filter((r) => r.kind !== "global") };
    const view = { ...completeView({ tokens: [flat.seqLen - 1] }, "s", flat), regions: "both" } as const; // not completed: as asked
    const overlay = imageOverlay({ ...shown("both"), meta: flat, view }, settings);
    expect(overlay.grid.panes).toBe(1);
    expect(overlay.grid.parts.every((p) => p.pane === 0 && p.label.includes("tile"))).toBe(true);
  });
});

test("a region is named as a tile among its image's tiles, or as the full-resolution grid when it is the only one", () => {
  const tiled = parseMeta(layoutMetaJson("sample_tiled"));
  expect(tiled.regions.map((r) => regionLabel(tiled, r))).toEqual([1, 2, 3, 4, 5, 6].map((k) => `tile ${k} of 6`).concat("global thumbnail"));
  const padded = parseMeta(layoutMetaJson("sample_padded"));
  expect(padded.regions.map((r) => regionLabel(padded, r))).toEqual(["global thumbnail", "full-resolution grid"]);
});
