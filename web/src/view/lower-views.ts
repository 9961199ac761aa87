// The views under the panels: the atlas (every layer × head), the top heads'
// image maps and the layer curves, for the view's selection. For a new
// selection they read its per-token tables (one range read per measure and
// token), then the top heads' rows (one read each); a layer or head change only
// redraws them. main.ts calls refresh() after each redraw above.

import type { DataClient } from "../data/data-client";
import { entropyRegion, tableHeads, type SampleMeta } from "../data/format";
import { layerCurves, regionRows, splitTables, topHeads, type HeadTables, type RankedHead } from "../data/head-tables";
import { ATLAS_MEASURES } from "../data/variants";
import type { Settings } from "../state/settings";
import type { ViewState } from "../state/state";
import { selectionLabel } from "../state/status";
import { AtlasPanel, atlasLegend } from "./atlas";
import { byId, setText } from "./dom";
import { figureCanvas, type Box } from "./export";
import { HeadMaps } from "./head-maps";
import { imageUrl } from "./image-picker";
import { LayerCurves } from "./layer-curves";
import { ColourBar } from "./legend";
import type { Tooltip } from "./tooltip";

/** How many heads the small multiples show. */
const TOP_HEADS = 16;

const NO_TABLES = "This sample has no per-token tables (it was written before them).";

/** The open sample, as the lower views read it. */
export interface LowerSample {
  meta: SampleMeta;
  /** The sample's folder, which its images are read from. */
  sampleUrl: URL;
}

/** Where a click in the lower views goes. */
export interface LowerViewsGo {
  head(layer: number, head: number): void;
  layer(layer: number): void;
}

interface LowerData {
  /** The sample, selection and measure the data is for. */
  key: string;
  /** The selection's per-token tables; null with nothing selected. */
  tables: HeadTables | null;
  /** The atlas's values (L × H), or null when there are none to show, with the reason. */
  atlas: Float32Array | null;
  note: string;
  ranked: RankedHead[];
  /** The image part of each ranked head's row, one after another; null until read, or with nothing selected. */
  maps: Float32Array | null;
}

/** Whether the settings show any of the lower views. */
export function lowerWanted(settings: Settings): boolean {
  return settings.atlas || settings.curves;
}

export class LowerViews {
  readonly atlas: AtlasPanel;
  readonly atlasBar = new ColourBar(byId("atlas-legend"));
  readonly headMaps: HeadMaps;
  readonly curves: LayerCurves;
  private data: LowerData | null = null;
  /** What the views are drawn for: the latest refresh's sample, view and settings (a read may end after another). */
  private shown: { sample: LowerSample; view: ViewState; settings: Settings } | null = null;
  private request = 0; // only the newest selection may draw

  constructor(
    private readonly client: DataClient,
    tooltip: Tooltip,
    go: LowerViewsGo,
  ) {
    this.atlas = new AtlasPanel(byId("atlas"), tooltip, go.head);
    this.headMaps = new HeadMaps(byId("head-maps"), go.head);
    this.curves = new LayerCurves(byId("curves"), tooltip, go.layer);
  }

  /** A new sample opens: what the last one read must not land on it. */
  reset(): void {
    this.data = null;
    this.shown = null;
    this.request++;
  }

  /** Read what the view's selection needs, unless it is what is held, and draw. */
  async refresh(sample: LowerSample | null, view: ViewState | null, settings: Settings): Promise<void> {
    const lower = byId("lower");
    lower.hidden = !sample || !view || !lowerWanted(settings);
    if (!sample || !view || lower.hidden) return;
    this.shown = { sample, view, settings };
    const key = JSON.stringify([view.sample, view.tokens, settings.measure]);
    if (this.data?.key === key) return this.draw();
    const request = ++this.request;
    try {
      const data = await this.tables(sample.meta, view, settings, key);
      if (request !== this.request) return;
      this.data = data;
      this.draw();
      performance.mark("vav:curves");
      if (data.ranked.length && view.tokens.length) {
        const { tokens } = entropyRegion(sample.meta);
        const [first, last] = [tokens[0]!, tokens[tokens.length - 1]!];
        const rows = await this.client.headRows({ picks: data.ranked, indices: view.tokens, combine: "mean", first, last });
        data.maps = regionRows(rows, data.ranked.length, first, last, tokens);
        if (request !== this.request) return;
        this.draw();
      }
      performance.mark("vav:atlas");
    } catch (error) {
      // In its own area: the view above may still be fine, and its own error must not be overwritten.
      if (request === this.request) this.showError(error instanceof Error ? error.message : String(error));
    }
  }

  /** The atlas as one PNG: a caption (model, measure, selection), the grid with its axes, and its colour bar. */
  async exportAtlas(meta: SampleMeta, view: ViewState, settings: Settings, scale: number): Promise<{ name: string; blob: Blob; imageBox: Box } | null> {
    if (!this.atlas.current) return null;
    const caption = `${meta.model} · ${atlasCaption(meta, view, settings)}`;
    const { canvas, imageBox } = figureCanvas({ caption, image: (s) => this.atlas.figure(s), imageLegend: this.atlasBar.current }, scale);
    const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, "image/png"));
    return blob && { name: `${view.sample}_atlas_${settings.measure}@${scale}x.png`, blob, imageBox };
  }

  private showError(text: string): void {
    this.data = null;
    this.atlas.update(null);
    this.atlasBar.update(null);
    this.headMaps.update(null);
    this.curves.update(null);
    for (const id of ["head-maps-caption", "curves-caption"]) setText(byId(id), "");
    setText(byId("atlas-caption"), `The atlas and the curves cannot be shown: ${text}`);
  }

  /** The selection's tables and the atlas they give; with nothing selected, the sample-wide text_to_image. */
  private async tables(meta: SampleMeta, view: ViewState, settings: Settings, key: string): Promise<LowerData> {
    const measure = ATLAS_MEASURES[settings.measure];
    const none = { key, tables: null, ranked: [], maps: null, note: "" };
    if (view.tokens.length === 0) {
      if (measure.table === "image_share" && meta.textToImage) {
        return { ...none, atlas: meta.textToImage, ranked: topHeads(meta.textToImage, meta.numHeads, TOP_HEADS, measure.best) };
      }
      return { ...none, atlas: null, note: `Select a token to see its ${measure.label} for every layer and head.` };
    }
    if (!meta.tokenTables.includes(measure.table)) return { ...none, atlas: null, note: NO_TABLES };
    const flat = await this.client.tables({ indices: view.tokens, measures: meta.tokenTables });
    const tables = splitTables(flat, meta.tokenTables, meta.numLayers, tableHeads(meta));
    const atlas = tables.byMeasure[measure.table]!;
    return { ...none, tables, atlas, ranked: topHeads(atlas, tableHeads(meta), TOP_HEADS, measure.best) };
  }

  /** Draw the lower views from the data held, with the current layer, head and colours. */
  private draw(): void {
    const { data, shown } = this;
    if (!data || !shown) return;
    const { sample, view, settings } = shown;
    for (const id of ["atlas-box", "head-maps-box"]) byId(id).hidden = !settings.atlas;
    byId("curves-box").hidden = !settings.curves;
    this.drawAtlas(sample.meta, view, settings, data);
    this.drawHeadMaps(sample, view, settings, data);
    this.drawCurves(sample.meta, view, data);
  }

  private drawAtlas(meta: SampleMeta, view: ViewState, settings: Settings, data: LowerData): void {
    const measure = ATLAS_MEASURES[settings.measure];
    setText(byId("atlas-caption"), data.atlas ? `Atlas: ${atlasCaption(meta, view, settings)}` : data.note);
    if (!data.atlas) {
      this.atlas.update(null);
      return this.atlasBar.update(null);
    }
    const why = "the spatial entropy needs a row after the image, and a map that is not flat";
    const legend = atlasLegend(data.atlas, settings.palette, `Atlas: ${measure.label}`, measure.meaning, why);
    const current = typeof view.head === "number" && !view.layerReduce ? { layer: view.layer, head: view.head } : null;
    const numLayers = meta.numLayers;
    const numHeads = data.tables ? tableHeads(meta) : meta.numHeads; // the tables' head axis is the widest layer's
    this.atlas.update({ values: data.atlas, numLayers, numHeads, palette: settings.palette, measure: measure.label, current, legend });
    this.atlasBar.update(legend);
  }

  private drawHeadMaps({ meta, sampleUrl }: LowerSample, view: ViewState, settings: Settings, data: LowerData): void {
    const measure = ATLAS_MEASURES[settings.measure];
    const title = `Top ${data.ranked.length} heads by ${measure.label} (${measure.best} first); a click goes there`;
    setText(byId("head-maps-caption"), data.ranked.length ? title : "");
    if (!data.maps) {
      return this.headMaps.update(null, data.ranked.length && !view.tokens.length ? "Select a token to see the top heads' image maps." : "");
    }
    const { rows, cols, tokens, rect, image } = entropyRegion(meta);
    const visible = Math.max(0, Math.min(rows * cols, Math.max(...view.tokens) - tokens[0]! + 1));
    const { palette, opacity } = settings;
    const where = { imageUrl: imageUrl(sampleUrl, meta, image), size: meta.images[image]!.size, rect };
    this.headMaps.update({ heads: data.ranked, maps: data.maps, rows, cols, ...where, visible, palette, opacity, measure: measure.label });
  }

  private drawCurves(meta: SampleMeta, view: ViewState, data: LowerData): void {
    const curves = data.tables && layerCurves(data.tables);
    const note = view.tokens.length ? NO_TABLES : "Select a token to see its layer curves.";
    const what = "share of attention on image, text and special tokens, and entropies; a click goes to a layer";
    setText(byId("curves-caption"), curves ? `Layer curves of ${selectionRows(meta, view)}: ${what}` : note);
    this.curves.update(curves ? { curves, numLayers: meta.numLayers, layer: view.layer } : null);
  }
}

/** Whose rows the lower views show: one token, or the mean of a word's tokens' rows. */
function selectionRows(meta: SampleMeta, view: ViewState): string {
  const label = selectionLabel(view.tokens, meta);
  return view.tokens.length === 1 ? `token ${label}` : `the mean of the ${view.tokens.length} tokens' rows of ${label}`;
}

/** What the atlas shows, in words: the measure and whose rows. */
function atlasCaption(meta: SampleMeta, view: ViewState, settings: Settings): string {
  const grid = `${ATLAS_MEASURES[settings.measure].label} per layer (rows) × head (columns)`;
  if (view.tokens.length === 0) return `${grid}: the sample-wide text_to_image, averaged over the tokens after the image`;
  const rows = view.dir === "tgt" ? " (its own rows: where it looks, whatever the direction)" : "";
  return `${grid} of ${selectionRows(meta, view)}${rows}`;
}
