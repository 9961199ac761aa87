// The atlas: every layer × head of the current selection at once, one cell per
// head coloured by a measure (image share, or spatial entropy), layers down and
// heads across. The grid is painted into an ImageData of H × L pixels and drawn
// scaled with smoothing off, as the image overlay is; undefined cells (NaN) take
// the masked look. A press on a cell goes to that layer and head.

import { shownStats } from "../data/attention";
import { LUTS, MASKED, scaleIndex, type PaletteName, type Scale } from "./color";
import type { Legend } from "./legend";
import { formatWeight, type Tooltip } from "./tooltip";

export interface AtlasView {
  values: Float32Array;
  numLayers: number;
  numHeads: number;
  palette: PaletteName;
  /** The measure's name, for the tooltip. */
  measure: string;
  /** The shown layer and head, outlined; null when the view shows an aggregate. */
  current: { layer: number; head: number } | null;
  legend: Legend;
}

/** Cells are square, sized so the grid is about GRID_WIDTH wide, within these bounds. */
const GRID_WIDTH = 384;
const MIN_CELL = 12;
const MAX_CELL = 32;
const LEFT = 30;
const TOP = 18;
const FONT = "10px system-ui, sans-serif";
const LABEL_EVERY = 4;

/** The atlas's legend, whose scale is the min to max of its finite values; NaN is undefined, not bad data. */
export function atlasLegend(values: Float32Array, palette: PaletteName, title: string, over: string, why: string): Legend {
  const finite = shownStats(values, null);
  const undefinedCount = values.reduce((n, v) => n + (Number.isNaN(v) ? 1 : 0), 0);
  const scale: Scale = { mode: "view", lo: finite.range?.lo ?? 0, hi: finite.range?.hi ?? 0 };
  return {
    title,
    palette,
    scale,
    shown: finite.range,
    over,
    masked: 0,
    mask: "none",
    nonFinite: finite.nonFinite - undefinedCount,
    undefinedCells: { count: undefinedCount, why },
  };
}

function cellSize(view: Pick<AtlasView, "numHeads">): number {
  return Math.max(MIN_CELL, Math.min(MAX_CELL, Math.floor(GRID_WIDTH / view.numHeads)));
}

export class AtlasPanel {
  private view: AtlasView | null = null;
  private readonly gridCanvas = document.createElement("canvas");
  private pointer: { clientX: number; clientY: number } | null = null;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly tooltip: Tooltip,
    private readonly onPick: (layer: number, head: number) => void,
  ) {
    canvas.addEventListener("mousemove", (event) => this.hover(event));
    canvas.addEventListener("mouseleave", () => {
      this.pointer = null;
      tooltip.hide();
    });
    canvas.addEventListener("mousedown", (event) => {
      const cell = event.button === 0 ? this.cellAt(event) : null;
      if (cell) this.onPick(cell.layer, cell.head);
    });
  }

  get current(): AtlasView | null {
    return this.view;
  }

  update(view: AtlasView | null): void {
    this.view = view;
    this.canvas.hidden = !view;
    if (!view) return;
    const ratio = window.devicePixelRatio || 1;
    const [width, height] = this.cssSize(view);
    [this.canvas.width, this.canvas.height] = [Math.round(width * ratio), Math.round(height * ratio)];
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
    const ctx = this.canvas.getContext("2d")!;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    this.paint(ctx, view);
    if (this.pointer) this.hover(this.pointer);
  }

  /** The grid with its axes at `scale` times its CSS size, as the screen paints it. */
  figure(scale: number): HTMLCanvasElement {
    const figure = document.createElement("canvas");
    if (!this.view) return figure;
    const [width, height] = this.cssSize(this.view);
    [figure.width, figure.height] = [Math.round(width * scale), Math.round(height * scale)];
    const ctx = figure.getContext("2d")!;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, figure.width, figure.height);
    ctx.setTransform(scale, 0, 0, scale, 0, 0);
    this.paint(ctx, this.view);
    return figure;
  }

  /** The window rectangle of a cell, for tests and the benchmark. */
  cellBox(layer: number, head: number): { x: number; y: number; w: number; h: number } | null {
    if (!this.view) return null;
    const box = this.canvas.getBoundingClientRect();
    const cell = cellSize(this.view);
    return { x: box.left + LEFT + head * cell, y: box.top + TOP + layer * cell, w: cell, h: cell };
  }

  private cssSize(view: AtlasView): [number, number] {
    const cell = cellSize(view);
    return [LEFT + view.numHeads * cell + 4, TOP + view.numLayers * cell + 4];
  }

  private paint(ctx: CanvasRenderingContext2D, view: AtlasView): void {
    const { numLayers, numHeads } = view;
    const cell = cellSize(view);
    this.paintGrid(view);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.gridCanvas, LEFT, TOP, numHeads * cell, numLayers * cell);
    ctx.strokeStyle = "#bbb";
    ctx.strokeRect(LEFT - 0.5, TOP - 0.5, numHeads * cell + 1, numLayers * cell + 1);
    ctx.fillStyle = "#444";
    ctx.font = FONT;
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    for (let layer = 0; layer < numLayers; layer += LABEL_EVERY) ctx.fillText(`L${layer}`, LEFT - 3, TOP + (layer + 0.5) * cell);
    ctx.textAlign = "center";
    for (let head = 0; head < numHeads; head += LABEL_EVERY) ctx.fillText(`H${head}`, LEFT + (head + 0.5) * cell, TOP / 2);
    ctx.textAlign = "start";
    if (view.current) {
      ctx.strokeStyle = "#ff3b30";
      ctx.lineWidth = 2;
      ctx.strokeRect(LEFT + view.current.head * cell + 1, TOP + view.current.layer * cell + 1, cell - 2, cell - 2);
      ctx.lineWidth = 1;
    }
  }

  private paintGrid(view: AtlasView): void {
    const { numLayers, numHeads, values } = view;
    if (this.gridCanvas.width !== numHeads || this.gridCanvas.height !== numLayers) {
      [this.gridCanvas.width, this.gridCanvas.height] = [numHeads, numLayers];
    }
    const pixels = new ImageData(numHeads, numLayers);
    const lut = LUTS[view.palette];
    const scale = view.legend.scale;
    for (let cell = 0; cell < values.length; cell++) {
      const value = values[cell]!;
      const at = (Number.isNaN(value) ? MASKED : scaleIndex(value, scale)) * 4;
      pixels.data.set(lut.subarray(at, at + 4), cell * 4);
    }
    this.gridCanvas.getContext("2d")!.putImageData(pixels, 0, 0);
  }

  private cellAt(event: { clientX: number; clientY: number }): { layer: number; head: number } | null {
    if (!this.view) return null;
    const box = this.canvas.getBoundingClientRect();
    const cell = cellSize(this.view);
    const head = Math.floor((event.clientX - box.left - LEFT) / cell);
    const layer = Math.floor((event.clientY - box.top - TOP) / cell);
    if (head < 0 || layer < 0 || head >= this.view.numHeads || layer >= this.view.numLayers) return null;
    return { layer, head };
  }

  private hover(event: { clientX: number; clientY: number }): void {
    this.pointer = { clientX: event.clientX, clientY: event.clientY };
    const cell = this.cellAt(event);
    if (!cell || !this.view) return this.tooltip.hide();
    const value = this.view.values[cell.layer * this.view.numHeads + cell.head]!;
    const text = Number.isNaN(value) ? "undefined (NaN)" : formatWeight(value);
    this.tooltip.show(`layer ${cell.layer} · head ${cell.head} · ${this.view.measure} ${text}`, event.clientX, event.clientY);
  }
}
