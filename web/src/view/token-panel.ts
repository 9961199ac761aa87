// The token panel: one canvas holding the sequence as a wrapped text flow.
// A draw paints only the lines in view (and again on scroll): their backgrounds
// (batched by colour: at most 256 fills), their text on top and the selection's
// outline. Uncollapsed, N = 8,192 tokens make a canvas 10,000 px tall, of which
// a few hundred cells show, so the text of the others is never rendered.

import { CSS_COLOURS, MASKED, NON_FINITE, heatIndex, type Heat } from "./color";
import type { SampleMeta, Token } from "../data/format";
import { regionLabel } from "./panel-heats";
import { cellAt, cellsBetween, layoutTokens, LINE_HEIGHT, SECTION_GAP, type Cell, type Layout } from "./token-layout";
import type { Pointer } from "./image-panel";
import { describeValue, formatWeight, type Tooltip } from "./tooltip";

const FONT = "13px ui-monospace, monospace";
const TEXT_COLOUR: Record<Cell["kind"], string> = {
  text: "#111",
  thinking: "#6d28d9", // the model's thinking span, apart from its answer
  special: "#9a9a9a", // dimmed
  image: "#6b7280",
  "image-block": "#374151",
  partial: "#b45309",
};
const MAX_CANVAS_PIXELS = 32000; // browsers refuse taller canvases

export class TokenPanel {
  private meta: SampleMeta | null = null;
  private layout: Layout | null = null;
  private heat: Heat | null = null;
  private selected: number[] = [];
  private collapseImage = true;
  private ratio = 1;
  /** The width the layout was made for. */
  private laidOutWidth = 0;
  /** Where the mouse rests over the panel, so a redraw under a still mouse rewrites its tooltip. */
  private pointer: Pointer | null = null;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly tooltip: Tooltip,
    private readonly onSelect: (token: number) => void,
  ) {
    // Only a new width moves the cells: a new height (a colour bar shown above) only shows more or fewer lines.
    new ResizeObserver(() => (this.layout && this.layoutWidth() === this.laidOutWidth ? this.draw() : this.relayout())).observe(canvas.parentElement!);
    // Scroll events come before the frame is painted, so the newly visible lines never show blank.
    canvas.parentElement!.addEventListener("scroll", () => this.draw(), { passive: true });
    canvas.addEventListener("mousemove", (event) => this.hover(event));
    canvas.addEventListener("mouseleave", () => {
      this.pointer = null;
      tooltip.hide();
    });
    // Select on press rather than click: the view starts loading before the button is released.
    canvas.addEventListener("mousedown", (event) => event.button === 0 && this.press(event));
  }

  setSample(meta: SampleMeta): void {
    this.meta = meta;
    this.heat = null;
    this.relayout();
  }

  setCollapseImage(collapse: boolean): void {
    this.collapseImage = collapse;
    this.relayout();
  }

  update(heat: Heat | null, selected: number[]): void {
    this.heat = heat;
    this.selected = selected;
    this.draw();
    if (this.pointer) this.hover(this.pointer);
  }

  /**
   * The whole token flow laid out `width` CSS pixels wide, `scale` times over,
   * painted as the screen paints it: the exported figure's token strip.
   */
  figure(width: number, scale: number): HTMLCanvasElement | null {
    if (!this.meta) return null;
    const canvas = document.createElement("canvas");
    const ctx = canvas.getContext("2d")!;
    const layout = this.layoutAt(width, ctx);
    const ratio = Math.min(scale, MAX_CANVAS_PIXELS / layout.height);
    [canvas.width, canvas.height] = [Math.round(width * ratio), Math.round(layout.height * ratio)];
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, width, layout.height);
    if (this.heat) paintBackgrounds(ctx, layout.cells, this.heat);
    renderText(ctx, layout.cells, layout.sectionTop, width);
    return canvas;
  }

  private cellFor(token: number): Cell | undefined {
    const index = this.layout?.cellOf[token];
    return index === undefined ? undefined : this.layout?.cells[index];
  }

  /** Where a token's cell is in the window, scrolled into view first. */
  clientBox(token: number): { x: number; y: number; w: number; h: number } | null {
    const cell = this.cellFor(token);
    if (!cell) return null;
    const panel = this.canvas.parentElement!.getBoundingClientRect();
    const top = this.canvas.getBoundingClientRect().top + cell.y;
    if (top < panel.top || top + LINE_HEIGHT > panel.bottom) {
      this.canvas.parentElement!.scrollTop += top - panel.top - panel.height / 2;
    }
    const box = this.canvas.getBoundingClientRect();
    return { x: box.left + cell.x, y: box.top + cell.y, w: cell.w, h: LINE_HEIGHT };
  }

  /** The width the cells flow in: the panel's, less its padding. */
  private layoutWidth(): number {
    return this.canvas.parentElement!.clientWidth - 16;
  }

  private relayout(): void {
    if (!this.meta) return;
    const width = this.layoutWidth();
    this.laidOutWidth = width;
    this.layout = this.layoutAt(width, this.canvas.getContext("2d")!);
    this.ratio = Math.min(window.devicePixelRatio || 1, MAX_CANVAS_PIXELS / this.layout.height);
    this.canvas.width = Math.round(width * this.ratio);
    this.canvas.height = Math.round(this.layout.height * this.ratio);
    this.canvas.style.height = `${this.layout.height}px`;
    this.draw();
  }

  private layoutAt(width: number, ctx: CanvasRenderingContext2D): Layout {
    ctx.font = FONT;
    return layoutTokens(this.meta!.tokens, this.meta!.regions, {
      width,
      collapseImage: this.collapseImage,
      ...(this.meta!.answerStart !== undefined ? { sectionStart: this.meta!.answerStart } : {}),
      measure: (text) => ctx.measureText(text).width,
    });
  }

  private draw(): void {
    if (!this.layout) return;
    const [top, bottom] = this.visibleBand();
    const [r, width, height] = [this.ratio, this.canvas.width / this.ratio, bottom - top];
    const ctx = this.canvas.getContext("2d")!;
    ctx.save();
    ctx.setTransform(r, 0, 0, r, 0, 0);
    ctx.beginPath();
    ctx.rect(0, top, width, height);
    ctx.clip(); // cells and outlines that cross the band's edges stay inside it
    ctx.clearRect(0, top, width, height);
    const cells = cellsBetween(this.layout, top, bottom);
    if (this.heat) paintBackgrounds(ctx, cells, this.heat);
    renderText(ctx, cells, this.layout.sectionTop, width);
    this.outlineSelection(ctx);
    ctx.restore();
  }

  /** The canvas rows [top, bottom) in CSS pixels that the scrolled panel shows, in whole device pixels. */
  private visibleBand(): [number, number] {
    const panel = this.canvas.parentElement!.getBoundingClientRect();
    const canvas = this.canvas.getBoundingClientRect();
    const top = Math.max(0, Math.floor(panel.top - canvas.top));
    const bottom = Math.min(this.layout!.height, Math.ceil(panel.bottom - canvas.top));
    return [top, Math.max(top, bottom)];
  }

  private outlineSelection(ctx: CanvasRenderingContext2D): void {
    ctx.strokeStyle = "#ff3b30";
    ctx.lineWidth = 2;
    for (const token of this.selected) {
      const cell = this.cellFor(token);
      if (cell) ctx.strokeRect(cell.x, cell.y + 1, cell.w, LINE_HEIGHT - 2);
    }
  }

  private cellUnder(event: Pointer): Cell | undefined {
    if (!this.layout) return undefined;
    const box = this.canvas.getBoundingClientRect();
    return cellAt(this.layout, event.clientX - box.left, event.clientY - box.top);
  }

  private hover(event: Pointer): void {
    this.pointer = { clientX: event.clientX, clientY: event.clientY };
    const cell = this.cellUnder(event);
    if (!cell || !this.meta) return this.tooltip.hide();
    this.tooltip.show(describeCell(cell, this.meta, this.heat), event.clientX, event.clientY);
  }

  private press(event: MouseEvent): void {
    const cell = this.cellUnder(event);
    // The collapsed image block stands for many tokens; its patches are picked on the image.
    if (cell && cell.kind !== "image-block") this.onSelect(cell.first);
  }
}

/** The cells' labels and partial-character frames, and the answer rule (sectionTop) where the sample has one. */
function renderText(ctx: CanvasRenderingContext2D, cells: Cell[], sectionTop: number | undefined, width: number): void {
  ctx.font = FONT;
  ctx.textBaseline = "middle";
  ctx.lineJoin = "round";
  ctx.lineWidth = 3;
  ctx.strokeStyle = "rgba(255,255,255,0.85)"; // a halo keeps text readable on any colour
  for (const cell of cells) {
    const y = cell.y + LINE_HEIGHT / 2;
    ctx.strokeText(cell.label, cell.x + 3, y);
    ctx.fillStyle = TEXT_COLOUR[cell.kind];
    ctx.fillText(cell.label, cell.x + 3, y);
  }
  if (sectionTop !== undefined) markAnswer(ctx, sectionTop, width);
  ctx.setLineDash([2, 2]); // partial characters: a dashed frame says "part of the next token's character"
  ctx.strokeStyle = TEXT_COLOUR.partial;
  ctx.lineWidth = 1;
  for (const cell of cells.filter((c) => c.kind === "partial")) {
    ctx.strokeRect(cell.x + 0.5, cell.y + 1.5, cell.w - 1, LINE_HEIGHT - 3);
  }
}

/** A rule and a label in the gap above the answer, so it reads apart from the prompt. */
function markAnswer(ctx: CanvasRenderingContext2D, top: number, width: number): void {
  const y = top - SECTION_GAP / 2;
  ctx.fillStyle = "#2563eb";
  ctx.fillRect(0, y, width, 1);
  ctx.font = "10px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  ctx.fillStyle = "#fff";
  ctx.fillRect(8, y - 6, 50, 12);
  ctx.fillStyle = "#2563eb";
  ctx.fillText("answer", 12, y);
  ctx.font = FONT;
}

/** One path and one fill per colour in use, instead of a fillStyle change per cell. */
function paintBackgrounds(ctx: CanvasRenderingContext2D, cells: Cell[], heat: Heat): void {
  const buckets: Cell[][] = [];
  for (const cell of cells) {
    const index = cellIndex(cell, heat);
    (buckets[index] ??= []).push(cell);
  }
  const colours = CSS_COLOURS[heat.palette];
  buckets.forEach((bucket, index) => {
    ctx.beginPath();
    for (const cell of bucket) ctx.rect(cell.x, cell.y + 1, cell.w, LINE_HEIGHT - 2);
    ctx.fillStyle = colours[index]!;
    ctx.fill();
  });
}

/**
 * The colour entry of a cell: a token's own; for the collapsed image block,
 * that of its strongest visible token, masked when the selection sees none of
 * it, and NaN/Inf when any of its tokens is.
 */
function cellIndex(cell: Cell, heat: Heat): number {
  let best = MASKED;
  let strongest = -Infinity;
  for (let t = cell.first; t <= cell.last; t++) {
    const index = heatIndex(heat, t);
    if (index === NON_FINITE) return NON_FINITE;
    if (index !== MASKED && heat.values[t]! > strongest) [best, strongest] = [index, heat.values[t]!];
  }
  return best;
}

/** Sum and max of a collapsed image block's visible values: how much of the selection's attention goes to the image. */
function imageAttention(cell: Cell, heat: Heat): { total: number; max: number } {
  let [total, max] = [0, -Infinity];
  for (let t = Math.max(cell.first, heat.visible[0]); t <= Math.min(cell.last, heat.visible[1]); t++) {
    total += heat.values[t]!;
    max = Math.max(max, heat.values[t]!);
  }
  return { total, max };
}

function describeCell(cell: Cell, meta: SampleMeta, heat: Heat | null): string {
  if (cell.kind === "image-block") {
    const region = meta.regions[meta.tokens[cell.first]!.region ?? 0]!;
    const what = region.kind === "image" ? "image" : region.kind === "tile" ? "tile" : "global thumbnail";
    const attention = heat && imageAttention(cell, heat);
    const weight = attention
      ? ` · total attention on the ${what} ${formatWeight(attention.total)} (strongest patch ${formatWeight(Math.max(0, attention.max))})`
      : "";
    return `${what} ${region.cols}×${region.rows} · tokens #${cell.first}–#${cell.last}${weight}\nclick the image to pick a patch`;
  }
  const token = meta.tokens[cell.first]!;
  const weight = heat ? ` · weight ${describeValue(heat, cell.first)}` : "";
  const partial = token.text === "" ? " (part of a character)" : "";
  const role = token.layout ? ` (${token.layout.replace("_", " ")})` : "";
  const where = token.gridPos ? ` · image row ${token.gridPos[0]}, col ${token.gridPos[1]}${regionOf(meta, token)}` : "";
  return `${JSON.stringify(token.text)}${partial} · #${cell.first} · ${token.type}${role}${where}${weight}`;
}

/** " of tile 2 of 6" and the like where the sample has several regions. */
function regionOf(meta: SampleMeta, token: Token): string {
  const label = meta.regions.length > 1 && token.region !== undefined ? regionLabel(meta, meta.regions[token.region]!) : "";
  return label ? ` of ${label}` : "";
}
