"""LLaVA-NeXT through the CLI, as a user runs it: detected from config.json, every layer equal to its eager
output_attentions, logits untouched, and each image token's region and grid place holding what the model's own
packing put there (anyres_reference.py), for one image and for two (each its own anyres canvas)."""

from __future__ import annotations

from pathlib import Path

import pytest
from analysis_reference import assert_tables_and_rollout_match
from anyres_reference import (
    SIDE,
    assert_colours_match_pixel_values,
    assert_tokens_hold_what_the_model_packed,
    crop_canvas,
    extract_samples,
    gradient_images,
    image_box,
    token_sources,
)
from transformers import LlavaNextForConditionalGeneration

from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.attention_capture import DEFAULT_ROW_BUDGET
from vlm_attention_viz.dev.tiny import TinyShape

from conftest import TinyCheckpoint
from reference import (
    assert_detected_and_equal_to_eager,
    assert_layers_equal,
    captured_chunks_with_logits_unchanged,
    eager_attentions,
    processed_images,
)

LLAVA_NEXT = TinyShape(family="llava-next", layers=2, heads=4, kv_heads=2, seed=12)
# (crop rows, crop cols) of each image's canvas among the tiny checkpoint's pinpoints
CANVASES = {"small": (2, 2), "wide": (2, 2)}
SIZES = {"small": (100, 60), "wide": (300, 170)}


@pytest.fixture(scope="module")
def next_model(tiny_checkpoint: TinyCheckpoint) -> Path:
    return tiny_checkpoint(LLAVA_NEXT)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return gradient_images(tmp_path_factory.mktemp("llava_next_images"), SIZES)


@pytest.fixture(scope="module")
def samples(next_model: Path, images: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    prompts = {"small": [images["small"]], "wide": [images["wide"]], "two": [images["wide"], images["small"]]}
    return extract_samples(tmp_path_factory.mktemp("llava_next_samples"), next_model, prompts)


def test_llava_next_is_detected_and_every_layer_matches_eager_output_attentions(
    next_model: Path, samples: dict[str, Path], images: dict[str, Path]
) -> None:
    for name in ("small", "wide"):
        assert_detected_and_equal_to_eager("llava-next", LLAVA_NEXT, next_model, samples[name], images[name])
    inputs, _ = processed_images("llava-next", next_model, [images["wide"], images["small"]])
    meta = fmt.validate_sample(samples["two"])
    assert_layers_equal(samples["two"], meta, eager_attentions("llava-next", next_model, inputs))


def test_llava_next_logits_with_capture_equal_logits_without(next_model: Path, images: dict[str, Path]) -> None:
    chunks, layers = captured_chunks_with_logits_unchanged("llava-next", next_model, images["wide"], DEFAULT_ROW_BUDGET)
    assert sorted({c.layer for c in chunks}) == list(range(layers)) == [0, 1]


@pytest.mark.parametrize("name", ["small", "wide", "two"])
def test_every_image_is_a_base_view_then_its_unpadded_grid_as_the_model_packs_them(
    next_model: Path, samples: dict[str, Path], images: dict[str, Path], name: str
) -> None:
    photos = ["wide", "small"] if name == "two" else [name]
    meta = fmt.validate_sample(samples[name])
    inputs, _ = processed_images("llava-next", next_model, [images[photo] for photo in photos])
    canvases = [CANVASES[photo] for photo in photos]
    boxes = [
        image_box(crop_canvas(pixels, *canvas)) for pixels, canvas in zip(inputs["pixel_values"], canvases, strict=True)
    ]
    assert [image["size"] for image in meta["images"]] == [[w, h] for _, _, w, h in boxes]
    regions = meta["image_regions"]
    assert [(r["image"], r["kind"]) for r in regions] == [
        (i, kind) for i in range(len(photos)) for kind in ("global", "tile")
    ]
    assert all((r["rows"], r["cols"]) == (SIDE, SIDE) for r in regions[::2])
    model = LlavaNextForConditionalGeneration.from_pretrained(next_model).eval()
    packed = token_sources(model, inputs, canvases, vision_feature_select_strategy="default")
    assert_tokens_hold_what_the_model_packed(meta, packed, [(left, top) for left, top, _, _ in boxes])
    assert_tables_and_rollout_match(samples[name])


def test_colour_test_every_token_rectangle_lies_over_the_colour_its_pixels_have_in_pixel_values(
    next_model: Path, samples: dict[str, Path], images: dict[str, Path]
) -> None:
    """The model's unpadding keeps 4 of the wide image's 8 canvas rows (its own int(round(4.53, 7))): 32 px of
    the image's 37, so every cell lies on the image."""
    meta = fmt.read_meta(samples["wide"])
    inputs, _ = processed_images("llava-next", next_model, [images["wide"]])
    assert assert_colours_match_pixel_values(meta, inputs["pixel_values"][0], images["wide"], CANVASES["wide"]) == 0
