// Browser benchmark of the lower views (atlas, top heads' maps, layer curves), the
// rollout row and the first heatmap's profile, on synthetic samples of 36 layers × 32 heads:
//
//   cd web && npm run bench:atlas -- [--sizes 2100,8192] [--work-dir /tmp/vav-atlas-bench]
//                                  [--clicks 20] [--first-runs 5]
//
// Each sample is generated once with `python -m vlm_attention_viz.dev.synthetic --distinct-layers 2`
// (1 at N ≥ 8,192, so that it fits on the disk; the other layers are hard links), then served,
// next to a fresh build of the viewer, by a bare static host (files and byte ranges only), and
// driven in Debian's headless Chromium. Prints the figures as Markdown tables; asserts nothing.
import { spawnSync } from "node:child_process";
import { existsSync, linkSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runnerImport } from "vite";
import { rendererPeakRss, startMemoryMonitor } from "./memory.mjs";

const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const REPO_DIR = path.dirname(WEB_DIR);
const [LAYERS, HEADS] = [36, 32];
const TIMEOUT_MS = 60_000;

const { values: args } = parseArgs({
  options: {
    sizes: { type: "string", default: "2100,8192" },
    "work-dir": { type: "string", default: "/tmp/vav-atlas-bench" },
    clicks: { type: "string", default: "20" },
    "first-runs": { type: "string", default: "5" },
  },
});
const sizes = args.sizes.split(",").map(Number);
const clicks = Number(args.clicks);
const firstRuns = Number(args["first-runs"]);
if (![...sizes, clicks, firstRuns].every((v) => Number.isInteger(v) && v > 0)) fail("--sizes, --clicks and --first-runs take positive integers");

const load = (file) => runnerImport(path.join(WEB_DIR, file), { configFile: false, logLevel: "warn" }).then((m) => m.module);
const [harness, staticHost] = await Promise.all([load("test/browser/harness.ts"), load("test/browser/static-host.ts")]);
const workDir = path.resolve(args["work-dir"]);
const site = path.join(workDir, "site");

try {
  progress("building the viewer");
  await harness.buildViewer(site);
  const samples = sizes.map(ensureSample);
  publish(samples);
  const host = await staticHost.startStaticHost(site);
  try {
    const results = [];
    for (const [i, name] of samples.entries()) results.push({ n: sizes[i], ...(await benchSample(host.url, name)) });
    await printEnvironment();
    printTables(results);
  } finally {
    await host.close();
  }
} catch (error) {
  fail(error instanceof Error ? error.stack ?? error.message : String(error));
}

/** The sample's folder under workDir, generated unless a matching one is there. */
function ensureSample(n) {
  const name = `synth_${n}`;
  const folder = path.join(workDir, name);
  const metaFile = path.join(folder, "meta.json");
  if (existsSync(metaFile)) {
    const meta = JSON.parse(readFileSync(metaFile, "utf8"));
    if (meta.seq_len === n && meta.num_layers === LAYERS && meta.num_heads === HEADS && existsSync(path.join(folder, "rollout.json"))) return name;
    fail(`${folder} exists with another shape or without a rollout; remove it or pick another --work-dir`);
  }
  const distinct = n >= 8192 ? 1 : 2;
  progress(`generating ${name} (${LAYERS}×${HEADS}, ${distinct} distinct layers)`);
  const python = process.env.PYTHON ?? path.join(REPO_DIR, ".venv/bin/python");
  const argv = ["-m", "vlm_attention_viz.dev.synthetic", "--output-dir", folder, "--seq-len", String(n)];
  argv.push("--layers", String(LAYERS), "--heads", String(HEADS), "--distinct-layers", String(distinct));
  const run = spawnSync(python, argv, { stdio: "inherit", env: { ...process.env, PYTHONPATH: REPO_DIR } });
  if (run.status !== 0) fail(`the synthetic generator failed (exit ${run.status ?? run.error})`);
  return name;
}

/** The samples under site/data by hard links (a static host follows no link out of its folder), and their index.json. */
function publish(names) {
  const data = path.join(site, "data");
  const entries = [];
  for (const name of names) {
    const from = path.join(workDir, name);
    const to = path.join(data, name);
    rmSync(to, { recursive: true, force: true });
    mkdirSync(to, { recursive: true });
    for (const file of readdirSync(from)) linkSync(path.join(from, file), path.join(to, file));
    const meta = JSON.parse(readFileSync(path.join(from, "meta.json"), "utf8"));
    entries.push({ name, model: meta.model, prompt: meta.prompt, mode: meta.mode, seq_len: meta.seq_len, num_layers: meta.num_layers, num_heads: meta.num_heads });
  }
  writeFileSync(path.join(data, "index.json"), JSON.stringify({ samples: entries }));
}

async function benchSample(url, name) {
  const meta = JSON.parse(readFileSync(path.join(workDir, name, "meta.json"), "utf8"));
  const after = meta.image_grid.end_idx + 1;
  // Text tokens after the image, spread over the rest of the sequence: each is a new selection.
  const tokens = Array.from({ length: clicks + 1 }, (_, k) => after + 1 + Math.floor((k * (meta.seq_len - after - 2)) / (clicks + 1)));
  const query = (extra) => new URLSearchParams({ sample: name, layer: "0", head: "mean", dir: "src", words: "0", ...extra }).toString();
  progress(`${name}: first heatmap profile`);
  const profile = await firstHeatmapProfile(`${url}?${query({ token: String(tokens[0]) })}`);
  progress(`${name}: atlas, maps and curves for new selections`);
  const lower = await lowerSession(`${url}?${query({ token: String(tokens[0]) })}`, tokens.slice(1));
  progress(`${name}: rollout rows`);
  const rollout = await rolloutSession(`${url}?${query({ token: String(tokens[0]), lreduce: "rollout", layer: "20", layerEnd: "20" })}`, tokens.slice(1));
  return { profile, lower, rollout };
}

/** Fresh contexts: where the time from navigation to the first heatmap goes, after one unmeasured load. */
async function firstHeatmapProfile(url) {
  const browser = await harness.launchBrowser();
  try {
    const runs = [];
    for (let run = 0; run <= firstRuns; run++) {
      const context = await browser.newContext();
      const page = await context.newPage();
      // The worker's reads are in the worker's timeline, not the page's: clock them from the browser's side.
      const reads = { started: [], received: [] };
      context.on("request", (request) => request.url().endsWith(".bin") && reads.started.push(Date.now()));
      context.on("response", (response) => response.url().endsWith(".bin") && reads.received.push(Date.now()));
      await page.goto(url);
      await page.waitForFunction(() => performance.getEntriesByName("vav:first-heatmap").length > 0, undefined, { timeout: TIMEOUT_MS });
      const origin = await page.evaluate(() => performance.timeOrigin);
      const steps = await page.evaluate(() => {
        const mark = (name) => performance.getEntriesByName(name)[0]?.startTime ?? NaN;
        const resources = performance.getEntriesByType("resource");
        const done = (test) => Math.max(...resources.filter((r) => test(r.name)).map((r) => r.responseEnd));
        const [nav] = performance.getEntriesByType("navigation");
        return {
          "document received": nav.responseEnd,
          "scripts and styles loaded": done((n) => /\/assets\/[^/]+\.(js|css)$/.test(n)),
          "index.json received": done((n) => n.endsWith("/index.json")),
          "meta.json received": done((n) => n.endsWith("/meta.json")),
          "meta.json parsed": mark("vav:meta-parsed"),
          "image decoded": mark("vav:image-decoded"),
          "first heatmap drawn": mark("vav:first-heatmap"),
        };
      });
      steps["first .bin read started"] = Math.min(...reads.started) - origin;
      steps["first .bin read answered"] = Math.min(...reads.received) - origin;
      if (run > 0) runs.push(steps);
      await context.close();
    }
    return runs;
  } finally {
    await browser.close();
  }
}

/** In the page: note each pointerdown's time, so a click's latency can be read against the marks. */
function installClickClock(page) {
  return page.evaluate(() => addEventListener("pointerdown", (event) => (window.__vavInput = event.timeStamp), { capture: true }));
}

/** Click token t and wait for the marks named; returns ms from the input to each. */
async function clickToken(page, token, marks) {
  const box = await page.evaluate((t) => window.vav.tokenBox(t), token);
  await page.mouse.click(box.x + box.w / 2, box.y + box.h / 2);
  const handle = await page.waitForFunction(
    (names) => {
      const at = window.__vavInput;
      const found = names.map((n) => performance.getEntriesByName(n).find((m) => m.startTime >= at));
      return found.every(Boolean) && found.map((m) => m.startTime - at);
    },
    marks,
    { timeout: TIMEOUT_MS },
  );
  return handle.jsonValue();
}

/** One tab, a new token per click: input → atlas grid + top-16 maps, and → curves; the first click is the cold one. */
async function lowerSession(url, tokens) {
  const browser = await harness.launchBrowser();
  try {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1400 } });
    const monitor = await startMemoryMonitor(page);
    await page.goto(url);
    await page.waitForFunction(() => performance.getEntriesByName("vav:atlas").length > 0, undefined, { timeout: TIMEOUT_MS });
    await installClickClock(page);
    const atlas = [];
    const curves = [];
    for (const token of tokens) {
      const [a, c] = await clickToken(page, token, ["vav:atlas", "vav:curves"]);
      atlas.push(a);
      curves.push(c);
    }
    progress("PNG export of the atlas at 2×");
    const atlasPng = await page.evaluate(async () => {
      const times = [];
      for (let run = 0; run < 5; run++) {
        const start = performance.now();
        await window.vav.exportAtlas(2);
        times.push(performance.now() - start);
      }
      return times;
    });
    const memory = await monitor.stop();
    return { atlas, curves, atlasPng, memory: { ...memory, rendererPeakRss: rendererPeakRss() } };
  } finally {
    await browser.close();
  }
}

/** The rollout as the layer reduction: input → the view's row of R_20 drawn, a new token per click. */
async function rolloutSession(url, tokens) {
  const browser = await harness.launchBrowser();
  try {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1400 } });
    await page.goto(url);
    await page.waitForFunction(() => performance.getEntriesByName("vav:first-heatmap").length > 0, undefined, { timeout: TIMEOUT_MS });
    const status = await page.locator("#status").textContent();
    if (!status.includes("rollout")) throw new Error(`the view does not show the rollout: ${status}`);
    await installClickClock(page);
    const rows = [];
    for (const token of tokens) rows.push((await clickToken(page, token, ["vav:draw"]))[0]);
    return rows;
  } finally {
    await browser.close();
  }
}

async function printEnvironment() {
  const browser = await harness.launchBrowser();
  const version = browser.version();
  await browser.close();
  const loadAvg = os.loadavg().map((l) => l.toFixed(1)).join(" ");
  console.log(`Chromium ${version} (headless, --disable-gpu), ${os.cpus().length} CPUs (load ${loadAvg}), Node ${process.version}, built app on a bare static host\n`);
}

function printTables(all) {
  const p = (values, q) => percentile(values, q).toFixed(1);
  const spread = (values) => `${p(values, 50)} / ${p(values, 95)} / ${Math.max(...values).toFixed(1)}`;
  const rows = [
    ["atlas grid + top-16 maps, first new selection of the tab (cold) (ms)", (r) => r.lower.atlas[0].toFixed(1)],
    ["atlas grid + top-16 maps, later new selections (warm), p50 / p95 / max (ms)", (r) => spread(r.lower.atlas.slice(1))],
    ["layer curves, new selection, p50 / p95 / max (ms)", (r) => spread(r.lower.curves)],
    ["rollout row (R_20), new selection: input → draw, p50 / p95 / max (ms)", (r) => spread(r.rollout)],
    ["atlas PNG at 2×, p50 / max (ms)", (r) => `${p(r.lower.atlasPng, 50)} / ${Math.max(...r.lower.atlasPng).toFixed(1)}`],
    ["peak JS heap, page + worker, atlas open (MiB)", (r) => mib(r.lower.memory.jsHeap)],
    ["peak ArrayBuffers, page + worker (MiB)", (r) => mib(r.lower.memory.arrayBuffers)],
    ["peak renderer RSS, VmHWM (MiB)", (r) => mib(r.lower.memory.rendererPeakRss)],
  ];
  console.log(`| measure | ${all.map((r) => `N = ${r.n}`).join(" | ")} |`);
  console.log(`|---|${all.map(() => "---").join("|")}|`);
  for (const [label, cell] of rows) console.log(`| ${label} | ${all.map(cell).join(" | ")} |`);
  for (const r of all) {
    console.log(`\nFirst heatmap at N = ${r.n}: ms from navigation start, median of ${r.profile.length} fresh loads (min–max)\n`);
    console.log("| step | median | min–max |\n|---|---|---|");
    const median = (step) => percentile(r.profile.map((run) => run[step]), 50);
    for (const step of Object.keys(r.profile[0]).sort((a, b) => median(a) - median(b))) {
      const values = r.profile.map((run) => run[step]);
      console.log(`| ${step} | ${p(values, 50)} | ${Math.min(...values).toFixed(0)}–${Math.max(...values).toFixed(0)} |`);
    }
  }
}

function percentile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((q / 100) * sorted.length) - 1))];
}

function mib(bytes) {
  return (bytes / 2 ** 20).toFixed(0);
}

function progress(step) {
  console.error(`[${new Date().toISOString().slice(11, 19)}] ${step}`);
}

function fail(message) {
  console.error(`atlas-bench: ${message}`);
  process.exit(1);
}
