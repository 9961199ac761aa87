// Where each token cell sits in the token panel: a wrapped text flow, computed
// once per (sample, width, collapse) and then only recoloured.

import type { ImageRegion, Token } from "../data/format";

export type CellKind = "text" | "thinking" | "special" | "image" | "image-block" | "partial";

export interface Cell {
  x: number;
  y: number;
  w: number;
  /** The tokens the cell stands for: one, or the whole image for a collapsed block. */
  first: number;
  last: number;
  label: string;
  kind: CellKind;
}

export interface Layout {
  cells: Cell[];
  height: number;
  /** cellOf[token] = index into cells. */
  cellOf: Int32Array;
  /** Where the answer's first line starts, when the sequence has one. */
  sectionTop?: number;
}

export const LINE_HEIGHT = 20;
const PADDING = 6; // horizontal, inside a cell
const GAP = 2;
export const SECTION_GAP = 14; // before the answer of a generate-mode sample

export interface LayoutOptions {
  width: number;
  collapseImage: boolean;
  /** A token that starts a new section (the answer), drawn on a fresh line after a gap. */
  sectionStart?: number;
  measure: (text: string) => number;
}

/** What a token shows: whitespace made visible, and a mark for a partial character. */
export function tokenLabel(token: Token): string {
  if (token.text === "") return "·";
  return token.text.replace(/\n/g, "↵").replace(/\t/g, "⇥");
}

function cellKind(token: Token): CellKind {
  if (token.type === "special" || token.type === "image") return token.type;
  if (token.text === "") return "partial";
  return token.thinking ? "thinking" : "text";
}

/** What a collapsed region shows: a single grid keeps its long-standing [IMAGE cols×rows]. */
export function regionBlockLabel(region: ImageRegion): string {
  return `[${region.kind === "image" ? "IMAGE" : region.kind.toUpperCase()} ${region.cols}×${region.rows}]`;
}

/** The regions whose tokens are one block, by their first token: only those collapse into one cell. */
function collapsibleRegions(regions: ImageRegion[]): Map<number, ImageRegion> {
  const blocks = new Map<number, ImageRegion>();
  for (const region of regions) {
    const first = region.tokens[0]!;
    if (region.tokens.every((t, k) => t === first + k)) blocks.set(first, region);
  }
  return blocks;
}

export function layoutTokens(tokens: Token[], regions: ImageRegion[], options: LayoutOptions): Layout {
  const cells: Cell[] = [];
  const cellOf = new Int32Array(tokens.length);
  const widths = new Map<string, number>(); // labels repeat a lot ([IMG], " the")
  let x = 0;
  let y = 0;
  const place = (cell: Omit<Cell, "x" | "y" | "w">, breakAfter: boolean) => {
    let w = widths.get(cell.label);
    if (w === undefined) widths.set(cell.label, (w = Math.ceil(options.measure(cell.label)) + PADDING));
    if (x > 0 && x + w > options.width) [x, y] = [0, y + LINE_HEIGHT];
    cells.push({ ...cell, x, y, w });
    for (let t = cell.first; t <= cell.last; t++) cellOf[t] = cells.length - 1;
    x += w + GAP;
    if (breakAfter) [x, y] = [0, y + LINE_HEIGHT];
  };
  const blocks = options.collapseImage ? collapsibleRegions(regions) : new Map<number, ImageRegion>();
  for (let i = 0; i < tokens.length; i++) {
    if (i === options.sectionStart && i > 0) [x, y] = [0, y + (x > 0 ? LINE_HEIGHT : 0) + SECTION_GAP];
    const block = blocks.get(i);
    if (block) {
      const last = i + block.tokens.length - 1;
      place({ first: i, last, label: regionBlockLabel(block), kind: "image-block" }, false);
      i = last;
      continue;
    }
    const token = tokens[i]!;
    // Expanded, the image tokens keep their region's grid shape: each row of patches starts a line.
    if (token.gridPos?.[1] === 0 && x > 0) [x, y] = [0, y + LINE_HEIGHT];
    const region = token.region === undefined ? undefined : regions[token.region];
    const lastOfRegion = region?.tokens[region.tokens.length - 1] === i;
    place({ first: i, last: i, label: tokenLabel(token), kind: cellKind(token) }, token.text.endsWith("\n") || lastOfRegion);
  }
  const height = (cells.at(-1)?.y ?? 0) + LINE_HEIGHT;
  const section = options.sectionStart;
  return section && section < tokens.length ? { cells, cellOf, height, sectionTop: cells[cellOf[section]!]!.y } : { cells, cellOf, height };
}

/** The cells on lines that overlap [top, bottom): cells are in line order, so two binary searches. */
export function cellsBetween(layout: Layout, top: number, bottom: number): Cell[] {
  return layout.cells.slice(firstCellBelow(layout.cells, top - LINE_HEIGHT), firstCellBelow(layout.cells, bottom - 1));
}

/** Index of the first cell whose line starts below y. */
function firstCellBelow(cells: Cell[], y: number): number {
  let [lo, hi] = [0, cells.length];
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cells[mid]!.y > y) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** The cell under a point, or undefined. */
export function cellAt(layout: Layout, x: number, y: number): Cell | undefined {
  return cellsBetween(layout, y, y + 1).find((c) => x >= c.x && x < c.x + c.w && y >= c.y && y < c.y + LINE_HEIGHT);
}
