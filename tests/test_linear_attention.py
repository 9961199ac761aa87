"""Qwen3.5 and Qwen3.5-MoE through the CLI, detected from its config: the gated full-attention layers equal eager output_attentions
(taken before the gate), and each Gated DeltaNet layer stores its implicit attention, which reproduces the layer's
own core output, equals a slow float64 unrolling of the recurrence, and is stored within float16 rounding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.models.qwen3_5.modeling_qwen3_5 import causal_conv1d_fn

import vlm_attention_viz as vav
from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.attention_capture import AttentionRecorder, capturing
from vlm_attention_viz.dev.tiny import TinyShape
from vlm_attention_viz.linear_capture import capturing_linear_layers, implicit_attention_chunks
from vlm_attention_viz.models import ModelAdapter, adapter_named
from vlm_attention_viz.models.qwen3_5 import gated_delta_of

from conftest import TinyCheckpoint, extract_args, run
from reference import ATOL, PROMPT, RTOL, eager_reference, unrolled_implicit_attention

# Eight layers: linear, linear, linear, full, twice. Two attention heads, four linear value heads.
SHAPES = {
    family: TinyShape(family=family, layers=8, heads=2, kv_heads=1, head_dim=64, hidden=64, seed=6)
    for family in ("qwen3.5", "qwen3.5-moe")
}
FULL_LAYERS = [3, 7]


@pytest.fixture(scope="module", params=sorted(SHAPES))
def family(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def adapter(family: str) -> ModelAdapter:
    return adapter_named(family)


@pytest.fixture(scope="module")
def qwen3_5_model(family: str, tiny_checkpoint: TinyCheckpoint) -> Path:
    return tiny_checkpoint(SHAPES[family])


@pytest.fixture(scope="module")
def qwen3_5_sample(qwen3_5_model: Path, photo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    sample = tmp_path_factory.mktemp("samples") / "qwen3.5"
    assert run(*extract_args(photo, sample, qwen3_5_model)) == 0
    return sample


@pytest.fixture(scope="module")
def linear_layers_run(adapter: ModelAdapter, qwen3_5_model: Path, photo: Path) -> dict[int, dict[str, torch.Tensor]]:
    """Per linear layer, from one plain forward pass: its input, its core output before the gated norm (hooked on
    the module), its values after the convolution, and the float32 implicit attention the capture computes."""
    model = adapter.load_model(str(qwen3_5_model), "cpu", torch.float32)
    prepared = adapter.prepare(
        adapter.load_processor(str(qwen3_5_model)), Image.open(photo).convert("RGB"), PROMPT, None
    )
    seen: dict[int, dict[str, torch.Tensor]] = {}
    for layer, (module, _) in adapter.linear_layers(model).items():
        entry = seen.setdefault(layer, {})
        module.register_forward_pre_hook(
            lambda m, a, k, e=entry: e.__setitem__("input", k["hidden_states"]), with_kwargs=True
        )
        module.norm.register_forward_pre_hook(lambda m, a, e=entry: e.__setitem__("core", a[0]))
    with torch.no_grad():
        model(**prepared.model_inputs)
        for layer, (module, _) in adapter.linear_layers(model).items():
            entry = seen[layer]
            delta = gated_delta_of(module, entry["input"])
            entry["delta"] = delta  # type: ignore[assignment]
            entry["attn"] = torch.cat(
                [rows for _, rows in implicit_attention_chunks(delta, row_budget=4 * 4 * 64 * 7)], 1
            )
            entry["value"] = convolved_values(module, entry["input"])
            entry["core"] = entry["core"].reshape(-1, module.num_v_heads, module.head_v_dim).transpose(0, 1)
    return seen


def convolved_values(module: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """v of a Gated DeltaNet layer as its forward makes it (projection, causal convolution), (H, N, d_v)."""
    mixed = causal_conv1d_fn(
        module.in_proj_qkv(hidden).transpose(1, 2),
        module.conv1d.weight.squeeze(1),
        module.conv1d.bias,
        module.activation,
    ).transpose(1, 2)
    return mixed[0, :, 2 * module.key_dim :].reshape(-1, module.num_v_heads, module.head_v_dim).transpose(0, 1)


def test_qwen3_5_is_detected_and_its_layer_kinds_come_from_the_config(family: str, qwen3_5_sample: Path) -> None:
    meta = fmt.validate_sample(qwen3_5_sample)
    linear = {"kind": "linear", "conv_kernel": 4, "num_heads": 4}
    full = {"kind": "causal", "before_output_gate": True}
    assert meta["model_type"] == family and meta["num_heads"] == 2
    assert meta["layer_attention"] == [linear, linear, linear, full] * 2
    assert [len(row) for row in meta["text_to_image"]] == [4, 4, 4, 2] * 2
    table = vav.open(qwen3_5_sample).text_to_image  # per layer, its own heads
    assert [row.shape for row in table] == [(4,), (4,), (4,), (2,)] * 2 and all((row >= 0).all() for row in table)


def test_qwen3_5_full_attention_layers_equal_eager(
    family: str, qwen3_5_model: Path, qwen3_5_sample: Path, photo: Path
) -> None:
    meta = fmt.validate_sample(qwen3_5_sample)
    reference, _, _ = eager_reference(qwen3_5_model, photo, family)
    assert len(reference) == len(FULL_LAYERS)  # eager returns the softmax layers' weights only
    for layer, ref in zip(FULL_LAYERS, reference, strict=True):
        np.testing.assert_allclose(
            np.asarray(fmt.open_layer(qwen3_5_sample, meta, layer), np.float32), ref, rtol=RTOL, atol=ATOL
        )


def test_every_linear_head_reproduces_the_layer_core_output(linear_layers_run: dict) -> None:
    assert sorted(linear_layers_run) == [0, 1, 2, 4, 5, 6]
    for entry in linear_layers_run.values():
        reproduced = entry["attn"] @ entry["value"]  # sum_s A[t, s] v_s, every head
        core = entry["core"]
        assert core.abs().max() > 0
        for head in range(core.shape[0]):
            error = (reproduced[head] - core[head]).abs().max() / core[head].abs().max()
            assert error < 1e-4, error


def test_linear_attention_equals_the_unrolled_float64_recurrence(linear_layers_run: dict) -> None:
    entry = linear_layers_run[1]
    delta, n = entry["delta"], 40  # the slow reference on the first 40 tokens; later rows do not change earlier ones
    expected = unrolled_implicit_attention(delta.query[:, :n], delta.key[:, :n], delta.g[:, :n], delta.beta[:, :n])
    np.testing.assert_allclose(entry["attn"][:, :n, :n].double().numpy(), expected, rtol=1e-5, atol=1e-8)
    assert (entry["attn"].triu(1) == 0).all() and (entry["attn"] < 0).any()  # causal, and signed


def test_stored_linear_layers_are_the_float32_attention_rounded_to_float16(
    qwen3_5_sample: Path, linear_layers_run: dict
) -> None:
    meta = fmt.validate_sample(qwen3_5_sample)
    for layer, entry in linear_layers_run.items():
        attn = entry["attn"].numpy()
        stored = np.asarray(fmt.open_layer(qwen3_5_sample, meta, layer), np.float32)
        assert stored.shape == attn.shape == (4, meta["seq_len"], meta["seq_len"])
        np.testing.assert_allclose(stored, attn, rtol=RTOL, atol=ATOL)
        mean = np.asarray(fmt.open_head_aggregate(qwen3_5_sample, meta, layer, "mean"), np.float32)
        np.testing.assert_allclose(mean, attn.mean(0), rtol=RTOL, atol=ATOL)


def test_qwen3_5_logits_with_capture_equal_logits_without(
    adapter: ModelAdapter, qwen3_5_model: Path, photo: Path
) -> None:
    model = adapter.load_model(str(qwen3_5_model), "cpu", torch.float32)
    prepared = adapter.prepare(
        adapter.load_processor(str(qwen3_5_model)), Image.open(photo).convert("RGB"), PROMPT, None
    )
    layers: list[int] = []
    kinds = adapter.layer_attention(model)
    recorder = AttentionRecorder(
        lambda rows: layers.append(rows.layer),
        8,
        fmt.layer_heads(8, 2, kinds),
        prepared.image_layout().image_positions(),
    )
    with torch.no_grad():
        plain = model(**prepared.model_inputs, use_cache=False).logits
        with capturing(model, "text_config", recorder), capturing_linear_layers(adapter.linear_layers(model), recorder):
            captured = model(**prepared.model_inputs, use_cache=False).logits
        after = model(**prepared.model_inputs, use_cache=False).logits
    assert torch.equal(plain, captured) and torch.equal(plain, after)
    assert sorted(set(layers)) == list(range(8))


def test_qwen3_5_generate_mode_answers_as_plain_generate(
    adapter: ModelAdapter, qwen3_5_model: Path, photo: Path, tmp_path: Path
) -> None:
    sample = tmp_path / "s"
    args = ("--image", photo, "--prompt", PROMPT, "--output-dir", sample, "--model", qwen3_5_model)
    assert run(*args, "--mode", "generate", "--max-new-tokens", 4) == 0
    meta = fmt.validate_sample(sample)
    inputs = adapter.prepare(
        adapter.load_processor(str(qwen3_5_model)), Image.open(photo).convert("RGB"), PROMPT, None
    ).model_inputs
    model = adapter.model_class.from_pretrained(qwen3_5_model).eval()
    with torch.no_grad():
        answered = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert [t["token_id"] for t in meta["tokens"]] == answered[0].tolist()
    assert meta["generation"]["new_tokens"] == 4


def test_any_row_chunks_and_unrolled_blocks_give_the_same_attention(linear_layers_run: dict) -> None:
    """Chunks of 7 rows, one block each (the run above), against one chunk of 5-row blocks and one of a single block."""
    entry = linear_layers_run[4]
    for block in (5, 64):
        again = torch.cat([rows for _, rows in implicit_attention_chunks(entry["delta"], block=block)], 1)
        torch.testing.assert_close(again, entry["attn"], rtol=1e-5, atol=1e-7)
