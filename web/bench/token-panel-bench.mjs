// Browser benchmark of the token panel with "Collapse image tokens" off: every token is a
// cell, so at N=8,192 the panel is about 10,000 px tall. The panel's cost does not depend
// on layers or heads, so the sample is a small synthetic one (2 layers × 2 heads).
//
//   cd web && npm run bench:tokens -- [--seq-len 8192] [--clicks 40] [--rounds 3]
//                                     [--work-dir /tmp/vav-token-bench] [--clean]
//
// Prints click latencies (input → vav:draw, and → the next frame) per round of clicks
// spread over the token panel, then PNG exports at 2× of the view with and without the
// whole token strip. No figure is asserted here.
import { spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runnerImport } from "vite";
import { clickLatencies, exportTimes, openViewer } from "./interactions.mjs";

const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const REPO_DIR = path.dirname(WEB_DIR);
const { values: args } = parseArgs({
  options: {
    "seq-len": { type: "string", default: "8192" },
    clicks: { type: "string", default: "40" },
    rounds: { type: "string", default: "3" },
    "work-dir": { type: "string", default: "/tmp/vav-token-bench" },
    clean: { type: "boolean", default: false },
  },
});
const [seqLen, clicks, rounds] = [args["seq-len"], args.clicks, args.rounds].map(Number);
if (![seqLen, clicks, rounds].every((v) => Number.isInteger(v) && v > 0)) fail("--seq-len, --clicks and --rounds take positive integers");

const workDir = path.resolve(args["work-dir"]);
const name = `synth_${seqLen}`;
if (!existsSync(path.join(workDir, name, "meta.json"))) generate();
const { module: harness } = await runnerImport(path.join(WEB_DIR, "test/browser/harness.ts"), { configFile: false, logLevel: "warn" });
const server = await harness.startServer({ dataDir: workDir });
const browser = await harness.launchBrowser();
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await openViewer(page, `${server.url}?sample=${name}`);
  await page.locator("#collapse-image").uncheck();
  const height = await page.locator("#tokens").evaluate((canvas) => canvas.clientHeight);
  console.log(`N=${seqLen}, token canvas ${height} px tall, Chromium headless, ${os.cpus().length} CPUs (load ${os.loadavg()[0].toFixed(1)})`);
  for (let round = 1; round <= rounds; round++) {
    const { draw, frame, missed } = await clickLatencies(page, "#tokens", clicks);
    console.log(`round ${round}: ${draw.length} clicks (${missed} drew nothing): input → draw p50 ${quantile(draw, 0.5)} / p95 ${quantile(draw, 0.95)} ms; → next frame p50 ${quantile(frame, 0.5)} / p95 ${quantile(frame, 0.95)} ms`);
  }
  for (const withTokens of [false, true]) {
    const times = await exportTimes(page, 2, 5, withTokens);
    console.log(`PNG export at 2×${withTokens ? ", with the token strip" : ", image + bar"}: p50 ${quantile(times, 0.5)} / max ${Math.max(...times).toFixed(1)} ms (5 runs)`);
  }
} finally {
  await browser.close();
  await server.close();
  if (args.clean) rmSync(workDir, { recursive: true, force: true });
}

function generate() {
  console.error(`generating ${name} (2 layers × 2 heads)…`);
  const python = process.env.PYTHON ?? path.join(REPO_DIR, ".venv/bin/python");
  const argv = ["-m", "vlm_attention_viz.dev.synthetic", "--output-dir", path.join(workDir, name), "--seq-len", String(seqLen), "--layers", "2", "--heads", "2"];
  const run = spawnSync(python, argv, { stdio: "inherit", env: { ...process.env, PYTHONPATH: REPO_DIR } });
  if (run.status !== 0) fail(`the synthetic generator failed (exit ${run.status ?? run.error})`);
}

function quantile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))].toFixed(1);
}

function fail(message) {
  console.error(`error: ${message}`);
  process.exit(1);
}
