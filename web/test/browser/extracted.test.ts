// The viewer over samples written by the real extractor: the tiny random-weight
// Qwen3-VL run on the CPU by `python -m vlm_attention_viz demo`, in prefill and in
// generate mode, with both blocks of its vision tower. This is the end-to-end path a user takes, model to pixels.
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import { closeSession, openSession, runPython, type RunningServer } from "./harness";
import {
  canvasPixels,
  clickToken,
  expectCloseVector as close,
  expectRedraw,
  openViewer,
  patchCentre,
  readSampleMeta,
  referenceVector,
  sampleFile,
  shownValues,
  viewParams,
} from "./viewer-page";

const TIMEOUT = 30_000;

let dataDir: string;
let server: RunningServer;
let browser: Browser;
let page: Page;

function extractDemo(name: string, mode: "prefill" | "generate"): void {
  const args = ["-m", "vlm_attention_viz", "demo", "--output-dir", path.join(dataDir, name), "--mode", mode];
  runPython(args);
}

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "vav-extracted-"));
  extractDemo("prefill", "prefill");
  extractDemo("generate", "generate");
  ({ server, browser } = await openSession(dataDir));
  page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
}, 240_000);

afterAll(() => closeSession({ server, browser, dataDir }));

test("a text token of an extracted sample colours the image and the tokens with its stored row", async () => {
  const meta = readSampleMeta(dataDir, "prefill");
  const word = meta.tokens.findLastIndex((t) => t.type === "text" && t.text.trim().length > 0);
  await openViewer(page, server.url, "sample=prefill");
  const overlay = await canvasPixels(page, "image-overlay");
  const tokens = await canvasPixels(page, "tokens");
  await expectRedraw(page, () => clickToken(page, word));
  expect(viewParams(page).get("token")).toBe(String(word));
  expect((await canvasPixels(page, "image-overlay")).digest).not.toBe(overlay.digest);
  expect((await canvasPixels(page, "tokens")).digest).not.toBe(tokens.digest);
  const mean = sampleFile(dataDir, "prefill", meta.headMeanFiles[0]!);
  close(await shownValues(page), referenceVector(mean, meta.seqLen, 0, word, "row"));
}, TIMEOUT);

test("an image patch of an extracted sample selects its token, and one head shows that head's column", async () => {
  const meta = readSampleMeta(dataDir, "prefill");
  const { rows, cols, startIdx } = meta.imageGrid!;
  await openViewer(page, server.url, "sample=prefill&dir=tgt&head=1&layer=1");
  const centre = await patchCentre(page, rows - 1, 0, rows, cols);
  await expectRedraw(page, () => page.mouse.click(centre.x, centre.y));
  const token = startIdx + (rows - 1) * cols;
  expect(viewParams(page).get("token")).toBe(String(token));
  const layer = sampleFile(dataDir, "prefill", meta.layerFiles[1]!);
  close(await shownValues(page), referenceVector(layer, meta.seqLen, 1, token, "col"));
}, TIMEOUT);

test("a generate-mode sample opens on its answer with a heatmap, and ] steps through the answer", async () => {
  const meta = readSampleMeta(dataDir, "generate");
  const answerStart = meta.tokens.findIndex((t) => t.generated);
  expect(answerStart).toBeGreaterThan(meta.imageGrid!.endIdx);
  await openViewer(page, server.url, "sample=generate");
  expect(viewParams(page).get("token")).toBe(String(answerStart));
  expect((await canvasPixels(page, "image-overlay")).painted).toBeGreaterThan(0);
  await expectRedraw(page, () => page.keyboard.press("]"));
  expect(Number(viewParams(page).get("token"))).toBeGreaterThan(answerStart);
}, TIMEOUT);

test("the vision-encoder overlay of an extracted sample shows the stored saliency, and a patch its stored row", async () => {
  const meta = readSampleMeta(dataDir, "prefill");
  const vision = meta.vision!;
  const P = vision.seqLen;
  const visionValues = () => page.evaluate(() => (window as unknown as { vav: { visionValues(): number[] | null } }).vav.visionValues());
  await openViewer(page, server.url, "sample=prefill&overlay=vision");
  const received = vision.blocks.map((_, i) => referenceVector(sampleFile(dataDir, "prefill", vision.receivedFile), P, 0, i, "row"));
  close(await visionValues(), received[0]!.map((_, p) => received.reduce((sum, r) => sum + r[p]!, 0) / received.length));
  const [row, col] = [Math.floor(vision.grid.rows / 2), Math.floor(vision.grid.cols / 3)];
  const centre = await patchCentre(page, row, col, vision.grid.rows, vision.grid.cols);
  await expectRedraw(page, () => page.mouse.click(centre.x, centre.y));
  const patch = row * vision.grid.cols + col;
  expect(viewParams(page).get("patch")).toBe(String(patch));
  const rows = vision.headMeanFiles.map((name) => referenceVector(sampleFile(dataDir, "prefill", name), P, 0, patch, "row"));
  close(await visionValues(), rows[0]!.map((_, p) => rows.reduce((sum, r) => sum + r[p]!, 0) / rows.length));
}, TIMEOUT);
