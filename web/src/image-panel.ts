// The image at its natural aspect ratio with the heatmap on an overlay canvas.
// The grid is painted into an ImageData of grid size (cols × rows), put on a
// small canvas, then scaled onto the overlay with smoothing off: one
// putImageData and one drawImage per redraw, whatever the grid size.

import { LUTS, lutIndex, type Heat } from "./color";
import type { ImageGrid } from "./format";
import { formatWeight, type Tooltip } from "./tooltip";

export class ImagePanel {
  private grid: ImageGrid | null = null;
  private heat: Heat | null = null;
  private opacity = 0.75;
  private selected: number[] = [];
  private readonly gridCanvas = document.createElement("canvas");
  private pixels: ImageData | null = null; // grid-sized, reused by every redraw

  constructor(
    private readonly image: HTMLImageElement,
    private readonly overlay: HTMLCanvasElement,
    private readonly tooltip: Tooltip,
    private readonly onSelect: (token: number) => void,
  ) {
    new ResizeObserver(() => this.fitToPanel()).observe(image.parentElement!.parentElement!);
    overlay.addEventListener("mousemove", (event) => this.hover(event));
    overlay.addEventListener("mouseleave", () => tooltip.hide());
    // Select on press rather than click: the view starts loading before the button is released.
    overlay.addEventListener("mousedown", (event) => event.button === 0 && this.press(event));
  }

  /** Show a sample's image; resolves once it is decoded, rejects when it cannot load. */
  async setSample(imageUrl: string, grid: ImageGrid): Promise<void> {
    this.grid = grid;
    this.heat = null;
    this.gridCanvas.width = grid.cols;
    this.gridCanvas.height = grid.rows;
    this.pixels = new ImageData(grid.cols, grid.rows);
    this.image.src = imageUrl;
    try {
      await this.image.decode();
    } catch {
      throw new Error(`the image ${decodeURIComponent(imageUrl.split("/").pop() ?? "")} cannot be loaded`);
    }
    this.fitToPanel();
  }

  update(heat: Heat | null, selected: number[], opacity: number): void {
    this.heat = heat;
    this.selected = selected;
    this.opacity = opacity;
    this.draw();
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
    if (!this.grid || !this.heat || !this.pixels) return;
    this.paintGrid(this.grid, this.heat, this.pixels);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.gridCanvas, 0, 0, this.overlay.width, this.overlay.height);
    this.outlineSelectedPatches(ctx, this.grid);
  }

  private paintGrid(grid: ImageGrid, heat: Heat, pixels: ImageData): void {
    const lut = LUTS[heat.palette];
    const data = pixels.data;
    for (let cell = 0; cell < grid.rows * grid.cols; cell++) {
      const at = lutIndex(heat.values[grid.startIdx + cell]!, heat.lo, heat.hi) * 4;
      data[cell * 4] = lut[at]!;
      data[cell * 4 + 1] = lut[at + 1]!;
      data[cell * 4 + 2] = lut[at + 2]!;
      data[cell * 4 + 3] = lut[at + 3]! * this.opacity;
    }
    this.gridCanvas.getContext("2d")!.putImageData(pixels, 0, 0);
  }

  private outlineSelectedPatches(ctx: CanvasRenderingContext2D, grid: ImageGrid): void {
    const w = this.overlay.width / grid.cols;
    const h = this.overlay.height / grid.rows;
    ctx.strokeStyle = "#ff3b30";
    ctx.lineWidth = 2;
    for (const token of this.selected) {
      if (token < grid.startIdx || token > grid.endIdx) continue;
      const cell = token - grid.startIdx;
      ctx.strokeRect((cell % grid.cols) * w + 1, Math.floor(cell / grid.cols) * h + 1, w - 2, h - 2);
    }
  }

  /** The grid cell under a mouse event, or null outside the grid. */
  private cellAt(event: MouseEvent): { row: number; col: number; token: number } | null {
    if (!this.grid) return null;
    const box = this.overlay.getBoundingClientRect();
    const col = Math.floor(((event.clientX - box.left) / box.width) * this.grid.cols);
    const row = Math.floor(((event.clientY - box.top) / box.height) * this.grid.rows);
    if (col < 0 || row < 0 || col >= this.grid.cols || row >= this.grid.rows) return null;
    return { row, col, token: this.grid.startIdx + row * this.grid.cols + col };
  }

  private hover(event: MouseEvent): void {
    const cell = this.cellAt(event);
    if (!cell) return this.tooltip.hide();
    const weight = this.heat ? ` · weight ${formatWeight(this.heat.values[cell.token]!)}` : "";
    this.tooltip.show(`patch row ${cell.row}, col ${cell.col} · token #${cell.token}${weight}`, event.clientX, event.clientY);
  }

  private press(event: MouseEvent): void {
    const cell = this.cellAt(event);
    if (cell) this.onSelect(cell.token);
  }
}
