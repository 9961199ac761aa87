"""--mode generate: a plain greedy answer, then the attention over prompt + answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, Qwen3VLForConditionalGeneration

from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.dev.tiny import TinyShape
from vlm_attention_viz.models import adapter_named
from vlm_attention_viz.tokens import build_tokens, mark_answer

from conftest import TinyCheckpoint, extract_args, run
from reference import ATOL, PROMPT, RTOL, processed

NEW_TOKENS = 6


@pytest.fixture(scope="module")
def generated(gqa_model: Path, photo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    sample = tmp_path_factory.mktemp("generate") / "s"
    args = ["--image", photo, "--prompt", PROMPT, "--output-dir", sample, "--model", gqa_model, "--mode", "generate"]
    assert run(*args, "--max-new-tokens", NEW_TOKENS) == 0
    return fmt.validate_sample(sample) | {"folder": sample}


def test_answer_equals_a_plain_greedy_generate(generated: dict, gqa_model: Path, photo: Path) -> None:
    inputs = processed(gqa_model, photo)
    model = Qwen3VLForConditionalGeneration.from_pretrained(gqa_model).eval()  # its default attention
    with torch.no_grad():
        plain = model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False)[0].tolist()
    assert [t["token_id"] for t in generated["tokens"]] == plain
    assert generated["answer_start"] == inputs["input_ids"].shape[1]
    assert generated["generation"] == {
        "max_new_tokens": NEW_TOKENS,
        "do_sample": False,
        "new_tokens": len(plain) - generated["answer_start"],
    }


def test_attention_covers_prompt_and_answer_and_matches_eager(generated: dict, gqa_model: Path, photo: Path) -> None:
    inputs = processed(gqa_model, photo)
    ids = torch.tensor([[t["token_id"] for t in generated["tokens"]]])
    image_id = adapter_named("qwen3-vl").load_processor(str(gqa_model)).image_token_id
    full = dict(inputs, input_ids=ids, attention_mask=torch.ones_like(ids), mm_token_type_ids=(ids == image_id).long())
    model = Qwen3VLForConditionalGeneration.from_pretrained(gqa_model, attn_implementation="eager").eval()
    with torch.no_grad():
        reference = model(**full, output_attentions=True).attentions
    assert generated["seq_len"] == ids.shape[1] == generated["answer_start"] + generated["generation"]["new_tokens"]
    for layer, ref in enumerate(reference):
        stored = np.asarray(fmt.open_layer(generated["folder"], generated, layer), dtype=np.float32)
        np.testing.assert_allclose(stored, ref[0].numpy(), rtol=RTOL, atol=ATOL)


def test_generated_flags_and_answer_text(generated: dict, gqa_model: Path) -> None:
    tokens, start = generated["tokens"], generated["answer_start"]
    assert generated["mode"] == "generate"
    assert [bool(t.get("generated")) for t in tokens] == [i >= start for i in range(len(tokens))]
    tokenizer = AutoTokenizer.from_pretrained(gqa_model)
    assert (
        generated["answer"]
        == tokenizer.decode([t["token_id"] for t in tokens[start:]])
        == "".join(t["text"] for t in tokens[start:])
    )
    assert not any(t.get("thinking") for t in tokens)  # this template opens no think block
    assert fmt.list_samples(generated["folder"].parent)[0]["mode"] == "generate"


def test_thinking_template_marks_the_open_think_block(
    photo: Path, tmp_path: Path, tiny_checkpoint: TinyCheckpoint
) -> None:
    model = tiny_checkpoint(TinyShape(layers=2, heads=2, kv_heads=1, thinking=True, seed=2))
    assert (
        run(*extract_args(photo, tmp_path / "s", model, "--mode", "generate", "--max-new-tokens", 3, prompt="Hi")) == 0
    )
    meta = fmt.read_meta(tmp_path / "s")
    tokens, start = meta["tokens"], meta["answer_start"]
    think = next(i for i, t in enumerate(tokens) if t["text"] == "<think>")
    assert think < start  # the template's generation prompt opened it
    assert [bool(t.get("thinking")) for t in tokens] == [i >= think for i in range(len(tokens))]


def test_closed_think_block_ends_the_thinking_span(gqa_model: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(gqa_model)
    prompt = tokenizer.encode("<|im_start|>user\nthink about <think> this<|im_end|>\n<|im_start|>assistant\n<think>\n")
    answer = tokenizer.encode("a cat</think>\n\nA cat.<|im_end|>")
    tokens = build_tokens(tokenizer, prompt + answer, image_token_id=-1, grid_cols=1)
    mark_answer(tokens, len(prompt))
    thinking = "".join(t["text"] for t in tokens if t.get("thinking"))
    assert thinking == "<think>\na cat</think>"  # the user's literal <think> is not the model's
    assert "".join(t["text"] for t in tokens if t.get("generated")) == "a cat</think>\n\nA cat.<|im_end|>"
