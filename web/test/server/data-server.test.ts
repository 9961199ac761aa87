// The /data/ plugin on a real Vite dev server: byte ranges, HEAD, content types,
// the generated index.json, and refusals of everything outside DATA_DIR.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startServer, type RunningServer } from "../browser/harness.ts";
import { makeDataFixture, SECRET, type DataFixture } from "./fixture-data.ts";
import { request } from "./http.ts";

const LAYER = "/data/sample_tiny/attn_layer_00.bin";
let fixture: DataFixture;
let server: RunningServer;
let layerBytes: Buffer;

beforeAll(async () => {
  fixture = await makeDataFixture();
  server = await startServer({ dataDir: fixture.dataDir });
  layerBytes = await readFile(path.join(fixture.dataDir, "sample_tiny", "attn_layer_00.bin"));
}, 60_000);

afterAll(async () => {
  await server?.close();
  await fixture?.remove();
});

describe("byte ranges", () => {
  test("no Range: 200 with the whole file and range support advertised", async () => {
    const res = await request(server.url, LAYER);
    expect(res.status).toBe(200);
    expect(res.headers["accept-ranges"]).toBe("bytes");
    expect(res.headers["content-type"]).toBe("application/octet-stream");
    expect(res.headers["content-length"]).toBe(String(layerBytes.length));
    expect(res.body.equals(layerBytes)).toBe(true);
  });

  test("closed range: 206 with exactly those bytes", async () => {
    const res = await request(server.url, LAYER, { range: "bytes=100-199" });
    expect(res.status).toBe(206);
    expect(res.headers["content-range"]).toBe(`bytes 100-199/${layerBytes.length}`);
    expect(res.headers["content-length"]).toBe("100");
    expect(res.body.equals(layerBytes.subarray(100, 200))).toBe(true);
  });

  test("closed range past the end is clipped to the file", async () => {
    const size = layerBytes.length;
    const res = await request(server.url, LAYER, { range: `bytes=${size - 4}-${size + 100}` });
    expect(res.status).toBe(206);
    expect(res.headers["content-range"]).toBe(`bytes ${size - 4}-${size - 1}/${size}`);
    expect(res.body.equals(layerBytes.subarray(size - 4))).toBe(true);
  });

  test("open range: 206 from the offset to the end", async () => {
    const size = layerBytes.length;
    const res = await request(server.url, LAYER, { range: `bytes=${size - 10}-` });
    expect(res.status).toBe(206);
    expect(res.headers["content-range"]).toBe(`bytes ${size - 10}-${size - 1}/${size}`);
    expect(res.body.equals(layerBytes.subarray(size - 10))).toBe(true);
  });

  test("suffix range: 206 with the last n bytes", async () => {
    const size = layerBytes.length;
    const res = await request(server.url, LAYER, { range: "bytes=-6" });
    expect(res.status).toBe(206);
    expect(res.headers["content-range"]).toBe(`bytes ${size - 6}-${size - 1}/${size}`);
    expect(res.body.equals(layerBytes.subarray(size - 6))).toBe(true);
  });

  test("suffix longer than the file: 206 with the whole file", async () => {
    const res = await request(server.url, LAYER, { range: `bytes=-${layerBytes.length * 2}` });
    expect(res.status).toBe(206);
    expect(res.headers["content-range"]).toBe(`bytes 0-${layerBytes.length - 1}/${layerBytes.length}`);
    expect(res.body.equals(layerBytes)).toBe(true);
  });

  test("a range starting past the end: 416 naming the size", async () => {
    const res = await request(server.url, LAYER, { range: `bytes=${layerBytes.length}-` });
    expect(res.status).toBe(416);
    expect(res.headers["content-range"]).toBe(`bytes */${layerBytes.length}`);
  });

  test("multi-range: 200 with the whole file", async () => {
    const res = await request(server.url, LAYER, { range: "bytes=0-1,10-11" });
    expect(res.status).toBe(200);
    expect(res.body.equals(layerBytes)).toBe(true);
  });

  test("HEAD: the same headers and no body", async () => {
    const res = await request(server.url, LAYER, { method: "HEAD", range: "bytes=0-9" });
    expect(res.status).toBe(206);
    expect(res.headers["content-length"]).toBe("10");
    expect(res.body.length).toBe(0);
  });

  test("other methods are refused", async () => {
    expect((await request(server.url, LAYER, { method: "PUT" })).status).toBe(405);
  });
});

describe("content types", () => {
  test.each([
    ["/data/sample_tiny/meta.json", "application/json; charset=utf-8"],
    ["/data/sample_tiny/image.png", "image/png"],
  ])("%s is %s", async (url, type) => {
    const res = await request(server.url, url);
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe(type);
  });
});

describe("index.json", () => {
  test("lists the valid samples inside DATA_DIR, generated rather than read from disk", async () => {
    const res = await request(server.url, "/data/index.json");
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("application/json; charset=utf-8");
    const names = (JSON.parse(res.body.toString()) as { samples: { name: string }[] }).samples.map((s) => s.name);
    // Not listed: the stale index's "stale", hidden partial writes and links to them,
    // folders without a readable meta.json, and the symlinked sample that lives outside DATA_DIR.
    expect(names).toEqual(["alias_inside", "sample_tiny"]);
  });

  test("an entry has the SPEC.md fields from meta.json", async () => {
    const res = await request(server.url, "/data/index.json");
    const { samples } = JSON.parse(res.body.toString()) as { samples: unknown[] };
    expect(samples[1]).toEqual({
      name: "sample_tiny",
      model: "synthetic",
      prompt: "Describe this image in detail.",
      mode: "prefill",
      seq_len: 40,
      num_layers: 2,
      num_heads: 3,
    });
  });

  test("HEAD of index.json has a length and no body", async () => {
    const res = await request(server.url, "/data/index.json", { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(Number(res.headers["content-length"])).toBeGreaterThan(0);
    expect(res.body.length).toBe(0);
  });
});

/** The request is refused with `status`, and nothing from outside DATA_DIR leaks into the answer. */
async function expectRefused(url: string, status: 403 | 404): Promise<void> {
  const res = await request(server.url, url);
  expect(res.status).toBe(status);
  expect(res.body.toString()).not.toContain(SECRET);
}

describe("confinement to DATA_DIR", () => {
  test.each([
    "/data/../secret.txt",
    "/data/%2e%2e/secret.txt",
    "/data/%2E%2E%2Fsecret.txt",
    "/data/sample_tiny/..%2f..%2fsecret.txt",
    "/data/%2F" + "etc%2Fpasswd",
    "/data/sample_tiny%00/meta.json",
    "/data/sample_tiny/..%5c..%5csecret.txt",
  ])("traversal %s is forbidden", async (url) => {
    await expectRefused(url, 403);
  });

  test.each(["/data/escape/secret.txt", "/data/leak.txt", "/data/sample_escaping/meta.json"])(
    "symlink out of DATA_DIR %s is forbidden",
    async (url) => {
      await expectRefused(url, 403);
    },
  );

  test("a symlink that stays inside DATA_DIR is served", async () => {
    const res = await request(server.url, "/data/alias_inside/meta.json");
    expect(res.status).toBe(200);
  });

  test.each(["/data/", "/data/sample_tiny/", "/data/not_a_sample"])("folder %s is not listed", async (url) => {
    expect((await request(server.url, url)).status).toBe(404);
  });

  test.each([
    "/data/.sample.partial-1/meta.json",
    "/data/%2Esample.partial-1/meta.json",
    "/data/sample_tiny/.secret",
    "/data/sample_tiny/%2esecret",
    "/data/./sample_tiny/meta.json",
    "/data/alias_of_hidden/meta.json",
  ])("hidden path %s is not found", async (url) => {
    await expectRefused(url, 404);
  });

  test("a missing file is 404", async () => {
    expect((await request(server.url, "/data/sample_tiny/attn_layer_99.bin")).status).toBe(404);
  });
});
