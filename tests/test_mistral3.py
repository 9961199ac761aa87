"""Mistral 3 (Pixtral's layout) through the CLI, as a user runs it: detected from config.json, every layer equal
to its eager output_attentions, logits untouched, and each image's one grid skipping the [IMG_BREAK] and
[IMG_END] tokens exactly where the processor wrote them (its image sizes, its pixel_values, its input_ids)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from analysis_reference import assert_tables_and_rollout_match
from PIL import Image

from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.attention_capture import DEFAULT_ROW_BUDGET
from vlm_attention_viz.dev.tiny import TinyShape

from conftest import TinyCheckpoint, extract_args, run
from reference import (
    PROMPT,
    assert_detected_and_equal_to_eager,
    captured_chunks_with_logits_unchanged,
    processed_images,
)

MISTRAL3 = TinyShape(family="mistral3", layers=2, heads=4, kv_heads=2, seed=7)
TOKEN_PX = 16  # 8 px patches merged 2 x 2
# 300 x 170 px fits 128 px as 128 x 80 (whole 16 px tokens): 5 rows of 8 tokens
ROWS, COLS = 5, 8
COLOURS = [(230, 20, 20), (20, 200, 40), (30, 40, 220), (240, 220, 30)]


def quadrant_image(width: int, height: int) -> Image.Image:
    """Four blocks of colour split at 2/5 of the height and 1/2 of the width, which fall on token edges once the
    processor resized the image, so a token's rectangle tells which colour it covers."""
    pixels = np.zeros((height, width, 3), np.uint8)
    rows, cols = [0, height * 2 // 5, height], [0, width // 2, width]
    for k, colour in enumerate(COLOURS):
        r, c = divmod(k, 2)
        pixels[rows[r] : rows[r + 1], cols[c] : cols[c + 1]] = colour
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def mistral3_model(tiny_checkpoint: TinyCheckpoint) -> Path:
    return tiny_checkpoint(MISTRAL3)


@pytest.fixture(scope="module")
def quadrants(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("quadrants") / "quadrants.png"
    quadrant_image(300, 170).save(path)
    return path


@pytest.fixture(scope="module")
def mistral3_sample(mistral3_model: Path, quadrants: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    sample = tmp_path_factory.mktemp("samples") / "mistral3"
    assert run(*extract_args(quadrants, sample, mistral3_model)) == 0
    return sample


def test_mistral3_is_detected_and_every_layer_matches_eager_output_attentions(
    mistral3_model: Path, mistral3_sample: Path, quadrants: Path
) -> None:
    assert_detected_and_equal_to_eager("mistral3", MISTRAL3, mistral3_model, mistral3_sample, quadrants)


def test_mistral3_logits_with_capture_equal_logits_without(mistral3_model: Path, quadrants: Path) -> None:
    chunks, layers = captured_chunks_with_logits_unchanged("mistral3", mistral3_model, quadrants, DEFAULT_ROW_BUDGET)
    assert sorted({c.layer for c in chunks}) == list(range(layers)) == [0, 1]


def test_mistral3_grid_skips_the_row_breaks_the_processor_wrote(
    mistral3_model: Path, mistral3_sample: Path, quadrants: Path
) -> None:
    meta = fmt.read_meta(mistral3_sample)
    inputs, processor = processed_images("mistral3", mistral3_model, [quadrants])
    assert inputs["image_sizes"].tolist() == [[ROWS * TOKEN_PX, COLS * TOKEN_PX]]
    assert processor.patch_size * processor.spatial_merge_size == TOKEN_PX  # read from the checkpoint
    assert meta["format_version"] == 2 and "image_grid" not in meta
    assert meta["image_size"] == meta["images"][0]["size"] == [COLS * TOKEN_PX, ROWS * TOKEN_PX]
    assert meta["images"][0]["original_size"] == [300, 170]
    (region,) = meta["image_regions"]
    assert (region["image"], region["kind"], region["rows"], region["cols"]) == (0, "image", ROWS, COLS)
    assert region["rect"] == [0, 0, COLS * TOKEN_PX, ROWS * TOKEN_PX]
    ids = inputs["input_ids"][0].tolist()
    assert region["tokens"] == [i for i, t in enumerate(ids) if t == processor.image_token_id]
    breaks = [i for i, t in enumerate(ids) if t == processor.image_break_token_id]
    (end,) = [i for i, t in enumerate(ids) if t == processor.image_end_token_id]
    assert [t["id"] for t in meta["tokens"] if t.get("layout") == "row_break"] == [*breaks, end]
    assert len(breaks) == ROWS - 1
    for row in range(ROWS):  # each row: COLS tokens in a run, then its break (the last: the end)
        run_of = region["tokens"][row * COLS : (row + 1) * COLS]
        assert run_of == list(range(run_of[0], run_of[0] + COLS))
        assert run_of[-1] + 1 == (breaks[row] if row < ROWS - 1 else end)
        assert [meta["tokens"][p]["grid_pos"] for p in run_of] == [[row, c] for c in range(COLS)]
    assert all(meta["tokens"][i]["type"] == "special" for i in [*breaks, end])


def test_colour_test_each_token_rectangle_lies_over_its_colour_in_the_image_and_in_pixel_values(
    mistral3_model: Path, mistral3_sample: Path, quadrants: Path
) -> None:
    meta = fmt.read_meta(mistral3_sample)
    original = np.asarray(Image.open(quadrants).convert("RGB"), np.float32)
    inputs, _ = processed_images("mistral3", mistral3_model, [quadrants])
    pixel_values = inputs["pixel_values"][0].numpy() * 0.5 + 0.5  # image_mean = image_std = 0.5
    (width, height), (orig_w, orig_h) = meta["image_size"], meta["original_image_size"]
    (region,) = meta["image_regions"]
    x, y, w, h = region["rect"]
    for position in region["tokens"]:
        row, col = meta["tokens"][position]["grid_pos"]
        cx, cy = x + (col + 0.5) * w / region["cols"], y + (row + 0.5) * h / region["rows"]
        expected = original[int(cy * orig_h / height), int(cx * orig_w / width)]
        seen = pixel_values[:, int(cy), int(cx)] * 255
        assert np.abs(seen - expected).max() < 6, (row, col, seen, expected)
    assert {tuple(original[int(y * orig_h / height), int(x * orig_w / width)]) for x, y in [(8, 8), (120, 72)]} == {
        COLOURS[0],
        COLOURS[3],
    }


def test_mistral3_token_texts_decode_back_and_the_tables_count_the_grid(
    mistral3_model: Path, mistral3_sample: Path, quadrants: Path
) -> None:
    meta = fmt.read_meta(mistral3_sample)
    inputs, processor = processed_images("mistral3", mistral3_model, [quadrants])
    ids = inputs["input_ids"][0].tolist()
    assert [t["token_id"] for t in meta["tokens"]] == ids
    text_ids = [t for t in ids if t != processor.image_token_id]
    decoded = processor.tokenizer.decode(text_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    assert "".join(t["text"] for t in meta["tokens"] if t["type"] != "image") == decoded
    assert_tables_and_rollout_match(mistral3_sample)


def test_two_images_are_two_grids_in_prompt_order(mistral3_model: Path, quadrants: Path, tmp_path: Path) -> None:
    tall = tmp_path / "tall.png"
    quadrant_image(100, 200).save(tall)  # fits 128 px as 64 x 128: 8 rows of 4 tokens
    sample = tmp_path / "two"
    args = ["--image", quadrants, "--image", tall, "--prompt", PROMPT, "--output-dir", sample]
    assert run(*args, "--model", mistral3_model) == 0
    meta = fmt.validate_sample(sample)
    assert [image["size"] for image in meta["images"]] == [[128, 80], [64, 128]]
    regions = meta["image_regions"]
    assert [(r["image"], r["rows"], r["cols"], r["rect"]) for r in regions] == [
        (0, ROWS, COLS, [0, 0, 128, 80]),
        (1, 8, 4, [0, 0, 64, 128]),
    ]
    inputs, processor = processed_images("mistral3", mistral3_model, [quadrants, tall])
    ids = inputs["input_ids"][0].tolist()
    assert regions[0]["tokens"] + regions[1]["tokens"] == [
        i for i, t in enumerate(ids) if t == processor.image_token_id
    ]
    assert max(regions[0]["tokens"]) < min(regions[1]["tokens"])


def test_max_pixels_sets_the_longest_edge_to_its_square_root(
    mistral3_model: Path, quadrants: Path, tmp_path: Path
) -> None:
    sample = tmp_path / "small"
    args = ["--image", quadrants, "--prompt", PROMPT, "--output-dir", sample, "--max-pixels", str(64 * 64)]
    assert run(*args, "--model", mistral3_model) == 0
    meta = fmt.validate_sample(sample)
    (region,) = meta["image_regions"]
    assert max(meta["image_size"]) <= 64 and meta["image_size"] == [64, 48]  # 300 x 170 fitted to 64: 64 x 36 -> 3 rows
    assert (region["rows"], region["cols"]) == (3, 4)
