// The image at its natural aspect ratio with the heatmap on an overlay canvas.
// The overlay is one or more parts (one grid of LLM image tokens over the whole
// image, the tiles or the thumbnail of a tiled image, or the vision encoder's
// patches). Each part is painted into an ImageData of its grid size
// (cols × rows), put on a small canvas, then scaled onto its own rectangle of
// the overlay with smoothing off: one putImageData and one drawImage per part
// and redraw, whatever the grid size.

import { LUTS, heatIndex, type Heat } from "./color";
import type { OverlaySource } from "../data/variants";
import { describeValue, type Tooltip } from "./tooltip";

/** One grid on the image: cell (r, c) shows the view's value at indices[r × cols + c]. */
export interface OverlayPart {
  rows: number;
  cols: number;
  /** [x, y, w, h] in the coordinates of OverlayGrid.size. */
  rect: readonly [number, number, number, number];
  /** The vector index of each cell, row-major: its token, or its vision patch. */
  indices: ArrayLike<number>;
  /** Names the part in the tooltip ("" for a grid over the whole image). */
  label: string;
}

/** The grids drawn over the image, in the coordinates of the size the model saw it at. */
export interface OverlayGrid {
  kind: OverlaySource;
  size: readonly [number, number];
  parts: readonly OverlayPart[];
}

interface CellHit {
  part: OverlayPart;
  row: number;
  col: number;
  index: number;
}

/** Where a mouse is, in window coordinates. */
export type Pointer = Pick<MouseEvent, "clientX" | "clientY">;

/** What the overlay shows: the grid, the heat (null: nothing), the selected vector indices, the opacity. */
export interface OverlayView {
  grid: OverlayGrid;
  heat: Heat | null;
  selected: number[];
  opacity: number;
}

export class ImagePanel {
  private view: OverlayView | null = null;
  private readonly gridCanvas = document.createElement("canvas");
  private readonly pixels = new WeakMap<OverlayPart, ImageData>(); // part-sized, reused by every redraw of the part
  /** Where the mouse rests over the overlay, so a redraw under a still mouse rewrites its tooltip. */
  private pointer: { clientX: number; clientY: number } | null = null;

  /** `onPress` gets the vector index of the pressed cell (a token, or a vision patch). */
  constructor(
    private readonly image: HTMLImageElement,
    private readonly overlay: HTMLCanvasElement,
    private readonly tooltip: Tooltip,
    private readonly onPress: (grid: OverlayGrid, index: number) => void,
  ) {
    new ResizeObserver(() => this.fitToPanel()).observe(image.parentElement!.parentElement!);
    overlay.addEventListener("mousemove", (event) => this.hover(event));
    overlay.addEventListener("mouseleave", () => {
      this.pointer = null;
      tooltip.hide();
    });
    // Select on press rather than click: the view starts loading before the button is released.
    overlay.addEventListener("mousedown", (event) => event.button === 0 && this.press(event));
  }

  /** Show a sample's image; resolves once it is decoded, rejects when it cannot load. */
  async setImage(imageUrl: string): Promise<void> {
    this.view = null;
    this.image.src = imageUrl;
    try {
      await this.image.decode();
    } catch {
      throw new Error(`the image ${decodeURIComponent(imageUrl.split("/").pop() ?? "")} cannot be loaded`);
    }
    this.fitToPanel();
  }

  update(view: OverlayView): void {
    this.view = view;
    this.draw();
    if (this.pointer) this.hover(this.pointer);
  }

  /**
   * The image with its overlay as the screen shows it, `scale` times the shown
   * size: the same paint as the screen, so the overlay's pixels are the view's.
   */
  figure(scale: number): HTMLCanvasElement {
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(this.image.clientWidth * scale);
    canvas.height = Math.round(this.image.clientHeight * scale);
    const ctx = canvas.getContext("2d")!;
    ctx.drawImage(this.image, 0, 0, canvas.width, canvas.height);
    this.paintOverlay(ctx, canvas.width, canvas.height);
    return canvas;
  }

  /** Scale the image to fill the panel at its natural aspect ratio, and the overlay with it. */
  private fitToPanel(): void {
    const panel = this.image.parentElement!.parentElement!;
    const { naturalWidth, naturalHeight } = this.image;
    if (!naturalWidth || !naturalHeight) return;
    const style = getComputedStyle(panel);
    const width = panel.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const height = panel.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
    const scale = Math.max(0.01, Math.min(width / naturalWidth, height / naturalHeight));
    this.image.style.width = `${Math.floor(naturalWidth * scale)}px`;
    this.image.style.height = `${Math.floor(naturalHeight * scale)}px`;
    const ratio = window.devicePixelRatio || 1;
    this.overlay.width = Math.max(1, Math.round(naturalWidth * scale * ratio));
    this.overlay.height = Math.max(1, Math.round(naturalHeight * scale * ratio));
    this.draw();
  }

  private draw(): void {
    const ctx = this.overlay.getContext("2d")!;
    ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
    this.paintOverlay(ctx, this.overlay.width, this.overlay.height);
  }

  /** The grid scaled onto a width × height area with smoothing off, and the selection outlined. */
  private paintOverlay(ctx: CanvasRenderingContext2D, width: number, height: number): void {
    if (!this.view?.heat) return;
    const { grid, heat } = this.view;
    ctx.imageSmoothingEnabled = false;
    for (const part of grid.parts) {
      this.paintPart(part, heat, this.view.opacity);
      const [x, y, w, h] = partRect(grid, part, width, height);
      ctx.drawImage(this.gridCanvas, x, y, w, h);
    }
    this.outlineSelectedCells(ctx, grid, this.view.selected, width, height);
  }

  private partPixels(part: OverlayPart): ImageData {
    let pixels = this.pixels.get(part);
    if (!pixels) this.pixels.set(part, (pixels = new ImageData(part.cols, part.rows)));
    this.gridCanvas.width = part.cols;
    this.gridCanvas.height = part.rows;
    return pixels;
  }

  private paintPart(part: OverlayPart, heat: Heat, opacity: number): void {
    const pixels = this.partPixels(part);
    const lut = LUTS[heat.palette];
    const data = pixels.data;
    for (let cell = 0; cell < part.rows * part.cols; cell++) {
      const at = heatIndex(heat, part.indices[cell]!) * 4;
      data[cell * 4] = lut[at]!;
      data[cell * 4 + 1] = lut[at + 1]!;
      data[cell * 4 + 2] = lut[at + 2]!;
      data[cell * 4 + 3] = lut[at + 3]! * opacity;
    }
    this.gridCanvas.getContext("2d")!.putImageData(pixels, 0, 0);
  }

  private outlineSelectedCells(ctx: CanvasRenderingContext2D, grid: OverlayGrid, selected: number[], width: number, height: number): void {
    if (selected.length === 0) return;
    const wanted = new Set(selected);
    ctx.strokeStyle = "#ff3b30";
    ctx.lineWidth = 2;
    for (const part of grid.parts) {
      const [x, y, w, h] = partRect(grid, part, width, height);
      const [cw, ch] = [w / part.cols, h / part.rows];
      for (let cell = 0; cell < part.indices.length; cell++) {
        if (!wanted.has(part.indices[cell]!)) continue;
        ctx.strokeRect(x + (cell % part.cols) * cw + 1, y + Math.floor(cell / part.cols) * ch + 1, cw - 2, ch - 2);
      }
    }
  }

  /** The cell under the mouse, or null outside every part. */
  private cellAt(event: Pointer): CellHit | null {
    const grid = this.view?.grid;
    if (!grid) return null;
    const box = this.overlay.getBoundingClientRect();
    const x = ((event.clientX - box.left) / box.width) * grid.size[0];
    const y = ((event.clientY - box.top) / box.height) * grid.size[1];
    for (const part of grid.parts) {
      const [px, py, pw, ph] = part.rect;
      const col = Math.floor(((x - px) / pw) * part.cols);
      const row = Math.floor(((y - py) / ph) * part.rows);
      if (col >= 0 && row >= 0 && col < part.cols && row < part.rows) {
        return { part, row, col, index: part.indices[row * part.cols + col]! };
      }
    }
    return null;
  }

  private hover(event: Pointer): void {
    this.pointer = { clientX: event.clientX, clientY: event.clientY };
    const cell = this.cellAt(event);
    if (!cell || !this.view) return this.tooltip.hide();
    const { heat, grid } = this.view;
    const value = heat ? describeValue(heat, cell.index) : null;
    const where = `${cell.part.label ? `${cell.part.label} · ` : ""}patch row ${cell.row}, col ${cell.col}`;
    const text =
      grid.kind === "vision"
        ? `vision ${where} · #${cell.index}${value ? ` · value ${value}` : ""}`
        : `${where} · token #${cell.index}${value ? ` · weight ${value}` : ""}`;
    this.tooltip.show(text, event.clientX, event.clientY);
  }

  private press(event: MouseEvent): void {
    const cell = this.cellAt(event);
    if (cell && this.view) this.onPress(this.view.grid, cell.index);
  }
}

/** A part's rectangle on a width × height drawing of the whole image. */
function partRect(grid: OverlayGrid, part: OverlayPart, width: number, height: number): [number, number, number, number] {
  const sx = width / grid.size[0];
  const sy = height / grid.size[1];
  const [x, y, w, h] = part.rect;
  return [x * sx, y * sy, w * sx, h * sy];
}
