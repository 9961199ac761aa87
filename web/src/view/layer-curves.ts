// The layer curves of the selection: per layer, the share of its attention on
// image, text and special tokens (0 to 1), and the row and spatial entropies
// (nats), each the mean over heads with a band from min to max over heads.
// One canvas, two plots; a press on a layer goes there, hover names the values.

import type { CurveBand } from "../data/head-tables";
import { CURVES, variantsOf, type Curve } from "../data/variants";
import { formatWeight, type Tooltip } from "./tooltip";

export interface CurvesView {
  curves: Record<Curve, CurveBand>;
  numLayers: number;
  /** The shown layer, marked. */
  layer: number;
}

const COLOURS: Record<Curve, string> = {
  image: "#1f77b4",
  text: "#2ca02c",
  special: "#7f7f7f",
  row_entropy: "#d62728",
  image_entropy: "#9467bd",
};

const WIDTH = 380;
const PLOT_HEIGHT = 120;
const LEFT = 40;
const RIGHT = 8;
const KEY = 16;
const GAP = 22;
const FONT = "10px system-ui, sans-serif";
const PLOTS = ["share", "entropy"] as const;

interface Plot {
  kind: (typeof PLOTS)[number];
  top: number;
  hi: number;
}

export class LayerCurves {
  private view: CurvesView | null = null;
  private pointer: { clientX: number; clientY: number } | null = null;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly tooltip: Tooltip,
    private readonly onPick: (layer: number) => void,
  ) {
    canvas.addEventListener("mousemove", (event) => this.hover(event));
    canvas.addEventListener("mouseleave", () => {
      this.pointer = null;
      tooltip.hide();
    });
    canvas.addEventListener("mousedown", (event) => {
      const layer = event.button === 0 ? this.layerAt(event) : null;
      if (layer !== null) this.onPick(layer);
    });
  }

  get current(): CurvesView | null {
    return this.view;
  }

  update(view: CurvesView | null): void {
    this.view = view;
    this.canvas.hidden = !view;
    if (!view) return;
    const height = KEY + PLOTS.length * (PLOT_HEIGHT + GAP);
    const ratio = window.devicePixelRatio || 1;
    [this.canvas.width, this.canvas.height] = [Math.round(WIDTH * ratio), Math.round(height * ratio)];
    this.canvas.style.width = `${WIDTH}px`;
    this.canvas.style.height = `${height}px`;
    const ctx = this.canvas.getContext("2d")!;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.font = FONT;
    this.drawKey(ctx);
    for (const plot of this.plots(view)) this.drawPlot(ctx, view, plot);
    if (this.pointer) this.hover(this.pointer);
  }

  /** The window x of a layer's point, for tests and the benchmark. */
  layerX(layer: number): number {
    return this.canvas.getBoundingClientRect().left + this.x(layer);
  }

  private plots(view: CurvesView): Plot[] {
    return PLOTS.map((kind, i) => {
      const top = KEY + i * (PLOT_HEIGHT + GAP) + GAP / 2;
      if (kind === "share") return { kind, top, hi: 1 };
      const highs = variantsOf(CURVES).filter((c) => CURVES[c].plot === kind).flatMap((c) => Array.from(view.curves[c].max));
      return { kind, top, hi: Math.max(1e-6, ...highs.filter(Number.isFinite)) };
    });
  }

  private x(layer: number): number {
    const span = Math.max(1, (this.view?.numLayers ?? 1) - 1);
    return LEFT + (layer / span) * (WIDTH - LEFT - RIGHT);
  }

  private drawKey(ctx: CanvasRenderingContext2D): void {
    ctx.textBaseline = "middle";
    let x = 0;
    for (const curve of variantsOf(CURVES)) {
      ctx.fillStyle = COLOURS[curve];
      ctx.fillRect(x, KEY / 2 - 4, 10, 8);
      ctx.fillStyle = "#333";
      ctx.fillText(CURVES[curve].label, x + 13, KEY / 2);
      x += 13 + ctx.measureText(CURVES[curve].label).width + 10;
    }
  }

  private drawPlot(ctx: CanvasRenderingContext2D, view: CurvesView, plot: Plot): void {
    const y = (value: number) => plot.top + PLOT_HEIGHT * (1 - value / plot.hi);
    ctx.strokeStyle = "#ccc";
    ctx.strokeRect(LEFT - 0.5, plot.top - 0.5, WIDTH - LEFT - RIGHT + 1, PLOT_HEIGHT + 1);
    ctx.fillStyle = "#444";
    ctx.textAlign = "right";
    ctx.fillText(formatWeight(plot.hi), LEFT - 3, plot.top + 4);
    ctx.fillText("0", LEFT - 3, plot.top + PLOT_HEIGHT - 4);
    ctx.textAlign = "start";
    ctx.fillText(plot.kind === "share" ? "share of attention (mean over heads; band min–max)" : "entropy, nats", LEFT + 4, plot.top - 6);
    ctx.strokeStyle = "#ff3b30";
    ctx.beginPath();
    ctx.moveTo(this.x(view.layer), plot.top);
    ctx.lineTo(this.x(view.layer), plot.top + PLOT_HEIGHT);
    ctx.stroke();
    for (const curve of variantsOf(CURVES).filter((c) => CURVES[c].plot === plot.kind)) this.drawCurve(ctx, view.curves[curve], COLOURS[curve], y);
  }

  /** The band from min to max, then the mean; a layer where the curve is undefined breaks it. */
  private drawCurve(ctx: CanvasRenderingContext2D, band: CurveBand, colour: string, y: (value: number) => number): void {
    for (const run of definedRuns(band.mean)) {
      ctx.globalAlpha = 0.18;
      ctx.fillStyle = colour;
      ctx.beginPath();
      run.forEach((l, i) => (i ? ctx.lineTo(this.x(l), y(band.max[l]!)) : ctx.moveTo(this.x(l), y(band.max[l]!))));
      [...run].reverse().forEach((l) => ctx.lineTo(this.x(l), y(band.min[l]!)));
      ctx.fill();
      ctx.globalAlpha = 1;
      ctx.strokeStyle = colour;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      run.forEach((l, i) => (i ? ctx.lineTo(this.x(l), y(band.mean[l]!)) : ctx.moveTo(this.x(l), y(band.mean[l]!))));
      if (run.length === 1) ctx.arc(this.x(run[0]!), y(band.mean[run[0]!]!), 1.5, 0, 2 * Math.PI);
      ctx.stroke();
      ctx.lineWidth = 1;
    }
  }

  private layerAt(event: { clientX: number }): number | null {
    if (!this.view) return null;
    const box = this.canvas.getBoundingClientRect();
    const t = (event.clientX - box.left - LEFT) / (WIDTH - LEFT - RIGHT);
    if (t < -0.05 || t > 1.05) return null;
    return Math.min(this.view.numLayers - 1, Math.max(0, Math.round(t * (this.view.numLayers - 1))));
  }

  private hover(event: { clientX: number; clientY: number }): void {
    this.pointer = { clientX: event.clientX, clientY: event.clientY };
    const layer = this.layerAt(event);
    if (layer === null || !this.view) return this.tooltip.hide();
    const curves = this.view.curves;
    const value = (v: number) => (Number.isNaN(v) ? "undefined" : formatWeight(v));
    const parts = variantsOf(CURVES).map((c) => `${CURVES[c].label} ${value(curves[c].mean[layer]!)}`);
    this.tooltip.show(`layer ${layer} · ${parts.join(" · ")}`, event.clientX, event.clientY);
  }
}

/** The layers where a curve is defined, as runs of consecutive layers. */
function definedRuns(mean: Float32Array): number[][] {
  const runs: number[][] = [];
  let run: number[] = [];
  mean.forEach((value, layer) => {
    if (Number.isNaN(value)) {
      if (run.length) runs.push(run);
      run = [];
    } else run.push(layer);
  });
  if (run.length) runs.push(run);
  return runs;
}
