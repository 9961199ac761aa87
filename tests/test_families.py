"""Qwen2.5-VL and Qwen2-VL through the CLI, as a user runs them: detected from config.json, every
layer equal to the family's own eager output_attentions, the 28 px token grid the processor reports,
and logits untouched by the capture; then their vision blocks (--vision-layers), Qwen2.5-VL's windowed tower included."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.attention_capture import DEFAULT_ROW_BUDGET, AttentionRecorder, capturing_sub_models
from vlm_attention_viz.dev.tiny import TinyShape
from vlm_attention_viz.models import adapter_named, detect_model_type
from vlm_attention_viz.vision_capture import VisionRecorder, VisionRows, vision_attention_modules

from conftest import TinyCheckpoint, extract_args, run, striped_image
from reference import (
    ATOL,
    PROMPT,
    RTOL,
    assemble,
    assert_layers_equal,
    batch_geometry,
    captured_chunks_with_logits_unchanged,
    eager_reference,
    grab_block_inputs,
    load,
    reference_for_photo,
    rotated_query_key,
)

SHAPES = {
    "qwen2.5-vl": TinyShape(family="qwen2.5-vl", layers=2, heads=4, kv_heads=2, seed=3),
    "qwen2-vl": TinyShape(family="qwen2-vl", layers=3, heads=2, kv_heads=1, hidden=32, seed=4),
}
QWEN2_5_VL = adapter_named("qwen2.5-vl")


@pytest.fixture(scope="module", params=sorted(SHAPES))
def family_model(request: pytest.FixtureRequest, tiny_checkpoint: TinyCheckpoint) -> tuple[str, Path]:
    family = request.param
    return family, tiny_checkpoint(SHAPES[family])


@pytest.fixture(scope="module")
def extracted(
    family_model: tuple[str, Path], photo: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path, Path]:
    """The sample a user gets without --model-type."""
    family, model_dir = family_model
    sample = tmp_path_factory.mktemp("samples") / family
    assert run(*extract_args(photo, sample, model_dir, "--device", "cpu")) == 0
    return family, model_dir, sample


def test_model_type_is_detected_from_the_checkpoint_config(extracted: tuple[str, Path, Path]) -> None:
    family, model_dir, sample = extracted
    assert (
        json.loads((model_dir / "config.json").read_text())["model_type"] == adapter_named(family).config_model_types[0]
    )
    assert detect_model_type(str(model_dir)) == family
    assert fmt.read_meta(sample)["model_type"] == family


def test_every_layer_matches_the_family_eager_output_attentions(extracted: tuple[str, Path, Path], photo: Path) -> None:
    family, model_dir, sample = extracted
    meta = fmt.validate_sample(sample)
    reference, _, _ = eager_reference(model_dir, photo, family)
    assert meta["num_layers"] == len(reference) == SHAPES[family].layers
    assert meta["num_heads"] == reference[0].shape[0] == SHAPES[family].heads
    assert_layers_equal(sample, meta, reference)


def test_a_hub_style_flat_config_gives_the_same_sample(
    extracted: tuple[str, Path, Path], photo: Path, tmp_path: Path
) -> None:
    """Hub checkpoints of these families keep the language settings at the top of config.json, not in text_config."""
    family, model_dir, sample = extracted
    flat = tmp_path / "flat"
    shutil.copytree(model_dir, flat)
    config = json.loads((flat / "config.json").read_text())
    text = config.pop("text_config")
    text.pop("model_type")
    (flat / "config.json").write_text(json.dumps({**text, **config}))
    assert run(*extract_args(photo, tmp_path / "s", flat, "--device", "cpu")) == 0
    meta = fmt.read_meta(sample)
    assert fmt.read_meta(tmp_path / "s")["model_type"] == family
    for name in meta["layer_files"] + meta["head_mean_files"] + meta["head_max_files"]:
        assert (tmp_path / "s" / name).read_bytes() == (sample / name).read_bytes()


def test_grid_is_the_processor_image_grid_thw_merged_2x2_at_28_px(
    extracted: tuple[str, Path, Path], photo: Path
) -> None:
    family, model_dir, sample = extracted
    meta = fmt.read_meta(sample)
    _, inputs, processor = eager_reference(model_dir, photo, family)
    image_processor = processor.image_processor
    assert (image_processor.patch_size, image_processor.merge_size) == (14, 2)  # read from the checkpoint
    _, patch_rows, patch_cols = inputs["image_grid_thw"][0].tolist()
    rows, cols = patch_rows // 2, patch_cols // 2
    # 300x170 px resized to multiples of 28 px: 308x168 = 11x6 tokens
    assert (meta["image_grid"]["rows"], meta["image_grid"]["cols"]) == (rows, cols) == (6, 11)
    assert meta["image_size"] == [cols * 28, rows * 28] == [308, 168]
    ids = inputs["input_ids"][0].tolist()
    assert [t["token_id"] for t in meta["tokens"]] == ids
    image_positions = [i for i, t in enumerate(ids) if t == processor.image_token_id]
    assert (meta["image_grid"]["start_idx"], meta["image_grid"]["end_idx"]) == (image_positions[0], image_positions[-1])
    assert [meta["tokens"][i]["grid_pos"] for i in image_positions] == [
        [r, c] for r in range(rows) for c in range(cols)
    ]
    assert not any("grid_pos" in meta["tokens"][i] for i in range(len(ids)) if i not in image_positions)


def test_max_pixels_caps_the_image_whatever_the_checkpoint_calls_its_bounds(
    family_model: tuple[str, Path], photo: Path, tmp_path: Path
) -> None:
    """Qwen2.5-VL's tiny checkpoint sets top-level min_pixels/max_pixels, Qwen2-VL's size={min_pixels, max_pixels}."""
    family, model_dir = family_model
    cap = 20 * 28 * 28
    assert run(*extract_args(photo, tmp_path / "s", model_dir, "--max-pixels", cap)) == 0
    meta = fmt.read_meta(tmp_path / "s")
    width, height = meta["image_size"]
    # smart_resize scales 300x170 by sqrt(300 * 170 / cap) and floors to multiples of 28: 140x84
    assert width * height <= cap and (width, height) == (140, 84)
    assert (meta["image_grid"]["rows"], meta["image_grid"]["cols"]) == (3, 5)


def test_logits_with_capture_equal_logits_without(family_model: tuple[str, Path], photo: Path) -> None:
    family, model_dir = family_model
    chunks, layers = captured_chunks_with_logits_unchanged(family, model_dir, photo, DEFAULT_ROW_BUDGET)
    assert (
        sorted({c.layer for c in chunks}) == list(range(layers)) == list(range(SHAPES[family].layers))
    )  # the capture did run


def test_a_model_type_of_another_family_is_refused_before_loading(
    family_model: tuple[str, Path], photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    family, model_dir = family_model
    capsys.readouterr()
    assert run(*extract_args(photo, tmp_path / "s", model_dir, "--model-type", "qwen3-vl")) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"error: {model_dir} is a {family} model, not qwen3-vl; pass --model-type {family}, or leave it out to detect it"
    ]
    assert list(tmp_path.iterdir()) == []


def test_generate_mode_answers_greedily_and_stores_the_eager_attention_of_prompt_and_answer(
    family_model: tuple[str, Path], photo: Path, tmp_path: Path
) -> None:
    family, model_dir = family_model
    assert run(*extract_args(photo, tmp_path / "s", model_dir, "--mode", "generate", "--max-new-tokens", 5)) == 0
    meta = fmt.validate_sample(tmp_path / "s")
    adapter = adapter_named(family)
    processor = adapter.load_processor(str(model_dir))
    inputs = adapter.prepare(processor, Image.open(photo).convert("RGB"), PROMPT, None).model_inputs
    model = adapter.model_class.from_pretrained(model_dir, attn_implementation="eager").eval()
    with torch.no_grad():
        answered = model.generate(**inputs, max_new_tokens=5, do_sample=False)
        ids = torch.tensor([[t["token_id"] for t in meta["tokens"]]])
        assert ids[0].tolist() == answered[0].tolist()
        full = dict(
            inputs,
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            mm_token_type_ids=(ids == processor.image_token_id).long(),
        )
        reference = model(**full, output_attentions=True).attentions
    for layer, ref in enumerate(reference):
        np.testing.assert_allclose(
            np.asarray(fmt.open_layer(tmp_path / "s", meta, layer), np.float32), ref[0].numpy(), rtol=RTOL, atol=ATOL
        )


def test_qwen2_vl_vision_blocks_equal_the_reference_from_block_inputs(
    photo: Path, tmp_path: Path, tiny_checkpoint: TinyCheckpoint
) -> None:
    """Qwen2-VL's tower, like Qwen3-VL's, attends over whole images of merge-window ordered patches."""
    model_dir = tiny_checkpoint(SHAPES["qwen2-vl"])
    sample = tmp_path / "sample"
    assert run(*extract_args(photo, sample, model_dir, "--device", "cpu", "--vision-layers", "all")) == 0
    meta = fmt.validate_sample(sample)
    expected = reference_for_photo(model_dir, photo, adapter_named("qwen2-vl"))
    assert meta["vision"]["patch_size"] == 14 and meta["vision"]["blocks"] == sorted(expected)
    for i, block in enumerate(meta["vision"]["blocks"]):
        np.testing.assert_allclose(
            np.asarray(fmt.open_vision_block(sample, meta, i), np.float32), expected[block], rtol=RTOL, atol=ATOL
        )


@pytest.fixture(scope="module")
def qwen2_5_vl_model(tiny_checkpoint: TinyCheckpoint) -> Path:
    """Its tiny tower: block 0 attends within windows of 2 x 2 tokens, block 1 (fullatt_block_indexes) over the whole image."""
    return tiny_checkpoint(SHAPES["qwen2.5-vl"])


def row_major_by_rope(
    visual: torch.nn.Module, grid_thw: torch.Tensor, cos_sin: tuple[torch.Tensor, torch.Tensor]
) -> list[torch.Tensor]:
    """Per image, the tower's index of each row-major patch, read from a block's inputs: each tower position
    carries the rotary phase of its own (row, col), whatever order the tower put the patches in."""
    carried = torch.cat(cos_sin, dim=-1).float()
    orders, start = [], 0
    for _, rows, cols in grid_thw.tolist():
        r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
        wanted = torch.cat(visual.rotary_pos_emb(carried, torch.stack([r.flatten(), c.flatten()], dim=-1)), dim=-1)
        distance = (wanted[:, None] - carried[None, start : start + rows * cols]).abs().amax(dim=-1)
        assert distance.min(dim=1).values.max() == 0  # every row-major patch is found at a position carrying its phases
        orders.append(start + distance.argmin(dim=1))
        start += rows * cols
    return orders


def call_restricted_reference(
    model: torch.nn.Module, block: int, inputs: tuple, orders: list[torch.Tensor]
) -> list[np.ndarray]:
    """Per image: the block's float32 softmax(QK^T / sqrt(d)) recomputed from its inputs, each tower position
    attending only within its own attention call as the tower split them (the cu_seqlens the block was given:
    windows for a windowed block, images for a full one), patches row-major, exactly 0 outside the call."""
    _, cu_seqlens, _ = inputs
    query, key = (t.transpose(0, 1) for t in rotated_query_key(model, block, inputs))  # (heads, positions, d)
    call = torch.bucketize(torch.arange(query.shape[1]), cu_seqlens[1:].long(), right=True)
    scores = (query @ key.transpose(-1, -2) * query.shape[-1] ** -0.5).masked_fill(
        call[:, None] != call[None, :], float("-inf")
    )
    probs = torch.softmax(scores, dim=-1)
    return [probs[:, order][:, :, order].numpy() for order in orders]


def block_references(
    model: torch.nn.Module, batch: dict
) -> tuple[dict[int, list[np.ndarray]], dict[int, torch.Tensor]]:
    """Per block: its per-image reference (patches row-major) and the cu_seqlens the tower gave it."""
    grabbed, hooks = grab_block_inputs(model)
    with torch.no_grad():
        model.model.visual(batch["pixel_values"], grid_thw=batch["image_grid_thw"])
    for hook in hooks:
        hook.remove()
    orders = row_major_by_rope(model.model.visual, batch["image_grid_thw"], grabbed[0][2])
    references = {block: call_restricted_reference(model, block, inputs, orders) for block, inputs in grabbed.items()}
    return references, {block: inputs[1] for block, inputs in grabbed.items()}


def assert_rows_are_window_softmaxes(attn: np.ndarray, ref: np.ndarray) -> None:
    """Every row sums to 1, and is exactly 0 where the reference is (outside the row's window)."""
    np.testing.assert_allclose(attn.astype(np.float32).sum(-1), 1, atol=2e-3)
    assert np.all(attn[ref == 0] == 0)


def test_qwen2_5_vl_windowed_and_full_attention_blocks_equal_the_reference_from_block_inputs(
    qwen2_5_vl_model: Path, photo: Path, tmp_path: Path
) -> None:
    sample = tmp_path / "sample"
    assert run(*extract_args(photo, sample, qwen2_5_vl_model, "--device", "cpu", "--vision-layers", "all")) == 0
    meta = fmt.validate_sample(sample)
    # 308 x 168 px for the model: 22 x 12 patches of 14 px
    assert (
        meta["vision"]["blocks"] == [0, 1]
        and meta["vision"]["grid"] == {"rows": 12, "cols": 22}
        and meta["vision"]["patch_size"] == 14
    )
    model, processor = load(qwen2_5_vl_model, QWEN2_5_VL)
    batch = processor.image_processor([Image.open(photo).convert("RGB")], return_tensors="pt")
    expected, cu_seqlens = block_references(model, batch)
    # 11 x 6 tokens in windows of 2 x 2 tokens: 6 x 3 windows, the last column one token wide; block 1 sees the whole image
    assert cu_seqlens[0].diff().tolist() == [16, 16, 16, 16, 16, 8] * 3 and cu_seqlens[1].tolist() == [0, 264]
    received = np.asarray(fmt.open_vision_received(sample, meta), np.float32)
    for i, block in enumerate(meta["vision"]["blocks"]):
        (ref,) = expected[block]
        attn, mean = (
            np.asarray(fmt.open_vision_block(sample, meta, i)),
            np.asarray(fmt.open_vision_mean(sample, meta, i)),
        )
        np.testing.assert_allclose(attn.astype(np.float32), ref, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(mean.astype(np.float32), ref.mean(0), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(received[i], ref.mean(0).sum(0), rtol=RTOL, atol=ATOL)
        assert_rows_are_window_softmaxes(attn, ref)
    assert (expected[0][0] == 0).mean() > 0.9 and (expected[1][0] > 0).all()  # block 0 attends within windows only


def test_qwen2_5_vl_two_images_leave_the_tower_output_unchanged_and_each_match_their_reference(
    qwen2_5_vl_model: Path,
) -> None:
    """Windows are laid out per image; the second image's patches follow the first's in the tower."""
    model, processor = load(qwen2_5_vl_model, QWEN2_5_VL)
    batch = processor.image_processor([striped_image(300, 170), striped_image(140, 230)], return_tensors="pt")
    assert batch["image_grid_thw"][0].tolist() != batch["image_grid_thw"][1].tolist()
    expected, _ = block_references(model, batch)
    geometry = batch_geometry(QWEN2_5_VL, model, processor, batch)
    chunks: list[VisionRows] = []
    # room for 40 rows of the first image: several 16-patch windows go to the writer together, and a window may not fit
    recorder = VisionRecorder(
        chunks.append,
        vision_attention_modules(model, model.config.vision_config),
        [0, 1],
        geometry.block_calls,
        row_budget=4 * 264 * 4 * 40,
    )
    with torch.no_grad():
        plain = model.model.visual(batch["pixel_values"], grid_thw=batch["image_grid_thw"])
        with capturing_sub_models(model, {"vision_config": recorder}):
            captured = model.model.visual(batch["pixel_values"], grid_thw=batch["image_grid_thw"])
    assert torch.equal(plain.last_hidden_state, captured.last_hidden_state) and torch.equal(
        plain.pooler_output, captured.pooler_output
    )
    assert max(len(c.rows) for c in chunks if c.block == 0) > 16  # windows were gathered
    for block in (0, 1):
        for image, ref in enumerate(expected[block]):
            attn, mean = assemble(chunks, block, image, ref.shape[1])
            np.testing.assert_allclose(attn, ref, rtol=RTOL, atol=ATOL)
            np.testing.assert_allclose(mean, ref.mean(0), rtol=RTOL, atol=ATOL)
            np.testing.assert_allclose(recorder.received[(block, image)].numpy(), ref.mean(0).sum(0), rtol=1e-5)
            assert_rows_are_window_softmaxes(attn, ref)


def test_qwen2_5_vl_vision_capture_leaves_the_tower_output_and_the_logits_unchanged(
    qwen2_5_vl_model: Path, photo: Path
) -> None:
    model, processor = load(qwen2_5_vl_model, QWEN2_5_VL)
    prepared = QWEN2_5_VL.prepare(processor, Image.open(photo).convert("RGB"), PROMPT, None)
    tower_outputs: list = []
    model.model.visual.register_forward_hook(lambda module, args, output: tower_outputs.append(output.pooler_output))
    vision = VisionRecorder(
        lambda rows: None,
        vision_attention_modules(model, model.config.vision_config),
        [0, 1],
        QWEN2_5_VL.vision_geometry(model, processor, prepared).block_calls,
    )
    recorders = {
        "text_config": AttentionRecorder(lambda rows: None, 2, 4, prepared.image_layout().image_positions()),
        "vision_config": vision,
    }
    with torch.no_grad():
        plain = model(**prepared.model_inputs).logits
        with capturing_sub_models(model, recorders):
            captured = model(**prepared.model_inputs, use_cache=False).logits
    assert torch.equal(plain, captured) and torch.equal(tower_outputs[0], tower_outputs[1])
    assert list(vision.received) == [(0, 0), (1, 0)]  # both blocks of image 0 were captured
