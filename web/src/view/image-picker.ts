// The image panel's own choices: which image of a several-image prompt it shows,
// and, for a tiled image, its tiles at full resolution or its global thumbnail.
// Neither fetches anything: the view's vector already holds every image token.

import { hasTiles, REGION_VIEWS, type RegionView } from "../data/variants";
import type { SampleMeta } from "../data/format";
import type { ImageChoice } from "./panel-heats";

export class ImagePicker {
  private meta: SampleMeta | null = null;
  private current: ImageChoice = { image: 0, regions: "tiles" };

  constructor(
    private readonly imageSelect: HTMLSelectElement,
    private readonly regionSelect: HTMLSelectElement,
    private readonly onChange: (choice: ImageChoice, imageChanged: boolean) => void,
  ) {
    for (const [name, kind] of Object.entries(REGION_VIEWS)) regionSelect.add(new Option(kind.label, name));
    imageSelect.addEventListener("change", () => this.pick({ ...this.current, image: Number(imageSelect.value) }));
    regionSelect.addEventListener("change", () => this.pick({ ...this.current, regions: regionSelect.value as RegionView }));
  }

  /** A new sample: its first image, tiles first. */
  configure(meta: SampleMeta): void {
    this.meta = meta;
    this.current = { image: 0, regions: "tiles" };
    this.imageSelect.replaceChildren(...meta.images.map((image, i) => new Option(`image ${i + 1} (${image.path})`, String(i))));
    this.imageSelect.parentElement!.hidden = meta.images.length < 2;
    this.sync();
  }

  choice(): ImageChoice {
    return this.current;
  }

  private pick(choice: ImageChoice): void {
    const imageChanged = choice.image !== this.current.image;
    this.current = choice;
    this.sync();
    this.onChange(choice, imageChanged);
  }

  private sync(): void {
    this.imageSelect.value = String(this.current.image);
    this.regionSelect.value = this.current.regions;
    this.regionSelect.parentElement!.hidden = !this.meta || !hasTiles(this.meta, this.current.image);
  }
}
