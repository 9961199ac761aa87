"""Synthetic samples with image regions. In SmolVLM's token layout: each image cut into tiles of 4 x 4 tokens
(64 px) plus a 4 x 4 global view, tile labels and separators between them; one image, or two in one prompt.
With --padded, in LLaVA-OneVision's: a 4 x 4 global view of a 192 x 120 image, then a grid of 8 x 12 cells of
16 px cut from the image padded to 128 px high (its rect overhangs the image by 4 px at the top and the bottom),
each row of patches followed by a row-end position that is not a patch.
The token tables and the rollout are computed by the extractor's code, as for synthetic.py's samples.

Each tile (with --padded: each cell of the grid) of the drawn image has its own flat colour, so a test can
tell which pixels a token covers.

    python -m vlm_attention_viz.dev.synthetic_layouts --output-dir fixtures/layouts/sample_tiled
    python -m vlm_attention_viz.dev.synthetic_layouts --output-dir fixtures/layouts/sample_two_images --images 2
    python -m vlm_attention_viz.dev.synthetic_layouts --output-dir fixtures/layouts/sample_padded --padded
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from .. import sample_format as fmt
from ..analysis import TokenLayout, TokenMeasures, resolve_device, write_rollout
from ..image_layout import ImageLayout, Region
from ..models.smolvlm import AROUND_IMAGE, GLOBAL_LABEL, tiled_layout
from .synthetic import add_measures, layer_attention

TILE_PX, TILE_SIDE = 64, 4
IMAGE_TEXT = "[IMG]"
# (tile rows, tile cols) of each image
IMAGE_TILES = [(2, 3), (3, 2)]
SPECIAL = {"<|im_start|>", "<end_of_utterance>", AROUND_IMAGE, GLOBAL_LABEL}
TILE_COLOURS = [(230, 20, 20), (20, 200, 40), (30, 40, 220), (240, 220, 30), (200, 30, 210), (20, 210, 220)]
# The padded layout: the image as the model saw it, its grid's rows x cols cells and the grid's rect over it
PADDED_SIZE = (192, 120)
PADDED_GRID = (8, 12)
PADDED_RECT = (0, -4, 192, 128)


def image_pieces(tile_rows: int, tile_cols: int) -> list[str]:
    """One image's tokens as SmolVLM's processor writes them."""
    pieces: list[str] = []
    for r in range(tile_rows):
        for c in range(tile_cols):
            pieces += [AROUND_IMAGE, f"<row_{r + 1}_col_{c + 1}>", *[IMAGE_TEXT] * TILE_SIDE**2]
        pieces.append("\n")
    return [*pieces, "\n", AROUND_IMAGE, GLOBAL_LABEL, *[IMAGE_TEXT] * TILE_SIDE**2, AROUND_IMAGE]


PROMPT_HEAD = ["<|im_start|>", "User", ":"]


def prompt_pieces(body: list[str]) -> list[str]:
    words = ["Describe", " this", " image", "."]
    return [*PROMPT_HEAD, *body, *words, "<end_of_utterance>", "\n", "Assistant", ":"]


def tiled_pieces(images: int) -> list[str]:
    return prompt_pieces([piece for tiles in IMAGE_TILES[:images] for piece in image_pieces(*tiles)])


def padded_layout(first: int) -> ImageLayout:
    """The global view's tokens from `first` on, then the grid's rows, each followed by its row-end position."""
    rows, cols = PADDED_GRID
    global_view = list(range(first, first + TILE_SIDE**2))
    start = global_view[-1] + 1
    patches = [start + r * (cols + 1) + c for r in range(rows) for c in range(cols)]
    row_ends = {start + r * (cols + 1) + cols: "row_end" for r in range(rows)}
    regions = [
        Region(0, "global", TILE_SIDE, TILE_SIDE, (0, 0, *PADDED_SIZE), global_view),
        Region(0, "tile", rows, cols, PADDED_RECT, patches),
    ]
    return ImageLayout([PADDED_SIZE], regions, row_ends)


def padded_image() -> Image.Image:
    """The image as the model saw it: each cell of the padded grid one flat colour, over the part on the image."""
    width, height = PADDED_SIZE
    x0, y0, w, h = PADDED_RECT
    rows, cols = PADDED_GRID
    y, x = np.mgrid[0:height, 0:width]
    row, col = (y - y0) * rows // h, (x - x0) * cols // w
    pixels = np.stack([40 + 25 * row, 20 + 19 * col, np.full_like(row, 128)], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8))


def tile_image(tile_rows: int, tile_cols: int) -> Image.Image:
    """The image as the model saw it: each tile one flat colour."""
    pixels = np.zeros((tile_rows * TILE_PX, tile_cols * TILE_PX, 3), np.uint8)
    for r in range(tile_rows):
        for c in range(tile_cols):
            pixels[r * TILE_PX : (r + 1) * TILE_PX, c * TILE_PX : (c + 1) * TILE_PX] = TILE_COLOURS[r * tile_cols + c]
    return Image.fromarray(pixels)


def write_tiled(target: Path, images: int, layers: int, heads: int, seed: int, overwrite: bool) -> Path:
    pieces = tiled_pieces(images)
    layout = tiled_layout(pieces, IMAGE_TEXT, TILE_PX, TILE_SIDE)
    pictures = [tile_image(*tiles) for tiles in IMAGE_TILES[:images]]
    grid = {"rows": TILE_SIDE, "cols": TILE_SIDE}  # where the synthetic attention focuses, per region
    return write_layout(target, pieces, layout, pictures, grid, layers, heads, seed, overwrite)


def write_padded(target: Path, layers: int, heads: int, seed: int, overwrite: bool) -> Path:
    rows, cols = PADDED_GRID
    body = [IMAGE_TEXT] * (TILE_SIDE**2 + rows * (cols + 1))
    layout = padded_layout(len(PROMPT_HEAD))
    grid = {"rows": rows, "cols": cols}
    return write_layout(target, prompt_pieces(body), layout, [padded_image()], grid, layers, heads, seed, overwrite)


def write_layout(
    target: Path,
    pieces: list[str],
    layout: ImageLayout,
    pictures: list[Image.Image],
    grid: dict[str, int],
    layers: int,
    heads: int,
    seed: int,
    overwrite: bool,
) -> Path:
    tokens = [
        {"id": i, "text": text, "type": "special" if text in SPECIAL or text.startswith("<row_") else "text"}
        for i, text in enumerate(pieces)
    ]
    for position in layout.roles:
        tokens[position]["type"] = "special"  # a row end is an image placeholder of the model, but no patch
    for position in layout.image_positions():
        tokens[position]["type"] = "image"
    layout.place(tokens)
    device = resolve_device(None)
    token_layout = TokenLayout.of(tokens, layout.region_entries())
    measures = TokenMeasures(token_layout, fmt.TokenTables(layers, heads, len(tokens)))
    with fmt.SampleWriter(target, overwrite=overwrite) as writer:
        names = ["image.png" if i == 0 else f"image_{i}.png" for i in range(len(pictures))]
        for name, picture in zip(names, pictures, strict=True):
            picture.save(writer.tmp / name)
        for layer in range(layers):
            attn = layer_attention(tokens, grid, heads, layer, seed)
            writer.write_layer(layer, attn, attn.mean(axis=0, dtype=np.float32).astype(np.float16), attn.max(axis=0))
            add_measures(measures, layer, attn, device)
        meta = fmt.build_meta(
            model="synthetic",
            model_type="synthetic",
            mode="prefill",
            prompt="Describe this image.",
            **layout.meta_fields(names, [picture.size for picture in pictures]),
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=heads,
            tokens=tokens,
            token_tables=measures.tables.write(writer),
        )
        write_rollout(writer.tmp, meta, device)
        return writer.commit(meta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--images", type=int, default=1, choices=range(1, len(IMAGE_TILES) + 1))
    parser.add_argument("--padded", action="store_true", help="one image in the padded layout instead of tiles")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    if args.padded:
        path = write_padded(args.output_dir, args.layers, args.heads, args.seed, args.overwrite)
    else:
        path = write_tiled(args.output_dir, args.images, args.layers, args.heads, args.seed, args.overwrite)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
