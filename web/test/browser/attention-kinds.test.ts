// The viewer over samples the extractor wrote from tiny random-weight models whose layers are not all causal
// softmax: a Qwen3.5 (Gated DeltaNet linear layers, signed) and a Gemma 3 (image tokens see the later tokens of
// their image). What meta.json's layer_attention says reaches the pixels: the diverging palette and the layer
// mark for a linear layer, the later image tokens coloured for an image row.
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import { closeSession, openSession, runPython, type RunningServer } from "./harness";
import {
  expectCloseVector as close,
  expectRedraw,
  openViewer,
  readSampleMeta,
  referenceVector,
  sampleFile,
  shownValues,
  patchCentre,
  viewParams,
} from "./viewer-page";
import { formatWeight } from "../../src/view/tooltip";

const TIMEOUT = 30_000;

// Builds the two tiny checkpoints and extracts one sample from each, as a user runs the CLI.
const EXTRACT = `
import sys, tempfile
from pathlib import Path
from vlm_attention_viz.cli import main
from vlm_attention_viz.dev.demo import draw_demo_image
from vlm_attention_viz.dev.tiny import TinyShape, build_tiny_checkpoint
data, work = Path(sys.argv[1]), Path(tempfile.mkdtemp())
draw_demo_image().save(work / "image.png")
shapes = {
    "qwen35": TinyShape(family="qwen3.5", layers=4, heads=2, kv_heads=1, head_dim=64, hidden=64, seed=6),
    "gemma3": TinyShape(family="gemma3", layers=6, heads=2, kv_heads=1, head_dim=16, hidden=32, seed=5),
}
for name, shape in shapes.items():
    model = build_tiny_checkpoint(work / name, shape)
    args = ["--image", work / "image.png", "--prompt", "Describe this image.", "--output-dir", data / name]
    assert main([str(a) for a in [*args, "--model", model, "--device", "cpu"]]) == 0
`;

let dataDir: string;
let server: RunningServer;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "vav-kinds-"));
  runPython(["-c", EXTRACT, dataDir]);
  ({ server, browser } = await openSession(dataDir));
  page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
}, 240_000);

afterAll(() => closeSession({ server, browser, dataDir }));

/** How many of the image overlay's pixels are reddish and how many bluish. */
function overlayHues(): Promise<{ red: number; blue: number }> {
  return page.evaluate(() => {
    const canvas = document.getElementById("image-overlay") as HTMLCanvasElement;
    const data = canvas.getContext("2d")!.getImageData(0, 0, canvas.width, canvas.height).data;
    let red = 0;
    let blue = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i]! > data[i + 2]! + 60) red++;
      if (data[i + 2]! > data[i]! + 60) blue++;
    }
    return { red, blue };
  });
}

test("a Qwen3.5 linear layer shows its signed row on the diverging palette, with the linear mark", async () => {
  const meta = readSampleMeta(dataDir, "qwen35");
  expect(meta.layerAttention.map((layer) => layer.kind)).toEqual(["linear", "linear", "linear", "causal"]);
  // The token right after the image: the tiny model's decays are steep, so its linear layers weigh near tokens
  // (mostly positively: SiLU makes its q and k mostly positive), and far ones hardly at all
  const { startIdx, endIdx, rows, cols } = meta.imageGrid!; // a single-grid sample
  const token = endIdx + 1;
  const row = referenceVector(sampleFile(dataDir, "qwen35", meta.headMeanFiles[0]!), meta.seqLen, 0, token, "row");
  expect(Math.min(...row)).toBeLessThan(0);
  await openViewer(page, server.url, `sample=qwen35&layer=0&head=mean&token=${token}`);
  const mark = page.locator("#layer-kind");
  expect(await mark.textContent()).toContain("linear layer: signed, unnormalised");
  expect(await mark.getAttribute("data-kinds")).toBe("linear");
  close(await shownValues(page), row);
  // The colour bar spans [-m, m], m the largest magnitude shown, and says why
  const bar = (await page.locator("#token-legend").getAttribute("aria-label")) ?? "";
  expect(bar).toContain("signed values (linear layer), symmetric about 0");
  const scaled = meta.tokens.map((_, j) => j).filter((j) => j > 0 && j <= token && meta.tokens[j]!.type !== "special");
  const m = Math.max(...scaled.map((j) => Math.abs(row[j]!)));
  expect(bar).toContain(`${formatWeight(-m)} to ${formatWeight(m)}`);
  // The image overlay's strongest image token sits at the top of the scale: red, which the blue palette has not
  const image = row.slice(startIdx, endIdx + 1);
  const strongest = image.indexOf(Math.max(...image));
  const centre = await patchCentre(page, Math.floor(strongest / cols), strongest % cols, rows, cols);
  const [r, , b] = await overlayColour(centre.x, centre.y);
  expect(r! - b!).toBeGreaterThan(100);
}, TIMEOUT);

/** The image overlay's colour at a window position. */
function overlayColour(x: number, y: number): Promise<number[]> {
  return page.evaluate(
    ([px, py]) => {
      const canvas = document.getElementById("image-overlay") as HTMLCanvasElement;
      const rect = canvas.getBoundingClientRect();
      const at = [Math.floor(((px! - rect.left) * canvas.width) / rect.width), Math.floor(((py! - rect.top) * canvas.height) / rect.height)];
      return Array.from(canvas.getContext("2d")!.getImageData(at[0]!, at[1]!, 1, 1).data);
    },
    [x, y],
  );
}

test("a Qwen3.5 linear layer's own heads can be picked, stepped and linked; a layer with fewer clamps the head", async () => {
  const meta = readSampleMeta(dataDir, "qwen35");
  const heads = meta.layerAttention[0]!.numHeads;
  expect(heads).toBeGreaterThan(meta.numHeads); // its value heads outnumber the sample's query heads
  const last = heads - 1;
  const token = meta.seqLen - 1;
  await openViewer(page, server.url, `sample=qwen35&layer=0&head=${last}&token=${token}`);
  const headSelect = page.locator("#head");
  expect(await headSelect.inputValue()).toBe(String(last));
  expect(await headSelect.locator("option").count()).toBe(2 + heads); // mean, max, then each of the layer's heads
  close(await shownValues(page), referenceVector(sampleFile(dataDir, "qwen35", meta.layerFiles[0]!), meta.seqLen, last, token, "row"));
  await expectRedraw(page, () => page.keyboard.press("ArrowDown")); // past the layer's last head: back to the mean
  expect(viewParams(page).get("head")).toBe("mean");
  await expectRedraw(page, () => page.keyboard.press("ArrowUp"));
  expect(viewParams(page).get("head")).toBe(String(last));
  // The full-attention layer has the sample's heads: the head becomes its last, and the list shrinks to them
  const full = meta.layerAttention.findIndex((layer) => layer.kind === "causal");
  for (let layer = 1; layer <= full; layer++) await expectRedraw(page, () => page.keyboard.press("ArrowRight"));
  expect(viewParams(page).get("layer")).toBe(String(full));
  expect(viewParams(page).get("head")).toBe(String(meta.numHeads - 1));
  expect(await headSelect.inputValue()).toBe(String(meta.numHeads - 1));
  expect(await headSelect.locator("option").count()).toBe(2 + meta.numHeads);
  const fullFile = sampleFile(dataDir, "qwen35", meta.layerFiles[full]!);
  close(await shownValues(page), referenceVector(fullFile, meta.seqLen, meta.numHeads - 1, token, "row"));
}, TIMEOUT);

test("the Qwen3.5 full-attention layer keeps the chosen palette and says it is taken before the gate", async () => {
  await openViewer(page, server.url, `sample=qwen35&layer=3&head=0`);
  expect(await page.locator("#layer-kind").textContent()).toBe("causal, before the output gate");
  const hues = await overlayHues();
  expect(hues.blue).toBeGreaterThan(0);
  expect(hues.red).toBe(0); // the default blue palette has no red end
}, TIMEOUT);

test("a Gemma 3 image token's row colours the later image tokens; its column reads the earlier image rows", async () => {
  const meta = readSampleMeta(dataDir, "gemma3");
  const { startIdx, endIdx } = meta.imageGrid!; // a single-grid sample
  const token = startIdx + 3;
  const layer = meta.layerAttention.findIndex((kind) => kind.kind === "causal");
  expect(meta.layerAttention[layer]).toMatchObject({ imageBidirectional: true });
  await openViewer(page, server.url, `sample=gemma3&layer=${layer}&head=0&token=${token}`);
  expect(await page.locator("#layer-kind").textContent()).toBe("causal, image bidirectional");
  const file = sampleFile(dataDir, "gemma3", meta.layerFiles[layer]!);
  const row = await shownValues(page);
  close(row, referenceVector(file, meta.seqLen, 0, token, "row"));
  expect(row!.slice(token + 1, endIdx + 1).every((v) => v > 0)).toBe(true);
  expect(row!.slice(endIdx + 1).every((v) => v === 0)).toBe(true);
  const overlayAfterToken = await page.evaluate(() => {
    const canvas = document.getElementById("image-overlay") as HTMLCanvasElement;
    const data = canvas.getContext("2d")!.getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) painted++;
    return painted / (data.length / 4);
  });
  expect(overlayAfterToken).toBeGreaterThan(0.5); // later image tokens are coloured, not left blank
  await openViewer(page, server.url, `sample=gemma3&layer=${layer}&head=0&token=${token}&dir=tgt`);
  const column = await shownValues(page);
  close(column, referenceVector(file, meta.seqLen, 0, token, "col"));
  expect(column!.slice(startIdx, token).every((v) => v > 0)).toBe(true);
}, TIMEOUT);
