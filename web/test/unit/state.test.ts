import { describe, expect, test } from "vitest";
import { parseMeta, storedHeads } from "../../src/data/format";
import {
  clampHead,
  completeView,
  headCycle,
  layerSpan,
  stepHead,
  stepVisionBlocks,
  stepVisionHead,
  viewFromParams,
  viewHeads,
  viewToParams,
  visionBlockIndices,
  visionHeadCycle,
  type ViewState,
} from "../../src/state/state";
import { statusText } from "../../src/state/status";
import { fixtureMetaJson, layoutMetaJson } from "./fixture";

const meta = parseMeta(fixtureMetaJson()); // 2 layers, 3 heads, 40 tokens

describe("the view in the URL", () => {
  const single: ViewState = {
    sample: "s1", layer: 1, layerEnd: 1, layerReduce: null, head: 2, tokens: [30], combine: "mean", dir: "tgt",
    image: 0, regions: "tiles", overlay: "llm", vblocks: "all", vhead: "mean", patch: null,
  };

  test("round-trips through the query, keeping other parameters", () => {
    const params = viewToParams(single, new URLSearchParams("data=../out/&cacheMB=64&lreduce=max"));
    expect(params.get("data")).toBe("../out/");
    expect(params.get("cacheMB")).toBe("64");
    expect(params.has("lreduce")).toBe(false); // a single-layer view drops the old range
    expect(completeView(viewFromParams(params), "s1", meta)).toEqual(single);
  });

  test("a word over a layer range round-trips too", () => {
    const word: ViewState = { ...single, layer: 0, layerEnd: 1, layerReduce: "min", tokens: [32, 33], combine: "max" };
    const params = viewToParams(word, new URLSearchParams());
    expect(params.toString()).toBe("sample=s1&layer=0&head=2&token=32%2C33&dir=tgt&lreduce=min&layerEnd=1&combine=max");
    expect(completeView(viewFromParams(params), "s1", meta)).toEqual(word);
  });

  test("the vision overlay round-trips with its blocks, head and patch; the LLM overlay leaves them out", () => {
    const vision: ViewState = { ...single, overlay: "vision", vblocks: 3, vhead: 1, patch: 17 };
    const params = viewToParams(vision, new URLSearchParams());
    expect(params.toString()).toBe("sample=s1&layer=1&head=2&token=30&dir=tgt&overlay=vision&vblocks=3&vhead=1&patch=17");
    expect(completeView(viewFromParams(params), "s1", meta)).toEqual(vision);
    const saliency: ViewState = { ...vision, vblocks: "all", vhead: "mean", patch: null };
    const saliencyParams = viewToParams(saliency, new URLSearchParams());
    expect([saliencyParams.get("vhead"), saliencyParams.get("patch")]).toEqual(["mean", "none"]);
    expect(completeView(viewFromParams(saliencyParams), "s1", meta)).toEqual(saliency);
    const back = viewToParams(single, params);
    expect(["overlay", "vblocks", "vhead", "patch"].map((key) => back.has(key))).toEqual([false, false, false, false]);
  });

  test("the image and its region view round-trip; the first image's tiles are left out as the default", () => {
    const two = parseMeta(layoutMetaJson("sample_two_images")); // two images, each with tiles and a global view
    const shown: ViewState = { ...single, head: 1, image: 1, regions: "both" }; // the fixture has 2 heads
    const params = viewToParams(shown, new URLSearchParams("image=0&regions=global"));
    expect([params.get("image"), params.get("regions")]).toEqual(["1", "both"]);
    expect(completeView(viewFromParams(params), "s1", two)).toEqual(shown);
    const back = viewToParams(single, params);
    expect([back.has("image"), back.has("regions")]).toEqual([false, false]);
  });

  test("'none' means no token; an aggregate is a head", () => {
    expect(viewFromParams(new URLSearchParams("token=none&head=max"))).toEqual({ tokens: [], head: "max" });
  });

  test("garbled values are ignored, not guessed", () => {
    const garbled = "layer=-1&head=avg&token=3.5&dir=up&sample=&lreduce=sum&combine=min&token=1,,2&image=-1&regions=side";
    expect(viewFromParams(new URLSearchParams(garbled))).toEqual({});
  });
});

describe("completeView", () => {
  test("fills defaults: layer 0, head mean, the last token, source→target", () => {
    expect(completeView({}, "s", meta)).toEqual({
      sample: "s", layer: 0, layerEnd: 0, layerReduce: null, head: "mean", tokens: [39], combine: "mean", dir: "src",
      image: 0, regions: "tiles", overlay: "llm", vblocks: "all", vhead: "mean", patch: null,
    });
  });

  test("an image the sample lacks is its first; a region view its image cannot show is the tiles", () => {
    const two = parseMeta(layoutMetaJson("sample_two_images"));
    expect(completeView({ image: 2, regions: "global" }, "s", two)).toMatchObject({ image: 0, regions: "global" });
    expect(completeView({ image: 1, regions: "both" }, "s", meta)).toMatchObject({ image: 0, regions: "tiles" }); // one grid
    const noGlobal = { ...two, regions: two.regions.filter((r) => r.kind !== "global") };
    expect(completeView({ image: 1, regions: "global" }, "s", noGlobal)).toMatchObject({ image: 1, regions: "tiles" });
  });

  test("opens on the answer's first token when the sample has one", () => {
    expect(completeView({}, "s", { ...meta, answerStart: 36 }).tokens).toEqual([36]);
  });

  test("clamps what the sample does not have", () => {
    const view = completeView({ layer: 9, layerEnd: 7, head: 3, tokens: [38, 400], dir: "tgt" }, "s", meta);
    expect(view).toMatchObject({ layer: 1, layerEnd: 1, head: "mean", tokens: [39], dir: "tgt" });
  });

  test("the vision overlay needs a sample with vision attention, one of its blocks and heads and a patch of its grid", () => {
    const asked = { overlay: "vision", vblocks: 2, vhead: 1, patch: 83 } as const;
    expect(completeView(asked, "s", meta)).toMatchObject(asked);
    const llm = { overlay: "llm", vblocks: "all", vhead: "mean", patch: null };
    expect(completeView(asked, "s", { ...meta, vision: undefined })).toMatchObject(llm);
    const outside = { ...asked, vblocks: 1, vhead: 2, patch: 84 }; // the fixture's vision has 2 heads, 84 patches
    expect(completeView(outside, "s", meta)).toMatchObject({ ...llm, overlay: "vision" });
  });

  test("a garbled vision head is ignored", () => {
    expect(viewFromParams(new URLSearchParams("vhead=max"))).toEqual({});
    expect(viewFromParams(new URLSearchParams("vhead=-1"))).toEqual({});
  });

  test("keeps a deselected token deselected", () => {
    expect(completeView({ tokens: [] }, "s", meta).tokens).toEqual([]);
  });
});

describe("stepping heads", () => {
  test("cycles mean, max, then each head, and wraps both ways", () => {
    expect(headCycle(3)).toEqual(["mean", "max", 0, 1, 2]);
    expect(stepHead("mean", 1, 3)).toBe("max");
    expect(stepHead("max", 1, 3)).toBe(0);
    expect(stepHead(2, 1, 3)).toBe("mean");
    expect(stepHead("mean", -1, 3)).toBe(2);
  });
});

describe("a linear layer's own heads", () => {
  // Layer 0 is linear with 5 heads; layer 1 keeps the sample's 3.
  const json = fixtureMetaJson();
  json["layer_attention"] = [{ kind: "linear", conv_kernel: 4, num_heads: 5 }, { kind: "causal" }];
  const linear = parseMeta(json);

  test("a view counts its layers' own heads: the fewest over a range", () => {
    expect(viewHeads(completeView({ layer: 0 }, "s", linear), linear)).toBe(5);
    expect(viewHeads(completeView({ layer: 1 }, "s", linear), linear)).toBe(3);
    expect(viewHeads(completeView({ layer: 0, layerEnd: 1, layerReduce: "mean" }, "s", linear), linear)).toBe(3);
  });

  test("the URL may name an extra head of the linear layer, not of a layer without it", () => {
    expect(completeView({ layer: 0, head: 4 }, "s", linear).head).toBe(4);
    expect(completeView({ layer: 1, head: 4 }, "s", linear).head).toBe("mean");
    const params = viewToParams(completeView({ layer: 0, head: 4 }, "s", linear), new URLSearchParams());
    expect(completeView(viewFromParams(params), "s", linear).head).toBe(4);
  });

  test("stepping cycles through the layer's own heads; a layer with fewer clamps the head to its last", () => {
    const view = completeView({ layer: 0, head: 2 }, "s", linear);
    expect(stepHead(view.head, 2, viewHeads(view, linear))).toBe(4);
    expect(stepHead(4, 1, viewHeads(view, linear))).toBe("mean");
    expect(clampHead({ ...view, head: 4, layer: 1, layerEnd: 1 }, linear).head).toBe(2);
    expect(clampHead({ ...view, head: 1, layer: 1, layerEnd: 1 }, linear).head).toBe(1);
    expect(clampHead({ ...view, head: "max", layer: 1, layerEnd: 1 }, linear).head).toBe("max");
  });

  test("every head of the linear layer is stored in a full sample; the status line does not call head 4 missing", () => {
    expect(storedHeads(linear, 0)).toEqual([0, 1, 2, 3, 4]);
    expect(storedHeads(linear, 1)).toEqual([0, 1, 2]);
    expect(statusText(completeView({ layer: 0, head: 4 }, "s", linear), linear)).not.toContain("not stored");
  });
});

describe("vision blocks", () => {
  const vision = meta.vision!; // blocks [2, 3]
  test("all blocks, or one, as indices into the block files", () => {
    expect(visionBlockIndices("all", vision)).toEqual([0, 1]);
    expect(visionBlockIndices(3, vision)).toEqual([1]);
  });
  test("←/→ cycle all, then each block, wrapping", () => {
    expect(stepVisionBlocks("all", 1, vision)).toBe(2);
    expect(stepVisionBlocks(3, 1, vision)).toBe("all");
    expect(stepVisionBlocks("all", -1, vision)).toBe(3);
  });
  test("↑/↓ cycle the head mean, then each vision head, wrapping", () => {
    expect(visionHeadCycle(vision)).toEqual(["mean", 0, 1]);
    expect(stepVisionHead("mean", 1, vision)).toBe(0);
    expect(stepVisionHead(1, 1, vision)).toBe("mean");
    expect(stepVisionHead("mean", -1, vision)).toBe(1);
  });
});

describe("layerSpan", () => {
  test("one layer without a reduction, else the range in either order", () => {
    const view = completeView({ layer: 1, layerEnd: 0 }, "s", meta);
    expect(layerSpan(view)).toEqual([1, 1]);
    expect(layerSpan({ ...view, layerReduce: "mean" })).toEqual([0, 1]);
  });
});

describe("statusText", () => {
  test("names layer, head, token count, direction and the selected token", () => {
    const view = completeView({ layer: 1, head: 2, tokens: [28] }, "s", meta);
    expect(statusText(view, meta)).toBe('Layer 1 of 1 · head 2 · 40 tokens · Source→Target · src: #28 " image"');
  });
  test("a layer range and a combined selection say so", () => {
    const view = completeView({ layerEnd: 1, layerReduce: "max", tokens: [27, 28], combine: "max", dir: "tgt" }, "s", meta);
    expect(statusText(view, meta)).toBe('Layers 0–1 (max) of 1 · all heads (mean) · 40 tokens · Target←Source · tgt: #27–#28 " this image" (max of 2 tokens)');
  });
  test("the vision overlay says which blocks and what it shows", () => {
    const saliency = completeView({ overlay: "vision" }, "s", meta);
    expect(statusText(saliency, meta)).toBe(
      "Vision encoder · blocks 2, 3 (mean) · 84 patches (6 rows × 14 cols) · mean over 2 heads · saliency: attention each patch receives",
    );
    const row = completeView({ overlay: "vision", vblocks: 3, patch: 17 }, "s", meta);
    expect(statusText(row, meta)).toBe(
      "Vision encoder · block 3 · 84 patches (6 rows × 14 cols) · mean over 2 heads · patch #17 (row 1, col 3): where it looks",
    );
  });
  test("with a vision head chosen, a patch's row names the head; the saliency says it is still over all heads", () => {
    const row = completeView({ overlay: "vision", vhead: 1, patch: 17 }, "s", meta);
    expect(statusText(row, meta)).toBe(
      "Vision encoder · blocks 2, 3 (mean) · 84 patches (6 rows × 14 cols) · head 1 of 2 · patch #17 (row 1, col 3): where it looks",
    );
    const saliency = completeView({ overlay: "vision", vhead: 1 }, "s", meta);
    expect(statusText(saliency, meta)).toBe(
      "Vision encoder · blocks 2, 3 (mean) · 84 patches (6 rows × 14 cols) · mean over 2 heads · " +
        "saliency: attention each patch receives (over all heads; click a patch to see head 1)",
    );
  });
  test("no selection", () => {
    expect(statusText(completeView({ tokens: [] }, "s", meta), meta)).toContain("no token selected");
  });
});
