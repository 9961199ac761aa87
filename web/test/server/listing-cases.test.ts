// The listing rule both listers share: fixtures/listing_cases.json builds a data
// folder of valid, hidden, damaged and foreign folders, and says which are samples.
import { cp, mkdir, mkdtemp, readFile, rename, rm, symlink, truncate, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { listSamples } from "../../server/sample-index.ts";
import { FIXTURE_SAMPLE } from "./fixture-data.ts";

interface ListingCase {
  name: string;
  copy?: boolean;
  meta_set?: Record<string, unknown>;
  remove?: string[];
  truncate?: Record<string, number>;
  files?: Record<string, string>;
  links_out?: string[];
  link_to?: string;
}

interface ListingCases {
  cases: ListingCase[];
  expected: unknown;
}

const CASES_FILE = path.resolve(import.meta.dirname, "../../../fixtures/listing_cases.json");
let root: string;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "vav-listing-"));
});

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

/** One case's folder: a copy of the fixture sample, then its edits in the order the cases file gives. */
async function buildCase(dataDir: string, outside: string, listing: ListingCase): Promise<void> {
  const folder = path.join(dataDir, listing.name);
  if (listing.link_to !== undefined) {
    await mkdir(dataDir, { recursive: true });
    await symlink(listing.link_to, folder);
    return;
  }
  if (listing.copy) await cp(FIXTURE_SAMPLE, folder, { recursive: true });
  else await mkdir(folder, { recursive: true });
  if (listing.meta_set) {
    const metaFile = path.join(folder, "meta.json");
    const meta = JSON.parse(await readFile(metaFile, "utf8")) as Record<string, unknown>;
    await writeFile(metaFile, JSON.stringify({ ...meta, ...listing.meta_set }));
  }
  for (const file of listing.remove ?? []) await rm(path.join(folder, file));
  for (const [file, bytes] of Object.entries(listing.truncate ?? {})) await truncate(path.join(folder, file), bytes);
  for (const [file, text] of Object.entries(listing.files ?? {})) await writeFile(path.join(folder, file), text);
  for (const file of listing.links_out ?? []) {
    const moved = path.join(outside, listing.name, file);
    await mkdir(path.dirname(moved), { recursive: true });
    await rename(path.join(folder, file), moved);
    await symlink(moved, path.join(folder, file));
  }
}

test("listSamples lists exactly the cases' expected samples", async () => {
  const { cases, expected } = JSON.parse(await readFile(CASES_FILE, "utf8")) as ListingCases;
  const dataDir = path.join(root, "data");
  for (const listing of cases) await buildCase(dataDir, path.join(root, "outside"), listing);
  expect(await listSamples(dataDir)).toEqual(expected);
});

test("a data folder that does not exist lists nothing", async () => {
  expect(await listSamples(path.join(root, "absent"))).toEqual({ samples: [] });
});
