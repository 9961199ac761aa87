// Image regions in Chromium, over fixtures/layouts: a tiled sample (SmolVLM's layout: 2 × 3 tiles of
// 4 × 4 tokens over a 192 × 128 image, plus a 4 × 4 global thumbnail), a sample of two images, and a padded
// one (a 4 × 4 global view of a 192 × 120 image, then an 8 × 12 grid of 16 px cells over [0, -4, 192, 128]).
import { cp, mkdtemp, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "vitest";
import type { ImageRegion, SampleMeta } from "../../src/data/format";
import { LUTS, scaleIndex, type Scale } from "../../src/view/color";
import { closeSession, openSession, type RunningServer } from "./harness";
import { expectRedraw, openViewer, paneCellCentre, readSampleMeta, referenceVector, sampleFile, shownValues, viewParams } from "./viewer-page";

const LAYOUTS = path.resolve(import.meta.dirname, "../../../fixtures/layouts");
const TIMEOUT = 30_000;

let dataDir: string;
let server: RunningServer;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "vav-layouts-"));
  for (const name of ["sample_tiled", "sample_two_images", "sample_padded"]) await cp(path.join(LAYOUTS, name), path.join(dataDir, name), { recursive: true });
  // The padded sample without its global view: the top heads' maps then show the grid that overhangs the image.
  const gridOnly = path.join(dataDir, "sample_padded_grid");
  await cp(path.join(LAYOUTS, "sample_padded"), gridOnly, { recursive: true });
  const meta = JSON.parse(await readFile(path.join(gridOnly, "meta.json"), "utf8"));
  meta.image_regions[0].kind = "tile";
  await writeFile(path.join(gridOnly, "meta.json"), JSON.stringify(meta));
  ({ server, browser } = await openSession(dataDir));
}, 60_000);

afterAll(() => closeSession({ server, browser, dataDir }));

beforeEach(async () => {
  page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
});

afterEach(async () => {
  await page.close();
});

/** The window point at the centre of a region's cell, the image being `size` in the region's coordinates. */
async function cellCentre(region: ImageRegion, size: [number, number], row: number, col: number) {
  const box = (await page.locator("#image-overlay").boundingBox())!;
  const [x, y, w, h] = region.rect;
  const px = x + ((col + 0.5) / region.cols) * w;
  const py = y + ((row + 0.5) / region.rows) * h;
  return { x: box.x + (px / size[0]) * box.width, y: box.y + (py / size[1]) * box.height };
}

/** The overlay's RGBA under a window point. */
function overlayPixelAt(point: { x: number; y: number }): Promise<number[]> {
  return page.evaluate(({ x, y }) => {
    const canvas = document.getElementById("image-overlay") as HTMLCanvasElement;
    const box = canvas.getBoundingClientRect();
    const [px, py] = [((x - box.left) / box.width) * canvas.width, ((y - box.top) / box.height) * canvas.height];
    return Array.from(canvas.getContext("2d")!.getImageData(Math.floor(px), Math.floor(py), 1, 1).data);
  }, point);
}

/** The colour a value takes on the image bar's scale, at opacity 1. */
async function expectedColour(value: number, palette: keyof typeof LUTS): Promise<number[]> {
  const scale = await page.evaluate(() => (window as unknown as { vav: { legends(): { image: { scale: Scale } } } }).vav.legends().image.scale);
  const at = scaleIndex(value, scale) * 4;
  return Array.from(LUTS[palette].subarray(at, at + 4));
}

/** At points given as fractions of the image's width and height: the exported PNG's pixel and the view's. */
function exportedAndShown(points: number[][]): Promise<{ png: number[]; view: number[] }[]> {
  return page.evaluate(async (points) => {
    type Exported = { blob: Blob; imageBox: { x: number; y: number; w: number; h: number } };
    const hook = (window as unknown as { vav: { exportFigure(kind: string, scale: number, tokens: boolean): Promise<Exported> } }).vav;
    const file = await hook.exportFigure("png", 2, false);
    const bitmap = await createImageBitmap(file.blob);
    const canvas = Object.assign(document.createElement("canvas"), { width: bitmap.width, height: bitmap.height });
    const ctx = canvas.getContext("2d")!;
    ctx.drawImage(bitmap, 0, 0);
    const box = file.imageBox;
    const overlay = document.getElementById("image-overlay") as HTMLCanvasElement;
    const view = overlay.getContext("2d")!;
    return points.map(([fx, fy]) => ({
      png: Array.from(ctx.getImageData(Math.floor(box.x + fx! * box.w), Math.floor(box.y + fy! * box.h), 1, 1).data),
      view: Array.from(view.getImageData(Math.floor(fx! * overlay.width), Math.floor(fy! * overlay.height), 1, 1).data),
    }));
  }, points);
}

/** The overlay's alpha at the centre of each cell of a region, row-major. */
function cellAlphas(region: ImageRegion, size: [number, number]): Promise<number[]> {
  return page.evaluate(
    ({ rect, rows, cols, size }) => {
      const canvas = document.getElementById("image-overlay") as HTMLCanvasElement;
      const ctx = canvas.getContext("2d")!;
      const [x, y, w, h] = rect;
      return Array.from({ length: rows * cols }, (_, k) => {
        const px = ((x + ((k % cols) + 0.5) * (w / cols)) / size[0]) * canvas.width;
        const py = ((y + (Math.floor(k / cols) + 0.5) * (h / rows)) / size[1]) * canvas.height;
        return ctx.getImageData(Math.floor(px), Math.floor(py), 1, 1).data[3]!;
      });
    },
    { rect: region.rect, rows: region.rows, cols: region.cols, size },
  );
}

/** The cells' colours follow the tokens' values: the strongest token's cell is the most opaque, the weakest the least. */
async function expectOverlayFollowsValues(meta: SampleMeta, regions: ImageRegion[]): Promise<void> {
  const values = (await shownValues(page))!;
  const cells: { value: number; alpha: number }[] = [];
  for (const region of regions) {
    const alphas = await cellAlphas(region, meta.images[region.image]!.size);
    region.tokens.forEach((t, k) => cells.push({ value: values[t]!, alpha: alphas[k]! }));
  }
  const byValue = [...cells].sort((a, b) => a.value - b.value);
  const alphas = cells.map((c) => c.alpha);
  expect(byValue.at(-1)!.alpha).toBe(Math.max(...alphas));
  expect(byValue[0]!.alpha).toBe(Math.min(...alphas));
  expect(Math.max(...alphas)).toBeGreaterThan(Math.min(...alphas));
}

describe("a tiled sample", () => {
  const meta = () => readSampleMeta(dataDir, "sample_tiled");

  test(
    "clicking a patch of a tile selects that tile's token, and the overlay follows the tiles' values",
    async () => {
      const m = meta();
      await openViewer(page, server.url, `sample=sample_tiled&token=${m.seqLen - 1}`);
      await expect.poll(() => page.locator("#region-view").isVisible()).toBe(true);
      await expect.poll(() => page.locator("#image-pick").isVisible()).toBe(false);
      await expectOverlayFollowsValues(m, m.regions.slice(0, 6));
      const tile = m.regions[4]!; // row 1, col 1 of the tiles: [64, 64, 64, 64]
      const centre = await cellCentre(tile, m.imageSize, 2, 3);
      await page.mouse.move(centre.x, centre.y);
      await expect.poll(() => page.locator("#tooltip").textContent()).toContain("tile 5 of 6 · patch row 2, col 3");
      await expectRedraw(page, () => page.mouse.click(centre.x, centre.y));
      expect(viewParams(page).get("token")).toBe(String(tile.tokens[2 * 4 + 3]));
    },
    TIMEOUT,
  );

  test(
    "the switch shows the global thumbnail over the whole image, and a click there selects a thumbnail token",
    async () => {
      const m = meta();
      await openViewer(page, server.url, `sample=sample_tiled&token=${m.seqLen - 1}`);
      await expectRedraw(page, () => page.locator("#region-view").selectOption("global"));
      const thumbnail = m.regions[6]!;
      await expectOverlayFollowsValues(m, [thumbnail]);
      const centre = await cellCentre(thumbnail, m.imageSize, 1, 2);
      await expectRedraw(page, () => page.mouse.click(centre.x, centre.y));
      expect(viewParams(page).get("token")).toBe(String(thumbnail.tokens[1 * 4 + 2]));
      await expectRedraw(page, () => page.locator("#region-view").selectOption("tiles"));
      const again = await cellCentre(m.regions[0]!, m.imageSize, 0, 0);
      await expectRedraw(page, () => page.mouse.click(again.x, again.y));
      expect(viewParams(page).get("token")).toBe(String(m.regions[0]!.tokens[0]));
    },
    TIMEOUT,
  );

  test(
    "the token panel shows a tile label as a special token and names its role",
    async () => {
      const m = meta();
      await openViewer(page, server.url, `sample=sample_tiled&token=${m.seqLen - 1}`);
      const label = m.tokens.find((t) => t.layout === "tile_label")!;
      const box = await page.evaluate((t) => (window as unknown as { vav: { tokenBox(t: number): { x: number; y: number; w: number; h: number } } }).vav.tokenBox(t), label.id);
      await page.mouse.move(box.x + box.w / 2, box.y + box.h / 2);
      await expect.poll(() => page.locator("#tooltip").textContent()).toContain(`"<row_1_col_1>" · #${label.id} · special (tile label)`);
    },
    TIMEOUT,
  );
});

describe("tiles and thumbnail side by side", () => {
  test(
    "a click on a patch of either half selects its token, and each half's cells take their tokens' colours",
    async () => {
      const m = readSampleMeta(dataDir, "sample_tiled");
      await openViewer(page, server.url, `sample=sample_tiled&token=${m.seqLen - 1}&palette=viridis&opacity=1`);
      await expectRedraw(page, () => page.locator("#region-view").selectOption("both"));
      const [left, right] = [page.locator("#image-wrap img").nth(0), page.locator("#image-wrap img").nth(1)];
      expect(await right.getAttribute("src")).toBe(await left.getAttribute("src"));
      const [leftBox, rightBox] = [(await left.boundingBox())!, (await right.boundingBox())!];
      expect(rightBox.x).toBeGreaterThan(leftBox.x + leftBox.width);
      expect(await page.locator("#image-legend").getAttribute("aria-label")).toContain("tiles' (left) and global thumbnail's (right)");
      const values = (await shownValues(page))!;
      const [tile, thumbnail] = [m.regions[4]!, m.regions[6]!];
      const known = [
        { region: tile, pane: 0, row: 2, col: 3, label: "tile 5 of 6 · patch row 2, col 3" },
        { region: thumbnail, pane: 1, row: 1, col: 2, label: "global thumbnail · patch row 1, col 2" },
      ];
      const overlay = (await page.locator("#image-overlay").boundingBox())!;
      const fractions: number[][] = [];
      for (const { region, pane, row, col } of known) {
        const token = region.tokens[row * region.cols + col]!;
        const centre = await paneCellCentre(page, region, m.imageSize, pane, row, col);
        expect(await overlayPixelAt(centre)).toEqual(await expectedColour(values[token]!, "viridis"));
        fractions.push([(centre.x - overlay.x) / overlay.width, (centre.y - overlay.y) / overlay.height]);
      }
      for (const { png, view } of await exportedAndShown(fractions)) expect(png).toEqual(view); // the export holds both halves
      for (const { region, pane, row, col, label } of known) {
        const centre = await paneCellCentre(page, region, m.imageSize, pane, row, col);
        await page.mouse.move(centre.x, centre.y);
        await expect.poll(() => page.locator("#tooltip").textContent()).toContain(label);
        await expectRedraw(page, () => page.mouse.click(centre.x, centre.y));
        expect(viewParams(page).get("token")).toBe(String(region.tokens[row * region.cols + col]));
      }
    },
    TIMEOUT,
  );
});

describe("colour bar, top-k and export on a tiled sample", () => {
  const fmt = (v: number) => (v === 0 ? "0" : v.toPrecision(4));
  const imageLegend = () => page.locator("#image-legend").getAttribute("aria-label").then((label) => label ?? "");

  test(
    "the image bar's numbers are the min and max over the drawn regions' tokens, for the tiles and for the thumbnail",
    async () => {
      const m = readSampleMeta(dataDir, "sample_tiled");
      const last = m.seqLen - 1;
      const row = referenceVector(sampleFile(dataDir, "sample_tiled", "attn_mean_layer_00.bin"), m.seqLen, 0, last, "row");
      const over = (regions: ImageRegion[]) => {
        const picked = regions.flatMap((r) => r.tokens.map((t) => row[t]!));
        return `shown min ${fmt(Math.min(...picked))} · max ${fmt(Math.max(...picked))}`;
      };
      await openViewer(page, server.url, `sample=sample_tiled&token=${last}`);
      await expect.poll(imageLegend).toContain(over(m.regions.slice(0, 6)));
      expect(await imageLegend()).toContain("tiles' image tokens");
      await expectRedraw(page, () => page.locator("#region-view").selectOption("global"));
      await expect.poll(imageLegend).toContain(over([m.regions[6]!]));
    },
    TIMEOUT,
  );

  test(
    "top-k names a patch by its tile, and a click selects that token",
    async () => {
      const m = readSampleMeta(dataDir, "sample_tiled");
      await openViewer(page, server.url, `sample=sample_tiled&token=${m.seqLen - 1}`);
      const buttons = page.locator("#top-k-list button");
      const shown = await buttons.evaluateAll((all) => all.map((b) => ({ index: Number((b as HTMLElement).dataset["index"]), text: b.textContent ?? "" })));
      const patch = shown.findIndex((s) => m.tokens[s.index]!.type === "image");
      expect(patch).toBeGreaterThanOrEqual(0);
      const token = m.tokens[shown[patch]!.index]!;
      const region = m.regions[token.region!]!;
      const name = region.kind === "tile" ? `tile ${m.regions.filter((r) => r.kind === "tile").indexOf(region) + 1} of 6` : "global thumbnail";
      expect(shown[patch]!.text).toContain(`${name} patch ${token.gridPos![0]},${token.gridPos![1]}`);
      await expectRedraw(page, () => buttons.nth(patch).click());
      expect(viewParams(page).get("token")).toBe(String(token.id));
    },
    TIMEOUT,
  );

  test(
    "an exported PNG's overlay equals the view's at every cell of every drawn tile",
    async () => {
      const m = readSampleMeta(dataDir, "sample_tiled");
      await openViewer(page, server.url, `sample=sample_tiled&token=${m.seqLen - 1}&palette=viridis&opacity=1`);
      const cells = m.regions.slice(0, 6).flatMap((r) =>
        Array.from({ length: r.rows * r.cols }, (_, k) => [
          (r.rect[0] + ((k % r.cols) + 0.5) * (r.rect[2] / r.cols)) / m.imageSize[0],
          (r.rect[1] + (Math.floor(k / r.cols) + 0.5) * (r.rect[3] / r.rows)) / m.imageSize[1],
        ]),
      );
      const compared = await exportedAndShown(cells);
      expect(compared).toHaveLength(6 * 16);
      for (const cell of compared) expect(cell.png).toEqual(cell.view);
      expect(new Set(compared.map((c) => c.view.join())).size).toBeGreaterThan(1);
    },
    TIMEOUT,
  );
});

describe("a sample of two images", () => {
  test(
    "the picker shows the second image, whose patches select its own tokens",
    async () => {
      const m = readSampleMeta(dataDir, "sample_two_images");
      await openViewer(page, server.url, `sample=sample_two_images&token=${m.seqLen - 1}`);
      await expect.poll(() => page.locator("#image-pick").isVisible()).toBe(true);
      await expectRedraw(page, () => page.locator("#image-pick").selectOption("1"));
      await expect.poll(() => page.locator("#image").getAttribute("src")).toContain("image_1.png");
      const second = m.regions.filter((r) => r.image === 1);
      await expectOverlayFollowsValues(m, second.slice(0, 6));
      const tile = second[5]!; // the last of its 3 × 2 tiles: [64, 128, 64, 64]
      expect(tile.rect).toEqual([64, 128, 64, 64]);
      const centre = await cellCentre(tile, m.images[1]!.size, 3, 0);
      await expectRedraw(page, () => page.mouse.click(centre.x, centre.y));
      expect(viewParams(page).get("token")).toBe(String(tile.tokens[3 * 4]));
    },
    TIMEOUT,
  );

  test(
    "the image and its region view live in the URL: a link reopens them, Back and Forward step through them",
    async () => {
      const m = readSampleMeta(dataDir, "sample_two_images");
      const shown = async () => ({
        src: (await page.locator("#image").getAttribute("src")) ?? "",
        pick: await page.locator("#image-pick").inputValue(),
        regions: await page.locator("#region-view").inputValue(),
        panes: await page.locator("#image-wrap img:visible").count(),
      });
      await openViewer(page, server.url, `sample=sample_two_images&token=${m.seqLen - 1}&image=1&regions=both`);
      expect(await shown()).toMatchObject({ pick: "1", regions: "both", panes: 2 });
      expect((await shown()).src).toContain("image_1.png");
      await expectRedraw(page, () => page.locator("#image-pick").selectOption("0"));
      expect([viewParams(page).get("image"), viewParams(page).get("regions")]).toEqual([null, "both"]);
      expect((await shown()).src).toMatch(/\/image\.png$/);
      await expectRedraw(page, () => page.locator("#region-view").selectOption("global"));
      expect(await shown()).toMatchObject({ pick: "0", regions: "global", panes: 1 });
      await expectRedraw(page, () => page.goBack());
      expect(await shown()).toMatchObject({ pick: "0", regions: "both", panes: 2 });
      await expectRedraw(page, () => page.goBack());
      expect(await shown()).toMatchObject({ pick: "1", regions: "both", panes: 2 });
      expect((await shown()).src).toContain("image_1.png");
      await expectRedraw(page, () => page.goForward());
      expect((await shown()).src).toMatch(/\/image\.png$/);
      await openViewer(page, server.url, `sample=sample_two_images&token=${m.seqLen - 1}&image=7&regions=wide`);
      expect(await page.locator("#error").isHidden()).toBe(true);
      expect(await shown()).toMatchObject({ pick: "0", regions: "tiles", panes: 1 });
    },
    TIMEOUT,
  );
});

describe("a grid cut from a padded image", () => {
  /** The overlay's RGBA at a point of the image, in the image's own coordinates (one pane). */
  const pixelOnImage = (x: number, y: number, size: [number, number]) =>
    page.evaluate(
      ({ x, y, size }) => {
        const canvas = document.getElementById("image-overlay") as HTMLCanvasElement;
        const [px, py] = [Math.floor((x / size[0]) * canvas.width), Math.floor((y / size[1]) * canvas.height)];
        return Array.from(canvas.getContext("2d")!.getImageData(px, py, 1, 1).data);
      },
      { x, y, size },
    );

  test(
    "the top and bottom rows draw only their part over the image, cut where the padded grid puts them",
    async () => {
      const m = readSampleMeta(dataDir, "sample_padded");
      const size = m.images[0]!.size;
      await openViewer(page, server.url, `sample=sample_padded&token=${m.seqLen - 1}&palette=viridis&opacity=1`);
      const grid = m.regions[1]!; // 8 × 12 cells of 16 px from y = -4: row 0 shows y 0..12, row 7 shows y 108..120
      expect(grid.rect).toEqual([0, -4, 192, 128]);
      const values = (await shownValues(page))!;
      const colour = (row: number, col: number) => expectedColour(values[grid.tokens[row * 12 + col]!]!, "viridis");
      for (const col of [0, 5, 11]) {
        const x = col * 16 + 8;
        expect(await pixelOnImage(x, 0, size)).toEqual(await colour(0, col)); // the image's first pixel row
        expect(await pixelOnImage(x, 10.5, size)).toEqual(await colour(0, col));
        expect(await pixelOnImage(x, 13.5, size)).toEqual(await colour(1, col)); // row 1 starts at 12, not 15
        expect(await pixelOnImage(x, 106.5, size)).toEqual(await colour(6, col));
        expect(await pixelOnImage(x, 109.5, size)).toEqual(await colour(7, col));
        expect(await pixelOnImage(x, size[1] - 0.01, size)).toEqual(await colour(7, col)); // its last pixel row
      }
      const [overlay, image] = [(await page.locator("#image-overlay").boundingBox())!, (await page.locator("#image").boundingBox())!];
      expect(overlay).toEqual(image); // the overlay, and so whatever it draws, lies on the image alone
      const edges = [0, 10.5, 13.5, 109.5, size[1] - 0.5].map((y) => [(5 * 16 + 8) / size[0], y / size[1]]);
      for (const { png, view } of await exportedAndShown(edges)) expect(png).toEqual(view); // the export draws the same
    },
    TIMEOUT,
  );

  test(
    "a press near the image's top edge selects the top row's token; side by side nothing is drawn between the copies",
    async () => {
      const m = readSampleMeta(dataDir, "sample_padded");
      const size = m.images[0]!.size;
      const grid = m.regions[1]!;
      await openViewer(page, server.url, `sample=sample_padded&token=${m.seqLen - 1}`);
      const box = (await page.locator("#image").boundingBox())!;
      const at = (x: number, y: number) => ({ x: box.x + (x / size[0]) * box.width, y: box.y + (y / size[1]) * box.height });
      const top = at(3 * 16 + 8, 1);
      await page.mouse.move(top.x, top.y);
      await expect.poll(() => page.locator("#tooltip").textContent()).toContain("patch row 0, col 3");
      await expectRedraw(page, () => page.mouse.click(top.x, top.y));
      expect(viewParams(page).get("token")).toBe(String(grid.tokens[3]));
      const bottom = at(9 * 16 + 8, size[1] - 1);
      await expectRedraw(page, () => page.mouse.click(bottom.x, bottom.y));
      expect(viewParams(page).get("token")).toBe(String(grid.tokens[7 * 12 + 9]));
      await expectRedraw(page, () => page.locator("#region-view").selectOption("both"));
      const gap = await page.evaluate(() => {
        const canvas = document.getElementById("image-overlay") as HTMLCanvasElement;
        const [left, right] = Array.from(document.querySelectorAll("#image-wrap img")).map((img) => img.getBoundingClientRect());
        const box = canvas.getBoundingClientRect();
        const toCanvas = (x: number) => ((x - box.left) / box.width) * canvas.width;
        const [x0, x1] = [Math.ceil(toCanvas(left!.right)), Math.floor(toCanvas(right!.left))];
        const data = canvas.getContext("2d")!.getImageData(x0, 0, Math.max(1, x1 - x0), canvas.height).data;
        return { width: x1 - x0, painted: data.filter((_, i) => i % 4 === 3 && data[i]! > 0).length };
      });
      expect(gap.width).toBeGreaterThan(0);
      expect(gap.painted).toBe(0);
    },
    TIMEOUT,
  );

  test(
    "a top head's map draws the overhanging grid on its own rect: each cell is flat over its on-image part",
    async () => {
      await openViewer(page, server.url, "sample=sample_padded_grid&palette=viridis&opacity=1");
      await expect.poll(() => page.locator(".head-map canvas").count()).toBeGreaterThan(0);
      // Each cell's first and last pixel rows over the image: cell r covers y 16r - 4 to 16r + 12 of the 120.
      const cells = await page.locator(".head-map canvas").first().evaluate((node) => {
        const canvas = node as HTMLCanvasElement; // the whole 192 × 120 image at the map's size
        const ctx = canvas.getContext("2d")!;
        const at = (x: number, y: number) => ctx.getImageData(Math.floor((x / 192) * canvas.width), Math.floor((y / 120) * canvas.height), 1, 1).data.join();
        return Array.from({ length: 8 * 12 }, (_, k) => {
          const [row, col] = [Math.floor(k / 12), k % 12];
          const [top, bottom] = [Math.max(0, 16 * row - 4) + 1, Math.min(120, 16 * row + 12) - 1];
          return { first: at(col * 16 + 8, top), last: at(col * 16 + 8, bottom) };
        });
      });
      // A map squashed onto the image (cells of 15 px from 0) would split the cells of rows 1 to 6 between two rows.
      for (const cell of cells) expect(cell.last).toBe(cell.first);
      expect(new Set(cells.map((cell) => cell.first)).size).toBeGreaterThan(1);
    },
    TIMEOUT,
  );
});
