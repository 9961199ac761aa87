"""SmolVLM and Idefics3 (the same layout) through the CLI, as a user runs them: detected from config.json, every
layer equal to its eager
output_attentions, logits untouched, and each image token's region, grid place and pixel rectangle equal to
what the processor did (its tiles in pixel_values, its image sizes, its image tokens in input_ids)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from analysis_reference import assert_tables_and_rollout_match
from PIL import Image

from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.attention_capture import DEFAULT_ROW_BUDGET
from vlm_attention_viz.dev.tiny import SMOLVLM_PREPROCESSOR, SMOLVLM_PROCESSOR, TinyShape, write_processor_files
from vlm_attention_viz.models import adapter_named

from conftest import TinyCheckpoint, assert_refused, extract_args, run
from reference import (
    PROMPT,
    assert_detected_and_equal_to_eager,
    assert_layers_equal,
    captured_chunks_with_logits_unchanged,
    eager_reference,
    processed_images,
)

SHAPES = {family: TinyShape(family=family, layers=2, heads=4, kv_heads=2, seed=5) for family in ("smolvlm", "idefics3")}


@dataclass(frozen=True)
class TiledModel:
    family: str
    shape: TinyShape
    path: Path


# 300 x 170 px: resized to a longest edge of 192 and stretched to 192 x 128, i.e. 3 x 2 tiles of 64 px
TILE_COLS, TILE_ROWS, TILE_PX = 3, 2, 64
COLOURS = [[(230, 20, 20), (20, 200, 40), (30, 40, 220)], [(240, 220, 30), (200, 30, 210), (20, 210, 220)]]


def tile_coloured_image(width: int, height: int) -> Image.Image:
    """Each of the processor's tiles (in the original image's pixels) painted its own colour."""
    pixels = np.zeros((height, width, 3), np.uint8)
    for r in range(TILE_ROWS):
        for c in range(TILE_COLS):
            ys = slice(r * height // TILE_ROWS, (r + 1) * height // TILE_ROWS)
            xs = slice(c * width // TILE_COLS, (c + 1) * width // TILE_COLS)
            pixels[ys, xs] = COLOURS[r][c]
    return Image.fromarray(pixels)


@pytest.fixture(scope="module", params=sorted(SHAPES))
def tiled_model(request: pytest.FixtureRequest, tiny_checkpoint: TinyCheckpoint) -> TiledModel:
    """SmolVLM, and Idefics3 with its layout: every test of this module runs on both."""
    shape = SHAPES[request.param]
    return TiledModel(request.param, shape, tiny_checkpoint(shape))


@pytest.fixture(scope="module")
def tiles_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiles") / "tiles.png"
    tile_coloured_image(300, 170).save(path)
    return path


@pytest.fixture(scope="module")
def tiled_sample(tiled_model: TiledModel, tiles_photo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    sample = tmp_path_factory.mktemp("samples") / tiled_model.family
    assert run(*extract_args(tiles_photo, sample, tiled_model.path)) == 0
    return sample


def test_is_detected_and_every_layer_matches_eager_output_attentions(
    tiled_model: TiledModel, tiled_sample: Path, tiles_photo: Path
) -> None:
    assert_detected_and_equal_to_eager(
        tiled_model.family, tiled_model.shape, tiled_model.path, tiled_sample, tiles_photo
    )


def test_logits_with_capture_equal_logits_without(tiled_model: TiledModel, tiles_photo: Path) -> None:
    chunks, layers = captured_chunks_with_logits_unchanged(
        tiled_model.family, tiled_model.path, tiles_photo, DEFAULT_ROW_BUDGET
    )
    assert sorted({c.layer for c in chunks}) == list(range(layers)) == [0, 1]


def test_regions_are_the_processor_tiles_then_the_global_view(
    tiled_model: TiledModel, tiled_sample: Path, tiles_photo: Path
) -> None:
    meta = fmt.read_meta(tiled_sample)
    inputs, processor = processed_images(tiled_model.family, tiled_model.path, [tiles_photo])
    batch = processor.image_processor([[Image.open(tiles_photo).convert("RGB")]], return_row_col_info=True)
    assert (batch["rows"], batch["cols"]) == ([[TILE_ROWS]], [[TILE_COLS]])
    assert batch["pixel_values"].shape[1] == TILE_ROWS * TILE_COLS + 1  # the tiles, then the global view
    assert processor.image_processor.max_image_size["longest_edge"] == TILE_PX  # read from the checkpoint
    side = int(processor.image_seq_len**0.5)
    assert side * side == processor.image_seq_len == 16
    assert meta["format_version"] == 2 and "image_grid" not in meta
    assert meta["image_size"] == meta["images"][0]["size"] == [TILE_COLS * TILE_PX, TILE_ROWS * TILE_PX]
    assert meta["images"][0]["original_size"] == [300, 170]
    regions = meta["image_regions"]
    tiles = [(r, c) for r in range(TILE_ROWS) for c in range(TILE_COLS)]
    assert [region["kind"] for region in regions] == ["tile"] * len(tiles) + ["global"]
    assert [region["rect"] for region in regions] == [
        [c * TILE_PX, r * TILE_PX, TILE_PX, TILE_PX] for r, c in tiles
    ] + [[0, 0, TILE_COLS * TILE_PX, TILE_ROWS * TILE_PX]]
    assert all((region["rows"], region["cols"], region["image"]) == (side, side, 0) for region in regions)
    ids = inputs["input_ids"][0].tolist()
    image_positions = [i for i, t in enumerate(ids) if t == processor.image_token_id]
    assert sorted(p for region in regions for p in region["tokens"]) == image_positions
    pieces = processor.tokenizer.convert_ids_to_tokens(ids)
    for k, region in enumerate(regions):  # each region is the run of tokens after its label, row-major
        label = f"<row_{tiles[k][0] + 1}_col_{tiles[k][1] + 1}>" if k < len(tiles) else "<global-img>"
        start = region["tokens"][0]
        assert pieces[start - 1] == label and region["tokens"] == list(range(start, start + side * side))
        for offset, position in enumerate(region["tokens"]):
            assert meta["tokens"][position]["region"] == k
            assert meta["tokens"][position]["grid_pos"] == [offset // side, offset % side]


def test_tables_count_every_region_and_take_the_spatial_entropy_on_the_global_view(
    tiled_model: TiledModel, tiled_sample: Path, tiles_photo: Path
) -> None:
    meta = fmt.read_meta(tiled_sample)
    assert_tables_and_rollout_match(tiled_sample)  # image share over every region; the entropy region's map
    regions = meta["image_regions"]
    assert fmt.entropy_region(regions) == len(regions) - 1 and regions[-1]["kind"] == "global"
    entropy = np.asarray(fmt.open_token_table(tiled_sample, meta, "image_entropy"), np.float32)
    global_end = max(regions[-1]["tokens"])
    assert np.isnan(entropy[: global_end + 1]).all() and not np.isnan(entropy[global_end + 1 :]).all()
    reference, _, _ = eager_reference(tiled_model.path, tiles_photo, tiled_model.family)
    image = sorted(p for region in regions for p in region["tokens"])
    expected = [ref[:, image[-1] + 1 :][:, :, image].sum(-1).mean(-1) for ref in reference]
    np.testing.assert_allclose(np.array(meta["text_to_image"]), np.array(expected), rtol=1e-4)


def token_rect(region: dict, grid_pos: list[int]) -> tuple[float, float, float, float]:
    x, y, w, h = region["rect"]
    r, c = grid_pos
    return x + c * w / region["cols"], y + r * h / region["rows"], w / region["cols"], h / region["rows"]


def test_colour_test_each_token_rectangle_lies_over_its_tile_colour_in_the_image_and_in_pixel_values(
    tiled_model: TiledModel, tiled_sample: Path, tiles_photo: Path
) -> None:
    """The sample's rectangles, mapped onto the original image, sit on the colour that the processor's own
    pixel_values hold at that token's patches (tile tokens and global tokens alike)."""
    meta = fmt.read_meta(tiled_sample)
    original = np.asarray(Image.open(tiles_photo).convert("RGB"), np.float32)
    inputs, _ = processed_images(tiled_model.family, tiled_model.path, [tiles_photo])
    pixel_values = inputs["pixel_values"][0].numpy() * 0.5 + 0.5  # image_mean = image_std = 0.5
    (width, height), (orig_w, orig_h) = meta["image_size"], meta["original_image_size"]
    checked = 0
    for k, region in enumerate(meta["image_regions"]):
        side_px = TILE_PX / region["cols"]
        for position in region["tokens"]:
            grid_pos = meta["tokens"][position]["grid_pos"]
            x, y, w, h = token_rect(region, grid_pos)
            cx, cy = (x + w / 2) * orig_w / width, (y + h / 2) * orig_h / height
            expected = original[int(cy), int(cx)]
            row, col = grid_pos
            in_tile = pixel_values[k, :, int((row + 0.5) * side_px), int((col + 0.5) * side_px)] * 255
            assert np.abs(in_tile - expected).max() < 6, (k, grid_pos, in_tile, expected)
            checked += 1
    assert checked == 7 * 16
    # the tile tokens: every one over its own tile's colour
    for k, (r, c) in enumerate([(r, c) for r in range(TILE_ROWS) for c in range(TILE_COLS)]):
        region = meta["image_regions"][k]
        for position in region["tokens"]:
            x, y, w, h = token_rect(region, meta["tokens"][position]["grid_pos"])
            cx, cy = (x + w / 2) * orig_w / width, (y + h / 2) * orig_h / height
            assert tuple(original[int(cy), int(cx)].astype(int)) == COLOURS[r][c]


def test_tile_labels_and_separators_are_marked_and_the_texts_decode_back(
    tiled_model: TiledModel, tiled_sample: Path, tiles_photo: Path
) -> None:
    meta = fmt.read_meta(tiled_sample)
    inputs, processor = processed_images(tiled_model.family, tiled_model.path, [tiles_photo])
    ids = inputs["input_ids"][0].tolist()
    assert [t["token_id"] for t in meta["tokens"]] == ids
    pieces = processor.tokenizer.convert_ids_to_tokens(ids)
    labels = [t["id"] for t in meta["tokens"] if t.get("layout") == "tile_label"]
    separators = [t["id"] for t in meta["tokens"] if t.get("layout") == "separator"]
    assert [pieces[i] for i in labels] == [f"<row_{r}_col_{c}>" for r in (1, 2) for c in (1, 2, 3)] + ["<global-img>"]
    assert separators == [i for i, p in enumerate(pieces) if p == "<fake_token_around_image>"] and len(separators) == 8
    assert all(meta["tokens"][i]["type"] == "special" and "grid_pos" not in meta["tokens"][i] for i in labels)
    assert all(meta["tokens"][i]["text"] == pieces[i] for i in labels + separators)
    text_ids = [t for t in ids if t != processor.image_token_id]
    decoded = processor.tokenizer.decode(text_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    assert "".join(t["text"] for t in meta["tokens"] if t["type"] != "image") == decoded


def test_two_images_each_get_their_tiles_in_prompt_order(
    tiled_model: TiledModel, tiles_photo: Path, tmp_path: Path
) -> None:
    tall = tmp_path / "tall.png"
    tile_coloured_image(100, 200).save(tall)  # resized to 96 x 192, stretched to 128 x 192: 2 x 3 tiles
    sample = tmp_path / "two"
    args = ["--image", tiles_photo, "--image", tall, "--prompt", PROMPT, "--output-dir", sample]
    assert run(*args, "--model", tiled_model.path) == 0
    meta = fmt.validate_sample(sample)
    assert [image["path"] for image in meta["images"]] == ["image.png", "image_1.png"]
    assert (sample / "image_1.png").read_bytes() == tall.read_bytes()
    assert [image["size"] for image in meta["images"]] == [[192, 128], [128, 192]]
    regions = meta["image_regions"]
    assert [(r["image"], r["kind"]) for r in regions] == [(0, "tile")] * 6 + [(0, "global")] + [(1, "tile")] * 6 + [
        (1, "global")
    ]
    assert [r["rect"] for r in regions[7:]] == [[c * 64, r * 64, 64, 64] for r in range(3) for c in range(2)] + [
        [0, 0, 128, 192]
    ]
    inputs, processor = processed_images(tiled_model.family, tiled_model.path, [tiles_photo, tall])
    image_positions = [i for i, t in enumerate(inputs["input_ids"][0].tolist()) if t == processor.image_token_id]
    assert sorted(p for r in regions for p in r["tokens"]) == image_positions
    assert max(regions[6]["tokens"]) < min(regions[7]["tokens"])  # the second image comes after the first
    assert_tables_and_rollout_match(sample)


def test_two_images_in_a_qwen_prompt_are_two_whole_image_regions(gqa_model: Path, photo: Path, tmp_path: Path) -> None:
    second = tmp_path / "tall.png"
    Image.new("RGB", (100, 200), (10, 120, 200)).save(second)
    sample = tmp_path / "two"
    args = ["--image", photo, "--image", second, "--prompt", PROMPT, "--output-dir", sample, "--model", gqa_model]
    assert run(*args) == 0
    meta = fmt.validate_sample(sample)
    adapter = adapter_named("qwen3-vl")
    processor = adapter.load_processor(str(gqa_model))
    opened = [Image.open(p).convert("RGB") for p in (photo, second)]
    inputs = adapter.prepare_images(processor, opened, PROMPT, None).model_inputs
    grids = [(rows // 2, cols // 2) for _, rows, cols in inputs["image_grid_thw"].tolist()]
    regions = meta["image_regions"]
    assert [(r["image"], r["kind"], r["rows"], r["cols"]) for r in regions] == [
        (i, "image", rows, cols) for i, (rows, cols) in enumerate(grids)
    ]
    assert [r["rect"] for r in regions] == [[0, 0, cols * 32, rows * 32] for rows, cols in grids]
    assert [image["size"] for image in meta["images"]] == [[cols * 32, rows * 32] for rows, cols in grids]
    ids = inputs["input_ids"][0].tolist()
    assert regions[0]["tokens"] + regions[1]["tokens"] == [
        i for i, t in enumerate(ids) if t == processor.image_token_id
    ]


def test_vision_layers_with_two_images_is_refused_before_loading(
    photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--image", photo, "--image", photo, "--prompt", PROMPT, "--output-dir", tmp_path / "s"]
    assert_refused(capsys, [*args, "--model", tmp_path / "absent", "--vision-layers", "all"], "--vision-layers")


def test_import_with_model_type_reads_the_tiles_from_the_token_texts(
    tiled_model: TiledModel, tiled_sample: Path, tiles_photo: Path, tmp_path: Path
) -> None:
    """A click-a-word viewer's arrays (the eager [L, H, N, N] attention and each token's decoded text) imported with
    --model-type and nothing else: the same regions and token places as the extractor wrote, each tile counted
    as 512 px (the tokens carry the grid of tiles, not their size), and the layers equal to the array."""
    reference, inputs, processor = eager_reference(tiled_model.path, tiles_photo, tiled_model.family)
    ids = inputs["input_ids"][0].tolist()
    attention, tokens = tmp_path / "attention_array.npy", tmp_path / "decoded_tokens.npy"
    np.save(attention, np.stack(reference))
    np.save(tokens, np.array([processor.tokenizer.decode([i]) for i in ids], dtype=str))
    sample = tmp_path / "imported"
    args = ["import", "--attention", attention, "--tokens", tokens, "--image", tiles_photo, "--output-dir", sample]
    assert run(*args, "--model-type", tiled_model.family) == 0
    imported, extracted = fmt.validate_sample(sample), fmt.read_meta(tiled_sample)
    scale = 512 // TILE_PX
    assert imported["images"][0]["size"] == [TILE_COLS * 512, TILE_ROWS * 512]
    assert imported["images"][0]["original_size"] == list(Image.open(tiles_photo).size)
    assert [r["rect"] for r in imported["image_regions"]] == [
        [v * scale for v in r["rect"]] for r in extracted["image_regions"]
    ]
    assert [(r["kind"], r["rows"], r["cols"], r["tokens"]) for r in imported["image_regions"]] == [
        (r["kind"], r["rows"], r["cols"], r["tokens"]) for r in extracted["image_regions"]
    ]

    def places(meta: dict) -> list[tuple]:
        return [(t["type"] == "image", t.get("region"), t.get("grid_pos"), t.get("layout")) for t in meta["tokens"]]

    assert places(imported) == places(extracted)
    assert all(t["type"] == "special" for t in imported["tokens"] if "layout" in t)
    assert_layers_equal(sample, imported, reference)
    assert_tables_and_rollout_match(sample)


# SmolVLM-256M's geometry on the hub: 512 px tiles, 16 px patches shuffled by 4 (8 x 8 tokens), longest edge 2048.
HUB_TILE, HUB_SIDE = 512, 8
HUB_PREPROCESSOR = {
    **SMOLVLM_PREPROCESSOR,
    "size": {"longest_edge": 4 * HUB_TILE},
    "max_image_size": {"longest_edge": HUB_TILE},
}


@pytest.mark.parametrize("size", [(1920, 1080), (1080, 1920), (640, 480), (400, 300), (4000, 600)])
def test_at_the_hubs_geometry_the_regions_are_the_processors_tiles(size: tuple[int, int], tmp_path: Path) -> None:
    """The processor alone, with the hub's files: the tiles it reports (rows, cols, pixel_values) are the
    regions, each 8 x 8 over its 512 px of the stretched image, and every image token is placed."""
    write_processor_files(tmp_path, SHAPES["smolvlm"], HUB_PREPROCESSOR, {**SMOLVLM_PROCESSOR, "image_seq_len": 64})
    adapter = adapter_named("smolvlm")
    processor = adapter.load_processor(str(tmp_path))
    image = Image.new("RGB", size, (120, 80, 40))
    prepared = adapter.prepare_images(processor, [image], PROMPT, None)
    layout = prepared.image_layout()  # every image placeholder in one region
    batch = processor.image_processor([[image]], return_row_col_info=True)
    rows, cols = batch["rows"][0][0], batch["cols"][0][0]
    assert prepared.model_inputs["pixel_values"].shape[1] == rows * cols + (rows * cols > 0)
    tiles = [(r, c) for r in range(rows) for c in range(cols)]
    assert [region.rect for region in layout.regions] == [
        (c * HUB_TILE, r * HUB_TILE, HUB_TILE, HUB_TILE) for r, c in tiles
    ] + [(0, 0, cols * HUB_TILE, rows * HUB_TILE)]
    assert all((region.rows, region.cols) == (HUB_SIDE, HUB_SIDE) for region in layout.regions)
