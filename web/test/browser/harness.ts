// Shared set-up for browser tests and the benchmark's TypeScript callers: a real Vite
// server over a data folder, and Debian's Chromium driven by playwright-core.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { chromium, type Browser } from "playwright-core";
import { build, createServer, mergeConfig, preview, type InlineConfig } from "vite";
import { viewerConfig } from "../../vite.config";

export const CHROMIUM_PATH = "/usr/bin/chromium";
export const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export interface RunningServer {
  url: string; // ends with "/"
  close: () => Promise<void>;
}

/** A Vite dev server, or a preview of a fresh build, on a free loopback port. */
export async function startServer(options: { dataDir: string; mode?: "dev" | "preview" }): Promise<RunningServer> {
  return options.mode === "preview" ? startPreview(options.dataDir) : startDev(options.dataDir);
}

function testConfig(dataDir: string, extra: InlineConfig): InlineConfig {
  const quiet: InlineConfig = { configFile: false, logLevel: "warn", clearScreen: false };
  return mergeConfig(mergeConfig(viewerConfig(path.resolve(dataDir)), quiet), extra);
}

async function startDev(dataDir: string): Promise<RunningServer> {
  // Its own dependency cache: test files run in parallel and would race on node_modules/.vite.
  const cacheDir = await mkdtemp(path.join(os.tmpdir(), "vav-vite-cache-"));
  const server = await createServer(testConfig(dataDir, { cacheDir, server: { host: "127.0.0.1", port: 0 } }));
  await server.listen();
  const { port } = server.httpServer!.address() as AddressInfo;
  const close = async (): Promise<void> => {
    await server.close();
    await rm(cacheDir, { recursive: true, force: true });
  };
  return { url: `http://127.0.0.1:${port}/`, close };
}

/** `npm run build` into `outDir`, quietly. */
export async function buildViewer(outDir: string): Promise<void> {
  await build(testConfig(os.tmpdir(), { build: { outDir, emptyOutDir: true } }));
}

async function startPreview(dataDir: string): Promise<RunningServer> {
  const outDir = await mkdtemp(path.join(os.tmpdir(), "vav-dist-"));
  await buildViewer(outDir);
  const server = await preview(testConfig(dataDir, { build: { outDir }, preview: { host: "127.0.0.1", port: 0 } }));
  const { port } = server.httpServer.address() as AddressInfo;
  const close = async (): Promise<void> => {
    await server.close();
    await rm(outDir, { recursive: true, force: true });
  };
  return { url: `http://127.0.0.1:${port}/`, close };
}

/** Headless Chromium with its XDG folders in a temp dir that goes away with the browser. */
export async function launchBrowser(): Promise<Browser> {
  const xdg = await mkdtemp(path.join(os.tmpdir(), "vav-chromium-"));
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: CHROMIUM_FLAGS,
    env: { ...process.env, XDG_CONFIG_HOME: xdg, XDG_CACHE_HOME: xdg },
  });
  // Synchronous, so the folder is gone before close() resolves and a caller can exit at once.
  browser.on("disconnected", () => rmSync(xdg, { recursive: true, force: true }));
  return browser;
}

export const REPO_DIR = path.resolve(import.meta.dirname, "../../..");

function projectPython(): string {
  const python = process.env.PYTHON ?? path.join(REPO_DIR, ".venv/bin/python");
  if (!existsSync(python)) throw new Error(`no Python at ${python}: run \`make setup\` or set PYTHON`);
  return python;
}

/** Run the project's Python (`make setup`'s venv, or $PYTHON) in the repository, e.g. to write a sample. */
export function runPython(args: string[]): void {
  execFileSync(projectPython(), args, { cwd: REPO_DIR, env: { ...process.env, PYTHONPATH: REPO_DIR }, stdio: "pipe" });
}

/** The package's own viewer server (`python -m vlm_attention_viz view`) on a sample; url is the page it prints. */
export async function startPythonViewer(sample: string, viewerDir: string): Promise<RunningServer> {
  const args = ["-m", "vlm_attention_viz", "view", sample, "--viewer-dir", viewerDir];
  const child = spawn(projectPython(), args, { cwd: REPO_DIR, env: { ...process.env, PYTHONPATH: REPO_DIR } });
  const url = await new Promise<string>((resolve, reject) => {
    let printed = "";
    child.stdout.on("data", (chunk: Buffer) => {
      printed += chunk.toString();
      const found = /viewer at (\S+)/.exec(printed);
      if (found?.[1]) resolve(found[1]);
    });
    child.on("exit", (code) => reject(new Error(`view exited with ${code} before printing its URL`)));
  });
  const close = (): Promise<void> =>
    new Promise((resolve) => {
      child.once("exit", () => resolve());
      child.kill("SIGINT");
    });
  return { url, close };
}

/** A dev server over dataDir and a browser, started together: the set-up of each viewer test file. */
export async function openSession(dataDir: string): Promise<{ server: RunningServer; browser: Browser }> {
  const [server, browser] = await Promise.all([startServer({ dataDir }), launchBrowser()]);
  return { server, browser };
}

/** Undo openSession and remove its data folder; any part may be missing when the set-up failed. */
export async function closeSession(parts: { server?: RunningServer; browser?: Browser; dataDir?: string }): Promise<void> {
  await parts.browser?.close();
  await parts.server?.close();
  if (parts.dataDir) await rm(parts.dataDir, { recursive: true, force: true });
}
