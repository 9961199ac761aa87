"""LLaVA-OneVision through the CLI, as a user runs it: detected from config.json, every layer equal to its eager
output_attentions, logits untouched, and each image token's region, grid place and pixel rectangle equal to
what the processor and the model did.

Which canvas cell (or base patch, or image_newline) each image token holds is asked of the model itself: its
own pack_image_features is run on features that carry their cell's coordinates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from analysis_reference import assert_tables_and_rollout_match
from anyres_reference import (
    CELL,
    NEWLINE,
    SIDE,
    assert_colours_match_pixel_values,
    assert_tokens_hold_what_the_model_packed,
    cell_centre,
    crop_canvas,
    extract_samples,
    gradient_image,
    gradient_images,
    image_box,
    token_sources,
)
from PIL import Image
from transformers import LlavaOnevisionForConditionalGeneration
from transformers.models.llava_onevision.modeling_llava_onevision import get_anyres_image_grid_shape

from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.attention_capture import DEFAULT_ROW_BUDGET
from vlm_attention_viz.dev.tiny import (
    FAMILIES,
    LLAVA_OV_CROP,
    LLAVA_OV_PREPROCESSOR,
    LLAVA_OV_PROCESSOR,
    TinyShape,
    llava_onevision_config,
    write_processor_files,
)
from vlm_attention_viz.models import adapter_named
from vlm_attention_viz.tokens import IMAGE_TEXT

from conftest import TinyCheckpoint, assert_refused, extract_args
from reference import (
    PROMPT,
    assert_detected_and_equal_to_eager,
    assert_layers_equal,
    captured_chunks_with_logits_unchanged,
    eager_attentions,
    processed_images,
)

LLAVA_OV = TinyShape(family="llava-onevision", layers=2, heads=4, kv_heads=2, seed=11)
OV_PACKING = {"vision_aspect_ratio": "anyres_max_9"}


@pytest.fixture(scope="module")
def llava_model(tiny_checkpoint: TinyCheckpoint) -> Path:
    return tiny_checkpoint(LLAVA_OV)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """small: a 2 x 4 crop canvas, unpadded to 8 x 14 cells; edge: its last column of cells more padding than
    image; wide: a 4 x 6 canvas whose grid is interpolated."""
    sizes = {"small": (100, 60), "edge": (66, 58), "wide": (300, 170)}
    return gradient_images(tmp_path_factory.mktemp("llava_images"), sizes)


@pytest.fixture(scope="module")
def samples(llava_model: Path, images: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    prompts = {name: [images[name]] for name in ("small", "edge", "wide")} | {"two": [images["wide"], images["small"]]}
    return extract_samples(tmp_path_factory.mktemp("llava_samples"), llava_model, prompts)


def sources(model_dir: Path, inputs: dict, canvases: list[tuple[int, int]]) -> dict:
    model = LlavaOnevisionForConditionalGeneration.from_pretrained(model_dir).eval()
    return token_sources(model, inputs, canvases, **OV_PACKING)


def test_llava_onevision_is_detected_and_every_layer_matches_eager_output_attentions(
    llava_model: Path, samples: dict[str, Path], images: dict[str, Path]
) -> None:
    for name in ("small", "wide"):
        assert_detected_and_equal_to_eager("llava-onevision", LLAVA_OV, llava_model, samples[name], images[name])


def test_two_images_match_eager_output_attentions(
    llava_model: Path, samples: dict[str, Path], images: dict[str, Path]
) -> None:
    inputs, _ = processed_images("llava-onevision", llava_model, [images["wide"], images["small"]])
    meta = fmt.validate_sample(samples["two"])
    assert_layers_equal(samples["two"], meta, eager_attentions("llava-onevision", llava_model, inputs))


def test_llava_onevision_logits_with_capture_equal_logits_without(llava_model: Path, images: dict[str, Path]) -> None:
    chunks, layers = captured_chunks_with_logits_unchanged(
        "llava-onevision", llava_model, images["small"], DEFAULT_ROW_BUDGET
    )
    assert sorted({c.layer for c in chunks}) == list(range(layers)) == [0, 1]


def test_one_image_is_a_base_view_then_the_unpadded_stitched_grid_with_row_ends(
    llava_model: Path, samples: dict[str, Path], images: dict[str, Path]
) -> None:
    meta = fmt.validate_sample(samples["small"])
    inputs, processor = processed_images("llava-onevision", llava_model, [images["small"]])
    assert inputs["pixel_values"].shape[1] == 1 + 2 * 4  # the base view, then 2 x 4 crops
    assert inputs["image_sizes"][0].tolist() == [60, 100]
    left, top, width, height = image_box(crop_canvas(inputs["pixel_values"][0], 2, 4))
    assert meta["images"][0]["size"] == [width, height] == [107, 64]
    regions = meta["image_regions"]
    assert [(r["kind"], r["rows"], r["cols"]) for r in regions] == [("global", SIDE, SIDE), ("tile", 8, 14)]
    assert regions[0]["rect"] == [0, 0, 107, 64] and regions[1]["rect"] == [-2, 0, 112, 64]  # 2 px of padding left
    packed = sources(llava_model, inputs, [(2, 4)])
    assert sum(kind == NEWLINE for kind, _, _ in packed.values()) == 8
    assert_tokens_hold_what_the_model_packed(meta, packed, [(left, top)])


def test_the_wide_image_grid_is_the_models_interpolated_one(
    llava_model: Path, samples: dict[str, Path], images: dict[str, Path]
) -> None:
    """14 x 24 unpadded cells are more than 9 crops' worth: the model shrinks them to 9 x 15."""
    meta = fmt.validate_sample(samples["wide"])
    inputs, _ = processed_images("llava-onevision", llava_model, [images["wide"]])
    assert inputs["pixel_values"].shape[1] == 1 + 4 * 6
    left, top, _, _ = image_box(crop_canvas(inputs["pixel_values"][0], 4, 6))
    regions = meta["image_regions"]
    assert [(r["kind"], r["rows"], r["cols"]) for r in regions] == [("global", SIDE, SIDE), ("tile", 9, 15)]
    assert_tokens_hold_what_the_model_packed(meta, sources(llava_model, inputs, [(4, 6)]), [(left, top)])
    assert_tables_and_rollout_match(samples["wide"])


@pytest.mark.parametrize(("name", "crops", "off_image"), [("small", (2, 4), 0), ("edge", (2, 3), 8)])
def test_colour_test_every_token_rectangle_lies_over_the_colour_its_pixels_have_in_pixel_values(
    llava_model: Path,
    samples: dict[str, Path],
    images: dict[str, Path],
    name: str,
    crops: tuple[int, int],
    off_image: int,
) -> None:
    """assert_colours_match_pixel_values; small: its grid reaches 2 px into the padding, no cell centre does."""
    meta = fmt.read_meta(samples[name])
    inputs, _ = processed_images("llava-onevision", llava_model, [images[name]])
    assert inputs["pixel_values"].shape[1] == 1 + crops[0] * crops[1]
    assert assert_colours_match_pixel_values(meta, inputs["pixel_values"][0], images[name], crops) == off_image


def test_two_images_are_padded_squares_each_with_one_row_end(
    llava_model: Path, samples: dict[str, Path], images: dict[str, Path]
) -> None:
    meta = fmt.validate_sample(samples["two"])
    inputs, _ = processed_images("llava-onevision", llava_model, [images["wide"], images["small"]])
    assert inputs["pixel_values"].shape[:2] == (2, 1)  # each image one squashed square, no crops
    assert [image["size"] for image in meta["images"]] == [[300, 170], [100, 60]]
    regions = meta["image_regions"]
    assert [(r["image"], r["kind"], r["rect"]) for r in regions] == [
        (0, "image", [0, -65, 300, 300]),
        (1, "image", [0, -20, 100, 100]),
    ]
    assert_tokens_hold_what_the_model_packed(meta, sources(llava_model, inputs, [(0, 0), (0, 0)]), [])
    mean = 0.0  # the square's padding is the image mean, 0 once normalized
    for k, path in enumerate((images["wide"], images["small"])):
        original = np.asarray(Image.open(path).convert("RGB"), np.float32)
        square = inputs["pixel_values"][k, 0].numpy().transpose(1, 2, 0)
        x, y, side, _ = regions[k]["rect"]
        for position in regions[k]["tokens"]:
            cx, cy = cell_centre(regions[k], meta["tokens"][position]["grid_pos"])
            seen = square[int((cy - y) / side * LLAVA_OV_CROP), int((cx - x) / side * LLAVA_OV_CROP)]
            if (
                0 <= cy < original.shape[0]
            ):  # squashed 9x, a cell takes its neighbourhood's colour; the next cell is 50 levels away
                assert np.abs(seen * 127.5 + 127.5 - original[int(cy), int(cx)]).max() < 12
            else:
                assert np.abs(seen - mean).max() < 0.01


def test_max_pixels_is_refused_for_llava_onevision_before_the_model_loads(
    llava_model: Path, images: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused from config.json alone: the folder holds no weights, which loading would name first."""
    config_only = tmp_path / "config_only"
    config_only.mkdir()
    (config_only / "config.json").write_bytes((llava_model / "config.json").read_bytes())
    args = extract_args(images["small"], tmp_path / "s", config_only, "--max-pixels", 4096)
    assert_refused(capsys, args, "--max-pixels does not apply to llava-onevision: its canvases are the checkpoint's")


def test_llava_onevision_token_texts_decode_back_and_row_ends_are_special(
    llava_model: Path, samples: dict[str, Path], images: dict[str, Path]
) -> None:
    meta = fmt.read_meta(samples["small"])
    inputs, processor = processed_images("llava-onevision", llava_model, [images["small"]])
    ids = inputs["input_ids"][0].tolist()
    assert [t["token_id"] for t in meta["tokens"]] == ids
    row_ends = [t for t in meta["tokens"] if t.get("layout") == "row_end"]
    assert len(row_ends) == 8 and all(t["type"] == "special" and t["text"] == IMAGE_TEXT for t in row_ends)
    text_ids = [t for t in ids if t != processor.image_token_id]
    decoded = processor.tokenizer.decode(text_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    assert "".join(t["text"] for t in meta["tokens"] if t["token_id"] != processor.image_token_id) == decoded


HUB_CROP, HUB_PATCH, HUB_SIDE = 384, 14, 27
HUB_PINPOINTS = [[HUB_CROP * r, HUB_CROP * c] for r in range(1, 7) for c in range(1, 7)]


@pytest.fixture(scope="module")
def hub_geometry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LlavaOnevisionForConditionalGeneration]:
    """The hub checkpoints' image geometry (SigLIP crops of 384 px, 27 x 27 patches of 14 px, the 36 canvases of up
    to 6 x 6 crops, anyres_max_9) in a processor folder, and an unsaved model of tiny widths with that geometry:
    the packing reads nothing else."""
    folder = tmp_path_factory.mktemp("llava_hub")
    size = {"height": HUB_CROP, "width": HUB_CROP}
    preprocessor = {**LLAVA_OV_PREPROCESSOR, "size": size, "image_grid_pinpoints": HUB_PINPOINTS}
    processor = {**LLAVA_OV_PROCESSOR, "num_image_tokens": HUB_SIDE**2}
    tokenizer = write_processor_files(folder, LLAVA_OV, preprocessor, processor)
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in FAMILIES["llava-onevision"].tokens.special}
    config = llava_onevision_config(LLAVA_OV, len(tokenizer), ids)
    config.vision_config.image_size, config.vision_config.patch_size = HUB_CROP, HUB_PATCH
    config.image_grid_pinpoints = HUB_PINPOINTS
    return folder, LlavaOnevisionForConditionalGeneration(config).eval()


@pytest.mark.parametrize("size", [(640, 480), (1920, 1080), (1080, 1920), (300, 170), (3000, 400), (2000, 2000)])
def test_at_the_hubs_geometry_every_token_lies_within_a_pixel_of_its_cell_and_half_a_patch_of_its_patch(
    hub_geometry: tuple[Path, LlavaOnevisionForConditionalGeneration], size: tuple[int, int]
) -> None:
    """With 384 px crops of 27 patches a cell is 14.2 px while a patch is 14 px (each crop's last 6 px unseen):
    the rects, in whole pixels, put every stitched token's centre within 1 px of its cell's as the model's own
    packing places it, and, where the model does not interpolate the grid, within half a patch (7 px) of the
    centre of the patch it was computed from."""
    folder, model = hub_geometry
    adapter = adapter_named("llava-onevision")
    prepared = adapter.prepare_images(adapter.load_processor(str(folder)), [gradient_image(*size)], PROMPT, None)
    layout, inputs = prepared.image_layout(), prepared.model_inputs  # image_layout checks the processor's count
    ids = inputs["input_ids"][0].tolist()
    tokens = [{"id": i, "type": "image" if t == prepared.image_token_id else "text"} for i, t in enumerate(ids)]
    layout.place(tokens)
    meta = {"tokens": tokens, "image_regions": layout.region_entries()}
    crops = get_anyres_image_grid_shape(inputs["image_sizes"][0], HUB_PINPOINTS, HUB_CROP)
    left, top, width, height = image_box(crop_canvas(inputs["pixel_values"][0], *crops))
    assert list(layout.image_sizes[0]) == [width, height]
    sources = token_sources(model, inputs, [crops], HUB_SIDE, **OV_PACKING)
    cell_px = HUB_CROP / HUB_SIDE
    assert_tokens_hold_what_the_model_packed(meta, sources, [(left, top)], cell_px, atol=1 / cell_px)
    cells = np.array([(a, b) for kind, a, b in sources.values() if kind == CELL])
    if (cells % 1 != 0).any():  # interpolated: a token blends several patches
        assert size in {(1920, 1080), (1080, 1920), (2000, 2000)}  # more than 9 crops of cells once unpadded
        return
    tile = meta["image_regions"][1]
    for position, (kind, row, col) in sources.items():
        if kind != CELL:
            continue
        cx, cy = cell_centre(tile, tokens[position]["grid_pos"])
        patch_x, patch_y = (HUB_CROP * (v // HUB_SIDE) + HUB_PATCH * (v % HUB_SIDE + 0.5) for v in (col, row))
        assert abs(cx + left - patch_x) <= HUB_PATCH / 2 and abs(cy + top - patch_y) <= HUB_PATCH / 2
