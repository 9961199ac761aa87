// The viewer readable at a glance, in real Chromium over the fixture sample
// (N=40, 2 layers, 3 heads, image tokens 4..24 as 3 × 7; sinks: token 0 and the
// special tokens): colour bars, scale modes, the masked look, top-k, exports,
// and the fixes found by a new user. Each expected number is computed here from
// the sample's files.
import { cp, mkdtemp, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { closeSession, openSession, type RunningServer } from "./harness";
import { expectRedraw, openViewer, readSampleMeta, referenceVector, sampleFile, shownValues, tokenBox, viewParams } from "./viewer-page";

const FIXTURE = path.resolve(import.meta.dirname, "../../../fixtures/sample_tiny");
const N = 40;
const GRID = { rows: 3, cols: 7, start: 4, end: 24 };
const TIMEOUT = 30_000;

let dataDir: string;
let server: RunningServer;
let browser: Browser;
let page: Page;
let sinks: boolean[];

async function copyFixture(name: string, editMeta?: (meta: Record<string, unknown>) => void): Promise<string> {
  const dir = path.join(dataDir, name);
  await cp(FIXTURE, dir, { recursive: true });
  if (editMeta) {
    const file = path.join(dir, "meta.json");
    const meta = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
    editMeta(meta);
    await writeFile(file, JSON.stringify(meta));
  }
  return dir;
}

/** A copy whose head-mean file of layer 0 holds NaN at [39, 30] and +Inf at [39, 31]. */
async function withNonFinite(): Promise<void> {
  const file = path.join(await copyFixture("non_finite"), "attn_mean_layer_00.bin");
  const bytes = await readFile(file);
  bytes.writeUInt16LE(0x7e00, (39 * N + 30) * 2);
  bytes.writeUInt16LE(0x7c00, (39 * N + 31) * 2);
  await writeFile(file, bytes);
}

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "vav-readable-"));
  await copyFixture("sample_tiny");
  await copyFixture("huge_heads", (meta) => (meta["num_heads"] = 1_000_000_000));
  await withNonFinite();
  sinks = readSampleMeta(dataDir, "sample_tiny").tokens.map((t, i) => i === 0 || t.type === "special");
  ({ server, browser } = await openSession(dataDir));
}, 60_000);

afterAll(() => closeSession({ server, browser, dataDir }));

beforeEach(async () => {
  page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
});

afterEach(async () => {
  await page.close();
});

const meanFile = (layer: number) => sampleFile(dataDir, "sample_tiny", `attn_mean_layer_0${layer}.bin`);
const maxFile = (layer: number) => sampleFile(dataDir, "sample_tiny", `attn_max_layer_0${layer}.bin`);
const fmt = (v: number) => (v === 0 ? "0" : v.toPrecision(4));

/** Min and max of vector[from..to] where keep(j). */
function range(vector: number[], from: number, to: number, keep: (j: number) => boolean = () => true): [number, number] {
  const picked = vector.slice(from, to + 1).filter((_, k) => keep(from + k));
  return [Math.min(...picked), Math.max(...picked)];
}

function legend(page: Page, id: "image-legend" | "token-legend"): Promise<string> {
  return page.locator(`#${id}`).getAttribute("aria-label").then((label) => label ?? "");
}

/** The pixel of a canvas at CSS position (x, y) inside it. */
function pixelAt(page: Page, id: string, x: number, y: number): Promise<number[]> {
  return page.evaluate(
    ([canvasId, px, py]) => {
      const canvas = document.getElementById(canvasId as string) as HTMLCanvasElement;
      const ratio = canvas.width / canvas.clientWidth;
      return Array.from(canvas.getContext("2d")!.getImageData(Math.floor((px as number) * ratio), Math.floor((py as number) * ratio), 1, 1).data);
    },
    [id, x, y] as const,
  );
}

/** A pixel of a token's cell, right of its text: the background alone. */
async function tokenBackground(page: Page, token: number): Promise<number[]> {
  const box = await tokenBox(page, token);
  const canvas = (await page.locator("#tokens").boundingBox())!;
  return pixelAt(page, "tokens", box.x - canvas.x + box.w - 1, box.y - canvas.y + box.h / 2);
}

async function tooltipOver(page: Page, x: number, y: number): Promise<string> {
  await page.mouse.move(x, y);
  await expect.poll(() => page.locator("#tooltip").isVisible()).toBe(true);
  return (await page.locator("#tooltip").textContent()) ?? "";
}

describe("colour bars and scale modes", () => {
  test("each bar's numbers are the min and max of the vector its panel shows", async () => {
    await openViewer(page, server.url, "sample=sample_tiny&token=30");
    const row = referenceVector(meanFile(0), N, 0, 30, "row");
    const [tokenLo, tokenHi] = range(row, 0, 30, (j) => !sinks[j]); // token 30 sees 0..30
    const tokens = await legend(page, "token-legend");
    expect(tokens).toContain(`shown min ${fmt(tokenLo)} · max ${fmt(tokenHi)}`);
    expect(tokens).toContain(`${fmt(tokenLo)} to ${fmt(tokenHi)}`); // per view: the scale is the shown range
    expect(tokens).toContain("sinks left out");
    expect(tokens).toContain("masked (causal mask): 9");
    const [imageLo, imageHi] = range(row, GRID.start, GRID.end);
    expect(await legend(page, "image-legend")).toContain(`shown min ${fmt(imageLo)} · max ${fmt(imageHi)}`);
  }, TIMEOUT);

  test("absolute spans 0 to 1, shared spans 0 to the max over every layer and head, log is named; all kept in the URL", async () => {
    await openViewer(page, server.url, "sample=sample_tiny&token=30&scale=absolute");
    expect(await legend(page, "token-legend")).toContain("| 0 to 1.000 |");
    await expectRedraw(page, () => page.locator("#scale").selectOption("shared"));
    expect(viewParams(page).get("scale")).toBe("shared");
    const rows = [0, 1].map((layer) => referenceVector(maxFile(layer), N, 0, 30, "row"));
    const sharedHi = Math.max(...rows.map((row) => range(row, 0, 30, (j) => !sinks[j])[1]));
    const shared = await legend(page, "token-legend");
    expect(shared).toContain(`0 to ${fmt(sharedHi)} |`);
    expect(shared).toContain("shared over layers 0–1 × all 3 heads");
    await expectRedraw(page, () => page.locator("#scale").selectOption("log"));
    expect(await legend(page, "token-legend")).toContain("scale: log");
  }, TIMEOUT);

  test("masked cells look the same in every palette, on the tokens and on the image", async () => {
    const looks = [];
    for (const palette of ["blue", "viridis", "hot"]) {
      await openViewer(page, server.url, `sample=sample_tiny&token=2&palette=${palette}`); // token 2 sees neither the image nor token 30
      const overlay = (await page.locator("#image-overlay").boundingBox())!;
      looks.push({ token: await tokenBackground(page, 30), image: await pixelAt(page, "image-overlay", overlay.width / 2, overlay.height / 2) });
      expect(await legend(page, "image-legend")).toContain("masked (causal mask): 21");
    }
    expect(looks[1]).toEqual(looks[0]);
    expect(looks[2]).toEqual(looks[0]);
    const [r, g, b] = looks[0]!.token;
    expect(r === g && g === b).toBe(true); // grey, not a palette colour
  }, TIMEOUT);

  test("NaN and Inf in the file are counted on the bar and named in the tooltip", async () => {
    await openViewer(page, server.url, "sample=non_finite&token=39");
    expect(await legend(page, "token-legend")).toContain("NaN/Inf values: 2");
    const box = await tokenBox(page, 30);
    expect(await tooltipOver(page, box.x + box.w / 2, box.y + box.h / 2)).toContain("NaN in the file");
  }, TIMEOUT);
});

describe("top-k", () => {
  test("lists the largest values of the view, and a click selects one", async () => {
    await openViewer(page, server.url, "sample=sample_tiny&token=39");
    const row = referenceVector(meanFile(0), N, 0, 39, "row");
    const expected = row.map((value, index) => ({ index, value })).filter(({ index }) => !sinks[index]).sort((a, b) => b.value - a.value).slice(0, 10);
    const shown = await page.locator("#top-k-list button").evaluateAll((buttons) =>
      buttons.map((b) => ({ index: Number((b as HTMLElement).dataset["index"]), value: Number((b as HTMLElement).dataset["value"]) })),
    );
    expect(shown.map((s) => s.index)).toEqual(expected.map((e) => e.index));
    shown.forEach((s, k) => expect(s.value).toBeCloseTo(expected[k]!.value, 6));
    const pick = shown[1]!.index;
    await expectRedraw(page, () => page.locator("#top-k-list button").nth(1).click());
    expect(viewParams(page).get("token")).toBe(String(pick));
  }, TIMEOUT);
});

describe("export", () => {
  /** An export of the page's current view, decoded in the page. */
  function exported(page: Page, kind: string, scale: number) {
    return page.evaluate(
      async ([k, s]) => {
        const hook = (window as unknown as { vav: { exportFigure(kind: string, scale: number, tokens: boolean): Promise<{ blob: Blob; imageBox?: { x: number; y: number; w: number; h: number } }> } }).vav;
        const file = await hook.exportFigure(k as string, s as number, true);
        if (k !== "png") return { text: await file.blob.text() };
        const bitmap = await createImageBitmap(file.blob);
        const canvas = Object.assign(document.createElement("canvas"), { width: bitmap.width, height: bitmap.height });
        const ctx = canvas.getContext("2d")!;
        ctx.drawImage(bitmap, 0, 0);
        const box = file.imageBox!;
        const overlay = document.getElementById("image-overlay") as HTMLCanvasElement;
        const view = overlay.getContext("2d")!;
        const cells: { png: number[]; view: number[] }[] = [];
        for (let r = 0; r < 3; r++) {
          for (let c = 0; c < 7; c++) {
            const [fx, fy] = [(c + 0.5) / 7, (r + 0.5) / 3];
            const png = Array.from(ctx.getImageData(Math.floor(box.x + fx * box.w), Math.floor(box.y + fy * box.h), 1, 1).data);
            const shown = Array.from(view.getImageData(Math.floor(fx * overlay.width), Math.floor(fy * overlay.height), 1, 1).data);
            cells.push({ png, view: shown });
          }
        }
        return { width: bitmap.width, height: bitmap.height, box, imageWidth: overlay.clientWidth, cells };
      },
      [kind, scale] as const,
    );
  }

  test("a PNG at 2× decodes at twice the figure's size, and its overlay pixels equal the view's", async () => {
    // Opaque palette and opacity: the exported pixel is then the overlay's own colour.
    await openViewer(page, server.url, "sample=sample_tiny&token=39&palette=viridis&opacity=1");
    const png = (await exported(page, "png", 2)) as { width: number; box: { w: number }; imageWidth: number; cells: { png: number[]; view: number[] }[] };
    expect(png.box.w).toBe(png.imageWidth * 2);
    expect(png.width).toBe((Math.max(360, png.imageWidth) + 16) * 2);
    for (const cell of png.cells) expect(cell.png).toEqual(cell.view);
    const one = (await exported(page, "png", 1)) as { width: number };
    expect(one.width * 2).toBe(png.width);
  }, TIMEOUT);

  test("the SVG parses and holds the caption; CSV and JSON hold the shown vector", async () => {
    await openViewer(page, server.url, "sample=sample_tiny&token=30");
    const svg = ((await exported(page, "svg", 2)) as { text: string }).text;
    const parsed = await page.evaluate((text) => {
      const doc = new DOMParser().parseFromString(text, "image/svg+xml");
      return { error: doc.querySelector("parsererror") !== null, title: doc.querySelector("title")?.textContent, texts: Array.from(doc.querySelectorAll("text"), (t) => t.textContent).join(" ") };
    }, svg);
    expect(parsed.error).toBe(false);
    for (const part of ["synthetic", "Layer 0", "all heads (mean)", '#30 " detail"', "Source→Target"]) {
      expect(parsed.title).toContain(part);
      expect(parsed.texts).toContain(part);
    }
    const json = JSON.parse(((await exported(page, "json", 1)) as { text: string }).text) as { llm: number[]; caption: string };
    expect(json.llm).toEqual(await shownValues(page));
    const csv = ((await exported(page, "csv", 1)) as { text: string }).text.trim().split("\n");
    expect(csv[1]).toBe("vector,index,label,value");
    expect(csv).toHaveLength(2 + N);
    expect(Number(csv[2 + 30]!.split(",").at(-1))).toBeCloseTo(json.llm[30]!, 6);
  }, TIMEOUT);
});

describe("fixes", () => {
  test("the tooltip follows a layer change while the mouse stays still", async () => {
    await openViewer(page, server.url, "sample=sample_tiny&token=39");
    const box = await tokenBox(page, 30);
    const layer0 = referenceVector(meanFile(0), N, 0, 39, "row")[30]!;
    const layer1 = referenceVector(meanFile(1), N, 0, 39, "row")[30]!;
    expect(await tooltipOver(page, box.x + box.w / 2, box.y + box.h / 2)).toContain(`weight ${fmt(layer0)}`);
    await expectRedraw(page, () => page.keyboard.press("ArrowRight"));
    expect(await page.locator("#tooltip").textContent()).toContain(`weight ${fmt(layer1)}`);
  }, TIMEOUT);

  test("Tab moves the focus off a select, and flips the direction only when no control has it", async () => {
    await openViewer(page, server.url, "sample=sample_tiny&token=30");
    await page.locator("#palette").focus();
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => document.activeElement?.id)).not.toBe("palette");
    expect(viewParams(page).get("dir")).toBe("src");
    await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
    await expectRedraw(page, () => page.keyboard.press("Tab"));
    expect(viewParams(page).get("dir")).toBe("tgt");
  }, TIMEOUT);

  test("palette, opacity, scale, sinks, collapse and words go in the URL and come back on reload", async () => {
    await openViewer(page, server.url, "sample=sample_tiny&token=30");
    await page.locator("#palette").selectOption("hot");
    await page.locator("#exclude-sinks").uncheck();
    await page.locator("#collapse-image").uncheck();
    await page.locator("#select-words").uncheck();
    await page.locator("#opacity").fill("0.5");
    const params = viewParams(page);
    expect([params.get("palette"), params.get("nosinks"), params.get("collapse"), params.get("words"), params.get("opacity")]).toEqual(["hot", "0", "0", "0", "0.5"]);
    await openViewer(page, server.url, params.toString());
    expect(await page.locator("#palette").inputValue()).toBe("hot");
    expect(await page.locator("#exclude-sinks").isChecked()).toBe(false);
    expect(await page.locator("#collapse-image").isChecked()).toBe(false);
    expect(await page.locator("#opacity").inputValue()).toBe("0.5");
  }, TIMEOUT);

  test("choosing a layer reduction applies at once, and a reversed range says so", async () => {
    await openViewer(page, server.url, "sample=sample_tiny&token=39");
    await expectRedraw(page, () => page.locator("#layer-reduce").selectOption("mean"));
    const [a, b] = [referenceVector(meanFile(0), N, 0, 39, "row"), referenceVector(meanFile(1), N, 0, 39, "row")];
    const mean = a.map((v, j) => (v + b[j]!) / 2);
    (await shownValues(page))!.forEach((v, j) => expect(v).toBeCloseTo(mean[j]!, 6));
    expect(viewParams(page).get("layerEnd")).toBe("1");
    await openViewer(page, server.url, "sample=sample_tiny&token=39&lreduce=mean&layer=1&layerEnd=0");
    expect(await page.locator("#layer-end-value").textContent()).toBe("0–1 (reversed)");
  }, TIMEOUT);

  test("expanded image cells keep the grid's rows and say their row and column; the image chip gives the total", async () => {
    await openViewer(page, server.url, "sample=sample_tiny&token=39");
    const row = referenceVector(meanFile(0), N, 0, 39, "row");
    const chip = await tokenBox(page, GRID.start);
    const total = row.slice(GRID.start, GRID.end + 1).reduce((s, v) => s + v, 0);
    expect(await tooltipOver(page, chip.x + chip.w / 2, chip.y + chip.h / 2)).toContain(`total attention on the image ${fmt(total)}`);
    await page.locator("#collapse-image").uncheck();
    const [first, below] = [await tokenBox(page, GRID.start), await tokenBox(page, GRID.start + GRID.cols)];
    expect(below.x).toBe(first.x);
    expect(below.y).toBeGreaterThan(first.y);
    const cell = await tokenBox(page, GRID.start + GRID.cols + 2);
    expect(await tooltipOver(page, cell.x + cell.w / 2, cell.y + cell.h / 2)).toContain("image row 1, col 2");
  }, TIMEOUT);

  test("in vision mode the token panel's bar says it shows the LLM, not the vision encoder", async () => {
    await openViewer(page, server.url, "sample=sample_tiny&overlay=vision");
    expect(await legend(page, "token-legend")).toMatch(/Tokens: LLM attention.*not the vision encoder/);
    expect(await legend(page, "image-legend")).toContain("Image: vision encoder");
  }, TIMEOUT);

  test("an error replaces the status line's Loading…", async () => {
    await openViewer(page, server.url, "sample=huge_heads");
    expect(await page.locator("#error").textContent()).toContain("num_heads is 1000000000, beyond this viewer's bound of 1024");
    expect(await page.locator("#status").textContent()).not.toContain("Loading");
  }, TIMEOUT);

  test("a data parameter that is no URL gives one clear message", async () => {
    await openViewer(page, server.url, "data=http://%5B");
    expect(await page.locator("#error").textContent()).toContain("is not a URL");
    expect(await page.locator("#status").textContent()).not.toContain("Loading");
  }, TIMEOUT);

  test("the page has a favicon: no request answers 404", async () => {
    const missing: string[] = [];
    page.on("response", (response) => response.status() === 404 && missing.push(response.url()));
    await openViewer(page, server.url, "sample=sample_tiny");
    const icon = await page.locator('link[rel="icon"]').getAttribute("href");
    expect(icon).toBeTruthy();
    expect((await page.request.get(new URL(icon!, page.url()).href)).status()).toBe(200);
    expect(missing).toEqual([]);
  }, TIMEOUT);
});
