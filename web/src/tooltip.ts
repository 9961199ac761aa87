// The one floating tooltip. Text only: token text comes from the model and is
// never parsed as HTML.

export class Tooltip {
  constructor(private readonly element: HTMLElement) {}

  show(text: string, clientX: number, clientY: number): void {
    this.element.textContent = text;
    this.element.style.left = `${clientX + 12}px`;
    this.element.style.top = `${clientY + 12}px`;
    this.element.hidden = false;
  }

  hide(): void {
    this.element.hidden = true;
  }
}

export function formatWeight(value: number): string {
  return value === 0 ? "0" : value.toPrecision(4);
}
