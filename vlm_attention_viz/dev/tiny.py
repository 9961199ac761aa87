"""Seeded tiny random-weight checkpoints (Qwen3-VL, Qwen2.5-VL, Qwen2-VL, SmolVLM, Mistral 3), laid out like the
hub's, built offline.

The demo (Qwen3-VL) and the tests use them: config + safetensors from save_pretrained, a small
byte-level BPE tokenizer trained here (no tokenizer can be downloaded) carrying Qwen's
special tokens, the family's preprocessor_config.json and a Qwen-style chat template.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    InternVLConfig,
    InternVLForConditionalGeneration,
    Mistral3Config,
    Mistral3ForConditionalGeneration,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    SmolVLMConfig,
    SmolVLMForConditionalGeneration,
)

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
    """The knobs the tests vary: the model family, GQA or not, layer count, and whether the template opens a think block."""

    family: str = "qwen3-vl"  # a key of FAMILIES
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 16  # Qwen2-VL and Qwen2.5-VL derive it from hidden / heads, so there it must match
    hidden: int = 64
    thinking: bool = False
    seed: int = 0


def build_tokenizer(
    extra_special: tuple[str, ...] = (), named: dict[str, str] | None = None
) -> PreTrainedTokenizerFast:
    """named: special tokens the processor reads by attribute name (InternVL's `start_image_token`, ...)."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=SPECIAL_TOKENS + list(extra_special),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(TRAINING_TEXT, trainer=trainer)
    bpe.add_tokens(THINK_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=named or {},
    )


def text_config(shape: TinyShape, vocab_size: int, ids: dict[str, int], **rope: object) -> dict[str, object]:
    """The language model every family shares; mrope_section [2, 3, 3] fills a head_dim of 16 (half of it rotates)."""
    return {
        "vocab_size": vocab_size,
        "hidden_size": shape.hidden,
        "intermediate_size": 2 * shape.hidden,
        "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.heads,
        "num_key_value_heads": shape.kv_heads,
        "max_position_embeddings": 32768,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3], **rope},
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }


def hub_qwen2_text_config(shape: TinyShape, vocab_size: int, ids: dict[str, int]) -> dict[str, object]:
    """Qwen2-VL's and Qwen2.5-VL's language model: head_dim is hidden / heads there, and bos is set as on the hub."""
    if shape.hidden != shape.heads * shape.head_dim:
        raise ValueError(
            f"{shape.family}: hidden ({shape.hidden}) must be heads x head_dim ({shape.heads} x {shape.head_dim})"
        )
    return {**text_config(shape, vocab_size, ids), "bos_token_id": ids["<|endoftext|>"]}


def token_ids(ids: dict[str, int]) -> dict[str, int]:
    return {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
    }


def qwen3_vl_config(shape: TinyShape, vocab_size: int, ids: dict[str, int]) -> PreTrainedConfig:
    return Qwen3VLConfig(
        text_config={**text_config(shape, vocab_size, ids, mrope_interleaved=True), "head_dim": shape.head_dim},
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
        eos_token_id=ids["<|im_end|>"],
        **token_ids(ids),
    )


def qwen2_5_vl_config(shape: TinyShape, vocab_size: int, ids: dict[str, int]) -> PreTrainedConfig:
    return Qwen2_5_VLConfig(
        text_config=hub_qwen2_text_config(shape, vocab_size, ids),
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": shape.hidden,
            "window_size": 56,  # 2 x 2 tokens per window, so block 0's windowed attention is exercised
            "fullatt_block_indexes": [1],
        },
        **token_ids(ids),
    )


def qwen2_vl_config(shape: TinyShape, vocab_size: int, ids: dict[str, int]) -> PreTrainedConfig:
    return Qwen2VLConfig(
        text_config=hub_qwen2_text_config(shape, vocab_size, ids),
        vision_config={
            "depth": 2,
            "embed_dim": 32,
            "mlp_ratio": 2,
            "num_heads": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "hidden_size": shape.hidden,  # Qwen2-VL's name for the merger's output width
        },
        **token_ids(ids),
    )


IMAGE_STATS = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
# Each family's preprocessor_config.json; the three spell the pixel bounds in the three ways checkpoints do, so each is tested.
QWEN3_VL_PREPROCESSOR = {
    "image_processor_type": "Qwen2VLImageProcessorFast",
    "processor_class": "Qwen3VLProcessor",
    "size": {"shortest_edge": 64 * 64, "longest_edge": 512 * 512},
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    **IMAGE_STATS,
}
QWEN2_5_VL_PREPROCESSOR = {
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2_5_VLProcessor",
    "min_pixels": 56 * 56,
    "max_pixels": 512 * 512,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    **IMAGE_STATS,
}
QWEN2_VL_PREPROCESSOR = {
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2VLProcessor",
    "size": {"min_pixels": 56 * 56, "max_pixels": 512 * 512},  # kept as is by the image processor
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    **IMAGE_STATS,
}


# SmolVLM's geometry at a small scale: tiles of 64 px cut from the image resized to a longest edge of 192 px
# (3 tiles; the hub's 256M model: 512 px tiles, 2048 px), 8 px patches, pixel shuffle 2: 4 x 4 tokens per tile.
SMOLVLM_TILE, SMOLVLM_PATCH, SMOLVLM_SHUFFLE = 64, 8, 2
SMOLVLM_TILE_LABELS = tuple(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7))
SMOLVLM_TOKENS = ("<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>", *SMOLVLM_TILE_LABELS)
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' + GENERATION_PREFIX }}{% endif %}"
)


def llama_text_config(
    shape: TinyShape, vocab_size: int, ids: dict[str, int], eos: str = "<end_of_utterance>"
) -> dict[str, object]:
    return {
        "model_type": "llama",
        "vocab_size": vocab_size,
        "hidden_size": shape.hidden,
        "intermediate_size": 2 * shape.hidden,
        "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.heads,
        "num_key_value_heads": shape.kv_heads,
        "head_dim": shape.head_dim,
        "max_position_embeddings": 4096,
        "eos_token_id": ids[eos],
        "pad_token_id": ids["<|endoftext|>"],
    }


def smolvlm_config(shape: TinyShape, vocab_size: int, ids: dict[str, int]) -> PreTrainedConfig:
    return SmolVLMConfig(
        text_config=llama_text_config(shape, vocab_size, ids),
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": SMOLVLM_TILE,
            "patch_size": SMOLVLM_PATCH,
        },
        scale_factor=SMOLVLM_SHUFFLE,
        image_token_id=ids["<image>"],
        pad_token_id=ids["<|endoftext|>"],
    )


SMOLVLM_PREPROCESSOR = {
    "image_processor_type": "SmolVLMImageProcessor",
    "processor_class": "SmolVLMProcessor",
    "do_image_splitting": True,
    "size": {"longest_edge": 3 * SMOLVLM_TILE},
    "max_image_size": {"longest_edge": SMOLVLM_TILE},
    "do_pad": True,
    **IMAGE_STATS,
}
SMOLVLM_PROCESSOR = {
    "processor_class": "SmolVLMProcessor",
    "image_seq_len": (SMOLVLM_TILE // SMOLVLM_PATCH // SMOLVLM_SHUFFLE) ** 2,
}


# Mistral 3's geometry at a small scale: 8 px patches merged 2 x 2, so one LLM token per 16 px, in an image
# resized to fit 128 px (the hub's: 14 px patches, 28 px per token, 1540 px).
MISTRAL3_PATCH, MISTRAL3_MERGE, MISTRAL3_LONGEST = 8, 2, 128
MISTRAL3_TOKENS = ("[IMG]", "[IMG_BREAK]", "[IMG_END]", "[INST]", "[/INST]")
MISTRAL3_CHAT_TEMPLATE = (
    "{{ '<|endoftext|>' }}{%- for message in messages %}{{ '[INST]' }}"
    "{%- for part in message['content'] %}{%- if part['type'] == 'image' %}{{ '[IMG]' }}"
    "{%- elif part['type'] == 'text' %}{{ part['text'] }}{%- endif %}{%- endfor %}{{ '[/INST]' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ GENERATION_PREFIX }}{%- endif %}"
)


def mistral3_config(shape: TinyShape, vocab_size: int, ids: dict[str, int]) -> PreTrainedConfig:
    text = llama_text_config(shape, vocab_size, ids, eos="<|im_end|>")
    return Mistral3Config(
        text_config={**text, "model_type": "mistral", "sliding_window": None},
        vision_config={
            "model_type": "pixtral",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "head_dim": 16,
            "image_size": MISTRAL3_LONGEST,
            "patch_size": MISTRAL3_PATCH,
        },
        image_token_index=ids["[IMG]"],
        spatial_merge_size=MISTRAL3_MERGE,
        vision_feature_layer=-1,
        multimodal_projector_bias=False,
    )


MISTRAL3_PREPROCESSOR = {
    "image_processor_type": "PixtralImageProcessor",
    "processor_class": "PixtralProcessor",
    "size": {"longest_edge": MISTRAL3_LONGEST},
    "patch_size": MISTRAL3_PATCH,
    **IMAGE_STATS,
}
MISTRAL3_PROCESSOR = {
    "processor_class": "PixtralProcessor",
    "patch_size": MISTRAL3_PATCH,
    "spatial_merge_size": MISTRAL3_MERGE,
    "image_token": "[IMG]",
    "image_break_token": "[IMG_BREAK]",
    "image_end_token": "[IMG_END]",
}


# InternVL's geometry at a small scale: tiles of 64 px (up to 6, chosen by aspect ratio, plus a thumbnail), 8 px
# patches, pixel shuffle 0.5: 4 x 4 tokens per tile (the hub's 3.5: 448 px tiles, 14 px patches, 16 x 16 tokens).
INTERNVL_TILE, INTERNVL_PATCH, INTERNVL_MAX_TILES = 64, 8, 6
INTERNVL_NAMED = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}
INTERNVL_CHAT_TEMPLATE = CHAT_TEMPLATE.replace("<|vision_start|><|image_pad|><|vision_end|>", "<IMG_CONTEXT>\\n")


def internvl_config(shape: TinyShape, vocab_size: int, ids: dict[str, int]) -> PreTrainedConfig:
    return InternVLConfig(
        text_config={
            **text_config(shape, vocab_size, ids),
            "model_type": "qwen2",
            "head_dim": shape.head_dim,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": [INTERNVL_TILE, INTERNVL_TILE],
            "patch_size": [INTERNVL_PATCH, INTERNVL_PATCH],
        },
        image_token_id=ids["<IMG_CONTEXT>"],
        downsample_ratio=0.5,
        vision_feature_layer=-1,
    )


INTERNVL_PREPROCESSOR = {
    "image_processor_type": "GotOcr2ImageProcessor",
    "processor_class": "InternVLProcessor",
    "size": {"height": INTERNVL_TILE, "width": INTERNVL_TILE},
    "crop_to_patches": True,
    "min_patches": 1,
    "max_patches": INTERNVL_MAX_TILES,
    **IMAGE_STATS,
}
INTERNVL_PROCESSOR = {
    "processor_class": "InternVLProcessor",
    "image_seq_length": (INTERNVL_TILE // INTERNVL_PATCH // 2) ** 2,
}


@dataclass(frozen=True)
class TinyFamily:
    model_class: type[PreTrainedModel]
    config: Callable[[TinyShape, int, dict[str, int]], PreTrainedConfig]
    preprocessor: dict[str, object]
    chat_template: str = CHAT_TEMPLATE
    special_tokens: tuple[str, ...] = ()  # beyond Qwen's, which every tiny tokenizer carries
    processor: dict[str, object] | None = None  # processor_config.json, for processors with settings of their own
    named_tokens: dict[str, str] | None = None  # build_tokenizer's `named`


FAMILIES = {
    "qwen3-vl": TinyFamily(Qwen3VLForConditionalGeneration, qwen3_vl_config, QWEN3_VL_PREPROCESSOR),
    "qwen2.5-vl": TinyFamily(Qwen2_5_VLForConditionalGeneration, qwen2_5_vl_config, QWEN2_5_VL_PREPROCESSOR),
    "qwen2-vl": TinyFamily(Qwen2VLForConditionalGeneration, qwen2_vl_config, QWEN2_VL_PREPROCESSOR),
    "smolvlm": TinyFamily(
        SmolVLMForConditionalGeneration,
        smolvlm_config,
        SMOLVLM_PREPROCESSOR,
        SMOLVLM_CHAT_TEMPLATE,
        SMOLVLM_TOKENS,
        SMOLVLM_PROCESSOR,
    ),
    "mistral3": TinyFamily(
        Mistral3ForConditionalGeneration,
        mistral3_config,
        MISTRAL3_PREPROCESSOR,
        MISTRAL3_CHAT_TEMPLATE,
        MISTRAL3_TOKENS,
        MISTRAL3_PROCESSOR,
    ),
    "internvl": TinyFamily(
        InternVLForConditionalGeneration,
        internvl_config,
        INTERNVL_PREPROCESSOR,
        INTERNVL_CHAT_TEMPLATE,
        tuple(INTERNVL_NAMED.values()),
        INTERNVL_PROCESSOR,
        INTERNVL_NAMED,
    ),
}


def build_tiny_checkpoint(folder: Path, shape: TinyShape = TinyShape()) -> Path:
    """Write a complete local checkpoint folder; the same shape always gives the same weights."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    family = FAMILIES[shape.family]
    tokenizer = build_tokenizer(family.special_tokens, family.named_tokens)
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in SPECIAL_TOKENS + list(family.special_tokens)}
    torch.manual_seed(shape.seed)
    model = family.model_class(family.config(shape, len(tokenizer), ids)).eval()
    _answer_in_readable_tokens(model, tokenizer)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    prefix = "'<think>\\n'" if shape.thinking else "''"  # a thinking model's answer opens with its think block
    template = family.chat_template.replace("GENERATION_PREFIX", prefix)
    (folder / "chat_template.jinja").write_text(template, encoding="utf-8")
    (folder / "preprocessor_config.json").write_text(json.dumps(family.preprocessor, indent=1), encoding="utf-8")
    if family.processor is not None:
        (folder / "processor_config.json").write_text(json.dumps(family.processor, indent=1), encoding="utf-8")
    return folder


def _answer_in_readable_tokens(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast) -> None:
    """Zero the output rows of tokens that are not printable text on their own (stray UTF-8 bytes, control
    characters, special tokens). Their logits become 0 while the readable tokens' random logits are spread
    around 0, so greedy decoding picks readable ones and a demo answer shows words, not replacement marks."""
    unreadable = [i for i in range(len(tokenizer)) if not _readable(tokenizer.decode([i]))]
    with torch.no_grad():
        model.lm_head.weight[unreadable] = 0.0


def _readable(text: str) -> bool:
    return (
        text.strip() != "" and text.isprintable() and "\ufffd" not in text and text not in SPECIAL_TOKENS + THINK_TOKENS
    )
