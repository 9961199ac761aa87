"""InternVL through the CLI, as a user runs it: detected from config.json, every layer equal to its eager
output_attentions, logits untouched, and each image token's tile, grid place and pixel rectangle equal to what
the processor did (its tiles and thumbnail in pixel_values, its image tokens in input_ids)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from analysis_reference import assert_tables_and_rollout_match
from PIL import Image

from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.attention_capture import DEFAULT_ROW_BUDGET
from vlm_attention_viz.dev.tiny import INTERNVL_PREPROCESSOR, INTERNVL_PROCESSOR, TinyShape, write_processor_files
from vlm_attention_viz.models import adapter_named

from conftest import TinyCheckpoint, extract_args, run
from reference import (
    PROMPT,
    assert_detected_and_equal_to_eager,
    captured_chunks_with_logits_unchanged,
    processed_images,
)

INTERNVL = TinyShape(family="internvl", layers=2, heads=4, kv_heads=2, seed=9)
# 300 x 170 px: of up to 6 tiles of 64 px, 2 x 1 is the closest aspect ratio; a thumbnail follows
TILE_PX, TILE_COLS, TILE_ROWS, SIDE = 64, 2, 1, 4
COLOURS = [(230, 20, 20), (20, 200, 40), (30, 40, 220), (240, 220, 30)]


def quadrant_image(width: int, height: int) -> Image.Image:
    """Each quarter its own colour: the halves fall on token edges in the tiles and in the thumbnail alike."""
    pixels = np.zeros((height, width, 3), np.uint8)
    for k, colour in enumerate(COLOURS):
        r, c = divmod(k, 2)
        pixels[r * height // 2 : (r + 1) * height // 2, c * width // 2 : (c + 1) * width // 2] = colour
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def internvl_model(tiny_checkpoint: TinyCheckpoint) -> Path:
    return tiny_checkpoint(INTERNVL)


@pytest.fixture(scope="module")
def quadrants(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("quadrants") / "quadrants.png"
    quadrant_image(300, 170).save(path)
    return path


@pytest.fixture(scope="module")
def internvl_sample(internvl_model: Path, quadrants: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    sample = tmp_path_factory.mktemp("samples") / "internvl"
    assert run(*extract_args(quadrants, sample, internvl_model)) == 0
    return sample


def test_internvl_is_detected_and_every_layer_matches_eager_output_attentions(
    internvl_model: Path, internvl_sample: Path, quadrants: Path
) -> None:
    assert_detected_and_equal_to_eager("internvl", INTERNVL, internvl_model, internvl_sample, quadrants)


def test_internvl_logits_with_capture_equal_logits_without(internvl_model: Path, quadrants: Path) -> None:
    chunks, layers = captured_chunks_with_logits_unchanged("internvl", internvl_model, quadrants, DEFAULT_ROW_BUDGET)
    assert sorted({c.layer for c in chunks}) == list(range(layers)) == [0, 1]


def test_internvl_regions_are_the_processor_tiles_then_the_thumbnail(
    internvl_model: Path, internvl_sample: Path, quadrants: Path
) -> None:
    meta = fmt.read_meta(internvl_sample)
    inputs, processor = processed_images("internvl", internvl_model, [quadrants])
    tiles = TILE_COLS * TILE_ROWS
    assert inputs["pixel_values"].shape[0] == tiles + 1  # the tiles, then the thumbnail
    assert processor.image_processor.size["height"] == TILE_PX and processor.image_seq_length == SIDE * SIDE
    assert meta["format_version"] == 2 and "image_grid" not in meta
    assert meta["image_size"] == [TILE_COLS * TILE_PX, TILE_ROWS * TILE_PX]
    assert meta["images"][0]["original_size"] == [300, 170]
    regions = meta["image_regions"]
    assert [r["kind"] for r in regions] == ["tile"] * tiles + ["global"]
    assert [r["rect"] for r in regions] == [[c * TILE_PX, 0, TILE_PX, TILE_PX] for c in range(TILE_COLS)] + [
        [0, 0, TILE_COLS * TILE_PX, TILE_ROWS * TILE_PX]
    ]
    ids = inputs["input_ids"][0].tolist()
    image_positions = [i for i, t in enumerate(ids) if t == processor.image_token_id]
    assert [p for r in regions for p in r["tokens"]] == image_positions  # one block: tile after tile, no labels
    assert ids[image_positions[0] - 1] == processor.start_image_token_id
    assert ids[image_positions[-1] + 1] == processor.end_image_token_id
    for k, region in enumerate(regions):
        assert (region["rows"], region["cols"]) == (SIDE, SIDE)
        for offset, position in enumerate(region["tokens"]):
            assert meta["tokens"][position]["region"] == k
            assert meta["tokens"][position]["grid_pos"] == [offset // SIDE, offset % SIDE]


def test_colour_test_each_token_rectangle_lies_over_its_colour_in_the_image_and_in_pixel_values(
    internvl_model: Path, internvl_sample: Path, quadrants: Path
) -> None:
    """The sample's rectangles, mapped onto the original image, sit on the colour the processor's own tiles hold
    at that token's patch (tile tokens and thumbnail tokens alike): the token order within a tile is row-major."""
    meta = fmt.read_meta(internvl_sample)
    original = np.asarray(Image.open(quadrants).convert("RGB"), np.float32)
    inputs, _ = processed_images("internvl", internvl_model, [quadrants])
    pixel_values = inputs["pixel_values"].numpy() * 0.5 + 0.5  # image_mean = image_std = 0.5
    (width, height), (orig_w, orig_h) = meta["image_size"], meta["original_image_size"]
    token_px = TILE_PX / SIDE
    colours = set()
    for k, region in enumerate(meta["image_regions"]):
        x, y, w, h = region["rect"]
        for position in region["tokens"]:
            row, col = meta["tokens"][position]["grid_pos"]
            cx, cy = x + (col + 0.5) * w / SIDE, y + (row + 0.5) * h / SIDE
            expected = original[int(cy * orig_h / height), int(cx * orig_w / width)]
            seen = pixel_values[k, :, int((row + 0.5) * token_px), int((col + 0.5) * token_px)] * 255
            assert np.abs(seen - expected).max() < 6, (k, row, col, seen, expected)
            colours.add(tuple(expected.astype(int)))
    assert colours == set(COLOURS)


def test_internvl_texts_decode_back_and_the_tables_count_every_tile(
    internvl_model: Path, internvl_sample: Path, quadrants: Path
) -> None:
    meta = fmt.read_meta(internvl_sample)
    inputs, processor = processed_images("internvl", internvl_model, [quadrants])
    ids = inputs["input_ids"][0].tolist()
    assert [t["token_id"] for t in meta["tokens"]] == ids
    text_ids = [t for t in ids if t != processor.image_token_id]
    decoded = processor.tokenizer.decode(text_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    assert "".join(t["text"] for t in meta["tokens"] if t["type"] != "image") == decoded
    assert_tables_and_rollout_match(internvl_sample)
    assert fmt.entropy_region(meta["image_regions"]) == TILE_COLS * TILE_ROWS  # the thumbnail


def test_a_one_tile_image_is_a_single_grid_and_max_pixels_caps_the_tiles(
    internvl_model: Path, quadrants: Path, tmp_path: Path
) -> None:
    small = tmp_path / "small.png"
    quadrant_image(60, 60).save(small)
    assert run(*extract_args(small, tmp_path / "one", internvl_model)) == 0
    meta = fmt.validate_sample(tmp_path / "one")
    assert meta["format_version"] == 1 and (meta["image_grid"]["rows"], meta["image_grid"]["cols"]) == (SIDE, SIDE)
    args = ["--image", quadrants, "--prompt", PROMPT, "--output-dir", tmp_path / "capped", "--max-pixels", "4096"]
    assert run(*args, "--model", internvl_model) == 0  # one tile of 64 x 64 px: no thumbnail
    capped = fmt.validate_sample(tmp_path / "capped")
    assert capped["image_size"] == [TILE_PX, TILE_PX] and "image_grid" in capped


def test_two_images_each_get_their_tiles_in_prompt_order(internvl_model: Path, quadrants: Path, tmp_path: Path) -> None:
    tall = tmp_path / "tall.png"
    quadrant_image(100, 200).save(tall)  # 1 x 2 tiles
    sample = tmp_path / "two"
    args = ["--image", quadrants, "--image", tall, "--prompt", PROMPT, "--output-dir", sample]
    assert run(*args, "--model", internvl_model) == 0
    meta = fmt.validate_sample(sample)
    assert [image["size"] for image in meta["images"]] == [[128, 64], [64, 128]]
    regions = meta["image_regions"]
    assert [(r["image"], r["kind"]) for r in regions] == [(0, "tile"), (0, "tile"), (0, "global")] + [
        (1, "tile"),
        (1, "tile"),
        (1, "global"),
    ]
    assert [r["rect"] for r in regions[3:]] == [[0, 0, 64, 64], [0, 64, 64, 64], [0, 0, 64, 128]]
    inputs, processor = processed_images("internvl", internvl_model, [quadrants, tall])
    ids = inputs["input_ids"][0].tolist()
    assert [p for r in regions for p in r["tokens"]] == [i for i, t in enumerate(ids) if t == processor.image_token_id]


# InternVL3's geometry on the hub: 448 px tiles of 16 x 16 tokens, up to 12 tiles, plus the thumbnail.
HUB_TILE, HUB_SIDE, HUB_MAX_TILES = 448, 16, 12


@pytest.mark.parametrize("size", [(1920, 1080), (1080, 1920), (640, 480), (300, 300), (4000, 600)])
def test_at_the_hubs_geometry_the_regions_are_the_processors_tiles(size: tuple[int, int], tmp_path: Path) -> None:
    """The processor alone, with the hub's files: as many tile regions as it cut tiles (pixel_values, less the
    thumbnail), each 16 x 16 over its 448 px, and every image token placed."""
    preprocessor = {
        **INTERNVL_PREPROCESSOR,
        "size": {"height": HUB_TILE, "width": HUB_TILE},
        "max_patches": HUB_MAX_TILES,
    }
    write_processor_files(tmp_path, INTERNVL, preprocessor, {**INTERNVL_PROCESSOR, "image_seq_length": HUB_SIDE**2})
    adapter = adapter_named("internvl")
    prepared = adapter.prepare_images(adapter.load_processor(str(tmp_path)), [Image.new("RGB", size)], PROMPT, None)
    layout = prepared.image_layout()  # every image placeholder in one region
    crops = prepared.model_inputs["pixel_values"].shape[0]
    tiles = [region for region in layout.regions if region.kind != "global"]
    assert len(tiles) == (crops - 1 if crops > 1 else 1) and len(layout.regions) == crops
    width, height = layout.image_sizes[0]
    assert width % HUB_TILE == height % HUB_TILE == 0 and len(tiles) == width * height // HUB_TILE**2 <= HUB_MAX_TILES
    assert all((r.rows, r.cols, r.rect[2], r.rect[3]) == (HUB_SIDE, HUB_SIDE, HUB_TILE, HUB_TILE) for r in tiles)
