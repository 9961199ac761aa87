"""Mistral 3 (Mistral Small 3.1 / 3.2), whose image layout is Pixtral's: one grid per image, each row of patches
ended by [IMG_BREAK], the last row by [IMG_END] instead.

The processor resizes each image so that it fits `size.longest_edge` on both sides and is a whole number of
LLM tokens (patch_size x spatial_merge_size pixels each) on both; `image_sizes` gives the result as
(height, width). The image's rows x cols [IMG] tokens are written row by row, the row breaks between them, so an
image's tokens are one grid that is not one block: its region skips the breaks, which are marked as layout tokens.

The layout is read back from the tokens as the processor wrote them, so it is exactly what the model saw.
"""

from __future__ import annotations

import importlib
import math
import sys
from typing import Any

from PIL import Image
from transformers import (
    AutoImageProcessor,
    AutoProcessor,
    AutoTokenizer,
    Mistral3ForConditionalGeneration,
    PreTrainedModel,
)
from transformers.utils import is_torchvision_available

from ..errors import UserError
from ..image_layout import ImageLayout, Region
from .base import (
    ModelAdapter,
    PreparedInputs,
    VisionGeometry,
    chat_template,
    processor_settings,
    user_message,
    whole_image_geometry,
)

# Without torchvision, the Pixtral processor's module imports its resize helper from the torchvision image
# processor's module; the PIL image processor's module defines the same function.
TORCHVISION_IMAGE_MODULE = "transformers.models.pixtral.image_processing_pixtral"
PIL_IMAGE_MODULE = "transformers.models.pixtral.image_processing_pil_pixtral"


def pixtral_processor_class() -> type:
    if not is_torchvision_available() and TORCHVISION_IMAGE_MODULE not in sys.modules:
        sys.modules[TORCHVISION_IMAGE_MODULE] = importlib.import_module(PIL_IMAGE_MODULE)
    from transformers.models.pixtral.processing_pixtral import PixtralProcessor

    return PixtralProcessor


def break_layout(
    ids: list[int], image_id: int, break_id: int, end_id: int, image_sizes: list[tuple[int, int]], token_px: int
) -> ImageLayout:
    """The grid of each image in a sequence as Pixtral's processor writes it: rows of image tokens, each ended by
    a break token, the last by the end token. image_sizes: (w, h) per image as the model saw it."""
    regions: list[Region] = []
    roles: dict[int, str] = {}
    rows: list[list[int]] = []
    current: list[int] = []
    for i, token in enumerate(ids):
        if token == image_id:
            current.append(i)
        elif token in (break_id, end_id):
            roles[i] = "row_break"  # [IMG_END] ends the last row as [IMG_BREAK] ends the others
            rows.append(current)
            current = []
            if token == end_id:
                regions.append(_grid_region(len(regions), rows, image_sizes, token_px))
                rows = []
    if current or rows or len(regions) != len(image_sizes):
        raise UserError("the image tokens do not end in [IMG_END] once per image; this layout is not Pixtral's")
    return ImageLayout(image_sizes, regions, roles)


def _grid_region(image: int, rows: list[list[int]], image_sizes: list[tuple[int, int]], token_px: int) -> Region:
    width, height = image_sizes[image]
    cols = width // token_px
    if len(rows) != height // token_px or any(len(row) != cols for row in rows):
        raise UserError(
            f"image {image} has rows of {sorted({len(row) for row in rows})} tokens in {len(rows)} rows, not "
            f"{height // token_px} rows of {cols} for its {width}x{height} px"
        )
    return Region(image, "image", len(rows), cols, (0, 0, width, height), [p for row in rows for p in row])


class Mistral3Adapter(ModelAdapter):
    name = "mistral3"
    config_model_types = ("mistral3",)
    model_class = Mistral3ForConditionalGeneration
    image_placeholder = "[IMG]"

    def load_processor(self, source: str) -> Any:
        if is_torchvision_available():
            return AutoProcessor.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
        return pixtral_processor_class()(
            AutoImageProcessor.from_pretrained(source),
            tokenizer,
            chat_template=chat_template(source, tokenizer),
            **processor_settings(source),
        )

    def prepare_images(
        self, processor: Any, images: list[Image.Image], prompt: str, max_pixels: int | None
    ) -> PreparedInputs:
        text = processor.apply_chat_template(
            user_message(len(images), prompt), add_generation_prompt=True, tokenize=False
        )
        token_px = processor.patch_size * processor.spatial_merge_size
        size = {"size": {"longest_edge": max(token_px, math.isqrt(max_pixels))}} if max_pixels else {}
        inputs = processor(text=[text], images=images, return_tensors="pt", **size)
        sizes = [(int(w), int(h)) for h, w in inputs["image_sizes"].tolist()]
        ids = inputs["input_ids"][0].tolist()
        layout = break_layout(
            ids, processor.image_token_id, processor.image_break_token_id, processor.image_end_token_id, sizes, token_px
        )
        first = layout.regions[0]
        return PreparedInputs(dict(inputs), processor.image_token_id, first.rows, first.cols, sizes[0], layout)

    def vision_geometry(self, model: PreTrainedModel, processor: Any, prepared: PreparedInputs) -> VisionGeometry:
        """Pixtral over the resized image: (h / patch) x (w / patch) patches, row-major, before the merge."""
        config = self.vision_config(model)
        width, height = prepared.image_size
        patch = config.patch_size
        return whole_image_geometry(height // patch, width // patch, patch, config.num_hidden_layers)
