// The lower views in real Chromium over the fixture sample (N=40, 2 layers, 3
// heads, image tokens 4..24 as 3 × 7): the atlas, its top heads' maps, the
// layer curves, the rollout as a layer reduction and the atlas PNG. Each
// expected number is computed here from the sample's files.
import { cp, mkdtemp, rm } from "node:fs/promises";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { halfToFloat } from "../../src/data/float16";
import { closeSession, openSession, type RunningServer } from "./harness";
import { expectCloseVector, expectRedraw, openViewer, readSampleMeta, referenceVector, sampleFile, shownValues, viewParams } from "./viewer-page";

const FIXTURE = path.resolve(import.meta.dirname, "../../../fixtures/sample_tiny");
const [N, L, H] = [40, 2, 3];
const GRID = { rows: 3, cols: 7, start: 4 };
const TIMEOUT = 30_000;
const MEASURES = ["image_share", "special_share", "row_entropy", "image_entropy"] as const;
type Measure = (typeof MEASURES)[number];

let dataDir: string;
let server: RunningServer;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "vav-atlas-"));
  await cp(FIXTURE, path.join(dataDir, "sample_tiny"), { recursive: true });
  await cp(FIXTURE, path.join(dataDir, "no_rollout"), { recursive: true });
  await rm(path.join(dataDir, "no_rollout", "rollout.json"));
  ({ server, browser } = await openSession(dataDir));
}, 60_000);

afterAll(() => closeSession({ server, browser, dataDir }));

beforeEach(async () => {
  page = await browser.newPage({ viewport: { width: 1400, height: 1400 } });
});

afterEach(async () => {
  await page.close();
});

/** Token t's (L, H) table of a measure, read from its file: [layer][head] order. */
function tableRow(measure: Measure, token: number): number[] {
  const bytes = readFileSync(sampleFile(dataDir, "sample_tiny", `token_${measure}.bin`));
  return Array.from({ length: L * H }, (_, i) => halfToFloat(bytes.readUInt16LE((token * L * H + i) * 2)));
}

/** The mean of some tokens' tables, as a word's atlas shows it. */
function meanTable(measure: Measure, tokens: number[]): number[] {
  const rows = tokens.map((t) => tableRow(measure, t));
  return rows[0]!.map((_, i) => rows.reduce((sum, row) => sum + row[i]!, 0) / rows.length);
}

interface Hook {
  atlas(): { values: number[]; numLayers: number; numHeads: number } | null;
  topHeads(): { layer: number; head: number; value: number }[];
  curves(): Record<string, { mean: number[]; min: number[]; max: number[] }> | null;
  atlasCell(layer: number, head: number): { x: number; y: number; w: number; h: number } | null;
  curveX(layer: number): number;
}

function hook<T>(page: Page, read: (vav: Hook) => T): Promise<T> {
  return page.evaluate(`(${read.toString()})(window.vav)`) as Promise<T>;
}

/** Open a view and wait until the lower views have drawn (their tables and the top heads' rows are in). */
async function openLower(query: string): Promise<void> {
  await openViewer(page, server.url, query);
  await page.waitForFunction(() => performance.getEntriesByName("vav:atlas").length > 0);
}

function expectClose(actual: number[], expected: number[], digits = 6): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((v, i) => (Number.isNaN(expected[i]) ? expect(v).toBeNaN() : expect(v).toBeCloseTo(expected[i]!, digits)));
}

/** Heads in [layer][head] order, ranked best first; NaN never ranks; ties keep that order. */
function ranking(values: number[], best: "highest" | "lowest"): { layer: number; head: number }[] {
  const sign = best === "highest" ? -1 : 1;
  return values
    .map((value, i) => ({ layer: Math.floor(i / H), head: i % H, value }))
    .filter((h) => !Number.isNaN(h.value))
    .sort((a, b) => sign * (a.value - b.value))
    .map(({ layer, head }) => ({ layer, head }));
}

describe("the atlas", () => {
  test("its grid equals the selected token's image share in every layer and head", async () => {
    await openLower("sample=sample_tiny&token=30");
    const atlas = await hook(page, (vav) => vav.atlas());
    expect([atlas?.numLayers, atlas?.numHeads]).toEqual([L, H]);
    expectClose(atlas!.values, tableRow("image_share", 30));
    expect(await page.locator("#atlas-caption").textContent()).toContain('token #30 " detail"');
  }, TIMEOUT);

  test("a word shows the mean of its tokens' tables, and says so; nothing selected shows meta.json's text_to_image", async () => {
    await openLower("sample=sample_tiny&token=32,33");
    expectClose((await hook(page, (vav) => vav.atlas()))!.values, meanTable("image_share", [32, 33]));
    expect(await page.locator("#atlas-caption").textContent()).toContain("the mean of the 2 tokens' rows");
    await page.keyboard.press("Escape");
    await page.waitForFunction(() => document.getElementById("atlas-caption")!.textContent!.includes("text_to_image"));
    const meta = JSON.parse(readFileSync(sampleFile(dataDir, "sample_tiny", "meta.json"), "utf8")) as { text_to_image: number[][] };
    expectClose((await hook(page, (vav) => vav.atlas()))!.values, meta.text_to_image.flat(), 5);
  }, TIMEOUT);

  test("a new selection reads one range per table and one row per top head, nothing more of the head files", async () => {
    const ranges: { file: string; range: string }[] = [];
    page.context().on("request", (request) => {
      const file = new URL(request.url()).pathname.split("/").pop()!;
      if (/^(token_|attn_layer_)/.test(file)) ranges.push({ file, range: request.headers()["range"] ?? "" });
    });
    await openLower("sample=sample_tiny&token=30");
    const table = L * H * 2;
    const tables = ranges.filter((r) => r.file.startsWith("token_"));
    expect(tables.map((r) => r.file).sort()).toEqual(MEASURES.map((m) => `token_${m}.bin`).sort());
    for (const r of tables) expect(r.range).toBe(`bytes=${30 * table}-${31 * table - 1}`);
    const heads = ranges.filter((r) => r.file.startsWith("attn_layer_"));
    expect(heads.length).toBe(Math.min(16, L * H));
    for (const r of heads) {
      const [start, end] = r.range.replace("bytes=", "").split("-").map(Number) as [number, number];
      expect(end - start + 1).toBe(2 * N); // one row
      expect((start / (2 * N)) % N).toBe(30); // token 30's row, in some head's block
    }
  }, TIMEOUT);

  test("spatial entropy: an image token's rows are undefined, drawn masked and named in the legend", async () => {
    await openLower("sample=sample_tiny&token=10&measure=image_entropy");
    const values = (await hook(page, (vav) => vav.atlas()))!.values;
    expect(values.every(Number.isNaN)).toBe(true);
    expect(await page.locator("#atlas-legend").getAttribute("aria-label")).toContain(`undefined (NaN): ${L * H}`);
    expect(await hook(page, (vav) => vav.topHeads())).toEqual([]);
  }, TIMEOUT);

  test("hover names the layer, head and value", async () => {
    await openLower("sample=sample_tiny&token=30");
    const box = (await hook(page, (vav) => vav.atlasCell(1, 2)))!;
    await page.mouse.move(box.x + box.w / 2, box.y + box.h / 2);
    await expect.poll(() => page.locator("#tooltip").textContent()).toContain("layer 1 · head 2 · image share");
    const value = tableRow("image_share", 30)[1 * H + 2]!;
    expect(await page.locator("#tooltip").textContent()).toContain(value.toPrecision(4));
  }, TIMEOUT);
});

describe("the top heads", () => {
  test("are the highest image shares, or the lowest spatial entropies, each labelled", async () => {
    await openLower("sample=sample_tiny&token=30");
    const byShare = ranking(tableRow("image_share", 30), "highest");
    expect((await hook(page, (vav) => vav.topHeads())).map(({ layer, head }) => ({ layer, head }))).toEqual(byShare);
    expect(await page.locator(".head-map").count()).toBe(byShare.length);
    const first = byShare[0]!;
    expect(await page.locator(".head-map").first().textContent()).toContain(`L${first.layer} H${first.head}`);
    await page.locator("#atlas-measure").selectOption("image_entropy");
    const byEntropy = ranking(tableRow("image_entropy", 30), "lowest");
    await expect.poll(() => hook(page, (vav) => vav.topHeads().map(({ layer, head }) => ({ layer, head })))).toEqual(byEntropy);
    expect(viewParams(page).get("measure")).toBe("image_entropy");
  }, TIMEOUT);

  test("a click on an atlas cell, or on a head's map, goes to that layer and head", async () => {
    await openLower("sample=sample_tiny&token=30");
    const box = (await hook(page, (vav) => vav.atlasCell(1, 2)))!;
    await expectRedraw(page, () => page.mouse.click(box.x + box.w / 2, box.y + box.h / 2));
    expect([viewParams(page).get("layer"), viewParams(page).get("head")]).toEqual(["1", "2"]);
    expectCloseVector(await shownValues(page), referenceVector(sampleFile(dataDir, "sample_tiny", "attn_layer_01.bin"), N, 2, 30, "row"));
    const map = page.locator(".head-map").last();
    const [layer, head] = [await map.getAttribute("data-layer"), await map.getAttribute("data-head")];
    await expectRedraw(page, () => map.click());
    expect([viewParams(page).get("layer"), viewParams(page).get("head")]).toEqual([layer, head]);
  }, TIMEOUT);
});

describe("the layer curves", () => {
  test("per layer: mean, min and max over heads of the image, text and special shares and of the entropies", async () => {
    await openLower("sample=sample_tiny&token=30");
    const [image, special, rowEntropy, imageEntropy] = MEASURES.map((m) => tableRow(m, 30)) as [number[], number[], number[], number[]];
    const series: Record<string, (i: number) => number> = {
      image: (i) => image[i]!,
      text: (i) => 1 - image[i]! - special[i]!,
      special: (i) => special[i]!,
      row_entropy: (i) => rowEntropy[i]!,
      image_entropy: (i) => imageEntropy[i]!,
    };
    const curves = (await hook(page, (vav) => vav.curves()))!;
    expect(Object.keys(curves).sort()).toEqual(Object.keys(series).sort());
    for (const [name, value] of Object.entries(series)) {
      const perLayer = Array.from({ length: L }, (_, l) => Array.from({ length: H }, (_, h) => value(l * H + h)).filter((v) => !Number.isNaN(v)));
      expectClose(curves[name]!.mean, perLayer.map((v) => v.reduce((a, b) => a + b, 0) / v.length), 5);
      expectClose(curves[name]!.min, perLayer.map((v) => Math.min(...v)), 5);
      expectClose(curves[name]!.max, perLayer.map((v) => Math.max(...v)), 5);
    }
  }, TIMEOUT);

  test("a click on a layer goes there; curves and atlas can be hidden, and the URL keeps it", async () => {
    await openLower("sample=sample_tiny&token=30");
    const x = await hook(page, (vav) => vav.curveX(1));
    const box = (await page.locator("#curves").boundingBox())!;
    await expectRedraw(page, () => page.mouse.click(x, box.y + box.height / 2));
    expect(viewParams(page).get("layer")).toBe("1");
    await page.locator("#show-curves").uncheck();
    await expect.poll(() => page.locator("#curves-box").isHidden()).toBe(true);
    expect(viewParams(page).get("curves")).toBe("0");
    await page.locator("#show-atlas").uncheck();
    await expect.poll(() => page.locator("#lower").isHidden()).toBe(true);
    expect(viewParams(page).get("atlas")).toBe("0");
  }, TIMEOUT);
});

describe("rollout", () => {
  test("as a layer reduction the view shows the selection's row of R_l at the chosen layer", async () => {
    await openViewer(page, server.url, "sample=sample_tiny&token=30&layer=1");
    await expectRedraw(page, () => page.locator("#layer-reduce").selectOption("rollout"));
    expect(viewParams(page).get("lreduce")).toBe("rollout");
    expectCloseVector(await shownValues(page), referenceVector(sampleFile(dataDir, "sample_tiny", "rollout_layer_01.bin"), N, 0, 30, "row"));
    await expectRedraw(page, () => page.keyboard.press("ArrowLeft"));
    expectCloseVector(await shownValues(page), referenceVector(sampleFile(dataDir, "sample_tiny", "rollout_layer_00.bin"), N, 0, 30, "row"));
    expect(await page.locator("#status").textContent()).toContain("rollout R_0");
  }, TIMEOUT);

  test("a sample without rollout.json greys it out with the command that adds it", async () => {
    await openViewer(page, server.url, "sample=no_rollout&token=30&lreduce=rollout");
    const option = page.locator('#layer-reduce option[value="rollout"]');
    expect(await option.isDisabled()).toBe(true);
    expect(await option.getAttribute("title")).toContain("python -m vlm_attention_viz rollout");
    expect(viewParams(page).get("lreduce")).toBeNull();
  }, TIMEOUT);
});

describe("atlas export", () => {
  test("the atlas PNG decodes at the scale's size, its grid pixels equal the screen's, under a caption", async () => {
    await openLower("sample=sample_tiny&token=30&palette=viridis");
    const result = await page.evaluate(async () => {
      const vav = (window as unknown as { vav: { exportAtlas(s: number): Promise<{ blob: Blob; imageBox: { x: number; y: number; w: number; h: number } }> } }).vav;
      const decode = async (scale: number) => {
        const file = await vav.exportAtlas(scale);
        const bitmap = await createImageBitmap(file.blob);
        const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
        const ctx = canvas.getContext("2d")!;
        ctx.drawImage(bitmap, 0, 0);
        return { width: bitmap.width, height: bitmap.height, box: file.imageBox, ctx, type: file.blob.type };
      };
      const [one, two] = [await decode(1), await decode(2)];
      const atlas = document.getElementById("atlas") as HTMLCanvasElement;
      const ratio = atlas.width / atlas.clientWidth;
      const screenPixel = (x: number, y: number) => Array.from(atlas.getContext("2d")!.getImageData(Math.floor(x * ratio), Math.floor(y * ratio), 1, 1).data);
      const figurePixel = (x: number, y: number) => Array.from(two.ctx.getImageData(two.box.x + x * 2, two.box.y + y * 2, 1, 1).data);
      const cell = (window as unknown as { vav: { atlasCell(l: number, h: number): { x: number; y: number; w: number; h: number } } }).vav.atlasCell(1, 2);
      const frame = atlas.getBoundingClientRect();
      const [cx, cy] = [cell.x - frame.left + cell.w / 2, cell.y - frame.top + cell.h / 2];
      return {
        one: [one.width, one.height],
        two: [two.width, two.height],
        box: [two.box.w, two.box.h],
        atlas: [atlas.clientWidth, atlas.clientHeight],
        screen: screenPixel(cx, cy),
        figure: figurePixel(cx, cy),
        type: two.type,
      };
    });
    expect(result.type).toBe("image/png");
    expect(result.two).toEqual(result.one.map((v) => v * 2));
    expect(result.box).toEqual(result.atlas.map((v) => v * 2));
    expect(result.figure).toEqual(result.screen);
  }, TIMEOUT);
});

// The meta the tests read agrees with what the viewer parses.
test("the fixture's shape is the one these tests assume", () => {
  const meta = readSampleMeta(dataDir, "sample_tiny");
  const grid = meta.imageGrid!; // a single-grid sample
  expect([meta.seqLen, meta.numLayers, meta.numHeads, grid.rows, grid.cols, grid.startIdx]).toEqual([N, L, H, GRID.rows, GRID.cols, GRID.start]);
});
