// The viewer over a sample made by `python -m vlm_attention_viz import` from an exported
// attention dump (attention_array.npy, decoded_tokens.npy, image.png), written by the synthetic
// generator: span found by --model-type, grid inferred from the image.
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import type { SampleMeta } from "../../src/data/format";
import { closeSession, openSession, runPython, type RunningServer } from "./harness";
import {
  canvasPixels,
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
let meta: SampleMeta;
let server: RunningServer;
let browser: Browser;
let page: Page;

async function importSyntheticArrays(): Promise<void> {
  const inputs = await mkdtemp(path.join(os.tmpdir(), "vav-npy-"));
  try {
    runPython(["-m", "vlm_attention_viz.dev.synthetic", "--npy-dir", inputs, "--seq-len", "120", "--layers", "2", "--heads", "3"]);
    const files = ["--attention", "attention_array.npy", "--tokens", "decoded_tokens.npy", "--image", "image.png"];
    const args = files.map((name, i) => (i % 2 ? path.join(inputs, name) : name));
    runPython(["-m", "vlm_attention_viz", "import", ...args, "--output-dir", path.join(dataDir, "imported"), "--model-type", "qwen3-vl"]);
  } finally {
    await rm(inputs, { recursive: true, force: true });
  }
}

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "vav-imported-"));
  await importSyntheticArrays();
  meta = readSampleMeta(dataDir, "imported");
  ({ server, browser } = await openSession(dataDir));
  page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
}, 60_000);

afterAll(() => closeSession({ server, browser, dataDir }));

const file = (name: string) => sampleFile(dataDir, "imported", name);

test("an imported sample is listed, opens on its last token (its row shown) and paints the image with its stored row", async () => {
  await openViewer(page, server.url, "sample=imported");
  expect(await page.locator("#error").isHidden()).toBe(true);
  expect(await page.locator("#sample option").allTextContents()).toEqual([`imported (${meta.seqLen} tokens, prefill)`]);
  const last = meta.seqLen - 1;
  expect((await canvasPixels(page, "image-overlay")).painted).toBeGreaterThan(0);
  close(await shownValues(page), referenceVector(file(meta.headMeanFiles[0]!), meta.seqLen, 0, last, "row"));
}, TIMEOUT);

test("a patch of the inferred grid selects its image token and shows one head's column", async () => {
  const { rows, cols, startIdx } = meta.imageGrid!;
  expect(rows * cols).toBe(meta.imageGrid!.endIdx - startIdx + 1);
  await openViewer(page, server.url, "sample=imported&dir=tgt&head=2&layer=1");
  const centre = await patchCentre(page, rows - 2, cols - 1, rows, cols);
  await expectRedraw(page, () => page.mouse.click(centre.x, centre.y));
  const token = startIdx + (rows - 2) * cols + cols - 1;
  expect(viewParams(page).get("token")).toBe(String(token));
  close(await shownValues(page), referenceVector(file(meta.layerFiles[1]!), meta.seqLen, 2, token, "col"));
}, TIMEOUT);
