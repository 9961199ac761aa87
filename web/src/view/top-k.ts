// The top-k readout: the k most-attended tokens or patches of the current view
// and their values, as buttons; a press selects one.

import { heatIndex, MASKED, NON_FINITE, type Heat } from "./color";
import { formatWeight } from "./tooltip";

export interface Ranked {
  index: number;
  value: number;
}

/** The k largest finite values the selection sees, skipping the flagged indices, largest first. */
export function topK(heat: Heat, skip: Uint8Array | null, k: number): Ranked[] {
  const ranked: Ranked[] = [];
  for (let j = 0; j < heat.values.length; j++) {
    const at = heatIndex(heat, j);
    if (skip?.[j] || at === MASKED || at === NON_FINITE) continue;
    const value = heat.values[j]!;
    if (ranked.length === k && value <= ranked[k - 1]!.value) continue;
    const place = ranked.findIndex((r) => value > r.value);
    ranked.splice(place === -1 ? ranked.length : place, 0, { index: j, value });
    if (ranked.length > k) ranked.pop();
  }
  return ranked;
}

export class TopKList {
  constructor(
    private readonly list: HTMLElement,
    private readonly onPick: (index: number) => void,
  ) {}

  /** Show the ranked entries with their labels; an empty list hides the readout. */
  update(ranked: Ranked[], label: (index: number) => string, title: string): void {
    this.list.parentElement!.hidden = ranked.length === 0;
    this.list.previousElementSibling!.textContent = title;
    this.list.replaceChildren(
      ...ranked.map(({ index, value }, rank) => {
        const button = document.createElement("button");
        button.type = "button";
        button.dataset["index"] = String(index);
        button.dataset["value"] = String(value);
        button.textContent = `${rank + 1}. ${label(index)} ${formatWeight(value)}`;
        button.addEventListener("click", () => this.onPick(index));
        return button;
      }),
    );
  }
}
