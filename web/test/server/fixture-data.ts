// A temp DATA_DIR for server tests: a copy of the tiny fixture sample, things that must not
// be listed or served (hidden names among them), and symlinks that try to leave the folder.
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

export const FIXTURE_SAMPLE = path.resolve(import.meta.dirname, "../../../fixtures/sample_tiny");
export const SECRET = "outside-data-dir-secret";

export interface DataFixture {
  root: string; // temp folder; the data dir is root/data
  dataDir: string;
  remove: () => Promise<void>;
}

export async function makeDataFixture(): Promise<DataFixture> {
  const root = await mkdtemp(path.join(os.tmpdir(), "vav-server-"));
  const dataDir = path.join(root, "data");
  const outside = path.join(root, "outside");
  await cp(FIXTURE_SAMPLE, path.join(dataDir, "sample_tiny"), { recursive: true });
  await cp(FIXTURE_SAMPLE, path.join(outside, "sample_outside"), { recursive: true });
  await writeFile(path.join(root, "secret.txt"), SECRET);
  await writeFile(path.join(outside, "secret.txt"), SECRET);
  await symlink(outside, path.join(dataDir, "escape"));
  await symlink(path.join(outside, "sample_outside"), path.join(dataDir, "sample_escaping"));
  await symlink(path.join(root, "secret.txt"), path.join(dataDir, "leak.txt"));
  await symlink("sample_tiny", path.join(dataDir, "alias_inside"));
  await mkdir(path.join(dataDir, "not_a_sample"));
  await mkdir(path.join(dataDir, ".sample.partial-1"));
  await cp(path.join(FIXTURE_SAMPLE, "meta.json"), path.join(dataDir, ".sample.partial-1", "meta.json"));
  await writeFile(path.join(dataDir, "sample_tiny", ".secret"), SECRET);
  await symlink(".sample.partial-1", path.join(dataDir, "alias_of_hidden"));
  await mkdir(path.join(dataDir, "broken_meta"));
  await writeFile(path.join(dataDir, "broken_meta", "meta.json"), '{"model": "x"');
  await writeFile(path.join(dataDir, "index.json"), JSON.stringify({ samples: [{ name: "stale" }] }));
  return { root, dataDir, remove: () => rm(root, { recursive: true, force: true }) };
}
