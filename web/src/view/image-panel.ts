// The image at its natural aspect ratio with the heatmap on an overlay canvas.
// The grid (the LLM's image tokens, or the vision encoder's patches) is painted
// into an ImageData of grid size (cols × rows), put on a small canvas, then
// scaled onto the overlay with smoothing off: one putImageData and one
// drawImage per redraw, whatever the grid size.

import { LUTS, heatIndex, type Heat } from "./color";
import type { OverlaySource } from "../data/variants";
import { describeValue, type Tooltip } from "./tooltip";

/** The grid over the image: cell (r, c) shows the view's value at first + r × cols + c. */
export interface OverlayGrid {
  kind: OverlaySource;
  rows: number;
  cols: number;
  /** Where the cells start in the view's vector: the first image token, or 0 for vision patches. */
  first: number;
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
  private pixels: ImageData | null = null; // grid-sized, reused by every redraw of the same grid
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
    this.paintGrid(grid, heat, this.view.opacity);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.gridCanvas, 0, 0, width, height);
    this.outlineSelectedCells(ctx, grid, this.view.selected, width, height);
  }

  private gridPixels(grid: OverlayGrid): ImageData {
    if (this.pixels?.width !== grid.cols || this.pixels.height !== grid.rows) {
      this.gridCanvas.width = grid.cols;
      this.gridCanvas.height = grid.rows;
      this.pixels = new ImageData(grid.cols, grid.rows);
    }
    return this.pixels;
  }

  private paintGrid(grid: OverlayGrid, heat: Heat, opacity: number): void {
    const pixels = this.gridPixels(grid);
    const lut = LUTS[heat.palette];
    const data = pixels.data;
    for (let cell = 0; cell < grid.rows * grid.cols; cell++) {
      const at = heatIndex(heat, grid.first + cell) * 4;
      data[cell * 4] = lut[at]!;
      data[cell * 4 + 1] = lut[at + 1]!;
      data[cell * 4 + 2] = lut[at + 2]!;
      data[cell * 4 + 3] = lut[at + 3]! * opacity;
    }
    this.gridCanvas.getContext("2d")!.putImageData(pixels, 0, 0);
  }

  private outlineSelectedCells(ctx: CanvasRenderingContext2D, grid: OverlayGrid, selected: number[], width: number, height: number): void {
    const w = width / grid.cols;
    const h = height / grid.rows;
    ctx.strokeStyle = "#ff3b30";
    ctx.lineWidth = 2;
    for (const index of selected) {
      const cell = index - grid.first;
      if (cell < 0 || cell >= grid.rows * grid.cols) continue;
      ctx.strokeRect((cell % grid.cols) * w + 1, Math.floor(cell / grid.cols) * h + 1, w - 2, h - 2);
    }
  }

  /** The grid cell under a mouse event, or null outside the grid. */
  private cellAt(event: Pointer): { row: number; col: number; index: number } | null {
    const grid = this.view?.grid;
    if (!grid) return null;
    const box = this.overlay.getBoundingClientRect();
    const col = Math.floor(((event.clientX - box.left) / box.width) * grid.cols);
    const row = Math.floor(((event.clientY - box.top) / box.height) * grid.rows);
    if (col < 0 || row < 0 || col >= grid.cols || row >= grid.rows) return null;
    return { row, col, index: grid.first + row * grid.cols + col };
  }

  private hover(event: Pointer): void {
    this.pointer = { clientX: event.clientX, clientY: event.clientY };
    const cell = this.cellAt(event);
    if (!cell || !this.view) return this.tooltip.hide();
    const { heat, grid } = this.view;
    const value = heat ? describeValue(heat, cell.index) : null;
    const text =
      grid.kind === "vision"
        ? `vision patch row ${cell.row}, col ${cell.col} · #${cell.index}${value ? ` · value ${value}` : ""}`
        : `patch row ${cell.row}, col ${cell.col} · token #${cell.index}${value ? ` · weight ${value}` : ""}`;
    this.tooltip.show(text, event.clientX, event.clientY);
  }

  private press(event: MouseEvent): void {
    const cell = this.cellAt(event);
    if (cell && this.view) this.onPress(this.view.grid, cell.index);
  }
}
