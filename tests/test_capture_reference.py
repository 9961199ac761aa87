"""Stored attention equals transformers' own eager output_attentions, for two tiny model shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import Qwen3VLForConditionalGeneration

from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.attention_capture import AttentionRecorder

from conftest import extract_args, run
from reference import ATOL, RTOL, assert_layers_equal, captured_chunks_with_logits_unchanged, eager_reference


@pytest.fixture(scope="module", params=["gqa_model", "mha_model"])
def extracted(
    request: pytest.FixtureRequest, photo: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    model_dir = request.getfixturevalue(request.param)
    sample = tmp_path_factory.mktemp("samples") / request.param
    assert run(*extract_args(photo, sample, model_dir, "--device", "cpu")) == 0
    return model_dir, sample


def test_every_layer_matches_eager_output_attentions(extracted: tuple[Path, Path], photo: Path) -> None:
    model_dir, sample = extracted
    meta = fmt.validate_sample(sample)
    reference, _, _ = eager_reference(model_dir, photo)
    assert meta["num_layers"] == len(reference) >= 2
    assert_layers_equal(sample, meta, reference)


def test_text_to_image_table_sums_image_attention_of_text_after_the_image(
    extracted: tuple[Path, Path], photo: Path
) -> None:
    model_dir, sample = extracted
    meta = fmt.read_meta(sample)
    reference, _, _ = eager_reference(model_dir, photo)
    start, end = meta["image_grid"]["start_idx"], meta["image_grid"]["end_idx"]
    expected = [ref[:, end + 1 :, start : end + 1].sum(-1).mean(-1) for ref in reference]
    np.testing.assert_allclose(np.array(meta["text_to_image"]), np.array(expected), rtol=1e-4)


def test_tokens_and_grid_agree_with_the_processor(extracted: tuple[Path, Path], photo: Path) -> None:
    model_dir, sample = extracted
    meta = fmt.read_meta(sample)
    _, inputs, processor = eager_reference(model_dir, photo)
    ids = inputs["input_ids"][0].tolist()
    assert [t["token_id"] for t in meta["tokens"]] == ids
    _, patch_rows, patch_cols = inputs["image_grid_thw"][0].tolist()
    merge = processor.image_processor.merge_size
    grid = meta["image_grid"]
    assert (grid["rows"], grid["cols"]) == (patch_rows // merge, patch_cols // merge) == (5, 9)
    image_positions = [i for i, t in enumerate(ids) if t == processor.image_token_id]
    assert (grid["start_idx"], grid["end_idx"]) == (image_positions[0], image_positions[-1])
    assert [meta["tokens"][i]["grid_pos"] for i in image_positions] == [[r, c] for r in range(5) for c in range(9)]
    assert meta["image_size"] == [patch_cols * 16, patch_rows * 16] == [288, 160]
    assert meta["original_image_size"] == [300, 170]
    config = Qwen3VLForConditionalGeneration.config_class.from_pretrained(model_dir).text_config
    assert (meta["num_heads"], meta["num_kv_heads"]) == (config.num_attention_heads, config.num_key_value_heads)


@pytest.mark.parametrize("model_fixture", ["gqa_model", "mha_model"])
def test_logits_with_capture_equal_logits_without_and_chunks_match_eager(
    model_fixture: str, photo: Path, request: pytest.FixtureRequest
) -> None:
    model_dir = request.getfixturevalue(model_fixture)
    chunks, layers = captured_chunks_with_logits_unchanged("qwen3-vl", model_dir, photo, row_budget=4096)
    # a small row budget splits each layer into many chunks; together they still equal eager attention
    assert len(chunks) > 3 * layers
    reference, _, _ = eager_reference(model_dir, photo)
    for layer, ref in enumerate(reference):
        mine = sorted((c for c in chunks if c.layer == layer), key=lambda c: c.row0)
        np.testing.assert_allclose(
            np.concatenate([c.attn for c in mine], axis=1).astype(np.float32), ref, rtol=RTOL, atol=ATOL
        )
        np.testing.assert_allclose(
            np.concatenate([c.head_max for c in mine]).astype(np.float32), ref.max(0), rtol=RTOL, atol=ATOL
        )


def test_every_mask_form_gives_the_same_rows() -> None:
    """The causal mask may arrive as sdpa's own (None + causal), boolean (True attends) or additive float; all mean the same."""
    torch.manual_seed(0)
    heads, kv_heads, n, dim = 4, 2, 37, 8
    query, key = torch.randn(1, heads, n, dim), torch.randn(1, kv_heads, n, dim)
    allowed = torch.tril(torch.ones(n, n, dtype=torch.bool))[None, None]
    additive = torch.zeros(1, 1, n, n).masked_fill(~allowed, float("-inf"))
    results = []
    for mask in (None, allowed, additive):
        chunks: list = []
        AttentionRecorder(chunks.append, 1, heads, list(range(2, 11)), row_budget=heads * n * 4 * 5).record(
            0, query, key, mask, dim**-0.5, causal=mask is None
        )
        results.append(np.concatenate([c.attn for c in sorted(chunks, key=lambda c: c.row0)], axis=1))
    expected = torch.softmax(
        query @ key.repeat_interleave(heads // kv_heads, dim=1).transpose(-1, -2) * dim**-0.5 + additive, dim=-1
    )[0]
    for stored in results:
        np.testing.assert_allclose(stored.astype(np.float32), expected.numpy(), rtol=RTOL, atol=ATOL)
