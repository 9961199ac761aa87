// The image panel's own choices: which image of a several-image prompt it shows,
// and, for a tiled image, its tiles at full resolution, its global thumbnail or
// both side by side. They are part of the view (state.ts keeps them in the URL);
// neither fetches anything: the view's vector already holds every image token.

import { hasTiles, REGION_VIEWS, shownRegionView, variantNamed } from "../data/variants";
import type { SampleMeta } from "../data/format";
import type { ViewState } from "../state/state";

export type ImageChoice = Pick<ViewState, "image" | "regions">;

/** The URL of one of a sample's images, the sample's folder being `sampleUrl`. */
export function imageUrl(sampleUrl: URL, meta: SampleMeta, image: number): string {
  return new URL(encodeURIComponent(meta.images[image]!.path), sampleUrl).href;
}

export class ImagePicker {
  private meta: SampleMeta | null = null;
  private current: ImageChoice | null = null;

  constructor(
    private readonly imageSelect: HTMLSelectElement,
    private readonly regionSelect: HTMLSelectElement,
    private readonly onChoose: (choice: ImageChoice) => void,
  ) {
    for (const [name, kind] of Object.entries(REGION_VIEWS)) regionSelect.add(new Option(kind.label, name));
    imageSelect.addEventListener("change", () => this.pickImage(Number(imageSelect.value)));
    regionSelect.addEventListener("change", () => {
      const regions = variantNamed(REGION_VIEWS, regionSelect.value);
      if (this.current && regions) this.onChoose({ image: this.current.image, regions });
    });
  }

  /** A new sample: one entry per image; the picker is shown only where there are several. */
  configure(meta: SampleMeta): void {
    this.meta = meta;
    this.current = null;
    this.imageSelect.replaceChildren(...meta.images.map((image, i) => new Option(`image ${i + 1} (${image.path})`, String(i))));
    this.imageSelect.parentElement!.hidden = meta.images.length < 2;
  }

  /** Show the view's choice; the region switch only for an image with tiles and a global view. */
  show(view: ImageChoice): void {
    this.current = { image: view.image, regions: view.regions };
    this.imageSelect.value = String(view.image);
    this.regionSelect.value = view.regions;
    this.regionSelect.parentElement!.hidden = !this.meta || !hasTiles(this.meta, view.image);
  }

  /** Another image keeps the region view where that image has it. */
  private pickImage(image: number): void {
    if (!this.meta || !this.current) return;
    this.onChoose({ image, regions: shownRegionView(this.meta, image, this.current.regions) });
  }
}
