// Samples stored as triangle and text-rows (fixtures/storage: sample_tiny's
// attention, N=40, image tokens 4..24) in real Chromium: what is stored is
// shown with the full sample's values, what is not is grey with a note.
import { cp, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, expect, test } from "vitest";
import { closeSession, openSession, runPython, type RunningServer } from "./harness";
import { expectCloseVector, expectRedraw, openViewer, referenceVector, shownValues, tokenBox, viewParams } from "./viewer-page";

const FIXTURES = path.resolve(import.meta.dirname, "../../../fixtures");
const N = 40;
const TIMEOUT = 30_000;
const fullFile = (name: string) => path.join(FIXTURES, "sample_tiny", name);

let dataDir: string;
let server: RunningServer;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "vav-storage-"));
  await cp(path.join(FIXTURES, "storage", "triangle"), path.join(dataDir, "triangle"), { recursive: true });
  await cp(path.join(FIXTURES, "storage", "text-rows"), path.join(dataDir, "text_rows"), { recursive: true });
  await importSomeLayers(path.join(dataDir, "some_layers"));
  ({ server, browser } = await openSession(dataDir));
}, 60_000);

/** Synthetic arrays of 6 layers imported as a user would, keeping layers 0, 2 and 5. */
async function importSomeLayers(output: string): Promise<void> {
  const inputs = await mkdtemp(path.join(os.tmpdir(), "vav-npy-"));
  try {
    runPython(["-m", "vlm_attention_viz.dev.synthetic", "--npy-dir", inputs, "--seq-len", "60", "--layers", "6", "--heads", "2"]);
    const files = ["--attention", "attention_array.npy", "--tokens", "decoded_tokens.npy", "--image", "image.png"];
    const args = files.map((name, i) => (i % 2 ? path.join(inputs, name) : name));
    runPython(["-m", "vlm_attention_viz", "import", ...args, "--output-dir", output, "--model-type", "qwen3-vl", "--layers", "0,2,5"]);
  } finally {
    await rm(inputs, { recursive: true, force: true });
  }
}

afterAll(() => closeSession({ server, browser, dataDir }));

beforeEach(async () => {
  page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
});

afterEach(async () => {
  await page.close();
});

const status = () => page.locator("#status").textContent();
const tokenLegend = () => page.locator("#token-legend").getAttribute("aria-label");

/** The background pixel of a token's cell, right of its text. */
async function tokenBackground(token: number): Promise<number[]> {
  const box = await tokenBox(page, token);
  const canvas = (await page.locator("#tokens").boundingBox())!;
  const [x, y] = [box.x - canvas.x + box.w - 1, box.y - canvas.y + box.h / 2];
  return page.evaluate(
    ([px, py]) => {
      const element = document.getElementById("tokens") as HTMLCanvasElement;
      const ratio = element.width / element.clientWidth;
      return Array.from(element.getContext("2d")!.getImageData(Math.floor(px! * ratio), Math.floor(py! * ratio), 1, 1).data);
    },
    [x, y],
  );
}

test("a text-rows sample shows a text token's row with the full sample's values", async () => {
  await openViewer(page, server.url, "sample=text_rows&token=30&head=2");
  expectCloseVector(await shownValues(page), referenceVector(fullFile("attn_layer_00.bin"), N, 2, 30, "row"));
  expect(await tokenLegend()).not.toContain("not stored");
}, TIMEOUT);

test("a text-rows sample greys an image token's row and says it is not stored", async () => {
  await openViewer(page, server.url, "sample=text_rows&token=10");
  expect(await status()).toContain("this token's row is not stored: a text-rows sample keeps only the rows of non-image tokens");
  expect(await tokenLegend()).toContain(`not stored in this sample: 11`); // token 10 would see tokens 0..10
  const [r, g, b] = await tokenBackground(2);
  expect(r === g && g === b).toBe(true); // the masked grey, not a palette colour
}, TIMEOUT);

test("a text-rows column greys the image tokens' rows and shows the rest", async () => {
  await openViewer(page, server.url, "sample=text_rows&token=2&dir=tgt");
  const shown = (await shownValues(page))!;
  const reference = referenceVector(fullFile("attn_mean_layer_00.bin"), N, 0, 2, "col");
  for (let row = 2; row < N; row++) {
    if (row >= 4 && row <= 24) expect(shown[row]).toBeNaN();
    else expect(shown[row]).toBeCloseTo(reference[row]!, 6);
  }
  expect(await tokenLegend()).toContain("not stored in this sample: 21");
  expect(await status()).toContain("the rows of image tokens are not stored (text-rows): grey");
}, TIMEOUT);

test("an unkept head is greyed out in the head list", async () => {
  await openViewer(page, server.url, "sample=text_rows&token=30");
  expect(await page.locator('#head option[value="1"]').isDisabled()).toBe(true);
  expect(await page.locator('#head option[value="2"]').isDisabled()).toBe(false);
}, TIMEOUT);

test("a triangle sample shows rows and columns with the full sample's values", async () => {
  await openViewer(page, server.url, "sample=triangle&token=30&head=1&layer=1");
  expectCloseVector(await shownValues(page), referenceVector(fullFile("attn_layer_01.bin"), N, 1, 30, "row"));
  await openViewer(page, server.url, "sample=triangle&token=7&head=1&layer=1&dir=tgt");
  expectCloseVector(await shownValues(page), referenceVector(fullFile("attn_layer_01.bin"), N, 1, 7, "col"));
}, TIMEOUT);

/** The colour of the layer slider's track under layer `layer` of `numLayers` (the thumb is 14 CSS pixels wide). */
async function trackColour(layer: number, numLayers: number): Promise<number[]> {
  const shot = await page.locator("#layer").screenshot();
  const box = (await page.locator("#layer").boundingBox())!;
  const x = 7 + ((box.width - 14) * layer) / (numLayers - 1);
  return page.evaluate(
    async ({ png, at, width }) => {
      const bitmap = await createImageBitmap(await (await fetch(`data:image/png;base64,${png}`)).blob());
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      const ctx = canvas.getContext("2d")!;
      ctx.drawImage(bitmap, 0, 0);
      const scale = bitmap.width / width;
      return Array.from(ctx.getImageData(Math.round(at * scale), Math.floor(bitmap.height / 2), 1, 1).data);
    },
    { png: shot.toString("base64"), at: x, width: box.width },
  );
}

test("a sample keeping layers 0, 2 and 5 greys the others on the slider, and ←/→ step over them", async () => {
  await openViewer(page, server.url, "sample=some_layers&layer=0&head=mean");
  for (const layer of [2, 5]) {
    const [r, , b] = await trackColour(layer, 6);
    expect(b! - r!).toBeGreaterThan(60); // the kept layers' blue
  }
  for (const layer of [1, 3, 4]) {
    const [r, g, b] = await trackColour(layer, 6);
    expect(Math.max(r!, g!, b!) - Math.min(r!, g!, b!)).toBeLessThan(12); // grey
  }
  await expectRedraw(page, () => page.keyboard.press("ArrowRight"));
  expect(viewParams(page).get("layer")).toBe("2");
  await expectRedraw(page, () => page.keyboard.press("ArrowRight"));
  expect(viewParams(page).get("layer")).toBe("5");
  await expectRedraw(page, () => page.keyboard.press("ArrowLeft"));
  expect(viewParams(page).get("layer")).toBe("2");
  expect(await page.locator("#status").textContent()).not.toContain("not stored");
}, TIMEOUT);
