"""InternVL 3 / 3.5: the image cut into square tiles, plus a thumbnail of the whole image when there are several.

The image processor picks the tile grid (cols x rows) whose aspect ratio is closest to the image's among
those of min_patches..max_patches tiles, stretches the image to it and cuts row-major tiles of `size`; with
more than one tile a thumbnail (the whole image resized to one tile) follows. Each tile is `image_seq_length`
tokens after the pixel shuffle, row-major over the tile. In the prompt an image is `<img>`, then every tile's
tokens one after the other with nothing between them, then `</img>`: unlike SmolVLM's, the tiles carry no
labels, so the grid is recomputed with the image processor's own tiling function and checked against the
number of tokens the processor wrote.
"""

from __future__ import annotations

import math
from typing import Any

from PIL import Image
from transformers import AutoProcessor, InternVLForConditionalGeneration
from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import get_optimal_tiled_canvas
from transformers.models.internvl.processing_internvl import InternVLProcessor
from transformers.utils import is_torchvision_available

from ..errors import UserError
from ..image_layout import ImageLayout, Region, runs_of
from .base import ModelAdapter, PreparedInputs, image_text_processor, processor_settings, user_message


def tile_grid(image_processor: Any, size: tuple[int, int], tile_px: int, max_patches: int) -> tuple[int, int]:
    """(cols, rows) of tiles the image processor cuts an image of size (w, h) into."""
    if not image_processor.crop_to_patches or max_patches <= 1:
        return 1, 1
    width, height = size
    return get_optimal_tiled_canvas((height, width), (tile_px, tile_px), image_processor.min_patches, max_patches)


def tiled_layout(runs: list[list[int]], grids: list[tuple[int, int]], tile_px: int, tile_side: int) -> ImageLayout:
    """Per image (one run of image tokens each), its tiles row-major, then its thumbnail when it has several."""
    if len(runs) != len(grids):
        raise UserError(f"the processor wrote {len(runs)} runs of image tokens for {len(grids)} images")
    per_tile = tile_side * tile_side
    sizes: list[tuple[int, int]] = []
    regions: list[Region] = []
    for image, (run, (cols, rows)) in enumerate(zip(runs, grids, strict=True)):
        tiles = cols * rows
        expected = (tiles + (tiles > 1)) * per_tile
        if len(run) != expected:
            raise UserError(
                f"image {image} holds {len(run)} image tokens, not {expected} for {cols} x {rows} tiles; "
                "this checkpoint's tiling is not understood"
            )
        size = (cols * tile_px, rows * tile_px)
        sizes.append(size)
        for k in range(tiles):
            r, c = divmod(k, cols)
            rect = (c * tile_px, r * tile_px, tile_px, tile_px)
            kind = "tile" if tiles > 1 else "image"
            regions.append(Region(image, kind, tile_side, tile_side, rect, run[k * per_tile : (k + 1) * per_tile]))
        if tiles > 1:
            regions.append(Region(image, "global", tile_side, tile_side, (0, 0, *size), run[tiles * per_tile :]))
    return ImageLayout(sizes, regions)


class InternVLAdapter(ModelAdapter):
    name = "internvl"
    config_model_types = ("internvl",)
    model_class = InternVLForConditionalGeneration
    image_placeholder = "<IMG_CONTEXT>"

    def load_processor(self, source: str) -> Any:
        if is_torchvision_available():
            return AutoProcessor.from_pretrained(source)
        return image_text_processor(InternVLProcessor, source, **processor_settings(source))

    def prepare_images(
        self, processor: Any, images: list[Image.Image], prompt: str, max_pixels: int | None
    ) -> PreparedInputs:
        text = processor.apply_chat_template(
            user_message(len(images), prompt), add_generation_prompt=True, tokenize=False
        )
        image_processor = processor.image_processor
        tile_px = image_processor.size["height"]
        # --max-pixels caps the tiles: as many whole tiles as its pixels hold, at least one.
        max_patches = max(1, max_pixels // (tile_px * tile_px)) if max_pixels else image_processor.max_patches
        inputs = processor(text=[text], images=images, return_tensors="pt", max_patches=max_patches)
        grids = [tile_grid(image_processor, image.size, tile_px, max_patches) for image in images]
        runs = runs_of(inputs["input_ids"][0].tolist(), processor.image_token_id)
        layout = tiled_layout(runs, grids, tile_px, math.isqrt(processor.image_seq_length))
        whole = next(region for region in layout.regions if region.kind != "tile")
        return PreparedInputs(
            dict(inputs), processor.image_token_id, whole.rows, whole.cols, layout.image_sizes[0], layout
        )
