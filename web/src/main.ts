// Entry point: one state object, one path from a user action to pixels:
// action → state (+ URL) → worker asks for one vector (two in vision mode: the
// token panel's and the image overlay's) → both panels recolour.

import { DataClient } from "./data/data-client";
import { parseIndex, parseMeta, type SampleMeta, type VisionMeta } from "./data/format";
import {
  completeView,
  layerSpan,
  shownVision,
  stepHead as stepLlmHead,
  stepOverlay,
  stepVisionBlocks,
  stepVisionHead,
  viewFromParams,
  viewToParams,
  visionBlockIndices,
  type ViewState,
} from "./state/state";
import { statusText } from "./state/status";
import { stepToken, wordAt } from "./state/words";
import { Controls, bindShortcuts, type Settings } from "./view/controls";
import { byId } from "./view/dom";
import { ImagePanel } from "./view/image-panel";
import { imageOverlay, tokenHeat, type Fetched } from "./view/panel-heats";
import { ImagePicker } from "./view/image-picker";
import { TokenPanel } from "./view/token-panel";
import { Tooltip } from "./view/tooltip";

const params = new URLSearchParams(location.search);
const dataRoot = new URL(withSlash(params.get("data") ?? "./data/"), location.href);
const cacheBytes = (Number(params.get("cacheMB")) || 512) * 2 ** 20;

type HistoryMode = "push" | "replace" | "none";

interface Loaded {
  meta: SampleMeta;
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
};

const client = new DataClient();
const tooltip = new Tooltip(byId("tooltip"));
const imagePanel = new ImagePanel(byId("image"), byId("image-overlay"), tooltip, (grid, index) =>
  grid.kind === "vision" ? pressPatch(index) : select(index),
);
const tokenPanel = new TokenPanel(byId("tokens"), tooltip, select);
const imagePicker = new ImagePicker(byId("image-pick"), byId("region-view"), (choice, imageChanged) => void showImage(choice.image, imageChanged));
const controls = new Controls({
  sample: (name) => void openSample(name, {}, "push"),
  layer: (layer) => change({ layer }),
  head: (head) => change({ head }),
  direction: (dir) => change({ dir }),
  layerReduce: (layerReduce) => change({ layerReduce }),
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
tokenPanel.setCollapseImage(controls.settings().collapseImage); // a reload may restore the checkbox
window.addEventListener("popstate", () => void restoreFromUrl());
exposeAutomationHook();
void start();

function withSlash(path: string): string {
  return path.endsWith("/") ? path : `${path}/`;
}

/** The sample's vision attention when the image panel shows it, else null. */
function visionShown(): VisionMeta | null {
  return (app.view && app.loaded && shownVision(app.view, app.loaded.meta)) || null;
}

/** ←/→: the next layer, or in vision mode the next choice of blocks (all, then each). */
function stepLayer(delta: number): void {
  if (!app.loaded || !app.view) return;
  const vision = visionShown();
  if (vision) change({ vblocks: stepVisionBlocks(app.view.vblocks, delta, vision) });
  else change({ layer: clamp(app.view.layer + delta, 0, app.loaded.meta.numLayers - 1) });
}

/** ↑/↓: the next head, or in vision mode the next vision head (mean, then each). */
function stepHead(delta: number): void {
  if (!app.loaded || !app.view) return;
  const vision = visionShown();
  if (vision) change({ vhead: stepVisionHead(app.view.vhead, delta, vision) });
  else change({ head: stepLlmHead(app.view.head, delta, app.loaded.meta.numHeads) });
}

/** Escape: back from a patch's row to the saliency, else deselect the tokens. */
function deselect(): void {
  if (visionShown() && app.view?.patch !== null) change({ patch: null });
  else change({ tokens: [] });
}

function clamp(value: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, value));
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

async function start(): Promise<void> {
  try {
    const entries = parseIndex(await fetchJson(new URL("index.json", dataRoot)));
    controls.listSamples(entries);
    const asked = viewFromParams(params);
    const name = asked.sample ?? entries[0]?.name;
    if (!name) return showError(`No samples in ${dataRoot.href}: run the extractor first.`);
    await openSample(name, asked, "replace");
  } catch (error) {
    showError(`Cannot list samples: ${message(error)}`);
  }
}

async function openSample(name: string, asked: Partial<ViewState>, history: HistoryMode): Promise<void> {
  app.request++;
  app.loaded = null;
  app.values = null;
  app.vision = null;
  const sampleUrl = new URL(`${encodeURIComponent(name)}/`, dataRoot);
  try {
    const meta = parseMeta(await fetchJson(new URL("meta.json", sampleUrl)));
    controls.configure(meta);
    byId("panels").hidden = false;
    tokenPanel.setSample(meta);
    imagePicker.configure(meta);
    await Promise.all([
      imagePanel.setImage(new URL(encodeURIComponent(meta.imagePath), sampleUrl).href),
      client.open(sampleUrl.href, meta, cacheBytes),
    ]);
    app.loaded = { meta, sinks: sinkMask(meta) };
    app.firstHeatmapDrawn = false;
    hideError();
    setView(completeView(asked, name, meta), history);
  } catch (error) {
    byId("panels").hidden = true;
    showError(`Sample "${name}" cannot be shown: ${message(error)}`);
  }
}

function sinkMask(meta: SampleMeta): Uint8Array {
  const mask = new Uint8Array(meta.seqLen);
  meta.tokens.forEach((token, i) => (mask[i] = i === 0 || token.type === "special" ? 1 : 0));
  return mask;
}

async function restoreFromUrl(): Promise<void> {
  const asked = viewFromParams(new URLSearchParams(location.search));
  if (asked.sample && asked.sample !== app.view?.sample) return openSample(asked.sample, asked, "none");
  if (app.loaded && app.view) setView(completeView(asked, app.view.sample, app.loaded.meta), "none");
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

/** A user change to the view: record it in history, then fetch and draw. */
function change(patch: Partial<ViewState>): void {
  if (!app.view || !app.loaded) return;
  const next = { ...app.view, ...patch };
  if (JSON.stringify(next) === JSON.stringify(app.view)) return;
  setView(next, "push");
}

function setView(view: ViewState, history: HistoryMode): void {
  app.view = view;
  app.unsynced.push({ url: `?${viewToParams(view, new URLSearchParams(location.search))}`, history });
  void refresh(); // the worker starts before any bookkeeping
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
  setText(byId("status"), statusText(app.view, app.loaded.meta));
}

async function refresh(): Promise<void> {
  const view = app.view;
  const request = ++app.request;
  if (!view) return redraw();
  try {
    const [values, vision] = await Promise.all([tokenValues(view), visionValues(view)]);
    if (request !== app.request) return; // the user has moved on
    hideError();
    app.values = values;
    app.vision = vision;
  } catch (error) {
    if (request !== app.request) return;
    app.values = null;
    app.vision = null;
    showError(message(error));
  }
  redraw();
}

/** The LLM vector of the selected tokens, or null when none is selected. */
async function tokenValues(view: ViewState): Promise<Float32Array | null> {
  if (view.tokens.length === 0) return null;
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

/** What the view fetched, once a sample is open. */
function fetched(): Fetched | null {
  if (!app.loaded || !app.view) return null;
  return { ...app.loaded, view: app.view, values: app.values, vision: app.vision, shownImage: imagePicker.choice() };
}

/** Another image, or other regions of it, on the image panel: the same vector, redrawn. */
async function showImage(image: number, imageChanged: boolean): Promise<void> {
  const loaded = app.loaded;
  if (!loaded) return;
  if (imageChanged) {
    const sampleUrl = new URL(`${encodeURIComponent(app.view!.sample)}/`, dataRoot);
    await imagePanel.setImage(new URL(encodeURIComponent(loaded.meta.images[image]!.path), sampleUrl).href);
  }
  if (app.loaded === loaded) redraw();
}

function redraw(): void {
  const settings = controls.settings();
  const shown = fetched();
  const overlay = shown && imageOverlay(shown, settings);
  const tokens = shown && tokenHeat(shown, settings);
  if (overlay) imagePanel.update(overlay);
  tokenPanel.update(tokens, app.view?.tokens ?? []);
  if (overlay?.heat || tokens) markDrawn();
  syncPage(); // in the same frame as the pixels
}

function markDrawn(): void {
  performance.mark("vav:draw");
  if (!app.firstHeatmapDrawn) {
    app.firstHeatmapDrawn = true;
    performance.mark("vav:first-heatmap");
  }
}

/** Redraw only what a display setting touches. */
function settingChanged(changed: keyof Settings): void {
  const settings = controls.settings();
  if (changed === "opacity") {
    const shown = fetched();
    if (shown) imagePanel.update(imageOverlay(shown, settings));
  } else if (changed === "collapseImage") tokenPanel.setCollapseImage(settings.collapseImage);
  else if (changed !== "selectWords") redraw();
}

/** Text writes dirty layout even when equal, so only changes are written. */
function setText(element: HTMLElement, text: string): void {
  if (element.textContent !== text) element.textContent = text;
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
    },
  });
}

function showError(text: string): void {
  const box = byId("error");
  box.textContent = text;
  box.hidden = false;
}

function hideError(): void {
  byId("error").hidden = true;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
