"""--adapter: a PEFT LoRA on the tiny Qwen3-VL changes the attention, and the stored attention is the adapted model's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from peft import PeftModel
from transformers import Qwen3VLForConditionalGeneration

from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.attention_capture import AttentionRecorder, capturing
from vlm_attention_viz.models import adapter_named
from vlm_attention_viz.peft_adapter import apply_adapter

from conftest import run
from reference import ATOL, PROMPT, RTOL, processed

# transformers' deprecation notice, raised inside PEFT's loading; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")
# The LoRA's random B moves every layer's attention by far more than float16 rounding.
CLEARLY_DIFFERENT = 1e-2


@pytest.fixture(scope="module")
def samples(
    gqa_model: Path, gqa_lora: Path, photo: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """The base model's sample and the adapted model's, from the same image and prompt."""
    root = tmp_path_factory.mktemp("lora_samples")
    args = ["--image", photo, "--prompt", PROMPT, "--model", gqa_model, "--device", "cpu"]
    assert run(*args, "--output-dir", root / "base") == 0
    assert run(*args, "--output-dir", root / "adapted", "--adapter", gqa_lora) == 0
    return root / "base", root / "adapted"


def adapted_eager_attention(model_dir: Path, lora: Path, inputs: dict) -> list[np.ndarray]:
    """transformers' own output_attentions of the base model in eager mode with the adapter on top."""
    base = Qwen3VLForConditionalGeneration.from_pretrained(model_dir, attn_implementation="eager")
    model = PeftModel.from_pretrained(base, str(lora)).eval()
    with torch.no_grad():
        return [a[0].numpy() for a in model(**inputs, output_attentions=True).attentions]


def stored_layers(sample: Path) -> list[np.ndarray]:
    meta = fmt.validate_sample(sample)
    return [np.asarray(fmt.open_layer(sample, meta, layer), dtype=np.float32) for layer in range(meta["num_layers"])]


def test_every_layer_differs_from_the_base_model(samples: tuple[Path, Path]) -> None:
    base, adapted = (stored_layers(s) for s in samples)
    assert len(base) == len(adapted) >= 2
    for layer, (plain, lora) in enumerate(zip(base, adapted, strict=True)):
        assert np.abs(plain - lora).max() > CLEARLY_DIFFERENT, f"layer {layer} did not change"


def test_stored_attention_matches_the_adapted_models_eager_reference(
    samples: tuple[Path, Path], gqa_model: Path, gqa_lora: Path, photo: Path
) -> None:
    adapted = samples[1]
    meta = fmt.read_meta(adapted)
    reference = adapted_eager_attention(gqa_model, gqa_lora, processed(gqa_model, photo))
    assert len(reference) == meta["num_layers"]
    for layer, ref in enumerate(reference):
        np.testing.assert_allclose(
            np.asarray(fmt.open_layer(adapted, meta, layer), np.float32), ref, rtol=RTOL, atol=ATOL
        )
        np.testing.assert_allclose(
            np.asarray(fmt.open_head_aggregate(adapted, meta, layer, "mean"), np.float32),
            ref.mean(0),
            rtol=RTOL,
            atol=ATOL,
        )
        np.testing.assert_allclose(
            np.asarray(fmt.open_head_aggregate(adapted, meta, layer, "max"), np.float32),
            ref.max(0),
            rtol=RTOL,
            atol=ATOL,
        )


def test_meta_records_the_adapter(samples: tuple[Path, Path], gqa_model: Path, gqa_lora: Path) -> None:
    base, adapted = (fmt.read_meta(s) for s in samples)
    assert "adapter" not in base
    assert adapted["adapter"] == {
        "path": str(gqa_lora),
        "peft_type": "LORA",
        "base_model": str(gqa_model),
        "r": 4,
        "target_modules": ["k_proj", "q_proj", "v_proj"],
    }
    assert adapted["model"] == str(gqa_model)


def test_logits_with_capture_equal_logits_without(gqa_model: Path, gqa_lora: Path, photo: Path) -> None:
    adapter = adapter_named("qwen3-vl")
    model = apply_adapter(adapter.load_model(str(gqa_model), "cpu", torch.float32), gqa_lora, str(gqa_model))
    inputs = processed(gqa_model, photo)
    config = adapter.language_config(model)
    chunks: list = []
    recorder = AttentionRecorder(
        chunks.append, config.num_hidden_layers, config.num_attention_heads, list(range(4, 49))
    )
    with torch.no_grad():
        plain = model(**inputs).logits
        with capturing(model, adapter.language_config_key, recorder):
            captured = model(**inputs, use_cache=False).logits
    assert torch.equal(plain, captured)
    assert {c.layer for c in chunks} == set(range(config.num_hidden_layers))  # the capture reached every wrapped layer


def test_generate_mode_answers_and_attends_as_the_adapted_model(
    gqa_model: Path, gqa_lora: Path, photo: Path, tmp_path: Path
) -> None:
    sample = tmp_path / "s"
    args = ["--image", photo, "--prompt", PROMPT, "--output-dir", sample, "--model", gqa_model, "--adapter", gqa_lora]
    assert run(*args, "--mode", "generate", "--max-new-tokens", 4) == 0
    meta = fmt.validate_sample(sample)
    inputs = processed(gqa_model, photo)
    model = PeftModel.from_pretrained(Qwen3VLForConditionalGeneration.from_pretrained(gqa_model), str(gqa_lora)).eval()
    with torch.no_grad():
        greedy = model.generate(**inputs, max_new_tokens=4, do_sample=False)[0].tolist()
    ids = [t["token_id"] for t in meta["tokens"]]
    assert ids == greedy and meta["answer_start"] == inputs["input_ids"].shape[1]
    full_ids = torch.tensor([ids])
    image_id = adapter_named("qwen3-vl").load_processor(str(gqa_model)).image_token_id
    full = dict(
        inputs,
        input_ids=full_ids,
        attention_mask=torch.ones_like(full_ids),
        mm_token_type_ids=(full_ids == image_id).long(),
    )
    for layer, ref in enumerate(adapted_eager_attention(gqa_model, gqa_lora, full)):
        np.testing.assert_allclose(
            np.asarray(fmt.open_layer(sample, meta, layer), np.float32), ref, rtol=RTOL, atol=ATOL
        )
