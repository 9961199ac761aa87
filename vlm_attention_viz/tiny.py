"""A seeded tiny random-weight Qwen3-VL checkpoint, laid out like the hub's, built offline.

The demo and the tests both use it: config + safetensors from save_pretrained, a small
byte-level BPE tokenizer trained here (no tokenizer can be downloaded) carrying Qwen's
special tokens, preprocessor_config.json and a Qwen-style chat template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen3VLConfig, Qwen3VLForConditionalGeneration

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
THINK_TOKENS = ["<think>", "</think>"]  # ordinary added tokens in Qwen3, not special

# Enough text for the BPE merges to cover English, code-ish text, CJK and emoji.
TRAINING_TEXT = [
    "Describe this image in detail. What is in the picture? Where is the cat?",
    "The red cat sits on a wooden table near the window, looking at the garden.",
    "user assistant system image text token attention layer head model vision language",
    "请描述这张图片。图片里有什么？猫在桌子上。",
    "この画像を説明してください。😀 🐱 🚀 ✨ café naïve déjà vu",
    "Let me think about it step by step. The answer is: a cat.\n\n  indented\tline",
]

CHAT_TEMPLATE = (
    "{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string %}{{ message['content'] }}"
    "{%- else %}{%- for part in message['content'] %}"
    "{%- if part['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'text' %}{{ part['text'] }}{%- endif %}"
    "{%- endfor %}{%- endif %}{{ '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' + GENERATION_PREFIX }}{%- endif %}"
)


@dataclass(frozen=True)
class TinyShape:
    """The knobs the tests vary: GQA or not, layer count, and whether the template opens a think block."""

    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 16
    hidden: int = 64
    thinking: bool = False
    seed: int = 0


def build_tokenizer() -> PreTrainedTokenizerFast:
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(TRAINING_TEXT, trainer=trainer)
    bpe.add_tokens(THINK_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={},
    )


def build_config(shape: TinyShape, tokenizer: PreTrainedTokenizerFast) -> Qwen3VLConfig:
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in SPECIAL_TOKENS}
    return Qwen3VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": shape.hidden,
            "intermediate_size": 2 * shape.hidden,
            "num_hidden_layers": shape.layers,
            "num_attention_heads": shape.heads,
            "num_key_value_heads": shape.kv_heads,
            "head_dim": shape.head_dim,
            "max_position_embeddings": 32768,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3], "mrope_interleaved": True},
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": shape.hidden,
            "num_position_embeddings": 256,
            "deepstack_visual_indexes": [0],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        eos_token_id=ids["<|im_end|>"],
    )


PREPROCESSOR_CONFIG = {
    "image_processor_type": "Qwen2VLImageProcessorFast",
    "processor_class": "Qwen3VLProcessor",
    "size": {"shortest_edge": 64 * 64, "longest_edge": 512 * 512},
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
}


def build_tiny_checkpoint(folder: Path, shape: TinyShape = TinyShape()) -> Path:
    """Write a complete local checkpoint folder; the same shape always gives the same weights."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    torch.manual_seed(shape.seed)
    model = Qwen3VLForConditionalGeneration(build_config(shape, tokenizer)).eval()
    _answer_in_readable_tokens(model, tokenizer)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    prefix = "'<think>\\n'" if shape.thinking else "''"  # a thinking model's answer opens with its think block
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE.replace("GENERATION_PREFIX", prefix), encoding="utf-8")
    (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=1), encoding="utf-8")
    return folder


def _answer_in_readable_tokens(model: Qwen3VLForConditionalGeneration, tokenizer: PreTrainedTokenizerFast) -> None:
    """Zero the output rows of tokens that are not printable text on their own (stray UTF-8 bytes, control
    characters, special tokens). Their logits become 0 while the readable tokens' random logits are spread
    around 0, so greedy decoding picks readable ones and a demo answer shows words, not replacement marks."""
    unreadable = [i for i in range(len(tokenizer)) if not _readable(tokenizer.decode([i]))]
    with torch.no_grad():
        model.lm_head.weight[unreadable] = 0.0


def _readable(text: str) -> bool:
    return text.strip() != "" and text.isprintable() and "\ufffd" not in text and text not in SPECIAL_TOKENS + THINK_TOKENS
