// Generate-mode viewing over a copy of the fixture whose meta marks
// tokens 32.. as the model's answer: " wood" "en" " table" <|im_end|> …
import { cp, mkdtemp, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, expect, test } from "vitest";
import { closeSession, openSession, type RunningServer } from "./harness";
import { canvasPixels, clickToken, expectRedraw, openViewer, referenceVector, sampleFile, shownValues, viewParams } from "./viewer-page";

const FIXTURE = path.resolve(import.meta.dirname, "../../../fixtures/sample_tiny");
const N = 40;
const ANSWER_START = 32;
const TIMEOUT = 30_000;

let dataDir: string;
let server: RunningServer;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "vav-generate-"));
  const sample = path.join(dataDir, "answer");
  await cp(FIXTURE, sample, { recursive: true });
  const meta = JSON.parse(await readFile(path.join(sample, "meta.json"), "utf8"));
  meta.mode = "generate";
  meta.answer_start = ANSWER_START;
  const answer = [" wood", "en", " table", "<|im_end|>"];
  answer.forEach((text, k) => Object.assign(meta.tokens[ANSWER_START + k], { text, type: k === 3 ? "special" : "text" }));
  for (let i = ANSWER_START; i < N; i++) meta.tokens[i].generated = true;
  meta.answer = meta.tokens.slice(ANSWER_START).map((t: { text: string }) => t.text).join("");
  await writeFile(path.join(sample, "meta.json"), JSON.stringify(meta));
  ({ server, browser } = await openSession(dataDir));
}, 60_000);

afterAll(() => closeSession({ server, browser, dataDir }));

beforeEach(async () => {
  page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
});

afterEach(async () => {
  await page.close();
});

const file = (name: string) => sampleFile(dataDir, "answer", name);
const row = (name: string, matrix: number, token: number, axis: "row" | "col" = "row") => referenceVector(file(name), N, matrix, token, axis);

function combine(vectors: number[][], how: "mean" | "max" | "min"): number[] {
  return vectors[0]!.map((_, j) => {
    const column = vectors.map((v) => v[j]!);
    if (how === "max") return Math.max(...column);
    if (how === "min") return Math.min(...column);
    return column.reduce((a, b) => a + b, 0) / column.length;
  });
}

function expectClose(actual: number[] | null, expected: number[]): void {
  expect(actual).toHaveLength(expected.length);
  actual!.forEach((v, j) => expect(v).toBeCloseTo(expected[j]!, 5));
}

test("opens on the answer's first token with its heatmap on the image; another answer token changes it", async () => {
  await openViewer(page, server.url);
  expect(viewParams(page).get("token")).toBe(String(ANSWER_START));
  expect((await canvasPixels(page, "image-overlay")).painted).toBeGreaterThan(0);
  const before = await canvasPixels(page, "image-overlay");
  await expectRedraw(page, () => clickToken(page, 34));
  expect((await canvasPixels(page, "image-overlay")).digest).not.toBe(before.digest);
  expectClose(await shownValues(page), row("attn_mean_layer_00.bin", 0, 34));
}, TIMEOUT);

test("a word's tokens are selected together and their rows combined by mean or max", async () => {
  await openViewer(page, server.url, "token=34");
  await expectRedraw(page, () => clickToken(page, 33)); // "en" of " wooden"
  expect(viewParams(page).get("token")).toBe("32,33");
  const rows = [row("attn_mean_layer_00.bin", 0, 32), row("attn_mean_layer_00.bin", 0, 33)];
  expectClose(await shownValues(page), combine(rows, "mean"));
  expect(await page.locator("#status").textContent()).toContain('src: #32–#33 " wooden" (mean of 2 tokens)');
  await expectRedraw(page, () => page.selectOption("#combine", "max"));
  expectClose(await shownValues(page), combine(rows, "max"));
  expect(await page.locator("#status").textContent()).toContain("(max of 2 tokens)");
  await page.locator("#select-words").uncheck();
  await expectRedraw(page, () => clickToken(page, 33));
  expect(viewParams(page).get("token")).toBe("33");
}, TIMEOUT);

test("[ and ] step through the answer token by token", async () => {
  await openViewer(page, server.url, "token=32,33");
  await expectRedraw(page, () => page.keyboard.press("]"));
  expect(viewParams(page).get("token")).toBe("34");
  await expectRedraw(page, () => page.keyboard.press("]"));
  expect(viewParams(page).get("token")).toBe("35");
  await expectRedraw(page, () => page.keyboard.press("["));
  expect(viewParams(page).get("token")).toBe("34");
  await expectRedraw(page, () => page.keyboard.press("["));
  await expectRedraw(page, () => page.keyboard.press("["));
  expect(viewParams(page).get("token")).toBe(String(ANSWER_START));
  await page.keyboard.press("["); // the answer's start is the floor
  expect(viewParams(page).get("token")).toBe(String(ANSWER_START));
  expectClose(await shownValues(page), row("attn_mean_layer_00.bin", 0, ANSWER_START));
}, TIMEOUT);

test("a layer range reduced by mean, max or min matches the reference", async () => {
  await openViewer(page, server.url, "token=34&head=1&dir=tgt");
  const perLayer = [row("attn_layer_00.bin", 1, 34, "col"), row("attn_layer_01.bin", 1, 34, "col")];
  const colours = await canvasPixels(page, "tokens"); // a column after the image: no image token looks at it
  expect(await page.locator("#layer-end").isVisible()).toBe(false);
  // Choosing a reduction covers layers 0..last at once: no second slider move is needed.
  await expectRedraw(page, () => page.selectOption("#layer-reduce", "mean"));
  await expect.poll(() => page.locator("#layer-end").isVisible()).toBe(true); // shown with the view's redraw
  expect(viewParams(page).get("lreduce")).toBe("mean");
  expect(viewParams(page).get("layerEnd")).toBe("1");
  expectClose(await shownValues(page), combine(perLayer, "mean"));
  expect((await canvasPixels(page, "tokens")).digest).not.toBe(colours.digest);
  expect(await page.locator("#status").textContent()).toContain("Layers 0–1 (mean)");
  for (const how of ["max", "min"] as const) {
    await expectRedraw(page, () => page.selectOption("#layer-reduce", how));
    expectClose(await shownValues(page), combine(perLayer, how));
  }
  await expectRedraw(page, () => page.selectOption("#layer-reduce", ""));
  expectClose(await shownValues(page), perLayer[0]!);
  expect(viewParams(page).has("lreduce")).toBe(false);
}, TIMEOUT);
