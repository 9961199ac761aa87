"""Token texts: each token's own piece, concatenating back to the decoded text, CJK and emoji included."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.tokens import IMAGE_TEXT, token_texts

from conftest import extract_args, run

PROMPTS = [
    "Describe this image in detail.",
    "请描述这张图片。猫在哪里？",
    "Emoji 😀🐱🚀 and café\n\n  indented\ttab",
    "ÿ€𝄞 rare characters ✨",
]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_texts_concatenate_back_to_the_decoded_sequence(prompt: str, gqa_model: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(gqa_model)
    image_id = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    ids = tokenizer.encode(
        f"<|im_start|>user\n<|vision_start|><|image_pad|><|image_pad|><|vision_end|>{prompt}<|im_end|>\n"
    )
    texts = token_texts(tokenizer, ids, image_id)
    assert len(texts) == len(ids)
    kept = [i for i, token_id in enumerate(ids) if token_id != image_id]
    assert "".join(texts[i] for i in kept) == tokenizer.decode([ids[i] for i in kept], skip_special_tokens=False)
    assert prompt in "".join(texts)
    assert [texts[i] for i, token_id in enumerate(ids) if token_id == image_id] == [IMAGE_TEXT, IMAGE_TEXT]


def test_split_character_goes_to_the_completing_token(gqa_model: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(gqa_model)
    ids = tokenizer.encode("𝄞")  # four UTF-8 bytes, not merged by the tiny BPE
    texts = token_texts(tokenizer, ids, image_token_id=-1)
    assert len(ids) > 1 and texts == [""] * (len(ids) - 1) + ["𝄞"]


def test_sample_tokens_keep_special_spelling_and_prompt_text(gqa_model: Path, photo: Path, tmp_path: Path) -> None:
    prompt = "猫は 😀 where?"
    assert run(*extract_args(photo, tmp_path / "s", gqa_model, prompt=prompt)) == 0
    tokens = fmt.read_meta(tmp_path / "s")["tokens"]
    text = "".join(t["text"] for t in tokens if t["type"] != "image")
    assert text == f"<|im_start|>user\n<|vision_start|><|vision_end|>{prompt}<|im_end|>\n<|im_start|>assistant\n"
    specials = {t["text"] for t in tokens if t["type"] == "special"}
    assert specials == {"<|im_start|>", "<|vision_start|>", "<|vision_end|>", "<|im_end|>"}
