// The image at its natural aspect ratio with the heatmap on an overlay canvas.
// The overlay is one or more parts (one grid of LLM image tokens over the whole
// image, the tiles or the thumbnail of a tiled image, or the vision encoder's
// patches). Each part is painted into an ImageData of its grid size
// (cols × rows), put on a small canvas, then scaled onto its own rectangle of
// the overlay with smoothing off: one putImageData and one drawImage per part
// and redraw, whatever the grid size. The image may be shown twice side by side
// (panes), each copy with its own parts; a part is clipped to its pane's image,
// since a grid cut from a padded image reaches past the image's pixels.

import { LUTS, heatIndex, type Heat } from "./color";
import type { OverlaySource } from "../data/variants";
import { describeValue, type Tooltip } from "./tooltip";

/** One grid on the image: cell (r, c) shows the view's value at indices[r × cols + c]. */
export interface OverlayPart {
  rows: number;
  cols: number;
  /** [x, y, w, h] in the coordinates of OverlayGrid.size; it may reach past the image (the processor's padding). */
  rect: readonly [number, number, number, number];
  /** The copy of the image it is drawn on, 0 (left) to OverlayGrid.panes - 1. */
  pane: number;
  /** The vector index of each cell, row-major: its token, or its vision patch. */
  indices: ArrayLike<number>;
  /** Names the part in the tooltip ("" for a grid over the whole image). */
  label: string;
}

/** The grids drawn over the image, in the coordinates of the size the model saw it at. */
export interface OverlayGrid {
  kind: OverlaySource;
  size: readonly [number, number];
  /** How many copies of the image are shown side by side. */
  panes: number;
  parts: readonly OverlayPart[];
}

type Box = [number, number, number, number];

/** CSS pixels between two panes. */
const PANE_GAP = 8;

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
  /** The image last asked for, and its decoding. */
  private loading: { url: string; decoded: Promise<void> } | null = null;
  /** The shown image's size in pixels: the one meta.json gives until the file has decoded, then the file's own. */
  private imageSize: readonly [number, number] = [0, 0];
  /** The copies of the image after the first, for the panes after the first. */
  private readonly copies: HTMLImageElement[] = [];
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

  /**
   * Show an image of `size` pixels (the file's size, as meta.json gives it);
   * resolves once it is decoded, rejects when it cannot load. The panel is
   * fitted to that size at once, so an overlay drawn before the image decodes
   * already lies where the image will show. The same image again is kept as it is.
   */
  setImage(imageUrl: string, size: readonly [number, number]): Promise<void> {
    if (this.loading?.url !== imageUrl) this.loading = { url: imageUrl, decoded: this.load(imageUrl, size) };
    return this.loading.decoded;
  }

  private async load(imageUrl: string, size: readonly [number, number]): Promise<void> {
    this.view = null;
    this.image.src = imageUrl;
    for (const copy of this.copies) copy.src = imageUrl;
    this.showImages(false); // the last image must not show under the new one's overlay
    this.imageSize = size;
    this.fitToPanel();
    try {
      await this.image.decode();
    } catch {
      throw new Error(`the image ${decodeURIComponent(imageUrl.split("/").pop() ?? "")} cannot be loaded`);
    }
    if (this.loading?.url !== imageUrl) return; // another image was asked for meanwhile
    this.showImages(true);
    this.imageSize = [this.image.naturalWidth, this.image.naturalHeight];
    this.fitToPanel();
  }

  private showImages(shown: boolean): void {
    for (const image of [this.image, ...this.copies]) image.style.visibility = shown ? "" : "hidden";
  }

  update(view: OverlayView): void {
    const refit = view.grid.panes !== this.panes();
    this.view = view;
    if (refit) this.fitToPanel();
    else this.draw();
    if (this.pointer) this.hover(this.pointer);
  }

  private panes(): number {
    return this.view?.grid.panes ?? 1;
  }

  /** One image element per pane: the first is the panel's own, the others copies made as needed. */
  private showPanes(panes: number): HTMLImageElement[] {
    while (this.copies.length < panes - 1) {
      const copy = this.image.cloneNode() as HTMLImageElement;
      copy.removeAttribute("id");
      copy.alt = "the same image again, for the second pane";
      this.copies.push(copy);
      this.overlay.before(copy);
    }
    this.copies.forEach((copy, k) => (copy.hidden = k >= panes - 1));
    return [this.image, ...this.copies.slice(0, panes - 1)];
  }

  /**
   * The image with its overlay as the screen shows it, `scale` times the shown
   * size: the same paint as the screen, so the overlay's pixels are the view's.
   */
  figure(scale: number): HTMLCanvasElement {
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(this.overlay.clientWidth * scale);
    canvas.height = Math.round(this.image.clientHeight * scale);
    const ctx = canvas.getContext("2d")!;
    for (const box of this.paneBoxes(canvas.width, canvas.height)) ctx.drawImage(this.image, ...box);
    this.paintOverlay(ctx, canvas.width, canvas.height);
    return canvas;
  }

  /** Scale the image to fill the panel at its natural aspect ratio, and the overlay with it. */
  private fitToPanel(): void {
    const panel = this.image.parentElement!.parentElement!;
    const [naturalWidth, naturalHeight] = this.imageSize;
    if (!naturalWidth || !naturalHeight) return;
    const style = getComputedStyle(panel);
    const width = panel.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const height = panel.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
    const panes = this.panes();
    const gaps = (panes - 1) * PANE_GAP;
    const scale = Math.max(0.01, Math.min((width - gaps) / (panes * naturalWidth), height / naturalHeight));
    const [shownWidth, shownHeight] = [Math.floor(naturalWidth * scale), Math.floor(naturalHeight * scale)];
    this.showPanes(panes).forEach((image, pane) => {
      image.style.width = `${shownWidth}px`;
      image.style.height = `${shownHeight}px`;
      image.style.marginLeft = pane ? `${PANE_GAP}px` : "";
    });
    const ratio = window.devicePixelRatio || 1;
    this.overlay.width = Math.max(1, Math.round((panes * shownWidth + gaps) * ratio));
    this.overlay.height = Math.max(1, Math.round(shownHeight * ratio));
    this.draw();
  }

  /** Each pane's image on a width × height drawing of the whole overlay, left to right. */
  private paneBoxes(width: number, height: number): Box[] {
    const panes = this.panes();
    const shown = this.image.clientWidth || 1;
    const unit = width / (panes * shown + (panes - 1) * PANE_GAP); // drawing pixels per CSS pixel
    return Array.from({ length: panes }, (_, pane) => [pane * (shown + PANE_GAP) * unit, 0, shown * unit, height]);
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
    const panes = this.paneBoxes(width, height);
    ctx.imageSmoothingEnabled = false;
    for (const part of grid.parts) {
      this.paintPart(part, heat, this.view.opacity);
      onImage(ctx, panes[part.pane]!, () => ctx.drawImage(this.gridCanvas, ...partRect(grid, part, panes[part.pane]!)));
    }
    this.outlineSelectedCells(ctx, grid, this.view.selected, panes);
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

  private outlineSelectedCells(ctx: CanvasRenderingContext2D, grid: OverlayGrid, selected: number[], panes: Box[]): void {
    if (selected.length === 0) return;
    const wanted = new Set(selected);
    ctx.strokeStyle = "#ff3b30";
    ctx.lineWidth = 2;
    for (const part of grid.parts) {
      const [x, y, w, h] = partRect(grid, part, panes[part.pane]!);
      const [cw, ch] = [w / part.cols, h / part.rows];
      onImage(ctx, panes[part.pane]!, () => {
        for (let cell = 0; cell < part.indices.length; cell++) {
          if (!wanted.has(part.indices[cell]!)) continue;
          ctx.strokeRect(x + (cell % part.cols) * cw + 1, y + Math.floor(cell / part.cols) * ch + 1, cw - 2, ch - 2);
        }
      });
    }
  }

  /** The cell under the mouse, or null outside every pane's image and every part. */
  private cellAt(event: Pointer): CellHit | null {
    const grid = this.view?.grid;
    if (!grid) return null;
    const box = this.overlay.getBoundingClientRect();
    const [px, py] = [event.clientX - box.left, event.clientY - box.top];
    const panes = this.paneBoxes(box.width, box.height);
    const pane = panes.findIndex(([x, y, w, h]) => px >= x && px < x + w && py >= y && py < y + h);
    if (pane < 0) return null;
    const [bx, by, bw, bh] = panes[pane]!;
    // In the image's own coordinates: a cell that reaches past the image is found by its part on the image.
    const x = ((px - bx) / bw) * grid.size[0];
    const y = ((py - by) / bh) * grid.size[1];
    for (const part of grid.parts) {
      if (part.pane !== pane) continue;
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

/** A part's rectangle on its pane's image drawn at `pane`; it may reach past the pane where the image was padded. */
function partRect(grid: OverlayGrid, part: OverlayPart, pane: Box): Box {
  const [bx, by, bw, bh] = pane;
  const sx = bw / grid.size[0];
  const sy = bh / grid.size[1];
  const [x, y, w, h] = part.rect;
  return [bx + x * sx, by + y * sy, w * sx, h * sy];
}

/** Draw with everything outside the pane's image cut away: a part shows only its cells' parts over the image. */
function onImage(ctx: CanvasRenderingContext2D, pane: Box, draw: () => void): void {
  ctx.save();
  ctx.beginPath();
  ctx.rect(...pane);
  ctx.clip();
  draw();
  ctx.restore();
}
