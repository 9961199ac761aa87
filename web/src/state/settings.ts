// The display settings: how the view is coloured and laid out, not what it
// fetches (the shared scale aside, which main.ts fetches for). They live in the
// URL beside the view, written only where they differ from the defaults, so a
// link reopens the same picture.

import { ATLAS_MEASURES, SCALE_MODES, variantNamed, variantsOf, type AtlasMeasure, type ScaleMode } from "../data/variants";

export type PaletteName = "blue" | "viridis" | "hot";
export const PALETTE_NAMES: readonly PaletteName[] = ["blue", "viridis", "hot"];

export interface Settings {
  palette: PaletteName;
  opacity: number;
  scale: ScaleMode;
  excludeSinks: boolean;
  collapseImage: boolean;
  /** A press on a token selects its whole word. */
  selectWords: boolean;
  /** The atlas (every layer × head) and its top heads' maps are shown. */
  atlas: boolean;
  /** The layer curves are shown. */
  curves: boolean;
  /** What the atlas colours by and ranks heads by. */
  measure: AtlasMeasure;
}

export const DEFAULT_SETTINGS: Readonly<Settings> = {
  palette: "blue",
  opacity: 0.75,
  scale: "view",
  excludeSinks: true,
  collapseImage: true,
  selectWords: true,
  atlas: true,
  curves: true,
  measure: variantsOf(ATLAS_MEASURES)[0]!,
};

/** Each setting's URL parameter. */
const PARAM: Record<keyof Settings, string> = {
  palette: "palette",
  opacity: "opacity",
  scale: "scale",
  excludeSinks: "nosinks",
  collapseImage: "collapse",
  selectWords: "words",
  atlas: "atlas",
  curves: "curves",
  measure: "measure",
};

/** The settings a URL asks for, over the defaults; garbled values keep the default. */
export function settingsFromParams(params: URLSearchParams): Settings {
  const settings = { ...DEFAULT_SETTINGS };
  const palette = params.get(PARAM.palette);
  if (PALETTE_NAMES.includes(palette as PaletteName)) settings.palette = palette as PaletteName;
  const opacity = Number(params.get(PARAM.opacity) ?? NaN);
  if (opacity >= 0 && opacity <= 1) settings.opacity = opacity;
  settings.scale = variantNamed(SCALE_MODES, params.get(PARAM.scale)) ?? settings.scale;
  settings.measure = variantNamed(ATLAS_MEASURES, params.get(PARAM.measure)) ?? settings.measure;
  for (const key of ["excludeSinks", "collapseImage", "selectWords", "atlas", "curves"] as const) {
    const flag = params.get(PARAM[key]);
    if (flag === "1" || flag === "0") settings[key] = flag === "1";
  }
  return settings;
}

/** The URL with these settings: only those that differ from the defaults are written. */
export function settingsToParams(settings: Settings, base: URLSearchParams): URLSearchParams {
  const params = new URLSearchParams(base);
  for (const key of Object.keys(PARAM) as (keyof Settings)[]) {
    params.delete(PARAM[key]);
    const value = settings[key];
    if (value === DEFAULT_SETTINGS[key]) continue;
    params.set(PARAM[key], typeof value === "boolean" ? (value ? "1" : "0") : String(value));
  }
  return params;
}
