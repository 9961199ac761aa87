"""The shared fixture validates, and what the writer writes the reader reads back."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.dev.synthetic import build_tokens

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sample_tiny"


def test_shared_fixture_validates() -> None:
    meta = fmt.validate_sample(FIXTURE)
    assert (meta["seq_len"], meta["num_layers"], meta["num_heads"]) == (40, 2, 3)
    rows = np.asarray(fmt.open_layer(FIXTURE, meta, 1), dtype=np.float32).sum(axis=-1)
    np.testing.assert_allclose(rows, 1.0, atol=0.02)


def test_the_fixture_holds_its_token_tables_and_rollout_at_the_sizes_sample_bytes_counts() -> None:
    meta = fmt.validate_sample(FIXTURE)
    assert meta["token_tables"] == list(fmt.TOKEN_TABLES)
    assert fmt.read_rollout(FIXTURE, meta) == fmt.rollout_meta(2)
    llm_files = fmt.sample_files(meta, fmt.read_rollout(FIXTURE, meta)) - {fmt.META_FILE, fmt.ROLLOUT_META_FILE}
    llm_files -= {meta["image_path"], *meta["vision"]["block_files"], *meta["vision"]["head_mean_files"]}
    llm_files -= {meta["vision"]["received_file"]}
    assert sum((FIXTURE / name).stat().st_size for name in llm_files) == fmt.sample_bytes(2, 3, 40)
    assert fmt.sample_bytes(2, 3, 40) - fmt.sample_bytes(2, 3, 40, rollout=False) == fmt.rollout_bytes(2, 40)
    assert fmt.open_token_table(FIXTURE, meta, "image_share").shape == (40, 2, 3)
    assert fmt.open_rollout(FIXTURE, meta, 1).shape == (40, 40)


@pytest.mark.parametrize(
    ("rollout_json", "problem"),
    [("{", "not valid JSON"), ('{"layers": 3, "formula": "x"}', "num_layers"), ('{"layers": 2}', "formula")],
)
def test_a_broken_rollout_json_makes_the_sample_invalid(tmp_path: Path, rollout_json: str, problem: str) -> None:
    shutil.copytree(FIXTURE, tmp_path / "s")
    (tmp_path / "s" / fmt.ROLLOUT_META_FILE).write_text(rollout_json)
    with pytest.raises(fmt.FormatError, match=problem):
        fmt.validate_sample(tmp_path / "s")


def test_partial_rollout_files_of_ours_go_with_a_sample_but_user_files_keep_it(tmp_path: Path) -> None:
    target = tmp_path / "s"
    shutil.copytree(FIXTURE, target)
    (target / ".rollout_layer_00.bin.partial-host-1-abc").write_bytes(b"a killed run's")
    fmt.check_target(target, overwrite=True)
    (target / "notes.txt").write_text("mine")
    with pytest.raises(fmt.FormatError, match="notes.txt"):
        fmt.check_target(target, overwrite=True)


def small_meta(n: int, layers: int, heads: int) -> dict:
    tokens, grid = build_tokens(n)
    return {
        "format_version": fmt.FORMAT_VERSION,
        "model": "test",
        "prompt": "p",
        "image_path": "image.png",
        "image_size": [64, 32],
        "num_layers": layers,
        "num_heads": heads,
        "seq_len": n,
        "dtype": "float16",
        "tokens": tokens,
        "image_grid": grid,
        "layer_files": [fmt.layer_file(i) for i in range(layers)],
        "head_mean_files": [fmt.head_mean_file(i) for i in range(layers)],
        "head_max_files": [fmt.head_max_file(i) for i in range(layers)],
    }


def test_rows_written_in_chunks_read_back_whole(tmp_path: Path) -> None:
    n, layers, heads = 30, 2, 3
    rng = np.random.default_rng(0)
    attn = rng.random((layers, heads, n, n)).astype(np.float16)
    (tmp_path / "image.png").write_bytes(b"png")
    with fmt.SampleWriter(tmp_path / "out" / "s") as writer:
        for layer in range(layers):
            for row0 in (20, 0, 7):  # any order: rows land at their own offsets
                rows = slice(row0, {0: 7, 7: 20, 20: n}[row0])
                chunk = attn[layer, :, rows]
                writer.write_layer_rows(layer, row0, chunk, chunk.mean(0).astype(np.float16), chunk.max(0))
        writer.copy_file(tmp_path / "image.png", "image.png")
        writer.commit(small_meta(n, layers, heads))
    meta = fmt.validate_sample(tmp_path / "out" / "s")
    for layer in range(layers):
        assert np.array_equal(fmt.open_layer(tmp_path / "out" / "s", meta, layer), attn[layer])
        assert np.array_equal(fmt.open_head_aggregate(tmp_path / "out" / "s", meta, layer, "max"), attn[layer].max(0))
    assert [e["name"] for e in fmt.list_samples(tmp_path / "out")] == ["s"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["index.json", "s"]


def test_scattered_vision_rows_land_at_their_offsets_in_full_size_files(tmp_path: Path) -> None:
    """A window's rows are scattered in row-major order; rows never written (here the last) stay 0."""
    heads, patches = 2, 12
    attn = np.random.default_rng(1).random((heads, patches, patches)).astype(np.float16)
    written = [[5, 0, 1, 6], [2, 3, 4, 10, 9]]  # chunks of runs in any order; 7, 8 and 11 are never written
    with fmt.SampleWriter(tmp_path / "s") as writer:
        for rows in written:
            writer.write_vision_rows(4, np.array(rows), attn[:, rows], attn[:, rows].mean(0).astype(np.float16))
        block, mean = writer.tmp / fmt.vision_block_file(4), writer.tmp / fmt.vision_mean_file(4)
        assert (block.stat().st_size, mean.stat().st_size) == (heads * patches**2 * 2, patches**2 * 2)
        stored = np.fromfile(block, np.float16).reshape(heads, patches, patches)
        stored_mean = np.fromfile(mean, np.float16).reshape(patches, patches)
    rows = sorted(sum(written, []))
    assert np.array_equal(stored[:, rows], attn[:, rows]) and np.array_equal(
        stored_mean[rows], attn[:, rows].mean(0).astype(np.float16)
    )
    assert not stored[:, [7, 8, 11]].any() and not stored_mean[[7, 8, 11]].any()


def test_uncommitted_writer_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), fmt.SampleWriter(tmp_path / "new" / "deeper" / "s") as writer:
        writer.write_layer_rows(
            0, 0, np.zeros((1, 2, 4), np.float16), np.zeros((2, 4), np.float16), np.zeros((2, 4), np.float16)
        )
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_fixture_vision_blocks_read_back_and_received_is_the_column_sum_of_the_head_mean() -> None:
    meta = fmt.validate_sample(FIXTURE)
    vision = meta["vision"]
    assert (vision["blocks"], vision["grid"], vision["seq_len"]) == ([2, 3], {"rows": 6, "cols": 14}, 84)
    received = np.asarray(fmt.open_vision_received(FIXTURE, meta), dtype=np.float32)
    for i in range(len(vision["blocks"])):
        attn = np.asarray(fmt.open_vision_block(FIXTURE, meta, i), dtype=np.float32)
        np.testing.assert_allclose(attn.sum(axis=-1), 1.0, atol=0.02)  # not causal: every row spans all patches
        mean = np.asarray(fmt.open_vision_mean(FIXTURE, meta, i), dtype=np.float32)
        np.testing.assert_allclose(mean, attn.mean(axis=0), atol=1e-3)
        np.testing.assert_allclose(received[i], mean.sum(axis=0), rtol=0.01)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v.update(blocks=[3, 2]), "ascending"),
        (lambda v: v.update(blocks=[2, 4]), "below num_blocks"),
        (lambda v: v.update(seq_len=83), "rows × cols"),
        (lambda v: v.update(patch_size=14), "cover image_size"),
        (lambda v: v.update(block_files=["../x.bin", "y.bin"]), "plain file names"),
        (lambda v: v.pop("received_file"), "received_file"),
    ],
)
def test_malformed_vision_field_is_refused(change, message: str) -> None:
    meta = fmt.read_meta(FIXTURE)
    change(meta["vision"])
    with pytest.raises(fmt.FormatError, match=message):
        fmt.validate_meta(meta)


def test_vision_file_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    sample = Path(shutil.copytree(FIXTURE, tmp_path / "s"))
    (sample / "vision_mean_block_03.bin").write_bytes(b"\0" * 10)
    with pytest.raises(fmt.FormatError, match="vision_mean_block_03.bin has 10 bytes"):
        fmt.validate_sample(sample)


ADAPTER = {"path": "lora", "peft_type": "LORA", "base_model": None, "r": 8, "target_modules": ["q_proj", "v_proj"]}


@pytest.mark.parametrize(
    "adapter, problem",
    [
        ({**ADAPTER, "peft_type": 3}, "'path' and 'peft_type'"),
        ({**ADAPTER, "base_model": 1}, "base_model"),
        ({**ADAPTER, "r": "8"}, "adapter.r"),
        ({**ADAPTER, "target_modules": "q_proj"}, "target_modules"),
        ("lora", "'path' and 'peft_type'"),
    ],
)
def test_adapter_field_is_checked_when_present(adapter: object, problem: str) -> None:
    meta = small_meta(30, 1, 1)
    fmt.validate_meta(meta | {"adapter": ADAPTER})
    with pytest.raises(fmt.FormatError, match=problem):
        fmt.validate_meta(meta | {"adapter": adapter})


LAYER_ATTENTION_CASES = json.loads((FIXTURE.parent / "layer_attention_cases.json").read_text())["cases"]


@pytest.mark.parametrize("case", LAYER_ATTENTION_CASES, ids=lambda case: json.dumps(case["value"]))
def test_layer_attention_is_valid_or_refused_as_the_viewer_says(case: dict) -> None:
    meta = {**fmt.read_meta(FIXTURE), "layer_attention": case["value"]}
    if case["error"] is None:
        fmt.validate_meta(meta)
    else:
        with pytest.raises(fmt.FormatError, match=f"^{re.escape(case['error'])}"):
            fmt.validate_meta(meta)


def test_a_layer_with_its_own_head_count_is_sized_and_opened_by_it(tmp_path: Path) -> None:
    n, heads = 30, 3
    kinds = [fmt.layer_kind("causal", before_output_gate=True), fmt.layer_kind("linear", conv_kernel=4, num_heads=5)]
    rng = np.random.default_rng(1)
    (tmp_path / "image.png").write_bytes(b"png")
    layers = [rng.random((h, n, n)).astype(np.float16) for h in (3, 5)]
    with fmt.SampleWriter(tmp_path / "s") as writer:
        for layer, attn in enumerate(layers):
            writer.write_layer_rows(layer, 0, attn, attn.mean(0), attn.max(0))
        writer.copy_file(tmp_path / "image.png", "image.png")
        writer.commit({**small_meta(n, 2, heads), "layer_attention": kinds})
    meta = fmt.validate_sample(tmp_path / "s")
    tables = len(fmt.TOKEN_TABLES) * n * 2 * 5 * 2  # (N, L, H) with H = the most heads of any layer
    assert fmt.sample_bytes(2, heads, n, kinds, rollout=False) == (3 + 2 + 5 + 2) * n * n * 2 + tables
    assert np.array_equal(fmt.open_layer(tmp_path / "s", meta, 1), layers[1])
    (tmp_path / "s" / fmt.layer_file(1)).write_bytes(layers[0].tobytes())  # three heads where five belong
    with pytest.raises(fmt.FormatError, match="expected"):
        fmt.validate_sample(tmp_path / "s")


def test_reachable_cells_follow_the_layer_kind() -> None:
    """Image tokens 2..4; rows 0..5 of a 6-token sequence."""
    rows, span = np.arange(6), [(2, 4)]
    causal = fmt.reachable(fmt.CAUSAL, rows, 6, span)
    assert np.array_equal(causal, np.tril(np.ones((6, 6), bool)))
    bidirectional = fmt.reachable(fmt.layer_kind("causal", image_bidirectional=True), rows, 6, span)
    assert bidirectional[2, 4] and bidirectional[3, 4] and not bidirectional[1, 2] and not bidirectional[4, 5]
    sliding = fmt.reachable(fmt.layer_kind("sliding", window=2, image_bidirectional=True), rows, 6, span)
    assert sliding[5, 4] and not sliding[5, 3]  # the last two tokens
    assert sliding[2, 4] and not sliding[4, 2]  # later image tokens, but earlier ones only within the window


def test_two_image_blocks_each_open_to_their_own_tokens_only() -> None:
    """The two-image fixture: each image's first and last token, and a bidirectional layer's reach, as format.ts."""
    meta = fmt.read_meta(LAYOUTS / "sample_two_images")
    (first, second), n = fmt.image_blocks(meta["image_regions"]), meta["seq_len"]
    assert first[1] < second[0]
    allowed = fmt.reachable(fmt.layer_kind("causal", image_bidirectional=True), np.arange(n), n, [first, second])
    assert allowed[first[0], first[1]] and allowed[second[0], second[1]]
    assert not allowed[first[0], second[0]] and not allowed[first[1] + 1, first[1] + 2]


LAYOUTS = FIXTURE.parent / "layouts"


def test_the_tiled_and_two_image_fixtures_validate_with_every_image_token_in_one_region() -> None:
    tiled, two = fmt.validate_sample(LAYOUTS / "sample_tiled"), fmt.validate_sample(LAYOUTS / "sample_two_images")
    assert tiled["format_version"] == two["format_version"] == fmt.REGIONS_FORMAT_VERSION
    assert [r["kind"] for r in tiled["image_regions"]] == ["tile"] * 6 + ["global"]
    assert [image["path"] for image in two["images"]] == ["image.png", "image_1.png"]
    assert fmt.sample_files(two) >= {"image.png", "image_1.png"}
    for meta in (tiled, two):
        image_tokens = [t["id"] for t in meta["tokens"] if t["type"] == "image"]
        assert sorted(p for r in meta["image_regions"] for p in r["tokens"]) == image_tokens
        assert all("grid_pos" not in t for t in meta["tokens"] if "layout" in t)


def test_the_padded_fixture_validates_with_its_grid_over_the_padding_and_its_row_ends_no_patches() -> None:
    meta = fmt.validate_sample(LAYOUTS / "sample_padded")
    assert meta["image_size"] == [192, 120]
    glob, grid = meta["image_regions"]
    assert (glob["kind"], glob["rows"], glob["cols"], glob["rect"]) == ("global", 4, 4, [0, 0, 192, 120])
    assert (grid["kind"], grid["rows"], grid["cols"], grid["rect"]) == ("tile", 8, 12, [0, -4, 192, 128])
    row_ends = [t["id"] for t in meta["tokens"] if t.get("layout") == "row_end"]
    assert row_ends == [grid["tokens"][r * 12 + 11] + 1 for r in range(8)]  # after each row of patches
    assert all(meta["tokens"][p]["type"] == "special" and "grid_pos" not in meta["tokens"][p] for p in row_ends)
    assert fmt.entropy_region(meta["image_regions"]) == 0


def test_a_rect_may_reach_into_padding_and_the_global_view_is_still_the_entropy_region() -> None:
    meta = fmt.read_meta(LAYOUTS / "sample_tiled")
    meta["image_regions"][0]["rect"] = [-8, -8, 208, 144]  # past the 192 x 128 image, and larger than it
    fmt.validate_meta(meta)
    assert fmt.entropy_region(meta["image_regions"]) == 6 and meta["image_regions"][6]["kind"] == "global"
    meta["image_regions"][6]["kind"] = "tile"
    assert fmt.entropy_region(meta["image_regions"]) == 0  # no global view: the region covering the most


def broken(change: Callable[[dict], object]) -> dict:
    meta = fmt.read_meta(LAYOUTS / "sample_tiled")
    change(meta)
    return meta


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(format_version=1), "image_regions need format_version 2"),
        (lambda m: m["image_regions"][1]["tokens"].reverse(), "image_regions[1].tokens[0] is not an image token"),
        (lambda m: m["image_regions"][0].update(rect=[192, 0, 64, 64]), "image_regions[0].rect must overlap its image"),
        (lambda m: m["image_regions"][0].update(kind="thumbnail"), "image_regions[0].kind must be one of"),
        (lambda m: m["image_regions"][0].update(image=1), "image must index images"),
        (lambda m: m["image_regions"].pop(), "every image token must belong to one of image_regions"),
        (lambda m: m["tokens"][5].update(layout="label"), "tokens[5].layout must be one of"),
        (lambda m: m["images"][0].update(path="../x.png"), "images[0] must hold a plain file name"),
        (lambda m: m.update(image_size=[10, 10]), "image_path and image_size must be those of images[0]"),
        (lambda m: m.pop("image_regions"), "meta.json lacks the field 'image_grid'"),
    ],
)
def test_broken_regions_are_refused_naming_the_problem(change: Callable[[dict], object], message: str) -> None:
    with pytest.raises(fmt.FormatError, match=re.escape(message)):
        fmt.validate_meta(broken(change))
