// The worker's data path against a real HTTP server over the fixture, with and
// without Range support, and with files that are shorter than meta.json says.
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { fetchSpan } from "../../src/data/fetch-range";
import { parseMeta } from "../../src/data/format";
import { MatrixSource } from "../../src/data/matrix-source";
import { FIXTURE_DIR, fixtureBits, fixtureMetaJson } from "./fixture";

const N = 40;
const BLOCK = N * N * 2;
const meta = parseMeta(fixtureMetaJson());

interface Served {
  url: string;
  requests: string[]; // "name range" per request
}

/** Serve the fixture; `ranges` false answers every request with 200 and the whole file; `cut` shortens files. */
function serve(options: { ranges: boolean; cut?: number }): Promise<Served & { server: Server }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const name = path.basename(req.url!);
    const range = req.headers.range;
    requests.push(`${name} ${range ?? "whole"}`);
    let body = readFileSync(path.join(FIXTURE_DIR, name));
    if (options.cut) body = body.subarray(0, body.length - options.cut);
    const match = /^bytes=(\d+)-(\d+)$/.exec(range ?? "");
    if (!options.ranges || !match) return res.writeHead(200, { "Content-Length": body.length }).end(body);
    const start = Number(match[1]);
    if (start >= body.length) return res.writeHead(416, { "Content-Range": `bytes */${body.length}` }).end();
    const end = Math.min(Number(match[2]), body.length - 1);
    res.writeHead(206, { "Content-Range": `bytes ${start}-${end}/${body.length}`, "Content-Length": end - start + 1 });
    res.end(body.subarray(start, end + 1));
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({ server, requests, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/s/` }),
    ),
  );
}

const servers: Server[] = [];
async function started(options: { ranges: boolean; cut?: number }): Promise<Served> {
  const served = await serve(options);
  servers.push(served.server);
  return served;
}
afterAll(() => servers.forEach((s) => s.close()));

/** The request line of a whole (N, N) file: one closed range over all of it. */
const whole = (name: string) => `${name} bytes=0-${BLOCK - 1}`;

const head2 = (served: Served) => ({
  url: `${served.url}attn_layer_01.bin`,
  name: "attn_layer_01.bin",
  fileBytes: 3 * BLOCK,
  start: 2 * BLOCK,
  length: BLOCK,
});

describe("fetchSpan", () => {
  let ranged: Served;
  let plain: Served;
  beforeAll(async () => {
    [ranged, plain] = await Promise.all([started({ ranges: true }), started({ ranges: false })]);
  });

  test("asks for one closed range and returns exactly that head's block", async () => {
    const buffer = await fetchSpan(head2(ranged));
    expect(new Uint16Array(buffer)).toEqual(fixtureBits("attn_layer_01.bin").slice(2 * N * N));
    expect(ranged.requests.at(-1)).toBe(`attn_layer_01.bin bytes=${2 * BLOCK}-${3 * BLOCK - 1}`);
  });

  test("when the server ignores Range, slices the block out of the whole answer", async () => {
    const buffer = await fetchSpan(head2(plain));
    expect(buffer.byteLength).toBe(BLOCK);
    expect(new Uint16Array(buffer)).toEqual(fixtureBits("attn_layer_01.bin").slice(2 * N * N));
  });

  test("a whole (N, N) file is asked for as one closed range too, so its length is known up front", async () => {
    const buffer = await fetchSpan({ url: `${ranged.url}attn_max_layer_00.bin`, name: "m", fileBytes: BLOCK, start: 0, length: BLOCK });
    expect(new Uint16Array(buffer)).toEqual(fixtureBits("attn_max_layer_00.bin"));
    expect(ranged.requests.at(-1)).toBe(`attn_max_layer_00.bin bytes=0-${BLOCK - 1}`);
  });

  test("a whole file from a server that ignores Range is read from the 200 answer", async () => {
    const buffer = await fetchSpan({ url: `${plain.url}attn_max_layer_00.bin`, name: "m", fileBytes: BLOCK, start: 0, length: BLOCK });
    expect(new Uint16Array(buffer)).toEqual(fixtureBits("attn_max_layer_00.bin"));
  });
});

describe("a file shorter than meta.json promises is an error, whatever the server does", () => {
  test("206: the Content-Range total gives it away", async () => {
    const served = await started({ ranges: true, cut: 10 });
    await expect(fetchSpan(head2(served))).rejects.toThrow(
      `attn_layer_01.bin has ${3 * BLOCK - 10} bytes, expected ${3 * BLOCK}: the file is truncated or does not match meta.json`,
    );
  });

  test("416: the block lies wholly past the end", async () => {
    const served = await started({ ranges: true, cut: BLOCK + 10 });
    await expect(fetchSpan(head2(served))).rejects.toThrow(`attn_layer_01.bin has ${2 * BLOCK - 10} bytes, expected ${3 * BLOCK}`);
  });

  test("200: the Content-Length gives it away", async () => {
    const served = await started({ ranges: false, cut: 2 });
    await expect(fetchSpan(head2(served))).rejects.toThrow(`attn_layer_01.bin has ${3 * BLOCK - 2} bytes`);
  });
});

describe("MatrixSource", () => {
  test("serves a cached matrix without a second request, and shares concurrent fetches", async () => {
    const served = await started({ ranges: true });
    const source = new MatrixSource(served.url, meta, 10 * BLOCK);
    const [a, b] = await Promise.all([source.matrix(1, 2), source.matrix(1, 2)]);
    expect(a).toBe(b);
    await source.matrix(1, 2);
    expect(served.requests).toHaveLength(1);
    expect(source.cachedBytes).toBe(BLOCK);
    expect(await source.matrix(0, "mean")).toEqual(fixtureBits("attn_mean_layer_00.bin"));
    expect(await source.matrix(0, "max")).toEqual(fixtureBits("attn_max_layer_00.bin"));
    expect(served.requests.slice(1)).toEqual([`attn_mean_layer_00.bin bytes=0-${BLOCK - 1}`, `attn_max_layer_00.bin bytes=0-${BLOCK - 1}`]);
  });

  test("rows of an uncached matrix are one range read; of a cached one, no request", async () => {
    const served = await started({ ranges: true });
    const source = new MatrixSource(served.url, meta, 10 * BLOCK);
    const expected = fixtureBits("attn_layer_01.bin").slice((2 * N + 7) * N, (2 * N + 10) * N); // head 2, rows 7..9
    const copy = (rows: Uint16Array) => rows.slice();
    expect(await source.withRows(1, 2, 7, 3, copy)).toEqual(expected);
    const start = (2 * N + 7) * N * 2;
    expect(served.requests).toEqual([`attn_layer_01.bin bytes=${start}-${start + 3 * 2 * N - 1}`]);
    await source.matrix(1, 2);
    expect(await source.withRows(1, 2, 7, 3, copy)).toEqual(expected);
    expect(served.requests).toHaveLength(2);
  });

  test("warm() fetches the wanted matrices one after another, skipping cached ones", async () => {
    const served = await started({ ranges: true });
    const source = new MatrixSource(served.url, meta, 10 * BLOCK);
    await source.matrix(0, "max");
    source.warm([[0, "max"], [1, "max"], [0, "mean"]]);
    await expect.poll(() => source.isCached(0, "mean")).toBe(true);
    expect(source.isCached(1, "max")).toBe(true);
    expect(served.requests).toEqual([whole("attn_max_layer_00.bin"), whole("attn_max_layer_01.bin"), whole("attn_mean_layer_00.bin")]);
  });

  test("close() drops the warming list and the cache", async () => {
    const served = await started({ ranges: true });
    const source = new MatrixSource(served.url, meta, 10 * BLOCK);
    await source.matrix(1, "max");
    source.warm([[0, "max"], [0, "mean"], [1, "mean"]]);
    source.close(); // the first warm fetch has started; the other two never will
    await source.matrix(0, "max");
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(served.requests).toEqual([whole("attn_max_layer_01.bin"), whole("attn_max_layer_00.bin")]);
    expect(source.isCached(1, "max")).toBe(false);
  });

  test("keeps within its byte budget", async () => {
    const served = await started({ ranges: true });
    const source = new MatrixSource(served.url, meta, 2 * BLOCK);
    for (const head of [0, 1, 2]) await source.matrix(0, head);
    expect(source.cachedBytes).toBe(2 * BLOCK);
    expect([0, 1, 2].map((h) => source.isCached(0, h))).toEqual([false, true, true]);
  });

  test("a whole-matrix fetch makes room before it starts and counts as in flight until it lands", async () => {
    const served = await started({ ranges: true });
    const source = new MatrixSource(served.url, meta, 2 * BLOCK);
    for (const head of [0, 1]) await source.matrix(0, head);
    const landing = source.matrix(0, 2);
    expect([source.cachedBytes, source.inFlightBytes]).toEqual([BLOCK, BLOCK]); // head 0 evicted already
    await landing;
    expect([source.cachedBytes, source.inFlightBytes]).toEqual([2 * BLOCK, 0]);
    expect([0, 1, 2].map((h) => source.isCached(0, h))).toEqual([false, true, true]);
  });

  test("a prefetch that does not fit beside the reads in flight is skipped, not fetched", async () => {
    const served = await started({ ranges: true });
    const source = new MatrixSource(served.url, meta, 2 * BLOCK);
    const inFlight = [source.matrix(0, 0), source.matrix(0, 1)];
    expect(await source.matrix(0, 2)).toBeNull();
    await Promise.all(inFlight);
    expect(served.requests).toHaveLength(2);
  });

  test("rows read alone hold their bytes in the budget while they are used, then let go", async () => {
    const served = await started({ ranges: true });
    const source = new MatrixSource(served.url, meta, 10 * BLOCK);
    const heldWhileUsed = await source.withRows(1, 2, 7, 3, () => source.inFlightBytes);
    expect(heldWhileUsed).toBe(3 * N * 2);
    expect(source.inFlightBytes).toBe(0);
  });

  test("warm() keeps only what the budget holds and protects those wanted that are cached", async () => {
    const served = await started({ ranges: true });
    const source = new MatrixSource(served.url, meta, 2 * BLOCK);
    await source.matrix(0, "max"); // wanted, but the least recent
    await source.matrix(0, "mean"); // not wanted
    source.warm([[0, "max"], [1, "max"], [1, "mean"]]);
    await expect.poll(() => source.isCached(1, "max")).toBe(true);
    expect([source.isCached(0, "max"), source.isCached(0, "mean"), source.isCached(1, "mean")]).toEqual([true, false, false]);
    expect(served.requests).toHaveLength(3);
  });

  test("the next matrix fetch is read into the evicted matrix's memory", async () => {
    const served = await started({ ranges: true });
    const source = new MatrixSource(served.url, meta, BLOCK);
    const first = (await source.matrix(0, 0))!;
    const second = await source.matrix(0, 1);
    expect(first.length).toBe(0); // its buffer was handed to the read, so it is detached here
    expect(second).toEqual(fixtureBits("attn_layer_00.bin").slice(N * N, 2 * N * N));
    expect([source.cachedBytes, source.inFlightBytes]).toEqual([BLOCK, 0]);
  });

  test("the vision received file is read whole with one closed range, once", async () => {
    const served = await started({ ranges: true });
    const source = new MatrixSource(served.url, meta, 10 * BLOCK);
    const received = await source.visionReceived();
    expect(received).toEqual(fixtureBits("vision_received.bin"));
    expect(await source.visionReceived()).toBe(received);
    expect(served.requests).toEqual([`vision_received.bin bytes=0-${2 * 84 * 2 - 1}`]);
  });

  test("a vision patch's row is one range read of 2P bytes from its block's head mean", async () => {
    const served = await started({ ranges: true });
    const source = new MatrixSource(served.url, meta, 10 * BLOCK);
    const P = 84;
    const row = await source.withVisionRows(1, "mean", 17, 1, (bits) => bits.slice());
    expect(row).toEqual(fixtureBits("vision_mean_block_03.bin").slice(17 * P, 18 * P));
    expect(served.requests).toEqual([`vision_mean_block_03.bin bytes=${17 * P * 2}-${18 * P * 2 - 1}`]);
  });

  test("a vision patch's row in head h is one range read of 2P bytes at 2·((h·P + p)·P) of its block file", async () => {
    const served = await started({ ranges: true });
    const source = new MatrixSource(served.url, meta, 10 * BLOCK);
    const [P, h, p] = [84, 1, 17];
    const row = await source.withVisionRows(0, h, p, 1, (bits) => bits.slice());
    const start = (h * P + p) * P;
    expect(row).toEqual(fixtureBits("vision_attn_block_02.bin").slice(start, start + P));
    expect(served.requests).toEqual([`vision_attn_block_02.bin bytes=${2 * start}-${2 * (start + P) - 1}`]);
  });
});
