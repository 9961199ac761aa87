// Builds index.json (SPEC.md §1) from the sample subfolders of DATA_DIR, so the dev
// server lists samples without the extractor having written an index.
import { readdir, readFile } from "node:fs/promises";
import { resolveInside } from "./safe-path.ts";

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
    names = (await readdir(dataDir, { withFileTypes: true })).filter((e) => !e.name.startsWith(".")).map((e) => e.name);
  } catch {
    return { samples: [] }; // no DATA_DIR yet: nothing extracted
  }
  const entries = await Promise.all(names.sort().map((name) => readEntry(dataDir, name)));
  return { samples: entries.filter((entry): entry is SampleEntry => entry !== null) };
}

/** The sample's entry, or null for anything that is not a readable sample (as the Python lister skips it). */
async function readEntry(dataDir: string, name: string): Promise<SampleEntry | null> {
  const meta = await resolveInside(dataDir, `${encodeURIComponent(name)}/meta.json`);
  if (!meta.ok) return null;
  try {
    const parsed: unknown = JSON.parse(await readFile(meta.file, "utf8"));
    return toEntry(name, parsed);
  } catch {
    return null;
  }
}

function toEntry(name: string, meta: unknown): SampleEntry | null {
  if (typeof meta !== "object" || meta === null) return null;
  const m = meta as Record<string, unknown>;
  const counts = [m.seq_len, m.num_layers, m.num_heads];
  if (typeof m.model !== "string" || typeof m.prompt !== "string") return null;
  if (!counts.every((c) => Number.isInteger(c) && (c as number) > 0)) return null;
  return {
    name,
    model: m.model,
    prompt: m.prompt,
    mode: typeof m.mode === "string" ? m.mode : "prefill",
    seq_len: m.seq_len as number,
    num_layers: m.num_layers as number,
    num_heads: m.num_heads as number,
  };
}
