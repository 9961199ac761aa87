import { describe, expect, test } from "vitest";
import { parseMeta } from "../../src/format";
import { completeView, headCycle, stepHead, viewFromParams, viewToParams } from "../../src/state";
import { fixtureMetaJson } from "./fixture";

const meta = parseMeta(fixtureMetaJson()); // 2 layers, 3 heads, 40 tokens

describe("the view in the URL", () => {
  test("round-trips through the query, keeping other parameters", () => {
    const view = { sample: "s1", layer: 1, head: 2, token: 30, dir: "tgt" } as const;
    const params = viewToParams(view, new URLSearchParams("data=../out/&cacheMB=64"));
    expect(params.get("data")).toBe("../out/");
    expect(params.get("cacheMB")).toBe("64");
    expect(viewFromParams(params)).toEqual(view);
  });

  test("'none' means no token; an aggregate is a head", () => {
    expect(viewFromParams(new URLSearchParams("token=none&head=max"))).toEqual({ token: null, head: "max" });
  });

  test("garbled values are ignored, not guessed", () => {
    expect(viewFromParams(new URLSearchParams("layer=-1&head=avg&token=3.5&dir=up&sample="))).toEqual({});
  });
});

describe("completeView", () => {
  test("fills defaults: layer 0, head mean, the last token, source→target", () => {
    expect(completeView({}, "s", meta)).toEqual({ sample: "s", layer: 0, head: "mean", token: 39, dir: "src" });
  });

  test("opens on the answer's first token when the sample has one", () => {
    expect(completeView({}, "s", { ...meta, answerStart: 36 }).token).toBe(36);
  });

  test("clamps what the sample does not have", () => {
    const view = completeView({ layer: 9, head: 3, token: 400, dir: "tgt" }, "s", meta);
    expect(view).toEqual({ sample: "s", layer: 1, head: "mean", token: 39, dir: "tgt" });
  });

  test("keeps a deselected token deselected", () => {
    expect(completeView({ token: null }, "s", meta).token).toBeNull();
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
