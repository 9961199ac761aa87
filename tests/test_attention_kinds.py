"""Families beyond Qwen-VL's dense models, through the CLI with the family detected: Gemma 3 (sliding-window and
global layers, both bidirectional within the image), Gemma 4 (bidirectional on its sliding layers only, scaling 1,
keys and values shared by its last layers) and Qwen3-VL-MoE. Every layer equals the family's eager
output_attentions, the masks included; logits do not change; generate mode answers as a plain generate does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.attention_capture import DEFAULT_ROW_BUDGET
from vlm_attention_viz.dev.tiny import TinyShape
from vlm_attention_viz.image_layout import runs_of
from vlm_attention_viz.models import adapter_named

from conftest import TinyCheckpoint, assert_refused, extract_args, run
from reference import (
    ATOL,
    PROMPT,
    RTOL,
    assert_layers_equal,
    captured_chunks_with_logits_unchanged,
    eager_attentions,
    eager_reference,
)

SHAPES = {
    # Seven layers: five sliding (window 32), one global, one sliding, as the hub's pattern of six.
    "gemma3": TinyShape(family="gemma3", layers=7, heads=4, kv_heads=2, head_dim=16, hidden=64, seed=5),
    # Sliding, global, three sliding, global; the last two reuse earlier layers' keys and values.
    "gemma4": TinyShape(family="gemma4", layers=6, heads=4, kv_heads=2, head_dim=16, hidden=64, seed=9),
    "qwen3-vl-moe": TinyShape(family="qwen3-vl-moe", layers=2, heads=4, kv_heads=2, seed=8),
}
GEMMAS = ["gemma3", "gemma4"]
SLIDING = {"kind": "sliding", "window": 32, "image_bidirectional": True}
LAYER_KINDS = {
    "gemma3": [SLIDING] * 5 + [{"kind": "causal", "image_bidirectional": True}, SLIDING],
    "gemma4": [SLIDING, {"kind": "causal"}, SLIDING, SLIDING, SLIDING, {"kind": "causal"}],
}


@pytest.fixture(scope="module")
def models(tiny_checkpoint: TinyCheckpoint) -> dict[str, Path]:
    return {family: tiny_checkpoint(shape) for family, shape in SHAPES.items()}


@pytest.fixture(scope="module")
def samples(models: dict[str, Path], photo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each family's prefill sample, as a user makes it without --model-type."""
    made: dict[str, Path] = {}
    for family in SHAPES:
        made[family] = tmp_path_factory.mktemp("samples") / family
        assert run(*extract_args(photo, made[family], models[family])) == 0
    return made


@pytest.mark.parametrize("family", sorted(SHAPES))
def test_the_family_is_detected_from_the_checkpoint_config(family: str, models: dict, samples: dict) -> None:
    model_type = json.loads((models[family] / "config.json").read_text())["model_type"]
    assert model_type == adapter_named(family).config_model_types[0]
    assert fmt.validate_sample(samples[family])["model_type"] == family


@pytest.mark.parametrize("family", sorted(SHAPES))
def test_every_layer_and_aggregate_equals_eager(family: str, models: dict, samples: dict, photo: Path) -> None:
    meta = fmt.validate_sample(samples[family])
    reference, _, _ = eager_reference(models[family], photo, family)
    assert len(reference) == meta["num_layers"] == SHAPES[family].layers
    for layer, ref in enumerate(reference):
        stored = np.asarray(fmt.open_layer(samples[family], meta, layer), np.float32)
        np.testing.assert_allclose(stored, ref, rtol=RTOL, atol=ATOL)
        for kind, table in (("mean", ref.mean(0)), ("max", ref.max(0))):
            aggregate = fmt.open_head_aggregate(samples[family], meta, layer, kind)
            np.testing.assert_allclose(np.asarray(aggregate, np.float32), table, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("family", sorted(SHAPES))
def test_logits_with_capture_equal_logits_without(family: str, models: dict, photo: Path) -> None:
    chunks, layers = captured_chunks_with_logits_unchanged(family, models[family], photo, DEFAULT_ROW_BUDGET)
    assert sorted({c.layer for c in chunks}) == list(range(layers)) == list(range(SHAPES[family].layers))


def answer_inputs(inputs: dict, ids: torch.Tensor) -> dict:
    """The prompt's inputs extended to prompt + answer: attention mask ones, per-token types zero (text)."""
    new = ids.shape[1] - inputs["input_ids"].shape[1]
    extended = dict(inputs, input_ids=ids, attention_mask=torch.ones_like(ids))
    for key in ("token_type_ids", "mm_token_type_ids"):
        if key in inputs:
            extended[key] = torch.cat([inputs[key], torch.zeros(1, new, dtype=inputs[key].dtype)], dim=1)
    return extended


@pytest.mark.parametrize("family", sorted(SHAPES))
def test_generate_mode_answers_as_plain_generate_and_stores_eager_attention(
    family: str, models: dict, photo: Path, tmp_path: Path
) -> None:
    sample = tmp_path / "s"
    args = ("--image", photo, "--prompt", PROMPT, "--output-dir", sample, "--model", models[family])
    assert run(*args, "--mode", "generate", "--max-new-tokens", 4) == 0
    meta = fmt.validate_sample(sample)
    adapter = adapter_named(family)
    inputs = adapter.prepare(
        adapter.load_processor(str(models[family])), Image.open(photo).convert("RGB"), PROMPT, None
    ).model_inputs
    model = adapter.model_class.from_pretrained(models[family], attn_implementation="eager").eval()
    with torch.no_grad():
        answered = model.generate(**inputs, max_new_tokens=4, do_sample=False)
        ids = torch.tensor([[t["token_id"] for t in meta["tokens"]]])
        assert ids[0].tolist() == answered[0].tolist() and meta["answer_start"] == inputs["input_ids"].shape[1]
        reference = model(**answer_inputs(inputs, ids), output_attentions=True).attentions
    for layer, ref in enumerate(reference):
        np.testing.assert_allclose(
            np.asarray(fmt.open_layer(sample, meta, layer), np.float32), ref[0].numpy(), rtol=RTOL, atol=ATOL
        )


@pytest.mark.parametrize("family", GEMMAS)
def test_gemma_layer_kinds_come_from_the_config(family: str, samples: dict) -> None:
    meta = fmt.validate_sample(samples[family])
    assert meta["layer_attention"] == LAYER_KINDS[family]


def test_gemma3_grid_is_the_processor_fixed_square_of_pooled_tokens(samples: dict) -> None:
    meta = fmt.read_meta(samples["gemma3"])
    assert meta["image_size"] == [896, 896] and meta["original_image_size"] == [300, 170]
    grid = meta["image_grid"]
    assert (grid["rows"], grid["cols"], grid["end_idx"] - grid["start_idx"] + 1) == (16, 16, 256)
    tokens = meta["tokens"]
    assert (
        tokens[grid["start_idx"] - 1]["text"] == "<start_of_image>" and tokens[grid["end_idx"] + 1]["type"] == "special"
    )


def test_gemma4_grid_is_the_aspect_kept_resize_pooled_3x3(samples: dict) -> None:
    """300 x 170 px within 70 tokens of 3 x 3 patches of 16 px: 528 x 288 px, 11 x 6 tokens."""
    meta = fmt.read_meta(samples["gemma4"])
    assert meta["image_size"] == [528, 288] and "num_kv_heads" not in meta
    grid = meta["image_grid"]
    assert (grid["rows"], grid["cols"], grid["end_idx"] - grid["start_idx"] + 1) == (6, 11, 66)
    assert meta["tokens"][grid["start_idx"] - 1]["text"] == "<|image>"


@pytest.mark.parametrize("family", GEMMAS)
def test_gemma_image_rows_see_later_image_tokens_where_bidirectional_and_sliding_rows_their_window(
    family: str, samples: dict
) -> None:
    """The stored layers equal eager (above); here, that the masks they carry are the ones layer_attention names."""
    sample = samples[family]
    meta = fmt.validate_sample(sample)
    grid = meta["image_grid"]
    start, end = grid["start_idx"], grid["end_idx"]
    span, n = (start, end), meta["seq_len"]
    for layer in range(meta["num_layers"]):
        stored = np.asarray(fmt.open_layer(sample, meta, layer), np.float32)
        kind = meta["layer_attention"][layer]
        reachable = fmt.reachable(kind, np.arange(n), n, [span])
        assert (stored[:, ~reachable] == 0).all()  # outside the mask exactly 0
        later_image_tokens = stored[:, start + 1, start + 2 : end + 1].sum(-1)  # per head
        assert (later_image_tokens > 0).all() if kind.get("image_bidirectional") else (later_image_tokens == 0).all()
        assert (stored[:, end + 1, end + 2 :] == 0).all()  # the text after the image stays causal
        if kind["kind"] == "sliding":
            assert (stored[:, end, : end - 31] == 0).all()  # the last image row: nothing further back than the window
            assert (stored[:, n - 1, : n - 32] == 0).all()  # the last row: all its weight on the last 32 tokens
            np.testing.assert_allclose(stored[:, n - 1, n - 32 :].sum(-1), 1, atol=2e-3)
        else:
            assert (stored[:, end, start : start + 32].sum(-1) > 0).all()  # global: back to the image's start


@pytest.mark.parametrize(
    ("family", "says"),
    [("gemma3", "sees every image at its processor's one square size"), ("gemma4", "sizes images by a token budget")],
)
def test_gemma_refuses_max_pixels_with_one_line(
    family: str, says: str, models: dict, photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--image", photo, "--prompt", PROMPT, "--output-dir", tmp_path / "s", "--model", models[family]]
    assert_refused(capsys, [*args, "--max-pixels", 10000], says, untouched=tmp_path)


@pytest.mark.parametrize("family", GEMMAS)
def test_two_images_each_see_their_own_later_tokens_only_and_equal_eager(
    family: str, models: dict, photo: Path, tmp_path: Path
) -> None:
    """Two images in one Gemma prompt: one `image` region per image over its run of image tokens, every layer equal
    to eager, and an image-bidirectional layer's image rows open to their own image's later tokens, never to the
    other image's."""
    tall = tmp_path / "tall.png"
    Image.new("RGB", (100, 200), (10, 120, 200)).save(tall)
    sample = tmp_path / "two"
    assert run(*extract_args(photo, sample, models[family], "--image", tall)) == 0
    meta = fmt.validate_sample(sample)
    adapter = adapter_named(family)
    opened = [Image.open(path).convert("RGB") for path in (photo, tall)]
    prepared = adapter.prepare_images(adapter.load_processor(str(models[family])), opened, PROMPT, None)
    inputs = prepared.model_inputs
    runs = runs_of(inputs["input_ids"][0].tolist(), prepared.image_token_id)
    regions = meta["image_regions"]
    assert [(r["image"], r["kind"], r["tokens"]) for r in regions] == [(0, "image", runs[0]), (1, "image", runs[1])]
    assert fmt.image_blocks(regions) == [(run[0], run[-1]) for run in runs]
    reference = eager_attentions(family, models[family], inputs)
    assert_layers_equal(sample, meta, reference)
    (first, last), (second, _) = fmt.image_blocks(regions)
    for layer, kind in enumerate(meta["layer_attention"]):
        stored = reference[layer]
        assert (stored[:, first, second:] == 0).all()  # never the other image
        seen_later = stored[:, first, first + 1 : min(last + 1, first + 32)].sum(-1)
        assert (seen_later > 0).all() if kind.get("image_bidirectional") else (seen_later == 0).all()
