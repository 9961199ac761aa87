// The harness itself: Chromium reaches the dev server and reads the generated sample list.
import { cp, mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import { closeSession, openSession, type RunningServer } from "./harness";

const FIXTURE = path.resolve(import.meta.dirname, "../../../fixtures/sample_tiny");
let dataDir: string;
let server: RunningServer;
let browser: Browser;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "vav-data-"));
  await cp(FIXTURE, path.join(dataDir, "sample_tiny"), { recursive: true });
  ({ server, browser } = await openSession(dataDir));
}, 60_000);

afterAll(() => closeSession({ server, browser, dataDir }));

test("a page on the dev server reads /data/index.json", async () => {
  const page = await browser.newPage();
  await page.goto(server.url);
  const index = await page.evaluate(async () => (await fetch("./data/index.json")).json());
  expect(index).toEqual({
    samples: [
      {
        name: "sample_tiny",
        model: "synthetic",
        prompt: "Describe this image in detail.",
        mode: "prefill",
        seq_len: 40,
        num_layers: 2,
        num_heads: 3,
      },
    ],
  });
});
