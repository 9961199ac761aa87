// Browser benchmark of the vision-encoder overlay on a synthetic sample with vision blocks.
//
//   cd web && node bench/vision-bench.mjs [--seq-len 2100] [--vision-blocks 2] [--clicks 40]
//                                         [--work-dir /tmp/vav-vision-bench] [--clean]
//
// Generates the sample once with `python -m vlm_attention_viz.dev.synthetic --vision-blocks K`
// (reused on later runs), serves it with the Vite dev server, drives Debian's Chromium and
// prints latencies and the bytes the vision files were read with. No figure is asserted here.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runnerImport } from "vite";
import { clickLatencies, openViewer, pressKey, waitForNetworkIdle } from "./interactions.mjs";

const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const REPO_DIR = path.dirname(WEB_DIR);

const { values: args } = parseArgs({
  options: {
    "seq-len": { type: "string", default: "2100" },
    "vision-blocks": { type: "string", default: "2" },
    clicks: { type: "string", default: "40" },
    "work-dir": { type: "string", default: "/tmp/vav-vision-bench" },
    clean: { type: "boolean", default: false },
  },
});
const [seqLen, blocks, clicks] = [args["seq-len"], args["vision-blocks"], args.clicks].map(Number);
if (![seqLen, blocks, clicks].every((v) => Number.isInteger(v) && v > 0)) fail("--seq-len, --vision-blocks and --clicks take positive integers");

const { module: harness } = await runnerImport(path.join(WEB_DIR, "test/browser/harness.ts"), { configFile: false, logLevel: "warn" });
const workDir = path.resolve(args["work-dir"]);
const name = `vision_${seqLen}_${blocks}`;
try {
  const meta = ensureSample();
  const server = await harness.startServer({ dataDir: workDir });
  const browser = await harness.launchBrowser();
  try {
    printTable(meta, await measure(browser, `${server.url}?sample=${name}&overlay=vision`));
  } finally {
    await browser.close();
    await server.close();
  }
} catch (error) {
  fail(error instanceof Error ? error.message : String(error));
} finally {
  if (args.clean) rmSync(workDir, { recursive: true, force: true });
}

function ensureSample() {
  const metaFile = path.join(workDir, name, "meta.json");
  if (!existsSync(metaFile)) {
    console.error(`generating ${name}…`);
    const python = process.env.PYTHON ?? path.join(REPO_DIR, ".venv/bin/python");
    const argv = ["-m", "vlm_attention_viz.dev.synthetic", "--output-dir", path.join(workDir, name), "--seq-len", String(seqLen)];
    argv.push("--layers", "2", "--heads", "2", "--vision-blocks", String(blocks));
    const run = spawnSync(python, argv, { stdio: "inherit", env: { ...process.env, PYTHONPATH: REPO_DIR } });
    if (run.status !== 0) fail(`the synthetic generator failed (exit ${run.status ?? run.error})`);
  }
  return JSON.parse(readFileSync(metaFile, "utf8"));
}

/** The first saliency, patch clicks, block steps and mode toggles, with the vision bytes each phase read. */
async function measure(browser, url) {
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  const read = visionReads(page);
  const firstMs = await openViewer(page, url);
  await waitForNetworkIdle(page);
  const phase = async (run) => {
    const before = read.bytes;
    const latencies = await run();
    return { ...latencies, bytes: read.bytes - before };
  };
  const first = { bytes: read.bytes };
  const patches = await phase(() => clickLatencies(page, "#image-overlay", clicks));
  const steps = await phase(() => keyLatencies(page, "ArrowRight", blocks + 1));
  const toggles = await phase(() => keyLatencies(page, "v", 6));
  return { firstMs, first, patches, steps, toggles };
}

async function keyLatencies(page, key, count) {
  const result = { draw: [], missed: 0 };
  for (let i = 0; i < count; i++) {
    const latency = await pressKey(page, key);
    if (latency.missed) result.missed++;
    else result.draw.push(latency.draw);
  }
  return result;
}

/** Sums the bytes of the Range requests made for vision files. */
function visionReads(page) {
  const read = { bytes: 0 };
  page.on("request", (request) => {
    const range = /^bytes=(\d+)-(\d+)$/.exec(request.headers()["range"] ?? "");
    if (range && /\/vision_[^/]*\.bin$/.test(new URL(request.url()).pathname)) read.bytes += Number(range[2]) - Number(range[1]) + 1;
  });
  return read;
}

function printTable(meta, r) {
  const { rows, cols } = meta.vision.grid;
  const P = meta.vision.seq_len;
  const p = (values, q) => (values.length ? percentile(values, q).toFixed(1) : "n/a");
  console.log(`P = ${P} patches (${rows} × ${cols}), ${meta.vision.blocks.length} blocks × ${meta.vision.num_heads} heads; one head-mean file ${mib(2 * P * P)} MiB\n`);
  console.log("| measure | value |\n|---|---|");
  console.log(`| first heatmap (saliency), navigation → draw (ms) | ${r.firstMs.toFixed(0)} |`);
  console.log(`| vision bytes read for it | ${r.first.bytes} |`);
  for (const [label, m] of [["patch click", r.patches], ["← / → block step", r.steps], ["v toggle", r.toggles]]) {
    console.log(`| ${label}: input → draw, p50 / p95 (ms) | ${p(m.draw, 50)} / ${p(m.draw, 95)} (${m.draw.length} draws, ${m.missed} none) |`);
    console.log(`| ${label}: vision bytes read, total | ${m.bytes} |`);
  }
}

function percentile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((q / 100) * sorted.length) - 1)];
}

function mib(bytes) {
  return (bytes / 2 ** 20).toFixed(0);
}

function fail(message) {
  console.error(`vision-bench: ${message}`);
  process.exit(1);
}
