// Entry point: one state object, one path from a user action to pixels:
// action → state (+ URL) → worker asks for one vector (two in vision mode: the
// token panel's and the image overlay's) → both panels recolour.

import { reduceVectors } from "./data/attention";
import { DataClient } from "./data/data-client";
import { ROLLOUT_FILE, parseIndex, parseMeta, parseRollout, type RolloutMeta, type SampleEntry, type SampleMeta, type VisionMeta } from "./data/format";
import type { CurveBand } from "./data/head-tables";
import { LAYER_REDUCTIONS } from "./data/variants";
import {
  clampHead,
  completeView,
  layerSpan,
  shownVision,
  stepHead as stepLlmHead,
  stepOverlay,
  stepVisionBlocks,
  stepVisionHead,
  viewFromParams,
  viewHeads,
  viewToParams,
  visionBlockIndices,
  type ViewState,
} from "./state/state";
import { settingsFromParams, settingsToParams, type Settings } from "./state/settings";
import { statusText } from "./state/status";
import { stepKeptLayer, vectorStored } from "./state/stored";
import { stepToken, wordAt } from "./state/words";
import { Controls, bindShortcuts } from "./view/controls";
import type { Heat } from "./view/color";
import { byId, setText } from "./view/dom";
import { EXPORT_SCALES, download, figureCanvas, figureSvg, vectorsCsv, vectorsJson, type Box, type FigureParts, type ShownVector } from "./view/export";
import { ImagePanel } from "./view/image-panel";
import { LowerViews, lowerWanted } from "./view/lower-views";
import { ColourBar } from "./view/legend";
import { ImagePicker, imageUrl } from "./view/image-picker";
import { imageOverlay, regionLabel, tokenHeat, type Fetched } from "./view/panel-heats";
import { TokenPanel } from "./view/token-panel";
import { TopKList, topK } from "./view/top-k";
import { Tooltip } from "./view/tooltip";

const params = new URLSearchParams(location.search);
const cacheBytes = (Number(params.get("cacheMB")) || 512) * 2 ** 20;
const TOP_K = 10;

type HistoryMode = "push" | "replace" | "none";

interface SharedVectors {
  /** The selection (tokens, direction, combine; vision patch and head) the vectors were read for. */
  key: string;
  values: Float32Array | null;
  vision: Float32Array | null;
}

interface Loaded {
  meta: SampleMeta;
  /** The sample's folder, which its images are read from. */
  sampleUrl: URL;
  /** The rollout's files, when the sample has rollout.json. */
  rollout: RolloutMeta | undefined;
  /** 1 for tokens left out of the normalisation: the first token and special tokens. */
  sinks: Uint8Array;
}

const app = {
  loaded: null as Loaded | null,
  view: null as ViewState | null,
  values: null as Float32Array | null,
  /** The vision overlay's P values (saliency or a patch's row), in vision mode. */
  vision: null as Float32Array | null,
  request: 0, // only the newest request may draw
  firstHeatmapDrawn: false,
  /** Views set since the page last showed one: their URLs wait for syncPage(). */
  unsynced: [] as { url: string; history: HistoryMode }[],
  /** The shared scale's vectors, kept for the selection they were read for: stepping layers or heads reuses them. */
  shared: null as SharedVectors | null,
};

const client = new DataClient();
const tooltip = new Tooltip(byId("tooltip"));
const imagePanel = new ImagePanel(byId("image"), byId("image-overlay"), tooltip, (grid, index) =>
  grid.kind === "vision" ? pressPatch(index) : select(index),
);
const tokenPanel = new TokenPanel(byId("tokens"), tooltip, select);
const imagePicker = new ImagePicker(byId("image-pick"), byId("region-view"), change);
const imageBar = new ColourBar(byId("image-legend"));
const tokenBar = new ColourBar(byId("token-legend"));
const topList = new TopKList(byId("top-k-list"), pickRanked);
const goToHead = (layer: number, head: number) => change({ layer, head, layerReduce: null });
const lowerViews = new LowerViews(client, tooltip, { head: goToHead, layer: (layer) => change({ layer }) });
const controls = new Controls({
  sample: (name) => void openSampleNamed(name, {}, "push"),
  layer: (layer) => change({ layer }),
  head: (head) => change({ head }),
  direction: (dir) => change({ dir }),
  layerReduce: chooseLayerReduce,
  layerEnd: (layerEnd) => change({ layerEnd }),
  combine: (combine) => change({ combine }),
  overlay: (overlay) => change({ overlay }),
  visionBlocks: (vblocks) => change({ vblocks }),
  visionHead: (vhead) => change({ vhead }),
  settings: settingChanged,
});
bindShortcuts({
  stepLayer,
  stepHead,
  // Direction is the LLM's: its control is disabled in vision mode.
  toggleDirection: () => app.view && !visionShown() && change({ dir: app.view.dir === "src" ? "tgt" : "src" }),
  deselect,
  stepToken: (delta) => app.loaded && app.view && change({ tokens: [stepToken(app.loaded.meta, app.view.tokens, delta)] }),
  toggleOverlay: () => app.view && app.loaded && change({ overlay: stepOverlay(app.view.overlay, app.loaded.meta) }),
});
controls.applySettings(settingsFromParams(params));
tokenPanel.setCollapseImage(controls.settings().collapseImage);
bindExport();
window.addEventListener("popstate", () => void restoreFromUrl());
exposeAutomationHook();
void start();

function withSlash(path: string): string {
  return path.endsWith("/") ? path : `${path}/`;
}

/** The data folder the URL names, or null (with the message shown) when it is no URL. */
function dataRootOf(params: URLSearchParams): URL | null {
  const asked = params.get("data") ?? "./data/";
  try {
    return new URL(withSlash(asked), location.href);
  } catch {
    showError(`The data parameter ${JSON.stringify(asked)} is not a URL or path the viewer can read.`);
    return null;
  }
}

/** The sample's vision attention when the image panel shows it, else null. */
function visionShown(): VisionMeta | null {
  return (app.view && app.loaded && shownVision(app.view, app.loaded.meta)) || null;
}

/** ←/→: the next layer the sample keeps, or in vision mode the next choice of blocks (all, then each). */
function stepLayer(delta: number): void {
  if (!app.loaded || !app.view) return;
  const vision = visionShown();
  if (vision) change({ vblocks: stepVisionBlocks(app.view.vblocks, delta, vision) });
  else change({ layer: stepKeptLayer(app.view.layer, delta, app.loaded.meta.storage.layers) });
}

/** ↑/↓: the next head, or in vision mode the next vision head (mean, then each). */
function stepHead(delta: number): void {
  if (!app.loaded || !app.view) return;
  const vision = visionShown();
  if (vision) change({ vhead: stepVisionHead(app.view.vhead, delta, vision) });
  else change({ head: stepLlmHead(app.view.head, delta, viewHeads(app.view, app.loaded.meta)) });
}

/** Escape: back from a patch's row to the saliency, else deselect the tokens. */
function deselect(): void {
  if (visionShown() && app.view?.patch !== null) change({ patch: null });
  else change({ tokens: [] });
}

async function fetchJson(url: URL): Promise<unknown> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url.pathname} answered HTTP ${response.status}`);
  try {
    return await response.json();
  } catch {
    throw new Error(`${url.pathname} is not valid JSON`);
  }
}

/** Open the sample the URL names while the list loads (one round trip less to the first heatmap), else the first listed. */
async function start(): Promise<void> {
  const dataRoot = dataRootOf(params);
  if (!dataRoot) return;
  const asked = viewFromParams(params);
  const listing = listSamples(dataRoot);
  if (asked.sample) return void (await Promise.all([listing, openSample(dataRoot, asked.sample, asked, "replace")]));
  const name = (await listing)?.[0]?.name;
  if (name) await openSample(dataRoot, name, asked, "replace");
}

/** index.json into the sample picker; null, with the message shown, when it cannot be read or lists nothing. */
async function listSamples(dataRoot: URL): Promise<SampleEntry[] | null> {
  try {
    const entries = parseIndex(await fetchJson(new URL("index.json", dataRoot)));
    controls.listSamples(entries);
    if (app.view) controls.showView(app.view); // the picker may have been filled after the sample opened
    if (!entries.length) showError(`No samples in ${dataRoot.href}: run the extractor first.`);
    return entries;
  } catch (error) {
    showError(`Cannot list samples: ${message(error)}`);
    return null;
  }
}

async function openSample(dataRoot: URL, name: string, asked: Partial<ViewState>, history: HistoryMode): Promise<void> {
  app.request++;
  app.loaded = null;
  app.values = null;
  app.vision = null;
  app.shared = null;
  lowerViews.reset(); // the last sample's lower views must not land on this one
  const sampleUrl = new URL(`${encodeURIComponent(name)}/`, dataRoot);
  let loaded: Loaded | null = null;
  try {
    const rolloutAnswer = fetch(new URL(ROLLOUT_FILE, sampleUrl)); // beside meta.json, not after it
    const meta = parseMeta(await fetchJson(new URL("meta.json", sampleUrl)));
    performance.mark("vav:meta-parsed");
    const rollout = await rolloutOf(await rolloutAnswer, meta);
    const view = completeView(asked, name, meta, rollout !== undefined);
    // The worker takes its messages in order: it opens the sample before it reads the view's first vector.
    const opened = client.open(sampleUrl.href, meta, rollout, cacheBytes);
    byId("panels").hidden = false;
    byId("lower").hidden = !lowerWanted(controls.settings()); // before the panels are fitted, so they are fitted once
    loaded = app.loaded = { meta, sampleUrl, rollout, sinks: sinkMask(meta) };
    app.firstHeatmapDrawn = false;
    hideError();
    // The first vector's read and the image's fetch start here; the controls and the token panel are laid out
    // while they run (in this same task, so before any answer is drawn); the heat does not wait for the image.
    setView(view, history);
    controls.configure(meta, rollout !== undefined);
    imagePicker.configure(meta);
    tokenPanel.setSample(meta);
    const decoded = shownImage(view).then(() => performance.mark("vav:image-decoded"));
    await Promise.all([opened, decoded]);
  } catch (error) {
    if (loaded && app.loaded !== loaded) return; // another sample has been opened since
    app.request++; // nothing more may be drawn for this sample
    app.loaded = null;
    byId("panels").hidden = true;
    showError(`Sample "${name}" cannot be shown: ${message(error)}`);
  }
}

/** rollout.json parsed, or undefined when the sample has none (a 404); any other failure is the sample's error. */
async function rolloutOf(answer: Response, meta: SampleMeta): Promise<RolloutMeta | undefined> {
  if (answer.status === 404) return undefined;
  if (!answer.ok) throw new Error(`${ROLLOUT_FILE} answered HTTP ${answer.status}`);
  try {
    return parseRollout(await answer.json(), meta);
  } catch (error) {
    throw new Error(error instanceof SyntaxError ? `${ROLLOUT_FILE} is not valid JSON` : message(error));
  }
}

function openSampleNamed(name: string, asked: Partial<ViewState>, history: HistoryMode): Promise<void> {
  const dataRoot = dataRootOf(params);
  return dataRoot ? openSample(dataRoot, name, asked, history) : Promise.resolve();
}

function sinkMask(meta: SampleMeta): Uint8Array {
  const mask = new Uint8Array(meta.seqLen);
  meta.tokens.forEach((token, i) => (mask[i] = i === 0 || token.type === "special" ? 1 : 0));
  return mask;
}

async function restoreFromUrl(): Promise<void> {
  const asked = viewFromParams(new URLSearchParams(location.search));
  if (asked.sample && asked.sample !== app.view?.sample) return openSampleNamed(asked.sample, asked, "none");
  if (app.loaded && app.view) setView(completeView(asked, app.view.sample, app.loaded.meta, app.loaded.rollout !== undefined), "none");
}

/** A press on a token or patch: select it, or its whole word when word selection is on. */
function select(token: number): void {
  if (!app.loaded) return;
  change({ tokens: controls.settings().selectWords ? wordAt(app.loaded.meta.tokens, token) : [token] });
}

/** A press on a vision patch: show its row, or back to the saliency when it was the one shown. */
function pressPatch(patch: number): void {
  if (app.view) change({ patch: app.view.patch === patch ? null : patch });
}

/**
 * Choosing a reduction applies at once: a range still one layer wide grows to
 * the last layer (or from the first, when the slider is on the last).
 */
function chooseLayerReduce(layerReduce: ViewState["layerReduce"]): void {
  if (!app.view || !app.loaded) return;
  const { layer, layerEnd } = app.view;
  const last = app.loaded.meta.numLayers - 1;
  const ranged = layerReduce !== null && LAYER_REDUCTIONS[layerReduce].reads === "layers";
  const widened = ranged && layerEnd === layer ? (layer === last ? 0 : last) : layerEnd;
  change({ layerReduce, layerEnd: widened });
}

/** A press on a top-k entry: select that token, or that vision patch. */
function pickRanked(index: number): void {
  if (visionShown()) change({ patch: index });
  else change({ tokens: [index] });
}

/** A user change to the view: record it in history, then fetch and draw. */
function change(patch: Partial<ViewState>): void {
  if (!app.view || !app.loaded) return;
  const next = clampHead({ ...app.view, ...patch }, app.loaded.meta); // a layer with fewer heads keeps its last
  if (JSON.stringify(next) === JSON.stringify(app.view)) return;
  setView(next, "push");
}

function setView(view: ViewState, history: HistoryMode): void {
  app.view = view;
  app.unsynced.push({ url: pageUrl(view), history });
  void refresh(); // the worker starts before any bookkeeping
}

/** The URL of a view with the display settings. */
function pageUrl(view: ViewState): string {
  return `?${settingsToParams(controls.settings(), viewToParams(view, new URLSearchParams(location.search)))}`;
}

/**
 * Bring the URL, the controls and the status line up to the view, once its
 * pixels are drawn: a pushState costs milliseconds, and any DOM write before the
 * worker's answer can put a whole frame between the click and its redraw. Every
 * view set meanwhile keeps its own history entry.
 */
function syncPage(): void {
  for (const { url, history } of app.unsynced) {
    if (history === "push") window.history.pushState(null, "", url);
    if (history === "replace") window.history.replaceState(null, "", url);
  }
  app.unsynced = [];
  if (!app.view || !app.loaded) return;
  controls.showView(app.view);
  imagePicker.show(app.view);
  setText(byId("status"), statusText(app.view, app.loaded.meta));
}

async function refresh(): Promise<void> {
  const view = app.view;
  const request = ++app.request;
  if (!view) return redraw();
  const image = shownImage(view).then(
    () => null,
    (error: unknown) => error,
  );
  try {
    const [values, vision, shared] = await Promise.all([tokenValues(view), visionValues(view), sharedValues(view)]);
    if (request !== app.request) return; // the user has moved on
    hideError();
    app.values = values;
    app.vision = vision;
    app.shared = shared;
  } catch (error) {
    if (request !== app.request) return;
    app.values = null;
    app.vision = null;
    showError(message(error));
  }
  redraw();
  // The heat does not wait for the image under it, but an image that cannot load is the view's error all the same.
  const failed = await image;
  if (failed && request === app.request) showError(message(failed));
}

/** The view's image in the image panel; resolves once it has decoded. */
function shownImage(view: ViewState): Promise<void> {
  if (!app.loaded) return Promise.resolve();
  const { meta, sampleUrl } = app.loaded;
  return imagePanel.setImage(imageUrl(sampleUrl, meta, view.image), meta.images[view.image]!.originalSize);
}

/** The LLM vector of the selected tokens, or null when none is selected. */
async function tokenValues(view: ViewState): Promise<Float32Array | null> {
  if (view.tokens.length === 0 || !app.loaded) return null;
  // What the sample does not store is not read: every cell is drawn grey, and the status line says why.
  if (!vectorStored(view, app.loaded.meta)) return new Float32Array(app.loaded.meta.seqLen).fill(NaN);
  const [firstLayer, lastLayer] = layerSpan(view);
  return client.vector({
    firstLayer,
    lastLayer,
    layerReduce: view.layerReduce ?? "mean",
    head: view.head,
    axis: view.dir === "src" ? "row" : "col",
    indices: view.tokens,
    combine: view.combine,
  });
}

/** The vision overlay's values in vision mode: the saliency, or the selected patch's row in the chosen head. */
async function visionValues(view: ViewState): Promise<Float32Array | null> {
  const vision = app.loaded && shownVision(view, app.loaded.meta);
  if (!vision) return null;
  return client.vision({ blocks: visionBlockIndices(view.vblocks, vision), patch: view.patch, head: view.vhead });
}

/**
 * With the shared scale, the element-wise max of the selection's vector over
 * every layer and head: the head-max file's row (or column) of each layer,
 * reduced by max. In vision mode, the max over the captured blocks of the
 * shown vision vector. Kept while the selection stays the same.
 */
async function sharedValues(view: ViewState): Promise<SharedVectors | null> {
  if (controls.settings().scale !== "shared" || !app.loaded) return null;
  const vision = visionShown();
  const key = JSON.stringify([view.tokens, view.dir, view.combine, vision && [view.patch, view.vhead]]);
  if (app.shared?.key === key) return app.shared;
  const llm = vectorStored({ ...view, layerReduce: "max", layerEnd: app.loaded.meta.numLayers - 1, layer: 0, head: "max" }, app.loaded.meta)
    ? client.vector({
        firstLayer: 0,
        lastLayer: app.loaded.meta.numLayers - 1,
        layerReduce: "max",
        head: "max",
        axis: view.dir === "src" ? "row" : "col",
        indices: view.tokens,
        combine: view.combine,
      })
    : Promise.resolve(null);
  const perBlock = vision ? vision.blocks.map((_, i) => client.vision({ blocks: [i], patch: view.patch, head: view.vhead })) : [];
  const [values, blocks] = await Promise.all([llm, Promise.all(perBlock)]);
  return { key, values, vision: blocks.length ? reduceVectors(blocks, "max") : null };
}

/** What the view fetched, once a sample is open. */
function fetched(): Fetched | null {
  if (!app.loaded || !app.view) return null;
  const shared = { shared: app.shared?.values ?? null, visionShared: app.shared?.vision ?? null };
  return { ...app.loaded, view: app.view, values: app.values, vision: app.vision, ...shared };
}

function refreshLower(): Promise<void> {
  return lowerViews.refresh(app.loaded, app.view, controls.settings());
}

function redraw(): void {
  const settings = controls.settings();
  const shown = fetched();
  const overlay = shown && imageOverlay(shown, settings);
  const tokens = shown && tokenHeat(shown, settings);
  if (overlay) imagePanel.update(overlay);
  tokenPanel.update(tokens?.heat ?? null, app.view?.tokens ?? []);
  imageBar.update(overlay?.legend ?? null);
  tokenBar.update(tokens?.legend ?? null);
  if (overlay?.heat || tokens) markDrawn();
  showTopK(overlay?.heat ?? null, tokens?.heat ?? null, settings);
  syncPage(); // in the same frame as the pixels
  void refreshLower();
}

/** The top-k of what the view shows: the vision patches in vision mode, else the LLM's tokens (text and image). */
function showTopK(overlay: Heat | null, tokens: Heat | null, settings: Settings): void {
  const meta = app.loaded?.meta;
  const vision = visionShown();
  if (!meta) return topList.update([], String, "");
  if (vision) {
    const label = (p: number) => `patch ${Math.floor(p / vision.grid.cols)},${p % vision.grid.cols}`;
    return topList.update(overlay ? topK(overlay, null, TOP_K) : [], label, `Top ${TOP_K} patches (vision encoder)`);
  }
  const skip = settings.excludeSinks ? app.loaded!.sinks : null;
  return topList.update(tokens ? topK(tokens, skip, TOP_K) : [], (t) => tokenName(meta, t), `Top ${TOP_K} tokens and patches`);
}

/** A token as the readout and the exports name it: its text, or its image patch (and region, where there are several). */
function tokenName(meta: SampleMeta, token: number): string {
  const { gridPos, text, region } = meta.tokens[token]!;
  if (!gridPos) return `#${token} ${JSON.stringify(text)}`;
  const label = meta.regions.length > 1 && region !== undefined ? regionLabel(meta, meta.regions[region]!) : "";
  return `#${token} ${label ? `${label} ` : ""}patch ${gridPos[0]},${gridPos[1]}`;
}

function markDrawn(): void {
  performance.mark("vav:draw");
  if (!app.firstHeatmapDrawn) {
    app.firstHeatmapDrawn = true;
    performance.mark("vav:first-heatmap");
  }
}

/** Redraw only what a display setting touches; the URL keeps it, without a history entry. */
function settingChanged(changed: keyof Settings): void {
  const settings = controls.settings();
  if (app.view) window.history.replaceState(null, "", pageUrl(app.view));
  if (changed === "scale") void refresh(); // the shared scale reads its own vectors
  else if (changed === "opacity") {
    const shown = fetched();
    if (shown) imagePanel.update(imageOverlay(shown, settings));
  } else if (changed === "collapseImage") tokenPanel.setCollapseImage(settings.collapseImage);
  else if (changed === "atlas" || changed === "curves" || changed === "measure") void refreshLower();
  else if (changed !== "selectWords") redraw();
  if (changed === "opacity") void refreshLower(); // the top heads' maps lie over the image too
}

/**
 * window.vav, for browser tests and the benchmark: a canvas has no DOM per
 * token, so they ask here where a token's cell is and what the view shows.
 */
function exposeAutomationHook(): void {
  Object.assign(window, {
    vav: {
      tokenBox: (token: number) => tokenPanel.clientBox(token),
      values: () => (app.values ? Array.from(app.values) : null),
      visionValues: () => (app.vision ? Array.from(app.vision) : null),
      legends: () => ({ image: imageBar.current, tokens: tokenBar.current }),
      exportFigure,
      atlas: () => {
        const atlas = lowerViews.atlas.current;
        return atlas && { values: Array.from(atlas.values), numLayers: atlas.numLayers, numHeads: atlas.numHeads, legend: lowerViews.atlasBar.current };
      },
      topHeads: () => lowerViews.headMaps.current?.heads ?? [],
      curves: () => {
        const curves = lowerViews.curves.current?.curves;
        const plain = (band: CurveBand) => ({ mean: Array.from(band.mean), min: Array.from(band.min), max: Array.from(band.max) });
        return curves ? Object.fromEntries(Object.entries(curves).map(([name, band]) => [name, plain(band)])) : null;
      },
      atlasCell: (layer: number, head: number) => lowerViews.atlas.cellBox(layer, head),
      curveX: (layer: number) => lowerViews.curves.layerX(layer),
      exportAtlas,
    },
  });
}

/** The current view's figure parts: the caption names model, layers, head, selection and direction. */
function figureParts(withTokens: boolean): FigureParts | null {
  if (!app.view || !app.loaded) return null;
  const caption = `${app.loaded.meta.model} · ${statusText(app.view, app.loaded.meta)}`;
  const parts: FigureParts = { caption, image: (scale) => imagePanel.figure(scale), imageLegend: imageBar.current };
  if (withTokens) parts.tokens = { strip: (width, scale) => tokenPanel.figure(width, scale), legend: tokenBar.current };
  return parts;
}

function shownVectors(): ShownVector[] {
  const meta = app.loaded?.meta;
  const vectors: ShownVector[] = [];
  if (meta && app.values) vectors.push({ name: "llm", values: app.values, label: (t) => tokenName(meta, t) });
  const vision = visionShown();
  if (vision && app.vision) {
    vectors.push({ name: "vision", values: app.vision, label: (p) => `patch ${Math.floor(p / vision.grid.cols)},${p % vision.grid.cols}` });
  }
  return vectors;
}

type ExportKind = "png" | "svg" | "csv" | "json";

/** The current view as a file's content: a PNG data URL, or the text of an SVG, CSV or JSON file. */
async function exportFigure(kind: ExportKind, scale = 2, withTokens = false): Promise<{ name: string; blob: Blob; imageBox?: Box } | null> {
  const parts = figureParts(withTokens);
  if (!parts || !app.view) return null;
  const base = `${app.view.sample}_layer${app.view.layer}_${app.view.head}`;
  if (kind === "png") {
    const { canvas, imageBox } = figureCanvas(parts, scale);
    const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, "image/png"));
    return blob && { name: `${base}@${scale}x.png`, blob, imageBox };
  }
  if (kind === "svg") return { name: `${base}.svg`, blob: new Blob([figureSvg(parts)], { type: "image/svg+xml" }) };
  if (kind === "csv") return { name: `${base}.csv`, blob: new Blob([vectorsCsv(parts.caption, shownVectors())], { type: "text/csv" }) };
  const view = { ...app.view, settings: controls.settings() };
  return { name: `${base}.json`, blob: new Blob([vectorsJson(parts.caption, view, shownVectors())], { type: "application/json" }) };
}

/** The atlas as one PNG, for the current view. */
function exportAtlas(scale = 2): Promise<{ name: string; blob: Blob; imageBox: Box } | null> {
  if (!app.view || !app.loaded) return Promise.resolve(null);
  return lowerViews.exportAtlas(app.loaded.meta, app.view, controls.settings(), scale);
}

function bindExport(): void {
  const scale = byId<HTMLSelectElement>("export-scale");
  scale.replaceChildren(
    ...EXPORT_SCALES.map((s) => Object.assign(document.createElement("option"), { value: String(s), textContent: `${s}×` })),
  );
  const withTokens = byId<HTMLInputElement>("export-tokens");
  byId("export-atlas").addEventListener("click", async () => {
    const file = await exportAtlas(Number(scale.value));
    if (file) download(file.name, file.blob);
  });
  for (const kind of ["png", "svg", "csv", "json"] as const) {
    byId(`export-${kind}`).addEventListener("click", async () => {
      const file = await exportFigure(kind, Number(scale.value), withTokens.checked);
      if (file) download(file.name, file.blob);
    });
  }
}

function showError(text: string): void {
  const box = byId("error");
  box.textContent = text;
  box.hidden = false;
  setText(byId("status"), "Nothing to show: see the message above.");
}

function hideError(): void {
  byId("error").hidden = true;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
