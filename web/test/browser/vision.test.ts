// The "vision encoder" overlay over a synthetic sample with two captured vision
// blocks of three heads (patch grid 14 × 26), a copy with truncated vision files, and a sample
// without vision attention.
import { readFileSync } from "node:fs";
import { cp, mkdtemp, truncate } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, expect, test } from "vitest";
import { LUTS } from "../../src/view/color";
import type { VisionMeta } from "../../src/data/format";
import { halfToFloat } from "../../src/data/float16";
import { closeSession, openSession, runPython, type RunningServer } from "./harness";
import { expectRedraw, openViewer, patchCentre, readSampleMeta, sampleFile, viewParams } from "./viewer-page";

const TIMEOUT = 30_000;

let dataDir: string;
let vision: VisionMeta;
let server: RunningServer;
let browser: Browser;
let page: Page;

function synthetic(name: string, extra: string[]): void {
  const args = ["--output-dir", path.join(dataDir, name), "--seq-len", "120", "--layers", "2", "--heads", "2", ...extra];
  runPython(["-m", "vlm_attention_viz.dev.synthetic", ...args]);
}

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "vav-vision-"));
  synthetic("vision", ["--vision-blocks", "2", "--vision-heads", "3"]);
  synthetic("plain", []);
  vision = readSampleMeta(dataDir, "vision").vision!;
  const truncated = path.join(dataDir, "truncated");
  await cp(path.join(dataDir, "vision"), truncated, { recursive: true });
  await truncate(path.join(truncated, vision.receivedFile), vision.seqLen * 2); // one block's row of two
  await truncate(path.join(truncated, vision.headMeanFiles[1]!), 100);
  ({ server, browser } = await openSession(dataDir));
}, 60_000);

afterAll(() => closeSession({ server, browser, dataDir }));

beforeEach(async () => {
  page = await browser.newPage({ viewport: { width: 1000, height: 600 } });
});

afterEach(async () => {
  await page.close();
});

/** Row `row` of a float16 file of rows of P values, read straight from disk. */
function fileRow(name: string, row: number): number[] {
  const bytes = readFileSync(sampleFile(dataDir, "vision", name));
  const P = vision.seqLen;
  return Array.from({ length: P }, (_, p) => halfToFloat(bytes.readUInt16LE(2 * (row * P + p))));
}

function mean(vectors: number[][]): number[] {
  return vectors[0]!.map((_, p) => vectors.reduce((sum, v) => sum + v[p]!, 0) / vectors.length);
}

/** The saliency the overlay must show: the received rows of both captured blocks, averaged. */
const saliency = () => mean([0, 1].map((i) => fileRow(vision.receivedFile, i)));

/** Patch p's own attention row, averaged over the given captured blocks (indices into vision.blocks). */
const patchRow = (p: number, blocks: number[]) => mean(blocks.map((i) => fileRow(vision.headMeanFiles[i]!, p)));

/** Patch p's row in vision head h: row h·P + p of each (Hv, P, P) block file, averaged over the given blocks. */
const headRow = (p: number, h: number, blocks: number[]) => mean(blocks.map((i) => fileRow(vision.blockFiles[i]!, h * vision.seqLen + p)));

function visionValues(): Promise<number[] | null> {
  return page.evaluate(() => (window as unknown as { vav: { visionValues(): number[] | null } }).vav.visionValues());
}

async function expectShown(expected: number[]): Promise<void> {
  const shown = await visionValues();
  expect(shown).not.toBeNull();
  expect(shown!.length).toBe(vision.seqLen);
  shown!.forEach((value, p) => expect(value).toBeCloseTo(expected[p]!, 6));
}

/** RGBA of the overlay canvas at the centre of a vision patch, or at a fraction of its width from its left edge. */
function overlayPixel(row: number, col: number, across = 0.5): Promise<number[]> {
  const { rows, cols } = vision.grid;
  return page.evaluate(
    ([x, y]) => {
      const canvas = document.getElementById("image-overlay") as HTMLCanvasElement;
      const at = [Math.floor(x! * canvas.width), Math.floor(y! * canvas.height)] as const;
      return Array.from(canvas.getContext("2d")!.getImageData(at[0], at[1], 1, 1).data);
    },
    [(col + across) / cols, (row + 0.5) / rows],
  );
}

const cellOf = (p: number) => ({ row: Math.floor(p / vision.grid.cols), col: p % vision.grid.cols });

async function clickPatch(p: number): Promise<void> {
  const { row, col } = cellOf(p);
  const centre = await patchCentre(page, row, col, vision.grid.rows, vision.grid.cols);
  await expectRedraw(page, () => page.mouse.click(centre.x, centre.y));
}

test("v switches the image to the vision encoder: the saliency over both blocks, drawn on the patch grid", async () => {
  await openViewer(page, server.url, "sample=vision");
  expect(await page.locator("#overlay").isVisible()).toBe(true);
  expect(await visionValues()).toBeNull();
  await expectRedraw(page, () => page.keyboard.press("v"));
  expect([...viewParams(page)].filter(([key]) => ["overlay", "vblocks", "vhead", "patch"].includes(key))).toEqual([
    ["overlay", "vision"],
    ["vblocks", "all"],
    ["vhead", "mean"],
    ["patch", "none"],
  ]);
  const expected = saliency();
  await expectShown(expected);
  // Min–max normalised over the patches: the strongest patch gets the palette's top alpha, the weakest none.
  const opacity = Number(await page.locator("#opacity").inputValue());
  const strongest = cellOf(expected.indexOf(Math.max(...expected)));
  const weakest = cellOf(expected.indexOf(Math.min(...expected)));
  expect((await overlayPixel(strongest.row, strongest.col))[3]).toBeCloseTo(LUTS.blue[255 * 4 + 3]! * opacity, -0.5);
  expect((await overlayPixel(weakest.row, weakest.col))[3]).toBe(0);
  for (const id of ["#head", "#direction", "#layer"]) expect(await page.locator(id).isDisabled()).toBe(true);
  expect(await page.locator("#overlay").inputValue()).toBe("vision");
  expect(await page.locator("#status").textContent()).toBe(
    "Vision encoder · blocks 2, 3 (mean) · 364 patches (14 rows × 26 cols) · mean over 3 heads · saliency: attention each patch receives",
  );
  await expectRedraw(page, () => page.keyboard.press("v"));
  expect(viewParams(page).has("overlay")).toBe(false);
  expect(viewParams(page).has("vhead")).toBe(false);
  expect(await visionValues()).toBeNull();
  expect(await page.locator("#head").isDisabled()).toBe(false);
  expect(await page.locator("#vision-head").isVisible()).toBe(false);
}, TIMEOUT);

test("a patch click shows that patch's own row, outlined; clicking it again or Escape returns to the saliency", async () => {
  await openViewer(page, server.url, "sample=vision&overlay=vision");
  const p = 5 * vision.grid.cols + 7;
  await clickPatch(p);
  expect(viewParams(page).get("patch")).toBe(String(p));
  await expectShown(patchRow(p, [0, 1]));
  const outline = await overlayPixel(5, 7, 0.02);
  expect(outline.slice(0, 3)).toEqual([255, 59, 48]);
  expect(await page.locator("#status").textContent()).toContain(`patch #${p} (row 5, col 7): where it looks`);
  const neighbour = await patchCentre(page, 5, 8, vision.grid.rows, vision.grid.cols);
  await page.mouse.move(neighbour.x, neighbour.y);
  const value = patchRow(p, [0, 1])[p + 1]!;
  await expect.poll(() => page.locator("#tooltip").textContent()).toBe(`vision patch row 5, col 8 · #${p + 1} · value ${value.toPrecision(4)}`);
  await clickPatch(p);
  expect(viewParams(page).get("patch")).toBe("none");
  await expectShown(saliency());
  await clickPatch(p);
  await expectRedraw(page, () => page.keyboard.press("Escape"));
  expect(viewParams(page).get("patch")).toBe("none");
  await expectShown(saliency());
}, TIMEOUT);

test("one block at a time through ←/→ or the blocks select; a link reopens the view and Back restores it", async () => {
  const p = 40;
  await openViewer(page, server.url, `sample=vision&overlay=vision&vblocks=3&patch=${p}`);
  expect(await page.locator("#vision-blocks").inputValue()).toBe("3");
  await expectShown(patchRow(p, [1]));
  await expectRedraw(page, () => page.keyboard.press("ArrowRight")); // all, 2, 3, then round to all
  expect(viewParams(page).get("vblocks")).toBe("all");
  await expectShown(patchRow(p, [0, 1]));
  await expectRedraw(page, () => page.selectOption("#vision-blocks", "2"));
  await expectShown(patchRow(p, [0]));
  await expectRedraw(page, () => page.goBack());
  expect(viewParams(page).get("vblocks")).toBe("all");
  await expectShown(patchRow(p, [0, 1]));
  expect(viewParams(page).get("layer")).toBe("0"); // the LLM view stays as it was
}, TIMEOUT);

test("↑/↓ step the vision head of a clicked patch's row; the saliency stays over all heads and says so", async () => {
  await openViewer(page, server.url, "sample=vision&overlay=vision");
  await expectRedraw(page, () => page.keyboard.press("ArrowDown")); // mean, 0, 1, 2, then round to mean
  expect(viewParams(page).get("vhead")).toBe("0");
  expect(await page.locator("#vision-head").inputValue()).toBe("0");
  await expectShown(saliency());
  const status = await page.locator("#status").textContent();
  expect(status).toContain("mean over 3 heads · saliency: attention each patch receives (over all heads; click a patch to see head 0)");
  const p = 6 * vision.grid.cols + 11;
  await clickPatch(p);
  const head0 = headRow(p, 0, [0, 1]);
  expect(head0).not.toEqual(patchRow(p, [0, 1])); // the test can tell a head from the mean
  await expectShown(head0);
  expect(await page.locator("#status").textContent()).toContain(`head 0 of 3 · patch #${p}`);
  await expectRedraw(page, () => page.keyboard.press("ArrowDown"));
  expect(viewParams(page).get("vhead")).toBe("1");
  await expectShown(headRow(p, 1, [0, 1]));
  await expectRedraw(page, () => page.keyboard.press("ArrowUp"));
  await expectRedraw(page, () => page.keyboard.press("ArrowUp"));
  expect(viewParams(page).get("vhead")).toBe("mean");
  await expectShown(patchRow(p, [0, 1]));
  await expectRedraw(page, () => page.keyboard.press("ArrowUp"));
  expect(viewParams(page).get("vhead")).toBe("2");
  await expectShown(headRow(p, 2, [0, 1]));
  expect(viewParams(page).get("head")).toBe("mean"); // the LLM head stays as it was
}, TIMEOUT);

test("a link to one head of one block reopens it; the select changes it and Back restores it", async () => {
  const p = 200;
  await openViewer(page, server.url, `sample=vision&overlay=vision&vblocks=3&vhead=2&patch=${p}`);
  expect(await page.locator("#vision-head").inputValue()).toBe("2");
  await expectShown(headRow(p, 2, [1]));
  await expectRedraw(page, () => page.selectOption("#vision-head", "1"));
  expect(viewParams(page).get("vhead")).toBe("1");
  await expectShown(headRow(p, 1, [1]));
  await expectRedraw(page, () => page.goBack());
  expect(viewParams(page).get("vhead")).toBe("2");
  await expectShown(headRow(p, 2, [1]));
}, TIMEOUT);

test("a sample without vision attention offers no vision overlay", async () => {
  await openViewer(page, server.url, "sample=plain&overlay=vision&patch=3");
  expect(await page.locator("#overlay").isVisible()).toBe(false);
  expect(viewParams(page).has("overlay")).toBe(false);
  await page.keyboard.press("v");
  await page.keyboard.press("ArrowRight"); // a change that does draw, after the v
  await expect.poll(() => viewParams(page).get("layer")).toBe("1");
  expect(viewParams(page).has("overlay")).toBe(false);
  expect(await visionValues()).toBeNull();
}, TIMEOUT);

test("truncated vision files show which file and how short it is", async () => {
  const P = vision.seqLen;
  await openViewer(page, server.url, "sample=truncated&overlay=vision");
  await expect.poll(() => page.locator("#error").textContent()).toContain(`${vision.receivedFile} has ${2 * P} bytes, expected ${4 * P}`);
  await openViewer(page, server.url, "sample=truncated&overlay=vision&vblocks=3&patch=200");
  await expect.poll(() => page.locator("#error").textContent()).toContain(`${vision.headMeanFiles[1]} has 100 bytes, expected ${2 * P * P}`);
}, TIMEOUT);
