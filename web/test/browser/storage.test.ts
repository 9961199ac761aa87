// Samples stored as triangle and text-rows (fixtures/storage: sample_tiny's
// attention, N=40, image tokens 4..24) in real Chromium: what is stored is
// shown with the full sample's values, what is not is grey with a note.
import { cp, mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, expect, test } from "vitest";
import { closeSession, openSession, type RunningServer } from "./harness";
import { expectCloseVector, openViewer, referenceVector, shownValues, tokenBox } from "./viewer-page";

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
  ({ server, browser } = await openSession(dataDir));
}, 60_000);

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
