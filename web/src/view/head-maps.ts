// Small multiples: the image heatmaps of the top heads by the atlas's measure,
// each over a small copy of the image and labelled with its layer, head and
// value. Each map is painted through one ImageData of the image grid's size, on
// its own min–max, as the image panel paints its overlay, onto the grid's own
// rectangle of the image: a grid cut from a padded image shows only its part
// over the image. A press goes there.

import { shownStats } from "../data/attention";
import type { RankedHead } from "../data/head-tables";
import { LUTS, MASKED, scaleIndex, type PaletteName } from "./color";
import { formatWeight } from "./tooltip";

export interface HeadMapsView {
  heads: RankedHead[];
  /** Each head's values over the image tokens, one after another (rows × cols each, grid order). */
  maps: Float32Array;
  rows: number;
  cols: number;
  /** The maps' image, its size as the model saw it, and the grid's [x, y, w, h] in that size (it may reach past it). */
  imageUrl: string;
  size: readonly [number, number];
  rect: readonly [number, number, number, number];
  /** Image cells 0..visible-1 are seen by the selection; the rest are masked. */
  visible: number;
  palette: PaletteName;
  opacity: number;
  /** The measure's name, for the labels. */
  measure: string;
}

const MAP_WIDTH = 120;

export class HeadMaps {
  private view: HeadMapsView | null = null;
  /** The maps' image (the region's, which need not be the one the image panel shows). */
  private readonly image = new Image();
  /** The image at the maps' size, scaled once per image rather than once per map. */
  private thumbnail: { src: string; canvas: HTMLCanvasElement } | null = null;
  private readonly gridCanvas = document.createElement("canvas");

  constructor(
    private readonly list: HTMLElement,
    private readonly onPick: (layer: number, head: number) => void,
  ) {}

  get current(): HeadMapsView | null {
    return this.view;
  }

  /** Show the maps, or a note in their place (null: nothing at all). */
  update(view: HeadMapsView | null, note = ""): void {
    this.view = view;
    if (!view) {
      const text = note ? [Object.assign(document.createElement("p"), { className: "lower-note", textContent: note })] : [];
      return this.list.replaceChildren(...text);
    }
    if (this.image.src !== view.imageUrl) return this.loadImage(view);
    const cells = view.rows * view.cols;
    this.list.replaceChildren(...view.heads.map((head, k) => this.mapButton(view, head, view.maps.subarray(k * cells, (k + 1) * cells))));
  }

  /** Draw the maps once their image is decoded, if they are still the ones to show; a broken image leaves them out. */
  private loadImage(view: HeadMapsView): void {
    this.image.src = view.imageUrl;
    this.list.replaceChildren();
    this.image.decode().then(
      () => this.view === view && this.update(view),
      () => undefined,
    );
  }

  private mapButton(view: HeadMapsView, head: RankedHead, values: Float32Array): HTMLButtonElement {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "head-map";
    Object.assign(button.dataset, { layer: String(head.layer), head: String(head.head), value: String(head.value) });
    const canvas = document.createElement("canvas");
    const thumbnail = this.thumbnailCanvas();
    [canvas.width, canvas.height] = [thumbnail.width, thumbnail.height];
    this.paint(canvas, thumbnail, view, values);
    const label = document.createElement("span");
    label.textContent = `L${head.layer} H${head.head} · ${view.measure} ${formatWeight(head.value)}`;
    button.append(canvas, label);
    button.addEventListener("click", () => this.onPick(head.layer, head.head));
    return button;
  }

  private thumbnailCanvas(): HTMLCanvasElement {
    if (this.thumbnail?.src === this.image.src) return this.thumbnail.canvas;
    const canvas = document.createElement("canvas");
    const height = Math.max(1, Math.round((MAP_WIDTH * this.image.naturalHeight) / Math.max(1, this.image.naturalWidth)));
    [canvas.width, canvas.height] = [MAP_WIDTH, height];
    if (this.image.naturalWidth) canvas.getContext("2d")!.drawImage(this.image, 0, 0, canvas.width, canvas.height); // not if broken
    this.thumbnail = { src: this.image.src, canvas };
    return canvas;
  }

  private paint(canvas: HTMLCanvasElement, thumbnail: HTMLCanvasElement, view: HeadMapsView, values: Float32Array): void {
    const ctx = canvas.getContext("2d")!;
    ctx.drawImage(thumbnail, 0, 0);
    const range = shownStats(values, null, 0, Math.min(values.length, view.visible)).range ?? { lo: 0, hi: 0 };
    const scale = { mode: "view", ...range } as const;
    const grid = this.gridCanvas;
    if (grid.width !== view.cols || grid.height !== view.rows) [grid.width, grid.height] = [view.cols, view.rows];
    const pixels = new ImageData(view.cols, view.rows);
    const lut = LUTS[view.palette];
    for (let cell = 0; cell < values.length; cell++) {
      const at = (cell < view.visible ? scaleIndex(values[cell]!, scale) : MASKED) * 4;
      pixels.data.set(lut.subarray(at, at + 3), cell * 4);
      pixels.data[cell * 4 + 3] = lut[at + 3]! * view.opacity;
    }
    grid.getContext("2d")!.putImageData(pixels, 0, 0);
    ctx.imageSmoothingEnabled = false;
    // The canvas is the image: a rect's overhang into the padding falls outside it and is not drawn.
    const [sx, sy] = [canvas.width / view.size[0], canvas.height / view.size[1]];
    const [x, y, w, h] = view.rect;
    ctx.drawImage(grid, x * sx, y * sy, w * sx, h * sy);
  }
}
