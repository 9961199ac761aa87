// Samples the real extractor wrote for families beyond Qwen, each from a tiny random checkpoint run on the CPU:
// the vision encoder overlay (--vision-layers all) of the families whose tower attends over the whole image at
// once, Mistral 3 (Pixtral, a region sample whose rows end in breaks) and Gemma 3 (SigLIP over its 896 px
// square); and LLaVA-OneVision's anyres grid, whose rect reaches into the canvas padding left and right.
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import { halfToFloat } from "../../src/data/float16";
import { closeSession, openSession, runPython, type RunningServer } from "./harness";
import type { ImageRegion } from "../../src/data/format";
import { expectRedraw, openViewer, paneCellCentre, patchCentre, readSampleMeta, sampleFile, viewParams } from "./viewer-page";

const TIMEOUT = 60_000;
const FAMILIES = {
  mistral3: 'TinyShape(family="mistral3", layers=2, heads=4, kv_heads=2, seed=7)',
  gemma3: 'TinyShape(family="gemma3", layers=2, heads=4, kv_heads=2, head_dim=16, hidden=64, seed=5)',
  "llava-onevision": 'TinyShape(family="llava-onevision", layers=2, heads=4, kv_heads=2, seed=11)',
};
const VISION_FAMILIES = ["mistral3", "gemma3"] as const;

let workDir: string;
let dataDir: string;
let server: RunningServer;
let browser: Browser;
let page: Page;

function extract(family: keyof typeof FAMILIES, image: string, extra: string[]): void {
  const model = path.join(workDir, `model-${family}`);
  const build = `from pathlib import Path; from vlm_attention_viz.dev.tiny import TinyShape, build_tiny_checkpoint; build_tiny_checkpoint(Path(${JSON.stringify(model)}), ${FAMILIES[family]})`;
  runPython(["-c", build]);
  const out = path.join(dataDir, family);
  runPython(["-m", "vlm_attention_viz", "--image", image, "--prompt", "Where is it?", "--output-dir", out, "--model", model, ...extra]);
}

beforeAll(async () => {
  workDir = await mkdtemp(path.join(os.tmpdir(), "vav-vision-families-"));
  dataDir = path.join(workDir, "data");
  const [photo, small] = [drawGradient(300, 170), drawGradient(100, 60)];
  for (const family of VISION_FAMILIES) extract(family, photo, ["--vision-layers", "all"]);
  extract("llava-onevision", small, []);
  ({ server, browser } = await openSession(dataDir));
  page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
}, 240_000);

afterAll(async () => {
  await closeSession({ server, browser });
  await rm(workDir, { recursive: true, force: true });
});

/** A gradient PNG of width x height in the work folder, red growing to the right. */
function drawGradient(width: number, height: number): string {
  const file = path.join(workDir, `gradient-${width}x${height}.png`);
  const code = `from PIL import Image; import numpy as np; x = np.linspace(0, 255, ${width}); Image.fromarray(np.stack([np.tile(x, (${height}, 1)), np.full((${height}, ${width}), 90.0), np.tile(x[::-1], (${height}, 1))], -1).astype("uint8")).save(${JSON.stringify(file)})`;
  runPython(["-c", code]);
  return file;
}

/** Row `row` of a float16 file of rows of P values, read straight from disk. */
function fileRow(family: string, name: string, row: number, P: number): number[] {
  const bytes = readFileSync(sampleFile(dataDir, family, name));
  return Array.from({ length: P }, (_, p) => halfToFloat(bytes.readUInt16LE(2 * (row * P + p))));
}

function visionValues(): Promise<number[] | null> {
  return page.evaluate(() => (window as unknown as { vav: { visionValues(): number[] | null } }).vav.visionValues());
}

for (const family of VISION_FAMILIES) {
  test(`${family}: v shows the tower's saliency over its patch grid, and a patch click that patch's row`, async () => {
    const vision = readSampleMeta(dataDir, family).vision!;
    const P = vision.grid.rows * vision.grid.cols;
    await openViewer(page, server.url, `sample=${family}`);
    await expectRedraw(page, () => page.keyboard.press("v"));
    expect(viewParams(page).get("overlay")).toBe("vision");
    const received = [0, 1].map((i) => fileRow(family, vision.receivedFile, i, P));
    const saliency = received[0]!.map((v, p) => (v + received[1]![p]!) / 2);
    const shown = await visionValues();
    expect(shown!.length).toBe(P);
    shown!.forEach((value, p) => expect(value).toBeCloseTo(saliency[p]!, 6));
    const [row, col] = [Math.floor(vision.grid.rows / 2), Math.floor(vision.grid.cols / 3)];
    const centre = await patchCentre(page, row, col, vision.grid.rows, vision.grid.cols);
    await expectRedraw(page, () => page.mouse.click(centre.x, centre.y));
    const p = row * vision.grid.cols + col;
    expect(viewParams(page).get("patch")).toBe(String(p));
    const rows = [0, 1].map((i) => fileRow(family, vision.headMeanFiles[i]!, p, P));
    (await visionValues())!.forEach((value, k) => expect(value).toBeCloseTo((rows[0]![k]! + rows[1]![k]!) / 2, 6));
  }, TIMEOUT);
}

test("llava-onevision side by side: a click on either half selects its token, the stitched grid's edge cells too", async () => {
  const m = readSampleMeta(dataDir, "llava-onevision");
  const [global, stitched] = m.regions as [ImageRegion, ImageRegion];
  expect([global.kind, stitched.kind, stitched.rect[0], stitched.rect[0] + stitched.rect[2]]).toEqual(["global", "tile", -2, 110]);
  await openViewer(page, server.url, `sample=llava-onevision&token=${m.seqLen - 1}&regions=both`);
  const picks = [
    { region: stitched, pane: 0, row: 3, col: 0 }, // its left 2 of 8 px are padding
    { region: stitched, pane: 0, row: 5, col: stitched.cols - 1 }, // its right 3 px are
    { region: global, pane: 1, row: 1, col: 2 },
  ];
  for (const { region, pane, row, col } of picks) {
    const centre = await paneCellCentre(page, region, m.imageSize, pane, row, col);
    await expectRedraw(page, () => page.mouse.click(centre.x, centre.y));
    expect(viewParams(page).get("token")).toBe(String(region.tokens[row * region.cols + col]));
  }
  const rowEnds = m.tokens.filter((t) => t.layout === "row_end");
  expect(rowEnds.length).toBe(stitched.rows);
  expect(rowEnds.every((t) => t.type === "special")).toBe(true);
}, TIMEOUT);
