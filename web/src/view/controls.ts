// The controls bar and the keyboard shortcuts. Controls only report what the
// user asked for; main.ts changes the state and redraws.

import type { Reduce } from "../data/attention";
import type { PaletteName } from "./color";
import { byId } from "./dom";
import type { SampleEntry, SampleMeta } from "../data/format";
import type { HeadChoice, VisionHead } from "../data/protocol";
import {
  headCycle,
  layerSpan,
  visionBlockCycle,
  visionHeadCycle,
  type Combine,
  type Direction,
  type Overlay,
  type ViewState,
  type VisionBlocks,
} from "../state/state";

export interface Settings {
  palette: PaletteName;
  opacity: number;
  excludeSinks: boolean;
  collapseImage: boolean;
  /** A press on a token selects its whole word. */
  selectWords: boolean;
}

export interface ControlHandlers {
  sample(name: string): void;
  layer(layer: number): void;
  head(head: HeadChoice): void;
  direction(dir: Direction): void;
  layerReduce(reduce: Reduce | null): void;
  layerEnd(layer: number): void;
  combine(combine: Combine): void;
  overlay(overlay: Overlay): void;
  visionBlocks(vblocks: VisionBlocks): void;
  visionHead(vhead: VisionHead): void;
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
  private readonly head = byId<HTMLSelectElement>("head");
  private readonly direction = byId<HTMLSelectElement>("direction");
  private readonly palette = byId<HTMLSelectElement>("palette");
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
  /** The vision encoder's own controls, shown only while the image shows it. */
  private readonly visionOnly = [this.visionBlocks, this.visionHead];
  /** The LLM's own controls, disabled while the image shows the vision encoder. */
  private readonly llmOnly = [this.layer, this.layerReduce, this.layerEnd, this.head, this.direction, this.combine];

  constructor(handlers: ControlHandlers) {
    this.sample.addEventListener("change", () => handlers.sample(this.sample.value));
    this.layer.addEventListener("input", () => handlers.layer(Number(this.layer.value)));
    this.head.addEventListener("change", () => handlers.head(parseHead(this.head.value)));
    this.direction.addEventListener("change", () => handlers.direction(this.direction.value as Direction));
    this.palette.addEventListener("change", () => handlers.settings("palette"));
    this.opacity.addEventListener("input", () => handlers.settings("opacity"));
    this.excludeSinks.addEventListener("change", () => handlers.settings("excludeSinks"));
    this.collapseImage.addEventListener("change", () => handlers.settings("collapseImage"));
    this.layerReduce.addEventListener("change", () => handlers.layerReduce((this.layerReduce.value || null) as Reduce | null));
    this.layerEnd.addEventListener("input", () => handlers.layerEnd(Number(this.layerEnd.value)));
    this.combine.addEventListener("change", () => handlers.combine(this.combine.value as Combine));
    this.selectWords.addEventListener("change", () => handlers.settings("selectWords"));
    this.overlay.addEventListener("change", () => handlers.overlay(this.overlay.value as Overlay));
    this.visionBlocks.addEventListener("change", () => handlers.visionBlocks(parseVisionBlocks(this.visionBlocks.value)));
    this.visionHead.addEventListener("change", () => handlers.visionHead(parseVisionHead(this.visionHead.value)));
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

  /** Fit the layer range, the head list and the vision choices to a sample; no vision attention, no overlay choice. */
  configure(meta: SampleMeta): void {
    this.layer.max = String(meta.numLayers - 1);
    this.layerEnd.max = String(meta.numLayers - 1);
    this.head.replaceChildren(
      ...headCycle(meta.numHeads).map((head) => option(String(head), typeof head === "number" ? `head ${head}` : `aggregated: ${head}`)),
    );
    this.overlay.parentElement!.hidden = !meta.vision;
    const blocks = meta.vision ? visionBlockCycle(meta.vision) : [];
    this.visionBlocks.replaceChildren(
      ...blocks.map((b) => option(String(b), b === "all" ? `all ${blocks.length - 1} blocks (mean)` : `block ${b}`)),
    );
    const heads = meta.vision ? visionHeadCycle(meta.vision) : [];
    this.visionHead.replaceChildren(
      ...heads.map((h) => option(String(h), h === "mean" ? `mean of ${heads.length - 1} heads` : `head ${h}`)),
    );
  }

  /** Called after every redraw, so it writes only what changed (an equal write can still dirty layout). */
  showView(view: ViewState): void {
    const [first, last] = layerSpan(view);
    assign(this.sample, view.sample);
    assign(this.layer, String(view.layer));
    assign(this.layerValue, String(view.layer));
    assign(this.head, String(view.head));
    assign(this.direction, view.dir);
    assign(this.layerReduce, view.layerReduce ?? "");
    assign(this.layerEnd, String(view.layerEnd));
    if (this.layerEnd.parentElement!.hidden !== !view.layerReduce) this.layerEnd.parentElement!.hidden = !view.layerReduce;
    assign(this.layerEndValue, `${first}–${last}`);
    assign(this.combine, view.combine);
    assign(this.overlay, view.overlay);
    assign(this.visionBlocks, String(view.vblocks));
    assign(this.visionHead, String(view.vhead));
    const vision = view.overlay === "vision";
    for (const control of this.visionOnly) if (control.parentElement!.hidden !== !vision) control.parentElement!.hidden = !vision;
    for (const control of this.llmOnly) if (control.disabled !== vision) control.disabled = vision;
  }

  settings(): Settings {
    return {
      palette: this.palette.value as PaletteName,
      opacity: Number(this.opacity.value),
      excludeSinks: this.excludeSinks.checked,
      collapseImage: this.collapseImage.checked,
      selectWords: this.selectWords.checked,
    };
  }
}

function assign(element: { value: string }, value: string): void {
  if (element.value !== value) element.value = value;
}

function option(value: string, text: string): HTMLOptionElement {
  const element = document.createElement("option");
  element.value = value;
  element.textContent = text;
  return element;
}

function parseHead(value: string): HeadChoice {
  return value === "mean" || value === "max" ? value : Number(value);
}

function parseVisionBlocks(value: string): VisionBlocks {
  return value === "all" ? value : Number(value);
}

function parseVisionHead(value: string): VisionHead {
  return value === "mean" ? value : Number(value);
}

/**
 * §4.7: ←/→ layer, ↑/↓ head (mean, max, 0..H-1), Tab direction, Escape deselect; [ / ] step tokens;
 * v toggles the image overlay between the LLM and the vision encoder (where ←/→ step the blocks, ↑/↓ its heads).
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
    event.preventDefault(); // the focused slider or select must not also move
    action();
  });
}
