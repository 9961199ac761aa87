// Figures for papers: the current view as PNG (1×, 2×, 4×) or SVG, and the
// shown vectors as CSV or JSON. A figure is assembled from the panels' own
// paint (ImagePanel.figure, TokenPanel.figure, drawLegend), so what it shows
// is what the screen shows: no second renderer that could disagree.

import { drawLegend, legendHeight, legendSummary, type Legend } from "./legend";

export const EXPORT_SCALES = [1, 2, 4] as const;

/** What a figure holds: a caption, the image with its overlay, the bars, and optionally the token strip. */
export interface FigureParts {
  caption: string;
  /** The image with its overlay at `scale` times the shown size. */
  image: (scale: number) => HTMLCanvasElement;
  imageLegend: Legend | null;
  /** The token flow at a width and scale, with its legend; absent: no token strip. */
  tokens?: { strip: (width: number, scale: number) => HTMLCanvasElement | null; legend: Legend | null };
}

const CAPTION_FONT = "12px system-ui, sans-serif";
const CAPTION_LINE = 16;
const GAP = 8;
const MIN_WIDTH = 360;

interface Block {
  y: number;
  h: number;
  draw: (ctx: CanvasRenderingContext2D) => void;
}

/** Where the image with its overlay sits in a figure, in the figure's pixels. */
export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** The caption wrapped at the width, one string per line. */
function captionLines(ctx: CanvasRenderingContext2D, caption: string, width: number): string[] {
  ctx.font = CAPTION_FONT;
  const lines: string[] = [];
  let line = "";
  for (const part of caption.split(" · ")) {
    const next = line ? `${line} · ${part}` : part;
    if (line && ctx.measureText(next).width > width) [lines[lines.length], line] = [line, part];
    else line = next;
  }
  return [...lines, line];
}

/** The blocks of a figure, top to bottom, in CSS pixels, and its size. */
function layoutFigure(parts: FigureParts, scale: number): { width: number; height: number; blocks: Block[]; caption: string[]; image: HTMLCanvasElement } {
  const image = parts.image(scale);
  const width = Math.max(MIN_WIDTH, image.width / scale);
  const probe = document.createElement("canvas").getContext("2d")!;
  const caption = captionLines(probe, parts.caption, width);
  const blocks: Block[] = [];
  let y = GAP + caption.length * CAPTION_LINE + GAP;
  const add = (h: number, draw: Block["draw"]) => {
    blocks.push({ y, h, draw });
    y += h + GAP;
  };
  add(image.height / scale, (ctx) => ctx.drawImage(image, 0, 0, image.width / scale, image.height / scale));
  const legend = (value: Legend | null) => value && add(legendHeight(probe, value, width), (ctx) => drawLegend(ctx, value, width));
  legend(parts.imageLegend);
  if (parts.tokens) {
    legend(parts.tokens.legend);
    const strip = parts.tokens.strip(width, scale);
    if (strip) add(strip.height / scale, (ctx) => ctx.drawImage(strip, 0, 0, strip.width / scale, strip.height / scale));
  }
  return { width: width + 2 * GAP, height: y, blocks, caption, image };
}

/** The figure as one canvas, `scale` device pixels per CSS pixel, and where its image lies. */
export function figureCanvas(parts: FigureParts, scale: number): { canvas: HTMLCanvasElement; imageBox: Box } {
  const figure = layoutFigure(parts, scale);
  const canvas = document.createElement("canvas");
  [canvas.width, canvas.height] = [Math.round(figure.width * scale), Math.round(figure.height * scale)];
  const ctx = canvas.getContext("2d")!;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.setTransform(scale, 0, 0, scale, 0, 0);
  ctx.font = CAPTION_FONT;
  ctx.fillStyle = "#111";
  ctx.textBaseline = "middle";
  figure.caption.forEach((line, i) => ctx.fillText(line, GAP, GAP + (i + 0.5) * CAPTION_LINE));
  for (const block of figure.blocks) {
    ctx.save();
    ctx.translate(GAP, block.y);
    // Image pixels go on whole device pixels, so the overlay's cells are copied, not resampled.
    ctx.imageSmoothingEnabled = false;
    block.draw(ctx);
    ctx.restore();
  }
  const imageBox = { x: GAP * scale, y: figure.blocks[0]!.y * scale, w: figure.image.width, h: figure.image.height };
  return { canvas, imageBox };
}

/**
 * The figure as SVG: the caption and the legends' numbers as text, the image
 * with its overlay, the bars and the token strip as embedded PNGs painted by
 * the same code as the screen, at 2×.
 */
export function figureSvg(parts: FigureParts): string {
  const scale = 2;
  const figure = layoutFigure(parts, scale);
  const raster = figureCanvas(parts, scale).canvas;
  const caption = figure.caption
    .map((line, i) => `<text x="${GAP}" y="${GAP + (i + 0.75) * CAPTION_LINE}" font-family="system-ui, sans-serif" font-size="12">${escapeXml(line)}</text>`)
    .join("\n  ");
  const legends = [parts.imageLegend, parts.tokens?.legend ?? null].filter((l): l is Legend => l !== null);
  const top = figure.blocks[0]?.y ?? 0;
  // The raster below the caption: the image, bars and strip exactly as figureCanvas paints them.
  const body = cropped(raster, top * scale);
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="${figure.width}" height="${figure.height}" viewBox="0 0 ${figure.width} ${figure.height}">
  <title>${escapeXml(parts.caption)}</title>
  <desc>${escapeXml(legends.map(legendSummary).join("\n"))}</desc>
  <rect width="100%" height="100%" fill="#fff"/>
  ${caption}
  <image x="0" y="${top}" width="${figure.width}" height="${figure.height - top}" xlink:href="${body.toDataURL("image/png")}"/>
</svg>
`;
}

/** The canvas from row `top` down. */
function cropped(canvas: HTMLCanvasElement, top: number): HTMLCanvasElement {
  const out = document.createElement("canvas");
  const y = Math.round(top);
  [out.width, out.height] = [canvas.width, Math.max(1, canvas.height - y)];
  out.getContext("2d")!.drawImage(canvas, 0, -y);
  return out;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A named vector of what the view shows, with a label per entry. */
export interface ShownVector {
  name: string;
  values: Float32Array;
  label: (index: number) => string;
}

/** The shown vectors as CSV: one row per entry, `vector,index,label,value`; NaN and Inf are written as such. */
export function vectorsCsv(caption: string, vectors: ShownVector[]): string {
  const rows = [`# ${caption.replace(/\n/g, " ")}`, "vector,index,label,value"];
  for (const { name, values, label } of vectors) {
    values.forEach((value, index) => rows.push(`${name},${index},${csvField(label(index))},${value}`));
  }
  return `${rows.join("\n")}\n`;
}

function csvField(text: string): string {
  return `"${text.replace(/"/g, '""')}"`;
}

/** The shown vectors as JSON; NaN and ±Inf, which JSON lacks, become null. */
export function vectorsJson(caption: string, view: unknown, vectors: ShownVector[]): string {
  const body = Object.fromEntries(vectors.map(({ name, values }) => [name, Array.from(values, (v) => (Number.isFinite(v) ? v : null))]));
  return `${JSON.stringify({ caption, view, ...body }, null, 1)}\n`;
}

/** Hand a file to the browser's download. */
export function download(name: string, blob: Blob): void {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}
