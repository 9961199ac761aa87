"""LLaVA-OneVision: one image as a low-resolution base view plus an "anyres" grid stitched from crops, row ends
marked by the model's image_newline; several images as one padded square view each.

One image: the image processor picks the canvas among `image_grid_pinpoints` that fits the image best, resizes
the image into it keeping its aspect ratio, pads it to the canvas (centred, black) and cuts the canvas into
crops of the tower's size; the whole image, squashed to one crop, comes first. In the model each crop is
g x g patch features (g² = the processor's num_image_tokens): the base view's g x g come first, then the
crops' features stitched into one grid over the canvas, the rows and columns of padding cut off
(`unpad_image`), shrunk by bilinear interpolation when more than `anyres_max_N` crops' worth remain, and one
image_newline after each of its rows. Every one of these positions is an image placeholder in input_ids.

Several images in one prompt: each is padded to a square (centred, the image mean colour) and squashed to one
crop, g x g features and one image_newline.

Regions are in the resized image's pixels (the size the model saw it at, without the canvas padding); the
stitched grid's rect reaches into the padding by what is left of a padded cell. A square-padded image is in its
own pixels, its square reaching past the short sides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import AutoProcessor, LlavaOnevisionForConditionalGeneration, LlavaOnevisionProcessor
from transformers.image_processing_utils import get_patch_output_size, select_best_resolution
from transformers.image_utils import ChannelDimension
from transformers.models.llava_onevision.modeling_llava_onevision import unpad_image
from transformers.utils import is_torchvision_available

from ..errors import UserError
from ..image_layout import ImageLayout, Region, runs_of
from .base import ModelAdapter, PreparedInputs, image_text_processor, processor_settings, user_message


def anyres_regions(
    image: int, original: tuple[int, int], run: list[int], pinpoints: list[list[int]], crop_px: int, grid: StitchedGrid
) -> tuple[tuple[int, int], list[Region], list[int]]:
    """One image cut from its anyres canvas: (its resized size, its base and stitched regions, the row-end positions)."""
    side = grid.side
    width, height = original
    canvas_h, canvas_w = select_best_resolution((height, width), pinpoints)
    resized_h, resized_w = get_patch_output_size(
        np.empty((0, height, width)), (canvas_h, canvas_w), input_data_format=ChannelDimension.FIRST
    )
    paste_x, paste_y = (canvas_w - resized_w) // 2, (canvas_h - resized_h) // 2
    grid_rows, grid_cols = canvas_h // crop_px * side, canvas_w // crop_px * side
    # The model's own unpadding, applied to cell numbers, tells which cells it keeps.
    kept = unpad_image(torch.arange(grid_rows * grid_cols).view(1, grid_rows, grid_cols), (height, width))[0]
    first_row, first_col = divmod(int(kept[0, 0]), grid_cols)
    cell_px = crop_px / side  # each crop's g features spread over its whole width
    rect = (
        round(first_col * cell_px) - paste_x,
        round(first_row * cell_px) - paste_y,
        round(kept.shape[1] * cell_px),
        round(kept.shape[0] * cell_px),
    )
    rows, cols = grid.shrunk(kept.shape[0], kept.shape[1])
    base = Region(image, "global", side, side, (0, 0, resized_w, resized_h), run[: side * side])
    stitched = run[side * side :]
    if len(stitched) != rows * (cols + 1):
        raise UserError(
            f"image {image} holds {len(run)} image tokens, not {side * side} + {rows} x ({cols} + 1) for its "
            "anyres grid; this checkpoint's image layout is not understood"
        )
    patches = [p for r in range(rows) for p in stitched[r * (cols + 1) : r * (cols + 1) + cols]]
    row_ends = stitched[cols :: cols + 1]
    return (resized_w, resized_h), [base, Region(image, "tile", rows, cols, rect, patches)], row_ends


@dataclass(frozen=True)
class StitchedGrid:
    """g, the features per crop side, and the model's cap on the stitched grid: at most `max_crops` crops' worth
    of features (anyres_max_N; None: no cap)."""

    side: int
    max_crops: int | None

    def shrunk(self, rows: int, cols: int) -> tuple[int, int]:
        """The stitched grid after the model's interpolation: above 1.1 x max_crops crops' worth of features it is
        scaled down by √(cells / (max_crops g²)) on both sides (LlavaOnevisionModel.pack_image_features)."""
        if self.max_crops is None:
            return rows, cols
        ratio = math.sqrt(rows * cols / (self.max_crops * self.side * self.side))
        return (int(rows // ratio), int(cols // ratio)) if ratio > 1.1 else (rows, cols)


def square_region(image: int, original: tuple[int, int], run: list[int], side: int) -> tuple[Region, list[int]]:
    """One image of several: the square it is padded to, in its own pixels, then its one row end."""
    width, height = original
    square = max(width, height)
    rect = (-((square - width) // 2), -((square - height) // 2), square, square)
    if len(run) != side * side + 1:
        raise UserError(f"image {image} holds {len(run)} image tokens, not {side} x {side} + 1")
    return Region(image, "image", side, side, rect, run[:-1]), run[-1:]


class LlavaOnevisionAdapter(ModelAdapter):
    name = "llava-onevision"
    config_model_types = ("llava_onevision",)
    model_class = LlavaOnevisionForConditionalGeneration
    image_placeholder = "<image>"
    max_pixels_refusal = "its canvases are the checkpoint's image_grid_pinpoints"

    def load_processor(self, source: str) -> Any:
        if is_torchvision_available():
            return AutoProcessor.from_pretrained(source)
        return image_text_processor(LlavaOnevisionProcessor, source, **processor_settings(source))

    def prepare_images(
        self, processor: Any, images: list[Image.Image], prompt: str, max_pixels: int | None
    ) -> PreparedInputs:
        text = processor.apply_chat_template(
            user_message(len(images), prompt), add_generation_prompt=True, tokenize=False
        )
        inputs = processor(text=[text], images=[images], return_tensors="pt")
        runs = runs_of(inputs["input_ids"][0].tolist(), processor.image_token_id)
        if len(runs) != len(images):
            raise UserError(f"the processor wrote {len(runs)} runs of image tokens for {len(images)} images")
        layout = self.layout(processor, [image.size for image in images], runs, inputs["pixel_values"].shape[-1])
        base = layout.regions[0]
        return PreparedInputs(
            dict(inputs), processor.image_token_id, base.rows, base.cols, layout.image_sizes[0], layout
        )

    def stitched_grid(self, processor: Any, crop_px: int) -> StitchedGrid:
        """The processor's num_image_tokens features per crop, a square of all the tower's features."""
        side = math.isqrt(processor.num_image_tokens)
        if side * side != processor.num_image_tokens or processor.vision_feature_select_strategy != "full":
            raise UserError(
                f"num_image_tokens {processor.num_image_tokens} with vision_feature_select_strategy "
                f"{processor.vision_feature_select_strategy!r}: only a square grid of all features is understood"
            )
        return StitchedGrid(side, int(processor.vision_aspect_ratio.removeprefix("anyres_max_")))

    def layout(
        self, processor: Any, originals: list[tuple[int, int]], runs: list[list[int]], crop_px: int
    ) -> ImageLayout:
        """One image alone: anyres; several: a padded square each."""
        if len(originals) == 1:
            return anyres_layout(processor, originals, runs, crop_px, self.stitched_grid(processor, crop_px))
        side = self.stitched_grid(processor, crop_px).side
        regions, roles = [], {}
        for image, (original, run) in enumerate(zip(originals, runs, strict=True)):
            region, row_ends = square_region(image, original, run, side)
            regions.append(region)
            roles.update(dict.fromkeys(row_ends, "row_end"))
        return ImageLayout(list(originals), regions, roles)


def anyres_layout(
    processor: Any, originals: list[tuple[int, int]], runs: list[list[int]], crop_px: int, grid: StitchedGrid
) -> ImageLayout:
    """Every image from its anyres canvas, in prompt order."""
    sizes, regions, roles = [], [], {}
    pinpoints = processor.image_processor.image_grid_pinpoints
    for image, (original, run) in enumerate(zip(originals, runs, strict=True)):
        size, image_regions, row_ends = anyres_regions(image, original, run, pinpoints, crop_px, grid)
        sizes.append(size)
        regions += image_regions
        roles.update(dict.fromkeys(row_ends, "row_end"))
    return ImageLayout(sizes, regions, roles)
