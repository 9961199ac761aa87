// Helpers for driving the viewer in Chromium: open a view, act and wait for the
// redraw it causes, read canvases and the view's values, compute references.
import { readFileSync } from "node:fs";
import path from "node:path";
import type { Page } from "playwright-core";
import { expect } from "vitest";
import { parseMeta, type ImageRegion, type SampleMeta } from "../../src/data/format";
import { halfToFloat } from "../../src/data/float16";

export interface TokenBox {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Open the viewer at a query and wait for its first heatmap, or for an error message. */
export async function openViewer(page: Page, baseUrl: string, query = ""): Promise<void> {
  await page.goto(`${baseUrl}${query ? `?${query}` : ""}`);
  await page.waitForFunction(
    () => performance.getEntriesByName("vav:first-heatmap").length > 0 || !document.getElementById("error")!.hidden,
  );
}

function drawCount(page: Page): Promise<number> {
  return page.evaluate(() => performance.getEntriesByName("vav:draw").length);
}

/** Run an action and wait until the viewer has drawn a new heatmap because of it. */
export async function expectRedraw(page: Page, action: () => Promise<unknown>): Promise<void> {
  const before = await drawCount(page);
  await action();
  await page.waitForFunction((n) => performance.getEntriesByName("vav:draw").length > n, before);
}

export function viewParams(page: Page): URLSearchParams {
  return new URL(page.url()).searchParams;
}

/** A digest of a canvas's pixels, plus how many are not fully transparent. */
export function canvasPixels(page: Page, id: string): Promise<{ digest: number; painted: number }> {
  return page.evaluate((canvasId) => {
    const canvas = document.getElementById(canvasId) as HTMLCanvasElement;
    const data = canvas.getContext("2d")!.getImageData(0, 0, canvas.width, canvas.height).data;
    let digest = 0;
    let painted = 0;
    for (let i = 0; i < data.length; i++) {
      digest = (digest * 31 + data[i]!) >>> 0;
      if (i % 4 === 3 && data[i]! > 0) painted++;
    }
    return { digest, painted };
  }, id);
}

export function tokenBox(page: Page, token: number): Promise<TokenBox> {
  return page.evaluate((t) => (window as unknown as { vav: { tokenBox(t: number): TokenBox } }).vav.tokenBox(t), token);
}

export async function clickToken(page: Page, token: number): Promise<void> {
  const box = await tokenBox(page, token);
  await page.mouse.click(box.x + box.w / 2, box.y + box.h / 2);
}

/** The centre of an image patch, in window coordinates. */
export async function patchCentre(page: Page, row: number, col: number, rows: number, cols: number) {
  const box = (await page.locator("#image-overlay").boundingBox())!;
  return { x: box.x + ((col + 0.5) / cols) * box.width, y: box.y + ((row + 0.5) / rows) * box.height };
}

/** The window point at the centre of a region's cell on the image of one pane (0: left, 1: right), the image being
 * `size` in the region's coordinates. */
export async function paneCellCentre(page: Page, region: ImageRegion, size: readonly [number, number], pane: number, row: number, col: number) {
  const box = (await page.locator("#image-wrap img").nth(pane).boundingBox())!;
  const [x, y, w, h] = region.rect;
  const px = x + ((col + 0.5) / region.cols) * w;
  const py = y + ((row + 0.5) / region.rows) * h;
  return { x: box.x + (px / size[0]) * box.width, y: box.y + (py / size[1]) * box.height };
}

export function shownValues(page: Page): Promise<number[] | null> {
  return page.evaluate(() => (window as unknown as { vav: { values(): number[] | null } }).vav.values());
}

/**
 * attention[index, :] or attention[:, index] read straight from a .bin file:
 * the reference the viewer's worker must reproduce.
 */
export function referenceVector(file: string, n: number, matrix: number, index: number, axis: "row" | "col"): number[] {
  const bytes = readFileSync(file);
  const base = matrix * n * n;
  return Array.from({ length: n }, (_, j) => {
    const at = base + (axis === "row" ? index * n + j : j * n + index);
    return halfToFloat(bytes.readUInt16LE(at * 2));
  });
}

export function sampleFile(dataDir: string, sample: string, name: string): string {
  return path.join(dataDir, sample, name);
}

/** A sample's meta.json as the viewer parses it. */
export function readSampleMeta(dataDir: string, sample: string): SampleMeta {
  return parseMeta(JSON.parse(readFileSync(sampleFile(dataDir, sample, "meta.json"), "utf8")));
}

/** The shown vector equals the reference, value by value, to six decimals. */
export function expectCloseVector(actual: number[] | null, expected: number[]): void {
  expect(actual).not.toBeNull();
  expect(actual!.length).toBe(expected.length);
  actual!.forEach((v, j) => expect(v).toBeCloseTo(expected[j]!, 6));
}
