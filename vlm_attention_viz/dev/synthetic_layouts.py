"""Synthetic samples with image regions, in SmolVLM's token layout: each image cut into tiles of 4 x 4 tokens
(64 px) plus a 4 x 4 global view, tile labels and separators between them; one image, or two in one prompt.
The token tables and the rollout are computed by the extractor's code, as for synthetic.py's samples.

Each tile of the drawn image has its own flat colour, so a test can tell which pixels a token covers.

    python -m vlm_attention_viz.dev.synthetic_layouts --output-dir fixtures/layouts/sample_tiled
    python -m vlm_attention_viz.dev.synthetic_layouts --output-dir fixtures/layouts/sample_two_images --images 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from .. import sample_format as fmt
from ..analysis import TokenLayout, TokenMeasures, resolve_device, write_rollout
from ..models.smolvlm import AROUND_IMAGE, GLOBAL_LABEL, tiled_layout
from .synthetic import add_measures, layer_attention

TILE_PX, TILE_SIDE = 64, 4
IMAGE_TEXT = "[IMG]"
# (tile rows, tile cols) of each image
IMAGE_TILES = [(2, 3), (3, 2)]
SPECIAL = {"<|im_start|>", "<end_of_utterance>", AROUND_IMAGE, GLOBAL_LABEL}
TILE_COLOURS = [(230, 20, 20), (20, 200, 40), (30, 40, 220), (240, 220, 30), (200, 30, 210), (20, 210, 220)]


def image_pieces(tile_rows: int, tile_cols: int) -> list[str]:
    """One image's tokens as SmolVLM's processor writes them."""
    pieces: list[str] = []
    for r in range(tile_rows):
        for c in range(tile_cols):
            pieces += [AROUND_IMAGE, f"<row_{r + 1}_col_{c + 1}>", *[IMAGE_TEXT] * TILE_SIDE**2]
        pieces.append("\n")
    return [*pieces, "\n", AROUND_IMAGE, GLOBAL_LABEL, *[IMAGE_TEXT] * TILE_SIDE**2, AROUND_IMAGE]


def prompt_pieces(images: int) -> list[str]:
    body = [piece for tiles in IMAGE_TILES[:images] for piece in image_pieces(*tiles)]
    words = ["Describe", " this", " image", "."]
    return ["<|im_start|>", "User", ":", *body, *words, "<end_of_utterance>", "\n", "Assistant", ":"]


def tile_image(tile_rows: int, tile_cols: int) -> Image.Image:
    """The image as the model saw it: each tile one flat colour."""
    pixels = np.zeros((tile_rows * TILE_PX, tile_cols * TILE_PX, 3), np.uint8)
    for r in range(tile_rows):
        for c in range(tile_cols):
            pixels[r * TILE_PX : (r + 1) * TILE_PX, c * TILE_PX : (c + 1) * TILE_PX] = TILE_COLOURS[r * tile_cols + c]
    return Image.fromarray(pixels)


def write_tiled(target: Path, images: int, layers: int, heads: int, seed: int, overwrite: bool) -> Path:
    pieces = prompt_pieces(images)
    layout = tiled_layout(pieces, IMAGE_TEXT, TILE_PX, TILE_SIDE)
    tokens = [
        {"id": i, "text": text, "type": "special" if text in SPECIAL or text.startswith("<row_") else "text"}
        for i, text in enumerate(pieces)
    ]
    for position in layout.image_positions():
        tokens[position]["type"] = "image"
    layout.place(tokens)
    pictures = [tile_image(*tiles) for tiles in IMAGE_TILES[:images]]
    device = resolve_device(None)
    token_layout = TokenLayout.of(tokens, layout.region_entries())
    measures = TokenMeasures(token_layout, fmt.TokenTables(layers, heads, len(tokens)))
    with fmt.SampleWriter(target, overwrite=overwrite) as writer:
        names = ["image.png" if i == 0 else f"image_{i}.png" for i in range(images)]
        for name, picture in zip(names, pictures, strict=True):
            picture.save(writer.tmp / name)
        grid = {"rows": TILE_SIDE, "cols": TILE_SIDE}  # where the synthetic attention focuses, per region
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
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    path = write_tiled(args.output_dir, args.images, args.layers, args.heads, args.seed, args.overwrite)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
