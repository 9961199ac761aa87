// Browser benchmark of the viewer on synthetic samples of 36 layers × 32 heads.
//
//   cd web && npm run bench:viewer -- [--sizes 2100,8192] [--work-dir /tmp/vav-bench]
//                                   [--clicks 40] [--cache-mb 512] [--clean]
//
// Generates the samples once with `python -m vlm_attention_viz.dev.synthetic` (reused on later
// runs; --clean deletes them at the end), serves them with the Vite dev server and drives
// Debian's Chromium. Prints the figures as a Markdown table. No figure is asserted here.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, statfsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runnerImport } from "vite";
import { startMemoryMonitor, rendererPeakRss } from "./memory.mjs";
import { clickLatencies, exportTimes, layerSwitch, openViewer, pressKey, waitForNetworkIdle } from "./interactions.mjs";

const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const REPO_DIR = path.dirname(WEB_DIR);
const LAYERS = 36;
const HEADS = 32;
const DISTINCT_LAYERS = 3;

const { values: args } = parseArgs({
  options: {
    sizes: { type: "string", default: "2100,8192" },
    "work-dir": { type: "string", default: "/tmp/vav-bench" },
    clicks: { type: "string", default: "40" },
    "cache-mb": { type: "string", default: "512" },
    "first-runs": { type: "string", default: "3" },
    clean: { type: "boolean", default: false },
  },
});

const sizes = args.sizes.split(",").map(Number);
for (const count of [...sizes, Number(args.clicks), Number(args["cache-mb"]), Number(args["first-runs"])])
  if (!Number.isInteger(count) || count <= 0) fail("--sizes, --clicks, --cache-mb and --first-runs take positive integers");
const { module: harness } = await runnerImport(path.join(WEB_DIR, "test/browser/harness.ts"), { configFile: false, logLevel: "warn" });
const workDir = path.resolve(args["work-dir"]);
try {
  const results = [];
  for (const n of sizes) results.push({ n, ...(await benchSample(ensureSample(n))) });
  await printEnvironment();
  printTable(results);
} catch (error) {
  fail(error instanceof Error ? error.message : String(error));
} finally {
  if (args.clean) rmSync(workDir, { recursive: true, force: true });
}

/** The sample's folder name under workDir, generated unless a matching one is there. */
function ensureSample(n) {
  const name = `synth_${n}`;
  const metaFile = path.join(workDir, name, "meta.json");
  if (existsSync(metaFile)) {
    const meta = JSON.parse(readFileSync(metaFile, "utf8"));
    if (meta.seq_len === n && meta.num_layers === LAYERS && meta.num_heads === HEADS) return name;
    fail(`${path.dirname(metaFile)} exists with another shape; remove it or pick another --work-dir`);
  }
  checkDiskSpace(n);
  console.error(`generating ${name} (${LAYERS}×${HEADS}, ${DISTINCT_LAYERS} distinct layers)…`);
  const python = process.env.PYTHON ?? path.join(REPO_DIR, ".venv/bin/python");
  const argv = ["-m", "vlm_attention_viz.dev.synthetic", "--output-dir", path.join(workDir, name), "--seq-len", String(n)];
  argv.push("--layers", String(LAYERS), "--heads", String(HEADS), "--distinct-layers", String(DISTINCT_LAYERS));
  const run = spawnSync(python, argv, { stdio: "inherit", env: { ...process.env, PYTHONPATH: REPO_DIR } });
  if (run.status !== 0) fail(`the synthetic generator failed (exit ${run.status ?? run.error})`);
  return name;
}

function checkDiskSpace(n) {
  const needed = DISTINCT_LAYERS * (HEADS + 2) * n * n * 2;
  const root = existsSync(workDir) ? workDir : path.dirname(workDir);
  const { bavail, bsize } = statfsSync(root);
  // 20 % headroom: the disk is shared with whatever else runs.
  if (bavail * bsize < needed * 1.2) fail(`N=${n} needs ${gib(needed)} free in ${root}, only ${gib(bavail * bsize)} left`);
}

async function benchSample(name) {
  const meta = JSON.parse(readFileSync(path.join(workDir, name, "meta.json"), "utf8"));
  const query = viewQuery(name, meta);
  // The built app shows what a static host serves; the dev server adds Vite's per-module transforms.
  progress(`${name}: first heatmap, built app`);
  const firstHeatmapBuiltMs = await withServer("preview", (url) => firstHeatmapRuns(`${url}?${query}`));
  return withServer("dev", async (url) => {
    progress(`${name}: first heatmap, dev server`);
    const firstHeatmapDevMs = await firstHeatmapRuns(`${url}?${query}`);
    return { ...(await interactiveSession(`${url}?${query}`, meta)), firstHeatmapBuiltMs, firstHeatmapDevMs };
  });
}

async function withServer(mode, use) {
  const server = await harness.startServer({ dataDir: workDir, mode });
  try {
    return await use(server.url);
  } finally {
    await server.close();
  }
}

/** Layer 0, head mean, the first text token after the image selected: a heatmap from the start. */
function viewQuery(name, meta) {
  const token = meta.image_grid.end_idx + 2;
  return new URLSearchParams({ sample: name, layer: "0", head: "mean", token: String(token), dir: "src", cacheMB: args["cache-mb"] }).toString();
}

/** Fresh pages, after one unmeasured load (Vite transforms modules on first request). */
async function firstHeatmapRuns(url) {
  const browser = await harness.launchBrowser();
  try {
    const times = [];
    for (let run = 0; run <= Number(args["first-runs"]); run++) {
      const context = await browser.newContext();
      const page = await context.newPage();
      const ms = await openViewer(page, url);
      if (run > 0) times.push(ms);
      await context.close();
    }
    return times;
  } finally {
    await browser.close();
  }
}

/** One tab through clicks and layer switches, with its memory watched throughout. */
async function interactiveSession(url, meta) {
  const browser = await harness.launchBrowser();
  try {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    const monitor = await startMemoryMonitor(page);
    await openViewer(page, url);
    await waitForNetworkIdle(page);
    const clicks = Number(args.clicks);
    progress("clicks");
    const tokenSrc = await clickLatencies(page, "#tokens", clicks);
    const overlay = await clickLatencies(page, "#image-overlay", clicks);
    await pressKey(page, "Tab");
    const tokenTgt = await clickLatencies(page, "#tokens", clicks);
    progress("layer switches");
    const warm = await layerSwitch(page, "warm", [1, 2, 3, 4, 5]);
    const cold = await layerSwitch(page, "cold", [12, 18, 24, 30, 35].filter((l) => l < meta.num_layers));
    progress("PNG exports at 2×");
    const png2x = await exportTimes(page, 2, 5, false);
    const png2xTokens = await exportTimes(page, 2, 5, true);
    const memory = await monitor.stop();
    return { tokenSrc, overlay, tokenTgt, warm, cold, png2x, png2xTokens, memory: { ...memory, rendererPeakRss: rendererPeakRss() } };
  } finally {
    await browser.close();
  }
}

async function printEnvironment() {
  const browser = await harness.launchBrowser();
  const version = browser.version();
  await browser.close();
  const load = os.loadavg().map((l) => l.toFixed(1)).join(" ");
  console.log(`Chromium ${version} (headless, --disable-gpu), ${os.cpus().length} CPUs (load ${load}), ${gib(os.totalmem())} RAM, Node ${process.version}, cacheMB=${args["cache-mb"]}\n`);
}

function printTable(all) {
  const p = (values, q) => (values.length ? percentile(values, q).toFixed(1) : "n/a");
  const rows = [
    ["time to first heatmap, built app, median (runs) (ms)", (r) => `${p(r.firstHeatmapBuiltMs, 50)} (${r.firstHeatmapBuiltMs.map((t) => t.toFixed(0)).join(", ")})`],
    ["time to first heatmap, dev server, median (runs) (ms)", (r) => `${p(r.firstHeatmapDevMs, 50)} (${r.firstHeatmapDevMs.map((t) => t.toFixed(0)).join(", ")})`],
    ...[["tokenSrc", "token click, Source→Target"], ["overlay", "image patch click"], ["tokenTgt", "token click, Target←Source"]].flatMap(([key, label]) => [
      [`${label}: input → draw, p50 / p95 (ms)`, (r) => `${p(r[key].draw, 50)} / ${p(r[key].draw, 95)}`],
      [`${label}: input → next frame, p50 / p95 (ms)`, (r) => `${p(r[key].frame, 50)} / ${p(r[key].frame, 95)} (${r[key].frame.length} draws, ${r[key].missed} no redraw)`],
    ]),
    ["layer switch warm (→ key), p50 / max (ms)", (r) => `${p(r.warm, 50)} / ${Math.max(...r.warm).toFixed(1)}`],
    ["layer switch cold (slider jump), p50 / max (ms)", (r) => `${p(r.cold, 50)} / ${Math.max(...r.cold).toFixed(1)}`],
    ["PNG export at 2×, image + bar, p50 / max (ms)", (r) => `${p(r.png2x, 50)} / ${Math.max(...r.png2x).toFixed(1)}`],
    ["PNG export at 2×, with the token strip, p50 / max (ms)", (r) => `${p(r.png2xTokens, 50)} / ${Math.max(...r.png2xTokens).toFixed(1)}`],
    ["peak JS heap, page + worker (MiB)", (r) => mib(r.memory.jsHeap)],
    ["peak ArrayBuffers, page + worker (MiB)", (r) => mib(r.memory.arrayBuffers)],
    ["peak renderer RSS, VmHWM (MiB)", (r) => mib(r.memory.rendererPeakRss)],
  ];
  console.log(`| measure | ${all.map((r) => `N = ${r.n}`).join(" | ")} |`);
  console.log(`|---|${all.map(() => "---").join("|")}|`);
  for (const [label, cell] of rows) console.log(`| ${label} | ${all.map(cell).join(" | ")} |`);
}

function percentile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((q / 100) * sorted.length) - 1)];
}

function mib(bytes) {
  return (bytes / 2 ** 20).toFixed(0);
}

function gib(bytes) {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}

function progress(step) {
  console.error(`[${new Date().toISOString().slice(11, 19)}] ${step}`);
}

function fail(message) {
  console.error(`viewer-bench: ${message}`);
  process.exit(1);
}
