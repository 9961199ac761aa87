// `npm run build` copied beside an output folder works on any static host, and
// `npm run preview` serves the same build with the data plugin.
import { cp, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { buildViewer, launchBrowser, startPythonViewer, startServer, type RunningServer } from "./harness.ts";
import { startStaticHost } from "./static-host.ts";

const FIXTURES = path.resolve(import.meta.dirname, "../../../fixtures");
let tmp: string;
let browser: Browser;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "vav-static-"));
  // The site sits in a sub-folder of the host, so any absolute asset path would break.
  const site = path.join(tmp, "www", "viewer");
  await buildViewer(site);
  await cp(path.join(FIXTURES, "sample_tiny"), path.join(site, "data", "sample_tiny"), { recursive: true });
  await cp(path.join(FIXTURES, "index.json"), path.join(site, "data", "index.json"));
  // A second copy elsewhere on the host, for ?data=.
  await cp(path.join(site, "data"), path.join(tmp, "www", "samples"), { recursive: true });
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await rm(tmp, { recursive: true, force: true });
});

/** Opens `url` and returns the URLs of requests that failed or answered an error status. */
/**
 * Opens url and collects what failed: error statuses, and requests that failed without the same URL being
 * served after all. (Chromium reports concurrent range requests to one file that its cache restarts as
 * net::ERR_ABORTED, then serves them; the app itself never aborts a read.)
 */
async function openCollectingFailures(page: Page, url: string): Promise<() => string[]> {
  const [failed, served, errors]: [string[], Set<string>, string[]] = [[], new Set(), []];
  page.on("requestfailed", (request) => failed.push(request.url()));
  page.on("response", (response) => {
    if (response.status() >= 400) errors.push(`${response.url()} ${response.status()}`);
    else served.add(response.url());
  });
  const response = await page.goto(url, { waitUntil: "load" });
  expect(response?.status()).toBe(200);
  return () => [...errors, ...failed.filter((failure) => !served.has(failure)).map((failure) => `${failure} failed`)];
}

/** Opens the viewer on head 0 (a range of a layer file) and returns the data responses it got. */
async function openViewerOnHead(page: Page, url: string, extraQuery = ""): Promise<{ path: string; status: number }[]> {
  const data: { path: string; status: number }[] = [];
  page.on("response", (response) => {
    const { pathname } = new URL(response.url());
    if (/\.(json|bin)$/.test(pathname)) data.push({ path: pathname, status: response.status() });
  });
  await page.goto(`${url}?${extraQuery}sample=sample_tiny&layer=0&head=0&token=39&dir=src`);
  await page.waitForFunction(() => performance.getEntriesByName("vav:first-heatmap").length > 0 || !document.getElementById("error")!.hidden);
  expect(await page.locator("#error").isHidden()).toBe(true);
  return data;
}

/** A closed range request from the page, as the viewer's worker makes them. */
function fetchRangeInPage(page: Page, url: string, range: string): Promise<{ status: number; bytes: number; contentRange: string | null }> {
  return page.evaluate(
    async ([target, header]) => {
      const res = await fetch(target, { headers: { Range: header } });
      return { status: res.status, bytes: (await res.arrayBuffer()).byteLength, contentRange: res.headers.get("Content-Range") };
    },
    [url, range] as const,
  );
}

describe("the build on a plain static host", () => {
  let host: RunningServer;
  beforeAll(async () => void (host = await startStaticHost(path.join(tmp, "www"))));
  afterAll(async () => host?.close());

  test("index.html and its assets load from a sub-folder", async () => {
    const page = await browser.newPage();
    const failures = await openCollectingFailures(page, `${host.url}viewer/`);
    expect(await page.evaluate(() => document.querySelectorAll("script[type=module]").length)).toBeGreaterThan(0);
    expect(failures()).toEqual([]);
  });

  test("the page reads ./data/index.json and a closed byte range of a layer", async () => {
    const page = await browser.newPage();
    await page.goto(`${host.url}viewer/`);
    const index = await page.evaluate(async () => (await fetch("./data/index.json")).json());
    expect(index).toEqual({ samples: [expect.objectContaining({ name: "sample_tiny", seq_len: 40 })] });
    const head1 = 2 * 40 * 40; // bytes of one head at N = 40
    const range = await fetchRangeInPage(page, "./data/sample_tiny/attn_layer_00.bin", `bytes=${head1}-${2 * head1 - 1}`);
    expect(range).toEqual({ status: 206, bytes: head1, contentRange: `bytes ${head1}-${2 * head1 - 1}/${3 * head1}` });
  });

  test("the viewer draws its first heatmap from ./data/, reading the layer by range", async () => {
    const responses = await openViewerOnHead(await browser.newPage(), `${host.url}viewer/`);
    expect(responses).toContainEqual({ path: "/viewer/data/index.json", status: 200 });
    expect(responses).toContainEqual({ path: "/viewer/data/sample_tiny/attn_layer_00.bin", status: 206 });
  });

  test("?data= points the viewer at a data folder elsewhere on the host", async () => {
    const responses = await openViewerOnHead(await browser.newPage(), `${host.url}viewer/`, "data=../samples/&");
    expect(responses).toContainEqual({ path: "/samples/sample_tiny/attn_layer_00.bin", status: 206 });
    expect(responses.filter((r) => r.path.startsWith("/viewer/data/"))).toEqual([]);
  });
});

describe("npm run preview", () => {
  let preview: RunningServer;
  beforeAll(async () => void (preview = await startServer({ dataDir: FIXTURES, mode: "preview" })), 60_000);
  afterAll(async () => preview?.close());

  test("serves the build and /data/ with byte ranges", async () => {
    const page = await browser.newPage();
    const failures = await openCollectingFailures(page, preview.url);
    const range = await fetchRangeInPage(page, "./data/sample_tiny/attn_mean_layer_01.bin", "bytes=-80");
    expect(range).toEqual({ status: 206, bytes: 80, contentRange: "bytes 3120-3199/3200" });
    expect(failures()).toEqual([]);
  });

  test("the viewer draws its first heatmap from the plugin's /data/", async () => {
    const responses = await openViewerOnHead(await browser.newPage(), preview.url);
    expect(responses).toContainEqual({ path: "/data/sample_tiny/attn_layer_00.bin", status: 206 });
  });
});

describe("the package's own server (vav.show, python -m vlm_attention_viz view)", () => {
  let viewer: RunningServer;
  beforeAll(async () => {
    viewer = await startPythonViewer(path.join(tmp, "www", "samples", "sample_tiny"), path.join(tmp, "www", "viewer"));
  }, 60_000);
  afterAll(async () => viewer?.close());

  test("the viewer draws its first heatmap, reading the layer by range", async () => {
    const page = await browser.newPage();
    const failures: string[] = [];
    page.on("response", (response) => {
      if (response.status() >= 400) failures.push(`${response.url()} ${response.status()}`);
    });
    const data: { path: string; status: number }[] = [];
    page.on("response", (response) => {
      const { pathname } = new URL(response.url());
      if (/\.(json|bin)$/.test(pathname)) data.push({ path: pathname.replace(/\/data\/\w+\//, "/data/KEY/"), status: response.status() });
    });
    await page.goto(`${viewer.url}&layer=0&head=0&token=39&dir=src`);
    await page.waitForFunction(() => performance.getEntriesByName("vav:first-heatmap").length > 0 || !document.getElementById("error")!.hidden);
    expect(await page.locator("#error").isHidden()).toBe(true);
    expect(data).toContainEqual({ path: "/data/KEY/sample_tiny/attn_layer_00.bin", status: 206 });
    expect(failures).toEqual([]);
  });

  test("a suffix range, a range past the end and a hidden path", async () => {
    const page = await browser.newPage();
    await page.goto(viewer.url);
    const data = new URL(viewer.url).searchParams.get("data")!;
    const suffix = await fetchRangeInPage(page, `${data}sample_tiny/attn_mean_layer_01.bin`, "bytes=-80");
    expect(suffix).toEqual({ status: 206, bytes: 80, contentRange: "bytes 3120-3199/3200" });
    const past = await fetchRangeInPage(page, `${data}sample_tiny/attn_mean_layer_01.bin`, "bytes=4000-4100");
    expect(past.status).toBe(416);
    const hidden = await page.evaluate(async (url) => (await fetch(url)).status, `${data}.hidden/meta.json`);
    expect(hidden).toBe(404);
  });
});
