// The variant tables drive the URL, the cycles and the reductions: every entry
// must round-trip and compute, and nothing outside a table is taken for a variant.
import { describe, expect, test } from "vitest";
import { reduceVectors } from "../../src/data/attention";
import { ATTENTION_KINDS, parseMeta } from "../../src/data/format";
import {
  FOLDS,
  HEAD_AGGREGATES,
  LAYER_KIND_VIEWS,
  LAYER_REDUCTIONS,
  OVERLAYS,
  VISION_HEAD_AGGREGATES,
  WORD_COMBINES,
  layerMark,
  layerReductionAvailable,
  variantNamed,
  variantsOf,
} from "../../src/data/variants";
import { completeView, headCycle, stepOverlay, viewFromParams, viewToParams, type ViewState } from "../../src/state/state";
import { fixtureMetaJson } from "./fixture";

const meta = parseMeta(fixtureMetaJson()); // 2 layers, 3 heads, vision attention
const base = completeView({ tokens: [32, 33] }, "s", meta); // a word, on layer 0

function roundTrip(view: ViewState): ViewState {
  return completeView(viewFromParams(viewToParams(view, new URLSearchParams())), "s", meta, true); // the fixture has a rollout
}

describe("every variant round-trips through the URL", () => {
  test.each(variantsOf(HEAD_AGGREGATES))("head aggregate %s", (head) => {
    expect(roundTrip({ ...base, head })).toEqual({ ...base, head });
  });
  test.each(variantsOf(LAYER_REDUCTIONS))("layer reduction %s", (layerReduce) => {
    const view: ViewState = { ...base, layerEnd: 1, layerReduce };
    expect(roundTrip(view)).toEqual(view);
  });
  test.each(variantsOf(WORD_COMBINES))("word combine %s", (combine) => {
    expect(roundTrip({ ...base, combine })).toEqual({ ...base, combine });
  });
  test.each(variantsOf(OVERLAYS))("overlay %s", (overlay) => {
    expect(roundTrip({ ...base, overlay })).toEqual({ ...base, overlay });
  });
  test.each(variantsOf(VISION_HEAD_AGGREGATES))("vision head aggregate %s", (vhead) => {
    const view: ViewState = { ...base, overlay: "vision", vhead, patch: 17 };
    expect(roundTrip(view)).toEqual(view);
  });
});

describe("the tables", () => {
  test("the head cycle starts with the aggregates in table order", () => {
    expect(headCycle(2)).toEqual([...variantsOf(HEAD_AGGREGATES), 0, 1]);
  });

  test("inherited object keys are not variants", () => {
    for (const name of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
      expect(variantNamed(LAYER_REDUCTIONS, name)).toBeUndefined();
    }
  });

  test("each fold reduces element-wise", () => {
    const vectors = [Float32Array.of(1, 6), Float32Array.of(3, 2)];
    const expected = { mean: [2, 4], max: [3, 6], min: [1, 2] };
    for (const fold of variantsOf(FOLDS)) expect(Array.from(reduceVectors(vectors, fold))).toEqual(expected[fold]);
  });

  test("a sample without rollout.json opens a rollout link as a single layer", () => {
    const asked = viewFromParams(new URLSearchParams("lreduce=rollout&layer=1"));
    expect(completeView(asked, "s", meta, false).layerReduce).toBeNull();
    expect(completeView(asked, "s", meta, true).layerReduce).toBe("rollout");
  });

  test("every layer reduction but the rollout is a fold; the rollout is offered only with rollout.json", () => {
    for (const reduce of variantsOf(LAYER_REDUCTIONS)) {
      const kind = LAYER_REDUCTIONS[reduce];
      expect(kind.reads === "rollout" || FOLDS[kind.fold] !== undefined).toBe(true);
      expect(layerReductionAvailable(reduce, true)).toBe(true);
    }
    expect(layerReductionAvailable("rollout", false)).toBe(false);
    expect(layerReductionAvailable("mean", false)).toBe(true);
  });

  test("v steps through the overlays the sample has data for", () => {
    expect(stepOverlay("llm", meta)).toBe("vision");
    expect(stepOverlay("vision", meta)).toBe("llm");
    expect(stepOverlay("llm", { ...meta, vision: undefined })).toBe("llm");
  });
});

describe("layer kinds", () => {
  test("every kind of the format has a view, signed exactly where the format says so", () => {
    for (const kind of variantsOf(ATTENTION_KINDS)) expect(LAYER_KIND_VIEWS[kind].signed).toBe(ATTENTION_KINDS[kind].signed);
  });

  test("the layer mark names the kind, its window, the image's bidirectionality, the gate and the convolution", () => {
    expect(layerMark({ kind: "sliding", window: 512, imageBidirectional: true, numHeads: 8 })).toBe(
      "sliding window of 512, image bidirectional",
    );
    expect(layerMark({ kind: "causal", beforeOutputGate: true, numHeads: 16 })).toBe("causal, before the output gate");
    expect(layerMark({ kind: "linear", convKernel: 4, numHeads: 32 })).toBe(
      "linear layer: signed, unnormalised, q, k, v through a 4-token causal convolution",
    );
  });
});
