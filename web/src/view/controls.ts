// The controls bar and the keyboard shortcuts. Controls only report what the
// user asked for; main.ts changes the state and redraws.

import { storedHeads, type LayerAttention, type SampleEntry, type SampleMeta } from "../data/format";
import {
  ATLAS_MEASURES,
  HEAD_AGGREGATES,
  LAYER_REDUCTIONS,
  ROLLOUT_MISSING,
  OVERLAYS,
  SCALE_MODES,
  VISION_HEAD_AGGREGATES,
  WORD_COMBINES,
  availableOverlays,
  layerMark,
  layerReductionAvailable,
  variantNamed,
  variantsOf,
  type HeadChoice,
} from "../data/variants";
import {
  headCycle,
  layerSpan,
  parseCombine,
  parseHead,
  parseOverlay,
  parseVisionBlocks,
  parseVisionHead,
  visionBlockCycle,
  visionHeadCycle,
  viewHeads,
  type ViewState,
} from "../state/state";
import { PALETTE_NAMES, type Settings } from "../state/settings";
import { byId } from "./dom";

/** What the user asked for, one handler per control: each reports a value of its ViewState field. */
export interface ControlHandlers {
  sample(name: string): void;
  layer(layer: number): void;
  head(head: ViewState["head"]): void;
  direction(dir: ViewState["dir"]): void;
  layerReduce(reduce: ViewState["layerReduce"]): void;
  layerEnd(layer: number): void;
  combine(combine: ViewState["combine"]): void;
  overlay(overlay: ViewState["overlay"]): void;
  visionBlocks(vblocks: ViewState["vblocks"]): void;
  visionHead(vhead: ViewState["vhead"]): void;
  settings(changed: keyof Settings): void;
}

export interface ShortcutHandlers {
  stepLayer(delta: number): void;
  stepHead(delta: number): void;
  toggleDirection(): void;
  deselect(): void;
  stepToken(delta: number): void;
  toggleOverlay(): void;
}

export class Controls {
  private readonly sample = byId<HTMLSelectElement>("sample");
  private readonly layer = byId<HTMLInputElement>("layer");
  private readonly layerValue = byId<HTMLOutputElement>("layer-value");
  private readonly layerKind = byId<HTMLOutputElement>("layer-kind");
  private meta: SampleMeta | null = null;
  private readonly head = byId<HTMLSelectElement>("head");
  /** The head count and stored heads the head list was made for. */
  private headsListed = "";
  private readonly direction = byId<HTMLSelectElement>("direction");
  private readonly palette = byId<HTMLSelectElement>("palette");
  private readonly scale = byId<HTMLSelectElement>("scale");
  private readonly opacity = byId<HTMLInputElement>("opacity");
  private readonly excludeSinks = byId<HTMLInputElement>("exclude-sinks");
  private readonly collapseImage = byId<HTMLInputElement>("collapse-image");
  private readonly layerReduce = byId<HTMLSelectElement>("layer-reduce");
  private readonly layerEnd = byId<HTMLInputElement>("layer-end");
  private readonly layerEndValue = byId<HTMLOutputElement>("layer-end-value");
  private readonly combine = byId<HTMLSelectElement>("combine");
  private readonly selectWords = byId<HTMLInputElement>("select-words");
  private readonly overlay = byId<HTMLSelectElement>("overlay");
  private readonly visionBlocks = byId<HTMLSelectElement>("vision-blocks");
  private readonly visionHead = byId<HTMLSelectElement>("vision-head");
  private readonly atlas = byId<HTMLInputElement>("show-atlas");
  private readonly curves = byId<HTMLInputElement>("show-curves");
  private readonly measure = byId<HTMLSelectElement>("atlas-measure");
  /** The vision encoder's own controls, shown only while the image shows it. */
  private readonly visionOnly = [this.visionBlocks, this.visionHead];
  /** The LLM's own controls, disabled while the image shows the vision encoder. */
  private readonly llmOnly = [this.layer, this.layerReduce, this.layerEnd, this.head, this.direction, this.combine];

  constructor(handlers: ControlHandlers) {
    this.listOptions();
    this.sample.addEventListener("change", () => handlers.sample(this.sample.value));
    this.layer.addEventListener("input", () => handlers.layer(Number(this.layer.value)));
    onValue(this.head, "change", parseHead, handlers.head);
    this.direction.addEventListener("change", () => handlers.direction(this.direction.value as ViewState["dir"]));
    this.palette.addEventListener("change", () => handlers.settings("palette"));
    this.scale.addEventListener("change", () => handlers.settings("scale"));
    this.opacity.addEventListener("input", () => handlers.settings("opacity"));
    this.excludeSinks.addEventListener("change", () => handlers.settings("excludeSinks"));
    this.collapseImage.addEventListener("change", () => handlers.settings("collapseImage"));
    onValue(this.layerReduce, "change", parseLayerReduce, handlers.layerReduce);
    this.layerEnd.addEventListener("input", () => handlers.layerEnd(Number(this.layerEnd.value)));
    onValue(this.combine, "change", parseCombine, handlers.combine);
    this.selectWords.addEventListener("change", () => handlers.settings("selectWords"));
    onValue(this.overlay, "change", parseOverlay, handlers.overlay);
    onValue(this.visionBlocks, "change", parseVisionBlocks, handlers.visionBlocks);
    onValue(this.visionHead, "change", parseVisionHead, handlers.visionHead);
    this.atlas.addEventListener("change", () => handlers.settings("atlas"));
    this.curves.addEventListener("change", () => handlers.settings("curves"));
    this.measure.addEventListener("change", () => handlers.settings("measure"));
  }

  /** The choices that are the same for every sample, from the variant tables. */
  private listOptions(): void {
    const reductions = variantsOf(LAYER_REDUCTIONS).map((r) =>
      option(r, LAYER_REDUCTIONS[r].reads === "rollout" ? `${LAYER_REDUCTIONS[r].label} up to the layer` : `${LAYER_REDUCTIONS[r].label} of a range`),
    );
    this.layerReduce.replaceChildren(option(SINGLE_LAYER, "this layer only"), ...reductions);
    this.combine.replaceChildren(...variantsOf(WORD_COMBINES).map((c) => option(c, WORD_COMBINES[c].label)));
    this.palette.replaceChildren(...PALETTE_NAMES.map((p) => option(p, p)));
    this.scale.replaceChildren(...variantsOf(SCALE_MODES).map((m) => option(m, SCALE_MODES[m].label)));
    this.measure.replaceChildren(...variantsOf(ATLAS_MEASURES).map((m) => option(m, ATLAS_MEASURES[m].label)));
  }

  /** Set the display controls, from the URL. */
  applySettings(settings: Settings): void {
    this.palette.value = settings.palette;
    this.opacity.value = String(settings.opacity);
    this.scale.value = settings.scale;
    this.excludeSinks.checked = settings.excludeSinks;
    this.collapseImage.checked = settings.collapseImage;
    this.selectWords.checked = settings.selectWords;
    this.atlas.checked = settings.atlas;
    this.curves.checked = settings.curves;
    this.measure.value = settings.measure;
  }

  listSamples(entries: SampleEntry[]): void {
    this.sample.replaceChildren(
      ...entries.map((entry) => {
        const option = document.createElement("option");
        option.value = entry.name;
        option.textContent = `${entry.name} (${entry.seqLen} tokens, ${entry.mode})`;
        option.title = entry.prompt;
        return option;
      }),
    );
  }

  /**
   * Fit the layer range, the head list and the vision choices to a sample; no
   * vision attention, no overlay choice; no rollout.json, the rollout greyed with a note.
   */
  configure(meta: SampleMeta, hasRollout: boolean): void {
    this.meta = meta;
    this.headsListed = "";
    for (const item of Array.from(this.layerReduce.options)) {
      const reduce = variantNamed(LAYER_REDUCTIONS, item.value);
      const missing = reduce !== undefined && !layerReductionAvailable(reduce, hasRollout);
      item.disabled = missing;
      item.title = missing ? ROLLOUT_MISSING : "";
    }
    for (const slider of [this.layer, this.layerEnd]) {
      slider.max = String(meta.numLayers - 1);
      showKeptLayers(slider, meta.storage.layers, meta.numLayers);
    }
    const overlays = availableOverlays(meta);
    this.overlay.replaceChildren(...overlays.map((o) => option(o, OVERLAYS[o].label)));
    this.overlay.parentElement!.hidden = overlays.length < 2;
    const blocks = meta.vision ? visionBlockCycle(meta.vision) : [];
    this.visionBlocks.replaceChildren(
      ...blocks.map((b) => option(String(b), b === "all" ? `all ${blocks.length - 1} blocks (mean)` : `block ${b}`)),
    );
    const numHeads = meta.vision?.numHeads ?? 0;
    const heads = meta.vision ? visionHeadCycle(meta.vision) : [];
    this.visionHead.replaceChildren(
      ...heads.map((h) =>
        option(String(h), typeof h === "number" ? `head ${h}` : `${VISION_HEAD_AGGREGATES[h].label} of ${numHeads} heads`),
      ),
    );
  }

  /** Called after every redraw, so it writes only what changed (an equal write can still dirty layout). */
  showView(view: ViewState): void {
    const [first, last] = layerSpan(view);
    assign(this.sample, view.sample);
    assign(this.layer, String(view.layer));
    assign(this.layerValue, String(view.layer));
    this.showLayerKinds(this.meta?.layerAttention.slice(first, last + 1) ?? []);
    this.listHeads(view);
    assign(this.head, String(view.head));
    assign(this.direction, view.dir);
    assign(this.layerReduce, view.layerReduce ?? SINGLE_LAYER);
    assign(this.layerEnd, String(view.layerEnd));
    const ranged = view.layerReduce !== null && LAYER_REDUCTIONS[view.layerReduce].reads === "layers";
    if (this.layerEnd.parentElement!.hidden !== !ranged) this.layerEnd.parentElement!.hidden = !ranged;
    // A range dragged backwards is shown as the layers it covers, and says it was reversed.
    const reversed = ranged && view.layerEnd < view.layer;
    assign(this.layerEndValue, reversed ? `${first}–${last} (reversed)` : `${first}–${last}`);
    this.layerEndValue.classList.toggle("reversed", reversed);
    assign(this.combine, view.combine);
    assign(this.overlay, view.overlay);
    assign(this.visionBlocks, String(view.vblocks));
    assign(this.visionHead, String(view.vhead));
    const vision = OVERLAYS[view.overlay].source === "vision";
    for (const control of this.visionOnly) if (control.parentElement!.hidden !== !vision) control.parentElement!.hidden = !vision;
    for (const control of this.llmOnly) if (control.disabled !== vision) control.disabled = vision;
  }

  /** The head list of the view's layers: their own heads (a linear layer may have more than the sample's). */
  private listHeads(view: ViewState): void {
    const meta = this.meta;
    if (!meta) return;
    const heads = viewHeads(view, meta);
    const stored = storedHeads(meta, view.layer);
    const listed = JSON.stringify([heads, stored]); // most layer steps keep the list as it is
    if (listed === this.headsListed) return;
    this.headsListed = listed;
    this.head.replaceChildren(...headCycle(heads).map((head) => headOption(head, stored)));
  }

  /** The mark of the layers shown: each distinct one, and their kinds as data-kinds (styled, and read by tests). */
  private showLayerKinds(layers: LayerAttention[]): void {
    const marks = [...new Set(layers.map(layerMark))].join(" | ");
    const kinds = [...new Set(layers.map((layer) => layer.kind))].join(" ");
    if (this.layerKind.value !== marks) this.layerKind.value = marks;
    if (this.layerKind.dataset["kinds"] !== kinds) this.layerKind.dataset["kinds"] = kinds;
  }

  settings(): Settings {
    return {
      palette: this.palette.value as Settings["palette"],
      opacity: Number(this.opacity.value),
      scale: this.scale.value as Settings["scale"],
      excludeSinks: this.excludeSinks.checked,
      collapseImage: this.collapseImage.checked,
      selectWords: this.selectWords.checked,
      atlas: this.atlas.checked,
      curves: this.curves.checked,
      measure: this.measure.value as Settings["measure"],
    };
  }
}

function assign(element: { value: string }, value: string): void {
  if (element.value !== value) element.value = value;
}

/** A head's entry; a head the sample does not keep is greyed out (the aggregates are over all heads, always stored). */
function headOption(head: HeadChoice, stored: number[]): HTMLOptionElement {
  if (typeof head !== "number") return option(String(head), `aggregated: ${HEAD_AGGREGATES[head].label}`);
  const kept = stored.includes(head);
  const element = option(String(head), kept ? `head ${head}` : `head ${head} (not stored)`);
  element.disabled = !kept;
  return element;
}

/** The slider thumb's width in CSS pixels (style.css): a layer's place on the track is the thumb's centre there. */
const THUMB = 14;

/**
 * Where a sample keeps only some layers, the slider's track is blue under the kept ones and grey under the
 * others (style.css draws it from --kept-track); a sample that keeps every layer keeps the usual slider.
 */
function showKeptLayers(slider: HTMLInputElement, kept: number[], numLayers: number): void {
  const some = kept.length < numLayers;
  slider.classList.toggle("some-layers", some);
  if (!some) {
    slider.style.removeProperty("--kept-track");
    return;
  }
  const at = (edge: number) => `calc(${THUMB / 2}px + (100% - ${THUMB}px) * ${edge / Math.max(1, numLayers - 1)})`;
  const stops = Array.from({ length: numLayers }, (_, layer) => {
    const colour = kept.includes(layer) ? KEPT_COLOUR : UNKEPT_COLOUR;
    const [from, to] = [layer === 0 ? "0%" : at(layer - 0.5), layer === numLayers - 1 ? "100%" : at(layer + 0.5)];
    return `${colour} ${from} ${to}`;
  });
  slider.style.setProperty("--kept-track", `linear-gradient(to right, ${stops.join(", ")})`);
}

const KEPT_COLOUR = "#60a5fa";
const UNKEPT_COLOUR = "#d1d5db";

function option(value: string, text: string): HTMLOptionElement {
  const element = document.createElement("option");
  element.value = value;
  element.textContent = text;
  return element;
}

/** The layer-reduce choice that reduces nothing: the view shows the Layer slider's layer alone. */
const SINGLE_LAYER = "";

function parseLayerReduce(value: string): ViewState["layerReduce"] | undefined {
  return value === SINGLE_LAYER ? null : variantNamed(LAYER_REDUCTIONS, value);
}

/** Report an element's value on `event`, parsed; a value that parses to nothing is not reported. */
function onValue<T>(
  element: HTMLSelectElement | HTMLInputElement,
  event: "change" | "input",
  parse: (value: string) => T | undefined,
  report: (value: T) => void,
): void {
  element.addEventListener(event, () => {
    const value = parse(element.value);
    if (value !== undefined) report(value);
  });
}

/**
 * The shortcuts (SPEC.md §3, Interactions): ←/→ layer, ↑/↓ head (the head aggregates, then each head), Tab direction, Escape deselect; [ / ] step tokens;
 * v toggles the image overlay between the LLM and the vision encoder (where ←/→ step the blocks, ↑/↓ its heads).
 * While a form control has the focus, Tab moves the focus as usual, so the keyboard can reach every control.
 */
export function bindShortcuts(handlers: ShortcutHandlers): void {
  const actions: Record<string, () => void> = {
    ArrowLeft: () => handlers.stepLayer(-1),
    ArrowRight: () => handlers.stepLayer(1),
    ArrowUp: () => handlers.stepHead(-1),
    ArrowDown: () => handlers.stepHead(1),
    Tab: () => handlers.toggleDirection(),
    Escape: () => handlers.deselect(),
    "[": () => handlers.stepToken(-1),
    "]": () => handlers.stepToken(1),
    v: () => handlers.toggleOverlay(),
  };
  document.addEventListener("keydown", (event) => {
    const action = actions[event.key];
    if (!action || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "Tab" && isFormControl(document.activeElement)) return;
    event.preventDefault(); // the focused slider or select must not also move
    action();
  });
}

function isFormControl(element: Element | null): boolean {
  return element instanceof HTMLInputElement || element instanceof HTMLSelectElement || element instanceof HTMLButtonElement || element instanceof HTMLTextAreaElement;
}
