// Builds index.json (SPEC.md §1) from the sample folders of DATA_DIR, so the dev
// server lists samples without the extractor having written an index. A folder is
// listed iff its name is not hidden, its meta.json (and its rollout.json, when there)
// passes the viewer's own parser, and the image and every attention file they name
// would be served, the attention files at the size the format gives them: the rule sample_format.py lists by too,
// so a half-written or damaged sample never reaches the viewer's list.
import { readdir, readFile } from "node:fs/promises";
import { ROLLOUT_FILE, attentionFileSizes, parseMeta, parseRollout, type RolloutMeta, type SampleMeta } from "../src/data/format.ts";
import { isHiddenName, resolveInside } from "./safe-path.ts";

export interface SampleEntry {
  name: string;
  model: string;
  prompt: string;
  mode: string;
  seq_len: number;
  num_layers: number;
  num_heads: number;
}

export async function listSamples(dataDir: string): Promise<{ samples: SampleEntry[] }> {
  let names: string[];
  try {
    names = (await readdir(dataDir)).filter((name) => !isHiddenName(name));
  } catch {
    return { samples: [] }; // no DATA_DIR yet: nothing extracted
  }
  const entries = await Promise.all(names.sort().map((name) => readEntry(dataDir, name)));
  return { samples: entries.filter((entry): entry is SampleEntry => entry !== null) };
}

/** The sample's entry, or null for anything that is not a complete, valid sample. */
async function readEntry(dataDir: string, name: string): Promise<SampleEntry | null> {
  const meta = await readMeta(dataDir, name);
  if (meta === null) return null;
  const rollout = await readRollout(dataDir, name, meta);
  if (rollout === null || !(await holdsItsFiles(dataDir, name, meta, rollout))) return null;
  return {
    name,
    model: meta.model,
    prompt: meta.prompt,
    mode: meta.mode,
    seq_len: meta.seqLen,
    num_layers: meta.numLayers,
    num_heads: meta.numHeads,
  };
}

async function readMeta(dataDir: string, name: string): Promise<SampleMeta | null> {
  const meta = await resolveInside(dataDir, samplePath(name, "meta.json"));
  if (!meta.ok) return null;
  try {
    return parseMeta(JSON.parse(await readFile(meta.file, "utf8")));
  } catch {
    return null; // unreadable, not JSON, or not a valid meta.json
  }
}

/** The sample's rollout.json: undefined when it has none, null when it is broken. */
async function readRollout(dataDir: string, name: string, meta: SampleMeta): Promise<RolloutMeta | undefined | null> {
  const found = await resolveInside(dataDir, samplePath(name, ROLLOUT_FILE));
  if (!found.ok) return undefined;
  try {
    return parseRollout(JSON.parse(await readFile(found.file, "utf8")), meta);
  } catch {
    return null;
  }
}

/** Whether every image and every attention file meta.json (and rollout.json) names are there, the latter at their expected sizes. */
async function holdsItsFiles(dataDir: string, name: string, meta: SampleMeta, rollout: RolloutMeta | undefined): Promise<boolean> {
  const images = meta.images.map((image) => resolveInside(dataDir, samplePath(name, image.path)).then((found) => found.ok));
  const attention = attentionFileSizes(meta, rollout).map(async ({ file, bytes }) => {
    const found = await resolveInside(dataDir, samplePath(name, file));
    return found.ok && found.size === bytes;
  });
  return (await Promise.all([...images, ...attention])).every(Boolean);
}

/** The URL path of a file in a sample folder, as resolveInside reads it. */
function samplePath(sample: string, file: string): string {
  return `/${encodeURIComponent(sample)}/${encodeURIComponent(file)}`;
}
