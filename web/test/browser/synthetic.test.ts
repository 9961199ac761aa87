// The viewer over a synthetic sample written by vlm_attention_viz.dev.synthetic:
// a bigger sequence (N=300, image grid 15×16) whose token panel wraps and scrolls.
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import type { SampleMeta } from "../../src/data/format";
import { closeSession, openSession, runPython, type RunningServer } from "./harness";
import {
  clickToken,
  expectCloseVector as close,
  expectRedraw,
  openViewer,
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

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "vav-synth-"));
  const args = ["-m", "vlm_attention_viz.dev.synthetic", "--output-dir", path.join(dataDir, "synth"), "--seq-len", "300", "--layers", "3", "--heads", "2"];
  runPython(args);
  meta = readSampleMeta(dataDir, "synth");
  ({ server, browser } = await openSession(dataDir));
  page = await browser.newPage({ viewport: { width: 1000, height: 600 } });
}, 60_000);

afterAll(() => closeSession({ server, browser, dataDir }));

const file = (name: string) => sampleFile(dataDir, "synth", name);

test("expanded image tokens wrap and scroll; a deep [IMG] cell is selectable and shows its column", async () => {
  await openViewer(page, server.url, "dir=tgt&layer=2");
  const n = meta.seqLen;
  close(await shownValues(page), referenceVector(file(meta.headMeanFiles[2]!), n, 0, n - 1, "col"));
  await page.locator("#collapse-image").uncheck();
  const deepImageToken = meta.imageGrid!.endIdx - 3;
  await expectRedraw(page, () => clickToken(page, deepImageToken));
  expect(viewParams(page).get("token")).toBe(String(deepImageToken));
  expect(await page.locator("#token-panel").evaluate((panel) => panel.scrollTop)).toBeGreaterThan(0);
  close(await shownValues(page), referenceVector(file(meta.headMeanFiles[2]!), n, 0, deepImageToken, "col"));
}, TIMEOUT);

test("a text token after the image shows its row of one head, across layers", async () => {
  const textToken = meta.imageGrid!.endIdx + 3;
  await expectRedraw(page, () => page.selectOption("#head", "1"));
  await expectRedraw(page, () => page.keyboard.press("Tab"));
  await expectRedraw(page, () => clickToken(page, textToken));
  close(await shownValues(page), referenceVector(file(meta.layerFiles[2]!), meta.seqLen, 1, textToken, "row"));
  await expectRedraw(page, () => page.keyboard.press("ArrowLeft"));
  close(await shownValues(page), referenceVector(file(meta.layerFiles[1]!), meta.seqLen, 1, textToken, "row"));
}, TIMEOUT);

test("the expanded token panel paints the lines scrolled into view with the current view, not stale colours", async () => {
  const lastToken = meta.seqLen - 1; // its row colours every token
  const openExpanded = async (layer: number) => {
    await openViewer(page, server.url, `layer=${layer}&head=1&token=${lastToken}`);
    await page.locator("#collapse-image").uncheck();
    // tall enough that the last tenth is out of view at the top
    await expect.poll(() => page.locator("#token-panel").evaluate((panel) => panel.scrollHeight / panel.clientHeight)).toBeGreaterThan(2);
  };
  const bottomLines = async (scroll: "top" | "bottom") => {
    // The panel repaints on its scroll event, which fires in the next frame before its animation callbacks.
    await page.locator("#token-panel").evaluate(
      (panel, to) => new Promise((resolve) => ((panel.scrollTop = to === "top" ? 0 : panel.scrollHeight), requestAnimationFrame(resolve))),
      scroll,
    );
    return page.locator("#tokens").evaluate((canvas: HTMLCanvasElement) => {
      const rows = Math.round(canvas.height / 10); // the last tenth of the canvas: far below the first screen
      return Array.from(canvas.getContext("2d")!.getImageData(0, canvas.height - rows, canvas.width, rows).data).join(",");
    });
  };
  await page.setViewportSize({ width: 700, height: 400 }); // a short, narrow panel: many lines out of view
  await openExpanded(1);
  const layer1 = await bottomLines("bottom");
  await openExpanded(2);
  const layer2 = await bottomLines("bottom");
  expect(layer2).not.toBe(layer1);
  await openExpanded(1);
  await bottomLines("top");
  await expectRedraw(page, () => page.keyboard.press("ArrowRight")); // layer 2, redrawn while the bottom is out of view
  expect(await bottomLines("bottom")).toBe(layer2);
  await page.setViewportSize({ width: 1000, height: 600 });
}, TIMEOUT);
