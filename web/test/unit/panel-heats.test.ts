import { describe, expect, test } from "vitest";
import type { Settings } from "../../src/view/controls";
import { parseMeta } from "../../src/data/format";
import { imageOverlay, tokenHeat, type Fetched } from "../../src/view/panel-heats";
import { completeView } from "../../src/state/state";
import { fixtureMetaJson, layoutMetaJson } from "./fixture";

const meta = parseMeta(fixtureMetaJson()); // 40 tokens, image tokens 4..24 (3 × 7); vision grid 6 × 14
const settings: Settings = { palette: "blue", opacity: 0.5, excludeSinks: true, collapseImage: true, selectWords: true };
const sinks = new Uint8Array(40).fill(0);
sinks[0] = 1;
const values = Float32Array.from({ length: 40 }, (_, i) => (i === 0 ? 100 : i));
const vision = Float32Array.from({ length: 84 }, (_, p) => 2 + Math.sin(p));

function fetched(asked: Parameters<typeof completeView>[0]): Fetched {
  return { meta, view: completeView(asked, "s", meta), sinks, values, vision, shownImage: { image: 0, regions: "tiles" } };
}

describe("the LLM overlay", () => {
  test("covers the image tokens, scaled over them alone; the token panel over all but the sinks", () => {
    const overlay = imageOverlay(fetched({ tokens: [30] }), settings);
    const tokens = Array.from({ length: 21 }, (_, k) => 4 + k);
    expect(overlay.grid).toMatchObject({ kind: "llm", size: [224, 96], parts: [{ rows: 3, cols: 7, rect: [0, 0, 224, 96], indices: tokens }] });
    expect(overlay.heat).toMatchObject({ values, lo: 4, hi: 24, palette: "blue" });
    expect([overlay.selected, overlay.opacity]).toEqual([[30], 0.5]);
    expect(tokenHeat(fetched({ tokens: [30] }), settings)).toMatchObject({ lo: 1, hi: 39 });
  });
});

describe("the vision overlay", () => {
  test("covers the patch grid, scaled over all patches, with the selected patch", () => {
    const overlay = imageOverlay(fetched({ overlay: "vision", patch: 17 }), settings);
    expect(overlay.grid).toMatchObject({ kind: "vision", size: [224, 96], parts: [{ rows: 6, cols: 14, rect: [0, 0, 224, 96] }] });
    expect(Array.from(overlay.grid.parts[0]!.indices)).toEqual(Array.from({ length: 84 }, (_, p) => p));
    expect(overlay.heat).toMatchObject({ values: vision, lo: Math.min(...vision), hi: Math.max(...vision) });
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
  const shown = (regions: "tiles" | "global"): Fetched => ({
    meta: tiled,
    view: completeView({ tokens: [n - 1] }, "s", tiled),
    sinks: new Uint8Array(n),
    values: ramp,
    vision: null,
    shownImage: { image: 0, regions },
  });

  test("the tiles view draws each tile on its own 64 px, scaled over the tiles' tokens alone", () => {
    const overlay = imageOverlay(shown("tiles"), settings);
    expect(overlay.grid.size).toEqual([192, 128]);
    expect(overlay.grid.parts.map((p) => p.rect)).toEqual([0, 1].flatMap((r) => [0, 1, 2].map((c) => [c * 64, r * 64, 64, 64])));
    expect(overlay.grid.parts.map((p) => p.label)).toEqual([1, 2, 3, 4, 5, 6].map((t) => `tile ${t} of 6`));
    const tileTokens = tiled.regions.slice(0, 6).flatMap((r) => r.tokens);
    expect(overlay.heat).toMatchObject({ lo: Math.min(...tileTokens), hi: Math.max(...tileTokens) });
  });

  test("the global view draws the thumbnail's tokens over the whole image", () => {
    const overlay = imageOverlay(shown("global"), settings);
    expect(overlay.grid.parts).toHaveLength(1);
    expect(overlay.grid.parts[0]).toMatchObject({ rows: 4, cols: 4, rect: [0, 0, 192, 128], label: "global thumbnail" });
    expect(overlay.grid.parts[0]!.indices).toEqual(tiled.regions[6]!.tokens);
  });
});
