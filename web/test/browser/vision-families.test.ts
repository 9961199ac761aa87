// The vision encoder overlay over samples the real extractor wrote with --vision-layers for the families whose
// tower attends over the whole image at once: Mistral 3 (Pixtral, a region sample whose rows end in breaks)
// and Gemma 3 (SigLIP over its 896 px square), each a tiny random checkpoint run on the CPU.
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import { halfToFloat } from "../../src/data/float16";
import { closeSession, openSession, runPython, type RunningServer } from "./harness";
import { expectRedraw, openViewer, patchCentre, readSampleMeta, sampleFile, viewParams } from "./viewer-page";

const TIMEOUT = 60_000;
const FAMILIES = {
  mistral3: 'TinyShape(family="mistral3", layers=2, heads=4, kv_heads=2, seed=7)',
  gemma3: 'TinyShape(family="gemma3", layers=2, heads=4, kv_heads=2, head_dim=16, hidden=64, seed=5)',
};

let workDir: string;
let dataDir: string;
let server: RunningServer;
let browser: Browser;
let page: Page;

function extract(family: keyof typeof FAMILIES): void {
  const model = path.join(workDir, `model-${family}`);
  const build = `from pathlib import Path; from vlm_attention_viz.dev.tiny import TinyShape, build_tiny_checkpoint; build_tiny_checkpoint(Path(${JSON.stringify(model)}), ${FAMILIES[family]})`;
  runPython(["-c", build]);
  const image = path.join(workDir, "photo.png");
  const out = path.join(dataDir, family);
  runPython(["-m", "vlm_attention_viz", "--image", image, "--prompt", "Where is it?", "--output-dir", out, "--model", model, "--vision-layers", "all"]);
}

beforeAll(async () => {
  workDir = await mkdtemp(path.join(os.tmpdir(), "vav-vision-families-"));
  dataDir = path.join(workDir, "data");
  const draw = `from PIL import Image; import numpy as np; x = np.linspace(0, 255, 300); Image.fromarray(np.stack([np.tile(x, (170, 1)), np.full((170, 300), 90.0), np.tile(x[::-1], (170, 1))], -1).astype("uint8")).save(${JSON.stringify(path.join(workDir, "photo.png"))})`;
  runPython(["-c", draw]);
  for (const family of Object.keys(FAMILIES) as (keyof typeof FAMILIES)[]) extract(family);
  ({ server, browser } = await openSession(dataDir));
  page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
}, 240_000);

afterAll(async () => {
  await closeSession({ server, browser });
  await rm(workDir, { recursive: true, force: true });
});

/** Row `row` of a float16 file of rows of P values, read straight from disk. */
function fileRow(family: string, name: string, row: number, P: number): number[] {
  const bytes = readFileSync(sampleFile(dataDir, family, name));
  return Array.from({ length: P }, (_, p) => halfToFloat(bytes.readUInt16LE(2 * (row * P + p))));
}

function visionValues(): Promise<number[] | null> {
  return page.evaluate(() => (window as unknown as { vav: { visionValues(): number[] | null } }).vav.visionValues());
}

for (const family of Object.keys(FAMILIES)) {
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
