"""References for LLaVA's anyres layout (OneVision and NeXT): which canvas cell, base patch or image_newline each
image token holds is asked of the model itself, by running its own pack_image_features on stand-in features
that carry their cell's coordinates; and the colours the processor gave each cell, read from pixel_values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from vlm_attention_viz.dev.tiny import LLAVA_OV_CROP, LLAVA_OV_PATCH

from conftest import extract_args, run

SIDE, CELL_PX = LLAVA_OV_CROP // LLAVA_OV_PATCH, LLAVA_OV_PATCH
BASE, CELL, NEWLINE = 0.0, 1.0, 2.0  # what a probe feature holds: a base-view patch, a canvas cell, the row end
NEWLINE_PROBE = torch.tensor([NEWLINE, 0.0, 0.0])


def gradient_image(width: int, height: int) -> Image.Image:
    """Red grows to the right and green downwards, blue is flat: every cell has its own colour, none is black."""
    xs, ys = np.meshgrid(np.arange(width) / width, np.arange(height) / height)
    pixels = np.stack([40 + 200 * xs, 40 + 200 * ys, np.full_like(xs, 128)], -1)
    return Image.fromarray(pixels.round().astype(np.uint8))


def gradient_images(folder: Path, sizes: dict[str, tuple[int, int]]) -> dict[str, Path]:
    """A gradient PNG per name, of its (width, height)."""
    for name, size in sizes.items():
        gradient_image(*size).save(folder / f"{name}.png")
    return {name: folder / f"{name}.png" for name in sizes}


def extract_samples(folder: Path, model: Path, prompts: dict[str, list[Path]]) -> dict[str, Path]:
    """A sample per name through the CLI, its images in the prompt in the order given."""
    out = {}
    for name, images in prompts.items():
        out[name] = folder / name
        assert (
            run(
                *extract_args(images[0], out[name], model, *[arg for image in images[1:] for arg in ("--image", image)])
            )
            == 0
        )
    return out


def probe_features(canvases: list[tuple[int, int]], side: int = SIDE) -> list[torch.Tensor]:
    """Per image, stand-in tower features (crops, g², 3) for g = side: a base patch's (BASE, row, col), a crop
    patch's (CELL, canvas row, canvas col); canvases: each image's crop grid (rows, cols), (0, 0) for a base view
    alone."""
    base = torch.tensor([[BASE, r, c] for r in range(side) for c in range(side)])
    features = []
    for crop_rows, crop_cols in canvases:
        crops = [base]
        for k in range(crop_rows * crop_cols):
            cr, cc = divmod(k, crop_cols)
            crops.append(torch.tensor([[CELL, cr * side + r, cc * side + c] for r in range(side) for c in range(side)]))
        features.append(torch.stack(crops).float())
    return features


def token_sources(
    model: Any, inputs: dict, canvases: list[tuple[int, int]], side: int = SIDE, **packing: Any
) -> dict[int, np.ndarray]:
    """Per image placeholder position, the probe feature the model's own packing puts there; packing: the
    family's pack_image_features arguments besides the features, the image sizes and image_newline."""
    packed, _ = model.model.pack_image_features(
        probe_features(canvases, side), inputs["image_sizes"], image_newline=NEWLINE_PROBE, **packing
    )
    placeholders = (inputs["input_ids"][0] == model.config.image_token_id).nonzero()[:, 0].tolist()
    return dict(zip(placeholders, torch.cat(packed).numpy(), strict=True))


def crop_canvas(pixel_values: torch.Tensor, crop_rows: int, crop_cols: int) -> np.ndarray:
    """The padded canvas the crops of one image were cut from, in 0..255, (H, W, 3)."""
    crops = pixel_values[1 : 1 + crop_rows * crop_cols].numpy() * 127.5 + 127.5
    rows = [np.concatenate(list(crops[r * crop_cols : (r + 1) * crop_cols]), axis=-1) for r in range(crop_rows)]
    return np.concatenate(rows, axis=-2).transpose(1, 2, 0)


def image_box(canvas: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, width, height) of the image inside its canvas: blue is 128 on a gradient image, 0 in the padding."""
    on_image = np.argwhere(canvas[..., 2] > 64)
    (top, left), (bottom, right) = on_image.min(0), on_image.max(0) + 1
    return int(left), int(top), int(right - left), int(bottom - top)


def cell_centre(region: dict, grid_pos: list[int]) -> tuple[float, float]:
    x, y, w, h = region["rect"]
    r, c = grid_pos
    return x + (c + 0.5) * w / region["cols"], y + (r + 0.5) * h / region["rows"]


def assert_tokens_hold_what_the_model_packed(
    meta: dict,
    sources: dict[int, np.ndarray],
    pastes: list[tuple[int, int]],
    cell_px: float = CELL_PX,
    atol: float = 1e-4,
) -> None:
    """Each image token's region and grid place hold the feature the model put there: row ends its
    image_newline, the base view's tokens their patch, the stitched grid's tokens the canvas cell under the
    centre of their rectangle (a fraction of a cell where the model interpolated the grid), within atol cells;
    pastes: where each image sits in its canvas; cell_px: a crop's width over its features per side."""
    regions = meta["image_regions"]
    assert set(sources) == {t["id"] for t in meta["tokens"] if t["type"] == "image" or t.get("layout") == "row_end"}
    for position, (kind, a, b) in sources.items():
        token = meta["tokens"][position]
        if kind == NEWLINE:
            assert token["layout"] == "row_end" and token["type"] == "special", position
            continue
        region = regions[token["region"]]
        if kind == BASE:
            assert region["kind"] in ("global", "image") and token["grid_pos"] == [a, b], position
            continue
        assert region["kind"] == "tile"
        cx, cy = cell_centre(region, token["grid_pos"])
        px, py = pastes[region["image"]]
        np.testing.assert_allclose([(cy + py) / cell_px, (cx + px) / cell_px], [a + 0.5, b + 0.5], atol=atol)


def assert_colours_match_pixel_values(
    meta: dict, pixel_values: torch.Tensor, image_path: Path, crops: tuple[int, int]
) -> int:
    """The colour test for one anyres image: every token's rectangle, mapped onto the original image, has the
    colour the processor gave its cell (the stitched grid's from the canvas, the base view's from its squashed
    crop); a cell whose centre is off the image is the canvas's black padding. Returns how many are."""
    original = np.asarray(Image.open(image_path).convert("RGB"), np.float32)
    canvas = crop_canvas(pixel_values, *crops)
    base = pixel_values[0].numpy().transpose(1, 2, 0) * 127.5 + 127.5
    (width, height), (orig_w, orig_h) = meta["images"][0]["size"], meta["images"][0]["original_size"]
    left, top, _, _ = image_box(canvas)
    off_image = 0
    for token in meta["tokens"]:
        if token["type"] != "image":
            continue
        region = meta["image_regions"][token["region"]]
        cx, cy = cell_centre(region, token["grid_pos"])
        if region["kind"] == "global":
            seen = base[int(cy / height * LLAVA_OV_CROP), int(cx / width * LLAVA_OV_CROP)]
        else:
            seen = canvas[int(cy) + top, int(cx) + left]
        if not (0 <= cx < width and 0 <= cy < height):
            assert np.abs(seen).max() < 1, token["id"]
            off_image += 1
            continue
        expected = original[int(cy * orig_h / height), int(cx * orig_w / width)]
        assert np.abs(seen - expected).max() < 6, (token["id"], seen, expected)
    return off_image
