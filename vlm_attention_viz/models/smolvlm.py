"""SmolVLM (and its predecessor Idefics3's layout): the image cut into square tiles plus a downscaled global view.

The processor resizes the image so its longest edge is `size.longest_edge`, then stretches it to whole
multiples of the tile size (`max_image_size.longest_edge`) and cuts rows x cols tiles; a last tile is the
whole image resized to one tile (`<global-img>`). An image no larger than one tile is sent as that global
view alone. Each tile is `image_seq_len` tokens after the connector's pixel shuffle, row-major over the
tile: (tile px / patch px / scale factor) per side. In the prompt each tile is
`<fake_token_around_image><row_i_col_j>` then its tokens, each row of tiles ends with "\\n", and the global
view follows as `\\n<fake_token_around_image><global-img>` + tokens + `<fake_token_around_image>`.

The layout is read back from the tokens as the processor wrote them, so it is exactly what the model saw.
"""

from __future__ import annotations

import math
import re
from typing import Any

from PIL import Image
from transformers import AutoProcessor, ProcessorMixin, SmolVLMForConditionalGeneration, SmolVLMProcessor
from transformers.utils import is_torchvision_available

from ..errors import UserError
from ..image_layout import ImageLayout, Region
from .base import ModelAdapter, PreparedInputs, image_text_processor, processor_settings, user_message

TILE_LABEL = re.compile(r"<row_(\d+)_col_(\d+)>")
# The hub's tile (max_image_size.longest_edge of SmolVLM-256M and -500M). Token texts carry the tiles' grid but
# not their size in pixels, so an import counts a tile as this; only its ratio to the image file is used.
IMPORT_TILE_PX = 512
GLOBAL_LABEL = "<global-img>"
AROUND_IMAGE = "<fake_token_around_image>"


def tiled_layout(pieces: list[str], image_piece: str, tile_px: int, tile_side: int) -> ImageLayout:
    """The regions of every image in a token sequence as SmolVLM's processor writes it.

    pieces: the tokens as strings; tile_px: the tile size in pixels; tile_side: tokens per tile side.
    A tile's rect is its part of the stretched image (cols x tile_px by rows x tile_px); the global view,
    and an image sent as the global view alone, cover the whole of it.
    """
    sizes: list[tuple[int, int]] = []
    regions: list[Region] = []
    roles: dict[int, str] = {}
    tiles: list[tuple[int, int, list[int]]] = []
    i = 0
    while i < len(pieces):
        piece = pieces[i]
        if piece == AROUND_IMAGE:
            roles[i] = "separator"
        elif TILE_LABEL.fullmatch(piece) or piece == GLOBAL_LABEL:
            roles[i] = "tile_label"
            run = _image_run(pieces, i + 1, image_piece, tile_side)
            if piece != GLOBAL_LABEL:
                row, col = (int(v) - 1 for v in TILE_LABEL.fullmatch(piece).groups())  # type: ignore[union-attr]
                tiles.append((row, col, run))
            else:
                _close_image(len(sizes), tiles, run, tile_px, tile_side, sizes, regions)
                tiles = []
            i += len(run)
        elif piece == image_piece:
            raise UserError(
                f"an image token at position {i} follows no tile label; this prompt's layout is not SmolVLM's"
            )
        i += 1
    return ImageLayout(sizes, regions, roles)


def _image_run(pieces: list[str], start: int, image_piece: str, tile_side: int) -> list[int]:
    end = start
    while end < len(pieces) and pieces[end] == image_piece:
        end += 1
    if end - start != tile_side * tile_side:
        raise UserError(
            f"a tile at position {start} holds {end - start} image tokens, not {tile_side} x {tile_side}; "
            "the processor's image_seq_len does not fit the model"
        )
    return list(range(start, end))


def _close_image(
    image: int,
    tiles: list[tuple[int, int, list[int]]],
    global_run: list[int],
    tile_px: int,
    tile_side: int,
    sizes: list[tuple[int, int]],
    regions: list[Region],
) -> None:
    """One image's tiles (possibly none) and its global view."""
    rows = 1 + max((row for row, _, _ in tiles), default=0)
    cols = 1 + max((col for _, col, _ in tiles), default=0)
    if tiles and sorted((row, col) for row, col, _ in tiles) != [(r, c) for r in range(rows) for c in range(cols)]:
        raise UserError(f"image {image}'s tiles do not form a full {rows} x {cols} grid")
    size = (cols * tile_px, rows * tile_px)
    for row, col, run in tiles:
        regions.append(
            Region(image, "tile", tile_side, tile_side, (col * tile_px, row * tile_px, tile_px, tile_px), run)
        )
    regions.append(Region(image, "global" if tiles else "image", tile_side, tile_side, (0, 0, *size), global_run))
    sizes.append(size)


class SmolVLMAdapter(ModelAdapter):
    name = "smolvlm"
    config_model_types = ("smolvlm",)
    model_class = SmolVLMForConditionalGeneration
    processor_class: type[ProcessorMixin] = SmolVLMProcessor
    image_placeholder = "<image>"

    def import_layout(self, texts: list[str]) -> ImageLayout:
        """The tiles from their labels, each tile's side from the image tokens after the first label."""
        first = next((i for i, text in enumerate(texts) if TILE_LABEL.fullmatch(text) or text == GLOBAL_LABEL), None)
        if first is None:
            raise UserError(
                f"no <row_i_col_j> or {GLOBAL_LABEL} label in the token list, so no {self.name} tiles; "
                "pass --image-span START END for one grid"
            )
        run = 0
        while first + 1 + run < len(texts) and texts[first + 1 + run] == self.image_placeholder:
            run += 1
        return tiled_layout(texts, self.image_placeholder, IMPORT_TILE_PX, math.isqrt(run))

    def load_processor(self, source: str) -> Any:
        if is_torchvision_available():
            return AutoProcessor.from_pretrained(source)
        return image_text_processor(self.processor_class, source, **processor_settings(source))

    def prepare_images(
        self, processor: Any, images: list[Image.Image], prompt: str, max_pixels: int | None
    ) -> PreparedInputs:
        # SmolVLM's own apply_chat_template only adds video defaults, read from a video processor that a build
        # without torchvision lacks; the template itself is the generic one.
        text = ProcessorMixin.apply_chat_template(
            processor, user_message(len(images), prompt), add_generation_prompt=True, tokenize=False
        )
        tile_px = processor.image_processor.max_image_size["longest_edge"]
        size = {"size": {"longest_edge": longest_edge(max_pixels, tile_px)}} if max_pixels else {}
        inputs = processor(text=[text], images=[images], return_tensors="pt", **size)
        pieces = processor.tokenizer.convert_ids_to_tokens(inputs["input_ids"][0].tolist())
        layout = tiled_layout(pieces, processor.image_token, tile_px, math.isqrt(processor.image_seq_len))
        whole = next(region for region in layout.regions if region.kind != "tile")
        return PreparedInputs(
            dict(inputs), processor.image_token_id, whole.rows, whole.cols, layout.image_sizes[0], layout
        )


def longest_edge(max_pixels: int, tile_px: int) -> int:
    """--max-pixels as the processor's longest edge: the largest whole number of tiles whose square fits, at least one."""
    return max(1, math.isqrt(max_pixels) // tile_px) * tile_px
