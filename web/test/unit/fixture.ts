// The shared fixture sample (N=40, 2 layers, 3 heads), read from disk.
import { readFileSync } from "node:fs";
import path from "node:path";

export const FIXTURE_DIR = path.resolve(import.meta.dirname, "../../../fixtures/sample_tiny");

export function fixtureMetaJson(): Record<string, unknown> {
  return JSON.parse(readFileSync(path.join(FIXTURE_DIR, "meta.json"), "utf8")) as Record<string, unknown>;
}

/** A fixture .bin as raw float16 bits. */
export function fixtureBits(name: string): Uint16Array {
  const bytes = readFileSync(path.join(FIXTURE_DIR, name));
  return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
}

/** A sample of fixtures/layouts (image regions: tiles and a thumbnail, two images, or a grid over a padded image). */
export function layoutMetaJson(name: "sample_tiled" | "sample_two_images" | "sample_padded"): Record<string, unknown> {
  const file = path.resolve(FIXTURE_DIR, "../layouts", name, "meta.json");
  return JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
}
