// The readers of each storage profile against the fixture samples of
// fixtures/storage (the same attention as fixtures/sample_tiny, imported with
// --store triangle, and --store text-rows --heads 0,2), served by range over HTTP.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { vectorFromRows } from "../../src/data/attention";
import { FormatError, STORAGE_PROFILES, attentionFileSizes, parseMeta, parseRollout, storageServes, type SampleMeta } from "../../src/data/format";
import { MatrixSource } from "../../src/data/matrix-source";
import { NOT_STORED } from "../../src/data/stored-rows";
import type { HeadChoice } from "../../src/data/variants";
import { completeView } from "../../src/state/state";
import { stepKeptLayer, storageNote, unstoredCells, vectorStored } from "../../src/state/stored";
import { fixtureBits, fixtureMetaJson } from "./fixture";

const N = 40;
const STORAGE_DIR = path.resolve(import.meta.dirname, "../../../fixtures/storage");
const full = parseMeta(fixtureMetaJson());

function storedMeta(profile: string): SampleMeta {
  return parseMeta(JSON.parse(readFileSync(path.join(STORAGE_DIR, profile, "meta.json"), "utf8")));
}

/** Row `row` of a matrix of fixtures/sample_tiny: a head of a layer file, or a mean or max file. */
function fullRow(layer: number, head: HeadChoice, row: number): Uint16Array {
  if (typeof head === "number") return fixtureBits(full.layerFiles[layer]!).slice((head * N + row) * N, (head * N + row + 1) * N);
  const files = head === "mean" ? full.headMeanFiles : full.headMaxFiles;
  return fixtureBits(files[layer]!).slice(row * N, (row + 1) * N);
}

const servers: Server[] = [];
afterAll(() => servers.forEach((s) => s.close()));

/** Serve one folder by range; `requests` collects "name range" per request. */
function serve(folder: string): Promise<{ url: string; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const name = path.basename(req.url!);
    requests.push(`${name} ${req.headers.range}`);
    const body = readFileSync(path.join(folder, name));
    const [, start, end] = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "")!.map(Number) as [number, number, number];
    res.writeHead(206, { "Content-Range": `bytes ${start}-${end}/${body.length}`, "Content-Length": end - start + 1 });
    res.end(body.subarray(start, end + 1));
  });
  servers.push(server);
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/s/`, requests })),
  );
}

describe.each(["triangle", "text-rows"])("the %s fixture", (profile) => {
  const meta = storedMeta(profile);
  const folder = path.join(STORAGE_DIR, profile);

  test("parses its storage and expects every file at the size on disk", () => {
    expect(meta.storage.profile).toBe(profile);
    expect(meta.storage.heads).toEqual(profile === "text-rows" ? [0, 2] : [0, 1, 2]);
    const rollout = profile === "triangle" ? parseRollout(JSON.parse(readFileSync(path.join(folder, "rollout.json"), "utf8")), meta) : undefined;
    const sizes = attentionFileSizes(meta, rollout);
    expect(sizes.map((s) => s.file).sort()).toEqual(readdirSync(folder).filter((name) => name.endsWith(".bin")).sort());
    for (const { file, bytes } of sizes) expect([file, statSync(path.join(folder, file)).size]).toEqual([file, bytes]);
    expect(storageServes(meta, "rollout")).toBe(profile === "triangle");
  });

  test("rows read through MatrixSource equal the full sample's; rows not stored read as NaN", async () => {
    const served = await serve(folder);
    const source = new MatrixSource(served.url, meta, 1 << 20);
    for (const layer of meta.storage.layers) {
      for (const head of [...meta.storage.heads, "mean", "max"] as HeadChoice[]) {
        const first = 3; // rows 3..39: the end of the prefix, the image, the text after it
        const got = await source.withRows(layer, head, first, N - first, (rows) => rows.slice());
        for (let row = first; row < N; row++) {
          const want = meta.storage.rowIndex[row]! >= 0 ? fullRow(layer, head, row) : new Uint16Array(N).fill(NOT_STORED);
          expect([row, got.subarray((row - first) * N, (row - first + 1) * N)]).toEqual([row, want]);
        }
      }
    }
    expect(served.requests).toHaveLength(meta.storage.layers.length * (meta.storage.heads.length + 2));
  });

  test("a column is one range read and equals the full sample's where stored", async () => {
    const served = await serve(folder);
    const source = new MatrixSource(served.url, meta, 1 << 20);
    const token = 2; // a text token before the image: the image rows after it attend to it
    const column = await source.withRows(1, 0, token, N - token, (rows) => vectorFromRows(rows, N, token, "col"));
    const reference = vectorFromRows(fixtureBits(full.layerFiles[1]!).slice(token * N, N * N), N, token, "col");
    expect(served.requests).toHaveLength(1);
    for (let row = 0; row < N; row++) {
      if (meta.storage.rowIndex[row]! >= 0) expect(column[row]).toBe(reference[row]);
      else expect(column[row]).toBeNaN();
    }
  });
});

test("a triangle row is the one range of its i + 1 values", async () => {
  const served = await serve(path.join(STORAGE_DIR, "triangle"));
  const source = new MatrixSource(served.url, storedMeta("triangle"), 1 << 20);
  await source.withRows(0, 1, 7, 1, () => undefined);
  const headStart = ((N * (N + 1)) / 2) * 2; // head 1 follows head 0's packed triangle
  const start = headStart + ((7 * 8) / 2) * 2;
  expect(served.requests).toEqual([`attn_layer_00.bin bytes=${start}-${start + 8 * 2 - 1}`]);
});

test("a head the sample does not keep is refused by name, not read", async () => {
  const served = await serve(path.join(STORAGE_DIR, "text-rows"));
  const source = new MatrixSource(served.url, storedMeta("text-rows"), 1 << 20);
  await expect(source.withRows(0, 1, 30, 1, () => undefined)).rejects.toThrow("head 1 is not stored in this sample (it keeps heads 0, 2)");
  expect(served.requests).toEqual([]);
});

describe("what a view of a text-rows sample lacks", () => {
  const meta = storedMeta("text-rows");
  const image = meta.imageGrid!.startIdx + 3; // a single-grid sample
  const text = meta.imageGrid!.endIdx + 2;

  test("an image token's row is not read, and the status line says why", () => {
    const view = completeView({ tokens: [image], dir: "src" }, "s", meta);
    expect(vectorStored(view, meta)).toBe(false);
    expect(storageNote(view, meta)).toBe("this token's row is not stored: a text-rows sample keeps only the rows of non-image tokens");
    expect(vectorStored({ ...view, tokens: [text] }, meta)).toBe(true);
    expect(storageNote({ ...view, tokens: [text] }, meta)).toBeNull();
  });

  test("a column greys the rows of image tokens", () => {
    const view = completeView({ tokens: [2], dir: "tgt" }, "s", meta);
    const cells = unstoredCells(view, meta)!;
    expect(Array.from(cells).flatMap((u, i) => (u ? [i] : []))).toEqual(meta.tokens.filter((t) => t.type === "image").map((t) => t.id));
    expect(storageNote(view, meta)).toBe("the rows of image tokens are not stored (text-rows): grey");
    expect(unstoredCells(view, full)).toBeNull();
  });

  test("an unkept head is named", () => {
    const view = completeView({ tokens: [text], head: 1 }, "s", meta);
    expect(storageNote(view, meta)).toBe("head 1 is not stored: this sample keeps heads 0, 2");
  });
});

test("a storage field that breaks the format is refused", () => {
  const raw = JSON.parse(readFileSync(path.join(STORAGE_DIR, "triangle", "meta.json"), "utf8"));
  expect(() => parseMeta({ ...raw, storage: { ...raw.storage, profile: "zip" } })).toThrow(FormatError);
  expect(() => parseMeta({ ...raw, storage: { ...raw.storage, heads: [2, 1] } })).toThrow("storage.heads must list ascending, unique indices below 3");
  expect(Object.keys(STORAGE_PROFILES)).toEqual(["full", "triangle", "text-rows"]);
});

test("a rollout.json in a sample whose storage cannot hold a rollout is refused", () => {
  expect(() => parseRollout({ layers: 2, formula: "R" }, storedMeta("text-rows"))).toThrow("rollout.json is there, but this sample's storage holds no rollout");
  expect(parseRollout({ layers: 2, formula: "R" }, storedMeta("triangle")).files).toHaveLength(2);
});

describe("stepping layers of a sample that keeps some", () => {
  const kept = [0, 2, 5];

  test("←/→ go to the nearest kept layer, over the unkept ones, and stop at the last kept", () => {
    expect(stepKeptLayer(0, 1, kept)).toBe(2);
    expect(stepKeptLayer(2, 1, kept)).toBe(5);
    expect(stepKeptLayer(5, 1, kept)).toBe(5);
    expect(stepKeptLayer(5, -1, kept)).toBe(2);
    expect(stepKeptLayer(0, -1, kept)).toBe(0);
  });

  test("from an unkept layer the slider landed on, each way goes to the next kept one", () => {
    expect(stepKeptLayer(3, 1, kept)).toBe(5);
    expect(stepKeptLayer(3, -1, kept)).toBe(2);
  });
});
