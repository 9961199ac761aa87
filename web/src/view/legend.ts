// The colour bar of a panel: palette, the scale's ends as numbers, the real min
// and max of what is shown, what the range is over (sinks left out or not), and
// the two looks every palette shares (masked cells, NaN/Inf). One drawing
// function serves the screen and the exported figure, so they cannot disagree.

import { SCALE_MODES } from "../data/variants";
import { LUTS, LUT_SIZE, MASKED_RGBA, NON_FINITE_RGBA, type Scale, type ScaleName } from "./color";
import { formatWeight } from "./tooltip";

export interface Legend {
  /** What the panel shows, e.g. "Image: LLM attention · layer 3 · mean of 32 heads". */
  title: string;
  palette: ScaleName;
  scale: Scale;
  /** Min and max of the finite values shown; null when there are none. */
  shown: { lo: number; hi: number } | null;
  /** What the range is taken over, and whether the sinks are in it. */
  over: string;
  /** Cells the selection cannot see under the layer's mask, and what that mask is. */
  masked: number;
  mask: string;
  nonFinite: number;
  /** Cells whose value is undefined (NaN by definition, not by accident), drawn with the masked look, and why. */
  undefinedCells?: { count: number; why: string };
  /** Cells the sample does not store (SPEC.md §1, storage profiles). */
  unstored?: number;
}

interface Item {
  text: string;
  swatch?: readonly number[];
}

const FONT = "11px system-ui, sans-serif";
const TITLE_FONT = "600 11px system-ui, sans-serif";
const LINE = 15;
const STRIP = 12;
const SWATCH = 10;

/** The scale's two end labels, and the notes under the strip. */
export function legendText(legend: Legend): { low: string; high: string; items: Item[] } {
  const { scale, shown } = legend;
  const items: Item[] = [{ text: `scale: ${SCALE_MODES[scale.mode].label}` }, { text: legend.over }];
  items.push({ text: shown ? `shown min ${formatWeight(shown.lo)} · max ${formatWeight(shown.hi)}` : "nothing finite shown" });
  if (legend.masked > 0) items.push({ text: `masked (${legend.mask}): ${legend.masked}`, swatch: MASKED_RGBA });
  const undefinedCells = legend.undefinedCells;
  if (undefinedCells && undefinedCells.count > 0) items.push({ text: `undefined (NaN): ${undefinedCells.count}, ${undefinedCells.why}`, swatch: MASKED_RGBA });
  if (legend.unstored) items.push({ text: `not stored in this sample: ${legend.unstored}`, swatch: MASKED_RGBA });
  if (legend.nonFinite > 0) items.push({ text: `NaN/Inf values: ${legend.nonFinite}`, swatch: NON_FINITE_RGBA });
  return { low: formatWeight(scale.lo), high: formatWeight(scale.hi), items };
}

/** Every string the bar draws, in order: the canvas's accessible name, and what tests read. */
export function legendSummary(legend: Legend): string {
  const { low, high, items } = legendText(legend);
  return [legend.title, `${low} to ${high}`, ...items.map((item) => item.text)].join(" | ");
}

interface Placed extends Item {
  x: number;
  y: number;
}

/** Where the notes go at this width, flowing onto as many lines as they need. */
function placeItems(ctx: CanvasRenderingContext2D, items: Item[], width: number, top: number): { placed: Placed[]; bottom: number } {
  ctx.font = FONT;
  const placed: Placed[] = [];
  let [x, y] = [0, top];
  for (const item of items) {
    const w = ctx.measureText(item.text).width + (item.swatch ? SWATCH + 4 : 0) + 14;
    if (x > 0 && x + w > width) [x, y] = [0, y + LINE];
    placed.push({ ...item, x, y });
    x += w;
  }
  return { placed, bottom: y + LINE };
}

/** Height in CSS pixels the bar needs at this width. */
export function legendHeight(ctx: CanvasRenderingContext2D, legend: Legend, width: number): number {
  return placeItems(ctx, legendText(legend).items, width, LINE + STRIP + 4).bottom;
}

/** Draw the bar with its top-left at (0, 0) of ctx's current transform, `width` CSS pixels wide. */
export function drawLegend(ctx: CanvasRenderingContext2D, legend: Legend, width: number): void {
  const { low, high, items } = legendText(legend);
  ctx.save();
  ctx.textBaseline = "middle";
  ctx.fillStyle = "#222";
  ctx.font = TITLE_FONT;
  ctx.fillText(legend.title, 0, LINE / 2, width);
  ctx.font = FONT;
  const stripTop = LINE;
  const lowWidth = ctx.measureText(low).width + 6;
  const highWidth = ctx.measureText(high).width + 6;
  ctx.fillText(low, 0, stripTop + STRIP / 2);
  ctx.fillText(high, width - highWidth + 6, stripTop + STRIP / 2);
  drawStrip(ctx, legend.palette, lowWidth, stripTop, Math.max(1, width - lowWidth - highWidth), STRIP);
  for (const item of placeItems(ctx, items, width, stripTop + STRIP + 4).placed) {
    let x = item.x;
    if (item.swatch) {
      const [r, g, b, a] = item.swatch;
      ctx.fillStyle = `rgba(${r},${g},${b},${a! / 255})`;
      ctx.fillRect(x, item.y + (LINE - SWATCH) / 2, SWATCH, SWATCH);
      ctx.strokeStyle = "#888";
      ctx.strokeRect(x + 0.5, item.y + (LINE - SWATCH) / 2 + 0.5, SWATCH - 1, SWATCH - 1);
      x += SWATCH + 4;
    }
    ctx.fillStyle = "#444";
    ctx.fillText(item.text, x, item.y + LINE / 2);
  }
  ctx.restore();
}

/** The palette's LUT from low (left) to high (right), on white as the panels show it over a light page. */
function drawStrip(ctx: CanvasRenderingContext2D, palette: ScaleName, x: number, y: number, w: number, h: number): void {
  const strip = document.createElement("canvas");
  [strip.width, strip.height] = [LUT_SIZE, 1];
  const pixels = new ImageData(LUT_SIZE, 1);
  pixels.data.set(LUTS[palette].subarray(0, LUT_SIZE * 4));
  strip.getContext("2d")!.putImageData(pixels, 0, 0);
  ctx.fillStyle = "#fff";
  ctx.fillRect(x, y, w, h);
  ctx.drawImage(strip, x, y, w, h);
  ctx.strokeStyle = "#999";
  ctx.strokeRect(x + 0.5, y + 0.5, w - 1, h - 1);
}

/** A panel's bar on screen: one canvas, redrawn when its legend or width changes. */
export class ColourBar {
  private legend: Legend | null = null;

  constructor(private readonly canvas: HTMLCanvasElement) {
    new ResizeObserver(() => this.draw()).observe(canvas.parentElement!);
  }

  update(legend: Legend | null): void {
    this.legend = legend;
    this.draw();
  }

  get current(): Legend | null {
    return this.legend;
  }

  private draw(): void {
    const legend = this.legend;
    if (this.canvas.hidden !== !legend) this.canvas.hidden = !legend;
    if (!legend) return;
    const width = Math.max(120, this.canvas.parentElement!.clientWidth - 24);
    const ratio = window.devicePixelRatio || 1;
    const ctx = this.canvas.getContext("2d")!;
    const height = legendHeight(ctx, legend, width);
    [this.canvas.width, this.canvas.height] = [Math.round(width * ratio), Math.round(height * ratio)];
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    drawLegend(ctx, legend, width);
    this.canvas.setAttribute("aria-label", legendSummary(legend));
  }
}
