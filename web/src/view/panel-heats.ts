// What the two panels colour by, from the vectors a view fetched: pure, so
// main.ts only wires it. Normalisation is min–max per view: the token panel over
// the whole LLM vector, the LLM image overlay over the image tokens alone (so the
// spatial pattern shows even when text tokens take most of the mass), the vision
// overlay over all its patches.

import { normalisationRange, normalisationRangeAt, type ValueRange } from "../data/attention";
import type { Heat } from "./color";
import type { Settings } from "./controls";
import type { ImageRegion, SampleMeta, VisionMeta } from "../data/format";
import { REGION_VIEWS, type RegionView } from "../data/variants";
import type { OverlayPart, OverlayView } from "./image-panel";
import { shownVision, type ViewState } from "../state/state";

/** Which image the panel shows, and which of its regions (a tiled image's tiles or its thumbnail). */
export interface ImageChoice {
  image: number;
  regions: RegionView;
}

export interface Fetched {
  meta: SampleMeta;
  view: ViewState;
  /** 1 for tokens left out of the normalisation: the first token and special tokens. */
  sinks: Uint8Array;
  /** The LLM vector of the selected tokens, or null. */
  values: Float32Array | null;
  /** The vision overlay's P values in vision mode, or null. */
  vision: Float32Array | null;
  shownImage: ImageChoice;
}

function heat(values: Float32Array, range: ValueRange, settings: Settings): Heat {
  return { values, lo: range.lo, hi: range.hi, palette: settings.palette };
}

function skipped(fetched: Fetched, settings: Settings): Uint8Array | null {
  return settings.excludeSinks ? fetched.sinks : null;
}

export function tokenHeat(fetched: Fetched, settings: Settings): Heat | null {
  const { values } = fetched;
  return values && heat(values, normalisationRange(values, skipped(fetched, settings)), settings);
}

/** The image overlay: the vision patches in vision mode, else the LLM's image tokens. */
export function imageOverlay(fetched: Fetched, settings: Settings): OverlayView {
  const { meta, view, values, vision } = fetched;
  const { opacity } = settings;
  const visionMeta = shownVision(view, meta);
  if (visionMeta) {
    const grid = { kind: "vision", size: meta.imageSize, parts: [visionPart(visionMeta, meta.imageSize)] } as const;
    const selected = view.patch === null ? [] : [view.patch];
    return { grid, heat: vision && heat(vision, normalisationRange(vision, null), settings), selected, opacity };
  }
  const { image, regions } = fetched.shownImage;
  const parts = regionParts(meta, image, regions);
  const imageTokensHeat = values && heat(values, rangeOver(values, skipped(fetched, settings), parts), settings);
  const grid = { kind: "llm", size: meta.images[image]!.size, parts } as const;
  return { grid, heat: imageTokensHeat, selected: view.tokens, opacity };
}

function rangeOver(values: Float32Array, skip: Uint8Array | null, parts: OverlayPart[]): ValueRange {
  const ranges = parts.map((part) => normalisationRangeAt(values, skip, part.indices));
  return { lo: Math.min(...ranges.map((r) => r.lo)), hi: Math.max(...ranges.map((r) => r.hi)) };
}

// Parts keep their identity per sample and choice, so the image panel reuses each part's ImageData.
const partsBySample = new WeakMap<SampleMeta, Map<string, OverlayPart[]>>();
const visionParts = new WeakMap<VisionMeta, OverlayPart>();

/** The regions of one image that a region view draws, as overlay parts. */
export function regionParts(meta: SampleMeta, image: number, view: RegionView): OverlayPart[] {
  const cached = partsBySample.get(meta) ?? new Map<string, OverlayPart[]>();
  partsBySample.set(meta, cached);
  const key = `${image}:${view}`;
  let parts = cached.get(key);
  if (!parts) {
    const shows = REGION_VIEWS[view].shows;
    const ofImage = meta.regions.filter((region) => region.image === image);
    const tiles = ofImage.filter((region) => region.kind === "tile").length;
    parts = ofImage
      .filter((region) => shows.includes(region.kind))
      .map((region) => ({ ...region, indices: region.tokens, label: regionLabel(meta, region, tiles) }));
    cached.set(key, parts);
  }
  return parts;
}

function regionLabel(meta: SampleMeta, region: ImageRegion, tiles: number): string {
  const image = meta.images.length > 1 ? `image ${region.image + 1}` : "";
  const own =
    region.kind === "tile"
      ? `tile ${meta.regions.filter((r) => r.image === region.image && r.kind === "tile").indexOf(region) + 1} of ${tiles}`
      : region.kind === "global"
        ? "global thumbnail"
        : "";
  return [image, own].filter(Boolean).join(", ");
}

function visionPart(vision: VisionMeta, size: [number, number]): OverlayPart {
  let part = visionParts.get(vision);
  if (!part) {
    const indices = Int32Array.from({ length: vision.seqLen }, (_, p) => p);
    visionParts.set(vision, (part = { ...vision.grid, rect: [0, 0, ...size], indices, label: "" }));
  }
  return part;
}

/** Whether an image has tiles and a thumbnail, so that the region view changes what it shows. */
export function hasTiles(meta: SampleMeta, image: number): boolean {
  return meta.regions.some((region) => region.image === image && region.kind === "tile");
}
