// The one floating tooltip. Text only: token text comes from the model and is
// never parsed as HTML. It follows the mouse by transform, and its text is
// rewritten only when it changes, so hovering does not dirty layout: a click
// right after a move then finds no layout work queued in front of its redraw.

import type { Heat } from "./color";

export class Tooltip {
  constructor(private readonly element: HTMLElement) {}

  show(text: string, clientX: number, clientY: number): void {
    if (this.element.textContent !== text) this.element.textContent = text;
    this.element.style.transform = `translate(${clientX + 12}px, ${clientY + 12}px)`;
    this.element.hidden = false;
  }

  hide(): void {
    this.element.hidden = true;
  }
}

export function formatWeight(value: number): string {
  return value === 0 ? "0" : value.toPrecision(4);
}

/** A value as the tooltip names it: NaN and ±Inf are said to come from the file, masked and unstored cells are said to be so. */
export function describeValue(heat: Heat, index: number): string {
  if (index < heat.visible[0] || index > heat.visible[1]) return `masked: the selection cannot see it (${heat.mask})`;
  if (heat.unstored?.[index]) return "not stored in this sample (its storage profile or kept layers and heads)";
  const value = heat.values[index]!;
  if (Number.isNaN(value)) return "NaN in the file (not a number; drawn magenta)";
  if (!Number.isFinite(value)) return `${value > 0 ? "+" : "-"}Inf in the file (drawn magenta)`;
  return formatWeight(value);
}
