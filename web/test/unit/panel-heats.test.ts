import { describe, expect, test } from "vitest";
import type { Settings } from "../../src/view/controls";
import { parseMeta } from "../../src/data/format";
import { imageOverlay, tokenHeat, type Fetched } from "../../src/view/panel-heats";
import { completeView } from "../../src/state/state";
import { fixtureMetaJson } from "./fixture";

const meta = parseMeta(fixtureMetaJson()); // 40 tokens, image tokens 4..24 (3 × 7); vision grid 6 × 14
const settings: Settings = { palette: "blue", opacity: 0.5, excludeSinks: true, collapseImage: true, selectWords: true };
const sinks = new Uint8Array(40).fill(0);
sinks[0] = 1;
const values = Float32Array.from({ length: 40 }, (_, i) => (i === 0 ? 100 : i));
const vision = Float32Array.from({ length: 84 }, (_, p) => 2 + Math.sin(p));

function fetched(asked: Parameters<typeof completeView>[0]): Fetched {
  return { meta, view: completeView(asked, "s", meta), sinks, values, vision };
}

describe("the LLM overlay", () => {
  test("covers the image tokens, scaled over them alone; the token panel over all but the sinks", () => {
    const overlay = imageOverlay(fetched({ tokens: [30] }), settings);
    expect(overlay.grid).toEqual({ kind: "llm", rows: 3, cols: 7, first: 4 });
    expect(overlay.heat).toMatchObject({ values, lo: 4, hi: 24, palette: "blue" });
    expect([overlay.selected, overlay.opacity]).toEqual([[30], 0.5]);
    expect(tokenHeat(fetched({ tokens: [30] }), settings)).toMatchObject({ lo: 1, hi: 39 });
  });
});

describe("a linear layer's signed values", () => {
  const hybrid = parseMeta({
    ...fixtureMetaJson(),
    layer_attention: [{ kind: "linear", conv_kernel: 4 }, { kind: "causal", before_output_gate: true }],
  });
  const signed = Float32Array.from({ length: 40 }, (_, i) => (i === 0 ? 100 : i - 30));
  const view = (asked: Parameters<typeof completeView>[0]): Fetched => ({
    meta: hybrid,
    view: completeView(asked, "s", hybrid),
    sinks,
    values: signed,
    vision: null,
  });

  test("take the diverging scale, symmetric about 0, in both panels; a softmax layer keeps the chosen palette", () => {
    expect(tokenHeat(view({ tokens: [30], layer: 0 }), settings)).toMatchObject({ lo: -29, hi: 29, palette: "diverging" });
    expect(imageOverlay(view({ tokens: [30], layer: 0 }), settings).heat).toMatchObject({ lo: -26, hi: 26, palette: "diverging" });
    expect(tokenHeat(view({ tokens: [30], layer: 1 }), settings)).toMatchObject({ lo: -29, hi: 9, palette: "blue" });
  });

  test("a layer range holding a linear layer is signed too", () => {
    const range = view({ tokens: [30], layer: 1, layerReduce: "mean", layerEnd: 0 });
    expect(tokenHeat(range, settings)?.palette).toBe("diverging");
  });
});

describe("the vision overlay", () => {
  test("covers the patch grid, scaled over all patches, with the selected patch", () => {
    const overlay = imageOverlay(fetched({ overlay: "vision", patch: 17 }), settings);
    expect(overlay.grid).toEqual({ kind: "vision", rows: 6, cols: 14, first: 0 });
    expect(overlay.heat).toMatchObject({ values: vision, lo: Math.min(...vision), hi: Math.max(...vision) });
    expect(overlay.selected).toEqual([17]);
    expect(imageOverlay(fetched({ overlay: "vision" }), settings).selected).toEqual([]);
  });

  test("a sample without vision attention keeps the LLM overlay", () => {
    const plain = { ...fetched({ overlay: "vision" }), meta: { ...meta, vision: undefined } };
    expect(imageOverlay(plain, settings).grid.kind).toBe("llm");
  });
});
