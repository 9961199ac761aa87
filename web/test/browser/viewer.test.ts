// The viewer in real Chromium over the shared fixture sample (N=40, 2 layers,
// 3 heads, image grid 7×3 at tokens 4..24) and broken copies of it.
import { cp, mkdir, mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { closeSession, openSession, type RunningServer } from "./harness";
import {
  canvasPixels,
  clickToken,
  expectRedraw,
  openViewer,
  patchCentre,
  referenceVector,
  sampleFile,
  shownValues,
  tokenBox,
  viewParams,
} from "./viewer-page";

const FIXTURE = path.resolve(import.meta.dirname, "../../../fixtures/sample_tiny");
const N = 40;
const GRID = { rows: 3, cols: 7, start: 4 };
const TIMEOUT = 30_000;

let dataDir: string;
let server: RunningServer;
let browser: Browser;
let page: Page;

async function copyFixture(name: string): Promise<string> {
  const dir = path.join(dataDir, name);
  await cp(FIXTURE, dir, { recursive: true });
  return dir;
}

async function editMeta(dir: string, edit: (meta: Record<string, unknown>) => void): Promise<void> {
  const file = path.join(dir, "meta.json");
  const meta = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
  edit(meta);
  await writeFile(file, JSON.stringify(meta));
}

/** The fixture, and broken copies: a truncated .bin, a meta without a field, a meta whose sizes lie. */
async function makeSamples(): Promise<void> {
  await copyFixture("sample_tiny"); // first in the list, so the viewer opens it by default
  const truncated = await copyFixture("truncated");
  await truncate(path.join(truncated, "attn_mean_layer_00.bin"), N * N); // half its bytes
  await truncate(path.join(truncated, "attn_layer_00.bin"), 2 * N * N * 2);
  await editMeta(await copyFixture("missing_field"), (meta) => delete meta["num_heads"]);
  await editMeta(await copyFixture("wrong_size"), (meta) => (meta["num_heads"] = 4));
  await rm(path.join(await copyFixture("without_image"), "image.png"));
  await editMeta(await copyFixture("sample_with_html"), (meta) => {
    (meta["tokens"] as { text: string }[])[28]!.text = '<img src=x onerror="document.title=1">';
  });
}

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "vav-viewer-"));
  await makeSamples();
  ({ server, browser } = await openSession(dataDir));
}, 60_000);

afterAll(() => closeSession({ server, browser, dataDir }));

beforeEach(async () => {
  page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
});

afterEach(async () => {
  await page.close();
});

function expectClose(actual: number[] | null, expected: number[]): void {
  expect(actual).not.toBeNull();
  expect(actual!.length).toBe(expected.length);
  actual!.forEach((value, j) => expect(value).toBeCloseTo(expected[j]!, 6));
}

describe("a good sample", () => {
  test("opens the first sample of the list on the last token, head mean, and shows that row", async () => {
    await openViewer(page, server.url);
    const params = viewParams(page);
    expect(params.get("sample")).toBe("sample_tiny");
    expect(params.get("token")).toBe(String(N - 1));
    expect(params.get("head")).toBe("mean");
    const mean = sampleFile(dataDir, "sample_tiny", "attn_mean_layer_00.bin");
    expectClose(await shownValues(page), referenceVector(mean, N, 0, N - 1, "row"));
    await expect.poll(() => page.locator("#status").textContent()).toContain("Layer 0");
    expect(await page.locator("#status").textContent()).toContain(`${N} tokens`);
    expect(await page.locator("#status").textContent()).toContain(`#${N - 1}`);
  }, TIMEOUT);

  test("clicking a text token changes the image overlay and the token colours", async () => {
    await openViewer(page, server.url, "sample=sample_tiny");
    const overlay = await canvasPixels(page, "image-overlay");
    const tokens = await canvasPixels(page, "tokens");
    await expectRedraw(page, () => clickToken(page, 28)); // " image"
    expect(viewParams(page).get("token")).toBe("28");
    expect((await canvasPixels(page, "image-overlay")).digest).not.toBe(overlay.digest);
    expect((await canvasPixels(page, "tokens")).digest).not.toBe(tokens.digest);
    const mean = sampleFile(dataDir, "sample_tiny", "attn_mean_layer_00.bin");
    expectClose(await shownValues(page), referenceVector(mean, N, 0, 28, "row"));
    expect(await page.locator("#status").textContent()).toContain('#28 " image"');
  }, TIMEOUT);

  test("clicking an image patch selects its image token", async () => {
    await openViewer(page, server.url, "sample=sample_tiny");
    const centre = await patchCentre(page, 1, 2, GRID.rows, GRID.cols);
    await expectRedraw(page, () => page.mouse.click(centre.x, centre.y));
    expect(viewParams(page).get("token")).toBe(String(GRID.start + 1 * GRID.cols + 2));
  }, TIMEOUT);

  test("←/→ step layers, ↑/↓ cycle mean, max and heads, Tab flips direction, Escape deselects", async () => {
    await openViewer(page, server.url, "sample=sample_tiny&token=30");
    const step = async (key: string) => {
      const before = await canvasPixels(page, "image-overlay");
      await expectRedraw(page, () => page.keyboard.press(key));
      expect((await canvasPixels(page, "image-overlay")).digest).not.toBe(before.digest);
    };
    await step("ArrowRight");
    expect(viewParams(page).get("layer")).toBe("1");
    await step("ArrowLeft");
    expect(viewParams(page).get("layer")).toBe("0");
    await step("ArrowDown");
    expect(viewParams(page).get("head")).toBe("max");
    await step("ArrowDown");
    expect(viewParams(page).get("head")).toBe("0");
    await step("ArrowUp");
    expect(viewParams(page).get("head")).toBe("max");
    await step("ArrowUp");
    expect(viewParams(page).get("head")).toBe("mean");
    await step("ArrowUp"); // wraps round to the last head
    expect(viewParams(page).get("head")).toBe("2");
    await step("Tab");
    expect(viewParams(page).get("dir")).toBe("tgt");
    expect(await page.locator("#direction").inputValue()).toBe("tgt");
    await page.keyboard.press("Escape");
    await expect.poll(() => viewParams(page).get("token")).toBe("none");
    await expect.poll(async () => (await canvasPixels(page, "image-overlay")).painted).toBe(0);
    expect(await page.locator("#status").textContent()).toContain("no token selected");
  }, TIMEOUT);

  test("the direction and head controls show the column or a single head", async () => {
    await openViewer(page, server.url, "sample=sample_tiny&token=30");
    const layer0 = sampleFile(dataDir, "sample_tiny", "attn_layer_00.bin");
    await expectRedraw(page, () => page.selectOption("#direction", "tgt"));
    const mean = sampleFile(dataDir, "sample_tiny", "attn_mean_layer_00.bin");
    expectClose(await shownValues(page), referenceVector(mean, N, 0, 30, "col"));
    await expectRedraw(page, () => page.selectOption("#head", "1"));
    expectClose(await shownValues(page), referenceVector(layer0, N, 1, 30, "col"));
    await expectRedraw(page, () => page.selectOption("#direction", "src"));
    expectClose(await shownValues(page), referenceVector(layer0, N, 1, 30, "row"));
    const max = sampleFile(dataDir, "sample_tiny", "attn_max_layer_00.bin");
    await expectRedraw(page, () => page.selectOption("#head", "max"));
    expectClose(await shownValues(page), referenceVector(max, N, 0, 30, "row"));
  }, TIMEOUT);

  test("a deep link reopens the same view, and Back/Forward walk the history", async () => {
    const query = "sample=sample_tiny&layer=1&head=2&token=33&dir=tgt";
    await openViewer(page, server.url, query);
    expect(await page.locator("#layer").inputValue()).toBe("1");
    expect(await page.locator("#head").inputValue()).toBe("2");
    expect(await page.locator("#direction").inputValue()).toBe("tgt");
    const layer1 = sampleFile(dataDir, "sample_tiny", "attn_layer_01.bin");
    expectClose(await shownValues(page), referenceVector(layer1, N, 2, 33, "col"));
    await expectRedraw(page, () => clickToken(page, 27));
    await expectRedraw(page, () => page.goBack());
    expect(viewParams(page).get("token")).toBe("33");
    expectClose(await shownValues(page), referenceVector(layer1, N, 2, 33, "col"));
    await expectRedraw(page, () => page.goForward());
    expect(viewParams(page).get("token")).toBe("27");
  }, TIMEOUT);

  test("changes made before the view can draw each keep their own history entry", async () => {
    await openViewer(page, server.url, "sample=sample_tiny&head=mean&token=30");
    // Three ↓ in one task: the first two views are superseded before the worker answers.
    await expectRedraw(page, () =>
      page.evaluate(() => {
        for (let i = 0; i < 3; i++) document.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowDown" }));
      }),
    );
    expect(viewParams(page).get("head")).toBe("1");
    expect(await page.locator("#head").inputValue()).toBe("1");
    await page.goBack();
    await expect.poll(() => viewParams(page).get("head")).toBe("0");
    await page.goBack();
    await expect.poll(() => viewParams(page).get("head")).toBe("max");
    await expect.poll(() => page.locator("#head").inputValue()).toBe("max");
  }, TIMEOUT);

  test("the sample picker lists index.json's complete samples and switches samples", async () => {
    await openViewer(page, server.url, "sample=sample_tiny");
    const names = await page.locator("#sample option").evaluateAll((options) => options.map((o) => (o as HTMLOptionElement).value));
    // The broken copies are left out of the list (they still open by URL, with their error).
    expect(names).toEqual(["sample_tiny", "sample_with_html"]);
    await page.selectOption("#sample", "sample_with_html");
    await expect.poll(() => viewParams(page).get("sample")).toBe("sample_with_html");
    await page.waitForFunction(() => performance.getEntriesByName("vav:first-heatmap").length === 2);
    await page.goBack();
    await expect.poll(() => viewParams(page).get("sample")).toBe("sample_tiny");
    await expect.poll(() => page.locator("#sample").inputValue()).toBe("sample_tiny");
  }, TIMEOUT);

  test("display settings recolour without refetching; collapse toggles the [IMG] cells", async () => {
    await openViewer(page, server.url, "sample=sample_tiny");
    const overlay = await canvasPixels(page, "image-overlay");
    await page.locator("#opacity").fill("0.2");
    await expect.poll(async () => (await canvasPixels(page, "image-overlay")).digest).not.toBe(overlay.digest);
    const tokens = await canvasPixels(page, "tokens");
    await page.selectOption("#palette", "hot");
    await expect.poll(async () => (await canvasPixels(page, "tokens")).digest).not.toBe(tokens.digest);
    const collapsedHeight = await page.locator("#tokens").evaluate((c) => c.clientHeight);
    await page.locator("#collapse-image").uncheck();
    await expect.poll(() => page.locator("#tokens").evaluate((c) => c.clientHeight)).toBeGreaterThan(collapsedHeight);
    await expectRedraw(page, () => clickToken(page, 10)); // an [IMG] cell, only there when expanded
    expect(viewParams(page).get("token")).toBe("10");
  }, TIMEOUT);

  test("hovering a token or a patch shows its text, position and weight", async () => {
    await openViewer(page, server.url, "sample=sample_tiny&token=33");
    const mean = referenceVector(sampleFile(dataDir, "sample_tiny", "attn_mean_layer_00.bin"), N, 0, 33, "row");
    const box = await tokenBox(page, 28);
    await page.mouse.move(box.x + box.w / 2, box.y + box.h / 2);
    await expect.poll(() => page.locator("#tooltip").textContent()).toBe(`" image" · #28 · text · weight ${mean[28]!.toPrecision(4)}`);
    const centre = await patchCentre(page, 2, 6, GRID.rows, GRID.cols);
    await page.mouse.move(centre.x, centre.y);
    const patchToken = GRID.start + 2 * GRID.cols + 6;
    await expect
      .poll(() => page.locator("#tooltip").textContent())
      .toBe(`patch row 2, col 6 · token #${patchToken} · weight ${mean[patchToken]!.toPrecision(4)}`);
  }, TIMEOUT);

  test("token text is shown as text, never parsed as HTML", async () => {
    await openViewer(page, server.url, "sample=sample_with_html&token=30");
    const box = await tokenBox(page, 28);
    await page.mouse.move(box.x + box.w / 2, box.y + box.h / 2);
    await expect.poll(() => page.locator("#tooltip").textContent()).toContain('<img src=x onerror=\\"document.title=1\\">');
    expect(await page.locator("#tooltip *").count()).toBe(0);
    await expectRedraw(page, () => page.mouse.click(box.x + box.w / 2, box.y + box.h / 2));
    expect(await page.locator("#status").textContent()).toContain("#28 \"<img src=x");
    expect(await page.locator("img").count()).toBe(1); // only the sample image
    expect(await page.title()).toBe("VLM Attention Viz");
  }, TIMEOUT);

  test("a screenshot shows the heatmap over the image", async () => {
    await openViewer(page, server.url, "sample=sample_tiny&token=28");
    await mkdir("test-results", { recursive: true });
    await page.screenshot({ path: "test-results/viewer-page.png" });
    const shot = await page.locator("#image-wrap").screenshot({ path: "test-results/viewer-heatmap.png" });
    // The fixture image is grey (R = G = B); the blue palette tints the patches.
    const tinted = await page.evaluate(async (png) => {
      const bitmap = await createImageBitmap(await (await fetch(`data:image/png;base64,${png}`)).blob());
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      const ctx = canvas.getContext("2d")!;
      ctx.drawImage(bitmap, 0, 0);
      const data = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
      let count = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i + 2]! - data[i]! > 20) count++;
      return count / (data.length / 4);
    }, shot.toString("base64"));
    expect(tinted).toBeGreaterThan(0.05);
  }, TIMEOUT);
});

describe("a bad sample shows its message instead of a blank page", () => {
  const errorText = () => page.locator("#error").textContent();

  test("a truncated head-mean file", async () => {
    await openViewer(page, server.url, "sample=truncated");
    expect(await page.locator("#error").isVisible()).toBe(true);
    expect(await errorText()).toContain(`attn_mean_layer_00.bin has ${N * N} bytes, expected ${N * N * 2}`);
  }, TIMEOUT);

  test("a truncated layer file, read by range", async () => {
    await openViewer(page, server.url, "sample=truncated&head=2");
    expect(await errorText()).toContain("attn_layer_00.bin");
    expect(await errorText()).toContain("truncated");
  }, TIMEOUT);

  test("a meta.json without num_heads", async () => {
    await openViewer(page, server.url, "sample=missing_field");
    expect(await page.locator("#error").isVisible()).toBe(true);
    expect(await errorText()).toContain("meta.json lacks the field 'num_heads'");
    expect(await page.locator("#panels").isVisible()).toBe(false);
  }, TIMEOUT);

  test("a sample without its image", async () => {
    await openViewer(page, server.url, "sample=without_image");
    await page.locator("#error").waitFor({ state: "visible" }); // the heat may be drawn before the image fails
    expect(await errorText()).toBe('Sample "without_image" cannot be shown: the image image.png cannot be loaded');
  }, TIMEOUT);

  test("a meta.json whose sizes do not match the files", async () => {
    await openViewer(page, server.url, "sample=wrong_size&head=0");
    expect(await errorText()).toContain(`attn_layer_00.bin has ${3 * N * N * 2} bytes, expected ${4 * N * N * 2}`);
  }, TIMEOUT);
});
