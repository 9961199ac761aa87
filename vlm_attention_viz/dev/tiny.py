"""Seeded tiny random-weight checkpoints of each family in FAMILIES, laid out like the hub's, built offline.

The demo (Qwen3-VL) and the tests use them: config + safetensors from save_pretrained, a small
byte-level BPE tokenizer trained here (no tokenizer can be downloaded) carrying the family's
special tokens, the family's preprocessor_config.json and a chat template in the family's style.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma4Config,
    Gemma4ForConditionalGeneration,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    InternVLConfig,
    InternVLForConditionalGeneration,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    Mistral3Config,
    Mistral3ForConditionalGeneration,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen3_5Config,
    Qwen3_5ForConditionalGeneration,
    Qwen3_5MoeConfig,
    Qwen3_5MoeForConditionalGeneration,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLMoeConfig,
    Qwen3VLMoeForConditionalGeneration,
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


@dataclass(frozen=True)
class TinyTokens:
    """A family's tokenizer: its special tokens, which are eos and pad, and the named extras its processor reads."""

    special: tuple[str, ...] = tuple(SPECIAL_TOKENS)
    eos: str = "<|im_end|>"
    pad: str = "<|endoftext|>"
    named: tuple[tuple[str, str], ...] = ()  # (attribute, token), e.g. ("image_token", "<image_soft_token>")
    bos: str | None = None


QWEN_TOKENS = TinyTokens()


def build_tokenizer(tokens: TinyTokens = QWEN_TOKENS) -> PreTrainedTokenizerFast:
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=list(tokens.special),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(TRAINING_TEXT, trainer=trainer)
    bpe.add_tokens(THINK_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=tokens.eos,
        pad_token=tokens.pad,
        **({"bos_token": tokens.bos} if tokens.bos else {}),
        extra_special_tokens=dict(tokens.named),
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


def qwen2_text_config(shape: TinyShape, vocab_size: int, ids: dict[str, int]) -> dict[str, object]:
    """A plain Qwen2 language model (InternVL's, LLaVA-OneVision's): 1-D rotary, head_dim as the shape says."""
    return {
        **text_config(shape, vocab_size, ids),
        "model_type": "qwen2",
        "head_dim": shape.head_dim,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
    }


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


# A mixture of experts small enough to run: four experts, two per token.
TINY_EXPERTS = {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32}


def qwen3_vl_moe_config(shape: TinyShape, vocab_size: int, ids: dict[str, int]) -> PreTrainedConfig:
    """Qwen3-VL-MoE: Qwen3-VL's tower and attention, experts in every layer's MLP."""
    dense = qwen3_vl_config(shape, vocab_size, ids)
    text = {**dense.text_config.to_dict(), **TINY_EXPERTS, "tie_word_embeddings": False}
    return Qwen3VLMoeConfig(
        text_config={key: value for key, value in text.items() if key != "model_type"},
        vision_config={key: value for key, value in dense.vision_config.to_dict().items() if key != "model_type"},
        **token_ids(ids),
    )


def qwen3_5_moe_config(shape: TinyShape, vocab_size: int, ids: dict[str, int]) -> PreTrainedConfig:
    """Qwen3.5-MoE: Qwen3.5's hybrid layers, experts and a shared expert in every MLP."""
    dense = qwen3_5_config(shape, vocab_size, ids)
    text = {**dense.text_config.to_dict(), **TINY_EXPERTS, "shared_expert_intermediate_size": 32}
    return Qwen3_5MoeConfig(
        text_config={key: value for key, value in text.items() if key not in ("model_type", "intermediate_size")},
        vision_config={key: value for key, value in dense.vision_config.to_dict().items() if key != "model_type"},
        **token_ids(ids),
    )


def qwen3_5_config(shape: TinyShape, vocab_size: int, ids: dict[str, int]) -> PreTrainedConfig:
    """Qwen3.5: three linear-attention (Gated DeltaNet) layers, then one gated full-attention layer, repeated
    (full_attention_interval 4, the hub's default). The linear layers have twice the attention heads' count of
    value heads, and two query/key heads shared by them (as on the hub)."""
    text = text_config(shape, vocab_size, ids, mrope_interleaved=True)
    return Qwen3_5Config(
        text_config={
            **text,
            "head_dim": shape.head_dim,
            "partial_rotary_factor": 16
            / shape.head_dim,  # 16 dims rotate (mrope_section), a quarter of 64 as on the hub
            "linear_conv_kernel_dim": 4,
            "linear_key_head_dim": 16,
            "linear_value_head_dim": 16,
            "linear_num_key_heads": 2,
            "linear_num_value_heads": 2 * shape.heads,
            "full_attention_interval": 4,
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


GEMMA_TOKENS = TinyTokens(
    special=(
        "<pad>",
        "<eos>",
        "<bos>",
        "<start_of_turn>",
        "<end_of_turn>",
        "<start_of_image>",
        "<end_of_image>",
        "<image_soft_token>",
    ),
    eos="<end_of_turn>",
    pad="<pad>",
    bos="<bos>",
    named=(("boi_token", "<start_of_image>"), ("eoi_token", "<end_of_image>"), ("image_token", "<image_soft_token>")),
)
# Gemma's turns: <start_of_turn>user / model, the image as its processor's placeholder, which it expands.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{%- for message in messages %}"
    "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\\n' }}"
    "{%- if message['content'] is string %}{{ message['content'] }}"
    "{%- else %}{%- for part in message['content'] %}"
    "{%- if part['type'] == 'image' %}{{ 'IMAGE_PLACEHOLDER' }}"
    "{%- elif part['type'] == 'text' %}{{ part['text'] }}{%- endif %}"
    "{%- endfor %}{%- endif %}{{ '<end_of_turn>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<start_of_turn>model\\n' + GENERATION_PREFIX }}{%- endif %}"
)
# The hub checkpoints' geometry: 896 px square, 14 px patches (64 x 64), average-pooled 4 x 4 to 16 x 16 = 256 tokens.
GEMMA3_IMAGE_SIZE, GEMMA3_PATCH, GEMMA3_TOKENS_PER_IMAGE = 896, 14, 256
GEMMA3_PREPROCESSOR = {
    "image_processor_type": "Gemma3ImageProcessor",
    "processor_class": "Gemma3Processor",
    "size": {"height": GEMMA3_IMAGE_SIZE, "width": GEMMA3_IMAGE_SIZE},
    "do_pan_and_scan": False,
    "resample": 2,
    "rescale_factor": 1 / 255,
    **IMAGE_STATS,
}
GEMMA3_PROCESSOR = {"image_seq_length": GEMMA3_TOKENS_PER_IMAGE, "processor_class": "Gemma3Processor"}


def gemma3_config(shape: TinyShape, vocab_size: int, ids: dict[str, int]) -> PreTrainedConfig:
    """Five sliding layers then a global one, as the hub's pattern; a window of 32 tokens, shorter than the
    256-token image, so image rows are cut by the window on the left and see later image tokens on the right.
    query_pre_attn_scalar differs from head_dim, so the family's own scaling is exercised."""
    return Gemma3Config(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": shape.hidden,
            "intermediate_size": 2 * shape.hidden,
            "num_hidden_layers": shape.layers,
            "num_attention_heads": shape.heads,
            "num_key_value_heads": shape.kv_heads,
            "head_dim": shape.head_dim,
            "query_pre_attn_scalar": 24,
            "sliding_window": 32,
            "sliding_window_pattern": 6,
            "max_position_embeddings": 4096,
            "tie_word_embeddings": False,  # its readable-token head is edited alone
            "eos_token_id": ids["<end_of_turn>"],
            "pad_token_id": ids["<pad>"],
            "bos_token_id": ids["<bos>"],
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": GEMMA3_IMAGE_SIZE,
            "patch_size": GEMMA3_PATCH,
            "vision_use_head": False,
        },
        mm_tokens_per_image=GEMMA3_TOKENS_PER_IMAGE,
        boi_token_index=ids["<start_of_image>"],
        eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"],
        eos_token_id=ids["<end_of_turn>"],
        pad_token_id=ids["<pad>"],
        bos_token_id=ids["<bos>"],
        tie_word_embeddings=False,
    )


GEMMA4_TOKENS = TinyTokens(
    special=(
        "<pad>",
        "<eos>",
        "<bos>",
        "<start_of_turn>",
        "<end_of_turn>",
        "<|image>",
        "<image|>",
        "<|image|>",
        "<|audio>",
        "<audio|>",
        "<|audio|>",
    ),
    eos="<end_of_turn>",
    pad="<pad>",
    bos="<bos>",
    named=(
        ("boi_token", "<|image>"),
        ("eoi_token", "<image|>"),
        ("image_token", "<|image|>"),
        ("boa_token", "<|audio>"),  # the processor refuses a tokenizer without its audio tokens
        ("eoa_token", "<audio|>"),
        ("audio_token", "<|audio|>"),
    ),
)
# The hub's geometry: 16 px patches pooled 3 x 3 into one token, the image resized (keeping its aspect) to at
# most max_soft_tokens tokens; 70 is the smallest budget the processor allows.
GEMMA4_PREPROCESSOR = {
    "image_processor_type": "Gemma4ImageProcessor",
    "processor_class": "Gemma4Processor",
    "patch_size": 16,
    "pooling_kernel_size": 3,
    "max_soft_tokens": 70,
    "do_normalize": False,
    "rescale_factor": 1 / 255,
}
GEMMA4_PROCESSOR = {"image_seq_length": 70, "processor_class": "Gemma4Processor"}


def gemma4_config(shape: TinyShape, vocab_size: int, ids: dict[str, int]) -> PreTrainedConfig:
    """Sliding and global layers (the last one global), the last two reusing the keys and values of the last
    earlier layer of their type (num_kv_shared_layers), global layers with their own head size and one key head
    whose keys are also its values (attention_k_eq_v), scaling 1 (the family's), a 32-token window, and image
    tokens bidirectional on sliding layers (use_bidirectional_attention="vision")."""
    return Gemma4Config(
        text_config={
            "vocab_size": vocab_size,
            "vocab_size_per_layer_input": vocab_size,
            "hidden_size": shape.hidden,
            "hidden_size_per_layer_input": 8,
            "intermediate_size": 2 * shape.hidden,
            "num_hidden_layers": shape.layers,
            "num_attention_heads": shape.heads,
            "num_key_value_heads": shape.kv_heads,
            "head_dim": shape.head_dim,
            "global_head_dim": 2 * shape.head_dim,
            "num_global_key_value_heads": 1,
            "attention_k_eq_v": True,
            "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "sliding_attention"]
            + ["sliding_attention", "full_attention"] * ((shape.layers - 4) // 2),
            "num_kv_shared_layers": 2,
            "sliding_window": 32,
            "use_bidirectional_attention": "vision",
            "max_position_embeddings": 4096,
            "tie_word_embeddings": False,
            "eos_token_id": ids["<end_of_turn>"],
            "pad_token_id": ids["<pad>"],
            "bos_token_id": ids["<bos>"],
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "patch_size": 16,
            "pooling_kernel_size": 3,
            "position_embedding_size": 1024,
        },
        audio_config=None,
        boi_token_id=ids["<|image>"],
        eoi_token_id=ids["<image|>"],
        image_token_id=ids["<|image|>"],
        tie_word_embeddings=False,
    )


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


SMOLVLM_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": SMOLVLM_TILE,
    "patch_size": SMOLVLM_PATCH,
}


def smolvlm_config(
    shape: TinyShape, vocab_size: int, ids: dict[str, int], config_class: type[PreTrainedConfig] = SmolVLMConfig
) -> PreTrainedConfig:
    return config_class(
        text_config=llama_text_config(shape, vocab_size, ids),
        vision_config=SMOLVLM_VISION,
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


def idefics3_config(shape: TinyShape, vocab_size: int, ids: dict[str, int]) -> PreTrainedConfig:
    """Idefics3, SmolVLM's predecessor: the same layout and geometry."""
    return smolvlm_config(shape, vocab_size, ids, Idefics3Config)


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
        text_config=qwen2_text_config(shape, vocab_size, ids),
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


# LLaVA-OneVision's geometry at a small scale: SigLIP crops of 32 px, 8 px patches (4 x 4 tokens per crop; the
# hub's: 384 px, 14 px patches, 27 x 27), anyres canvases of up to 6 x 6 crops, at most 9 crops' worth of
# tokens after unpadding ("anyres_max_9"), and an image_newline after each row of the stitched grid.
LLAVA_OV_CROP, LLAVA_OV_PATCH = 32, 8
LLAVA_OV_TOKENS = ("<image>", "<video>")
LLAVA_OV_CHAT_TEMPLATE = CHAT_TEMPLATE.replace("<|vision_start|><|image_pad|><|vision_end|>", "<image>\\n")


def llava_onevision_config(shape: TinyShape, vocab_size: int, ids: dict[str, int]) -> PreTrainedConfig:
    return LlavaOnevisionConfig(
        text_config=qwen2_text_config(shape, vocab_size, ids),
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": LLAVA_OV_CROP,
            "patch_size": LLAVA_OV_PATCH,
            "vision_use_head": False,
        },
        image_token_index=ids["<image>"],
        video_token_index=ids["<video>"],
        image_grid_pinpoints=LLAVA_OV_PINPOINTS,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        vision_aspect_ratio="anyres_max_9",
    )


LLAVA_OV_PINPOINTS = [[r * LLAVA_OV_CROP, c * LLAVA_OV_CROP] for r in range(1, 7) for c in range(1, 7)]
LLAVA_OV_PREPROCESSOR = {
    "image_processor_type": "LlavaOnevisionImageProcessor",
    "processor_class": "LlavaOnevisionProcessor",
    "size": {"height": LLAVA_OV_CROP, "width": LLAVA_OV_CROP},
    "image_grid_pinpoints": LLAVA_OV_PINPOINTS,
    "do_pad": True,
    **IMAGE_STATS,
}
LLAVA_OV_PROCESSOR = {
    "processor_class": "LlavaOnevisionProcessor",
    "num_image_tokens": (LLAVA_OV_CROP // LLAVA_OV_PATCH) ** 2,
    "vision_feature_select_strategy": "full",
    "vision_aspect_ratio": "anyres_max_9",
}


# LLaVA-NeXT's geometry at a small scale: CLIP crops of 32 px with a CLS token (dropped: "default" strategy),
# 8 px patches (4 x 4 per crop; the hub's: 336 px, 14 px, 24 x 24), the hub's five canvases scaled down.
LLAVA_NEXT_PINPOINTS = [[32, 64], [64, 32], [64, 64], [96, 32], [32, 96]]


def llava_next_config(shape: TinyShape, vocab_size: int, ids: dict[str, int]) -> PreTrainedConfig:
    return LlavaNextConfig(
        text_config=llama_text_config(shape, vocab_size, ids, eos="<|im_end|>"),
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": LLAVA_OV_CROP,
            "patch_size": LLAVA_OV_PATCH,
            "projection_dim": 32,
        },
        image_token_index=ids["<image>"],
        image_grid_pinpoints=LLAVA_NEXT_PINPOINTS,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )


LLAVA_NEXT_PREPROCESSOR = {
    "image_processor_type": "LlavaNextImageProcessor",
    "processor_class": "LlavaNextProcessor",
    "size": {"shortest_edge": LLAVA_OV_CROP},
    "crop_size": {"height": LLAVA_OV_CROP, "width": LLAVA_OV_CROP},
    "image_grid_pinpoints": LLAVA_NEXT_PINPOINTS,
    **IMAGE_STATS,
}
LLAVA_NEXT_PROCESSOR = {
    "processor_class": "LlavaNextProcessor",
    "patch_size": LLAVA_OV_PATCH,
    "vision_feature_select_strategy": "default",
    "num_additional_image_tokens": 1,
}


@dataclass(frozen=True)
class TinyFamily:
    model_class: type[PreTrainedModel]
    config: Callable[[TinyShape, int, dict[str, int]], PreTrainedConfig]  # (shape, vocab size, special token ids)
    preprocessor: dict[str, object]
    tokens: TinyTokens = QWEN_TOKENS
    chat_template: str = CHAT_TEMPLATE  # GENERATION_PREFIX stands for the think block a thinking model opens with
    processor: dict[str, object] | None = None  # processor_config.json, for processors with settings of their own


FAMILIES = {
    "qwen3-vl": TinyFamily(Qwen3VLForConditionalGeneration, qwen3_vl_config, QWEN3_VL_PREPROCESSOR),
    "qwen2.5-vl": TinyFamily(Qwen2_5_VLForConditionalGeneration, qwen2_5_vl_config, QWEN2_5_VL_PREPROCESSOR),
    "qwen2-vl": TinyFamily(Qwen2VLForConditionalGeneration, qwen2_vl_config, QWEN2_VL_PREPROCESSOR),
    "qwen3.5": TinyFamily(Qwen3_5ForConditionalGeneration, qwen3_5_config, QWEN3_VL_PREPROCESSOR),
    "qwen3.5-moe": TinyFamily(Qwen3_5MoeForConditionalGeneration, qwen3_5_moe_config, QWEN3_VL_PREPROCESSOR),
    "qwen3-vl-moe": TinyFamily(Qwen3VLMoeForConditionalGeneration, qwen3_vl_moe_config, QWEN3_VL_PREPROCESSOR),
    "gemma3": TinyFamily(
        Gemma3ForConditionalGeneration,
        gemma3_config,
        GEMMA3_PREPROCESSOR,
        GEMMA_TOKENS,
        GEMMA_CHAT_TEMPLATE.replace("IMAGE_PLACEHOLDER", "<start_of_image>"),
        GEMMA3_PROCESSOR,
    ),
    "gemma4": TinyFamily(
        Gemma4ForConditionalGeneration,
        gemma4_config,
        GEMMA4_PREPROCESSOR,
        GEMMA4_TOKENS,
        GEMMA_CHAT_TEMPLATE.replace("IMAGE_PLACEHOLDER", "<|image|>"),
        GEMMA4_PROCESSOR,
    ),
    "smolvlm": TinyFamily(
        SmolVLMForConditionalGeneration,
        smolvlm_config,
        SMOLVLM_PREPROCESSOR,
        TinyTokens(special=(*SPECIAL_TOKENS, *SMOLVLM_TOKENS)),
        SMOLVLM_CHAT_TEMPLATE,
        SMOLVLM_PROCESSOR,
    ),
    "idefics3": TinyFamily(
        Idefics3ForConditionalGeneration,
        idefics3_config,
        {
            **SMOLVLM_PREPROCESSOR,
            "image_processor_type": "Idefics3ImageProcessor",
            "processor_class": "Idefics3Processor",
        },
        TinyTokens(special=(*SPECIAL_TOKENS, *SMOLVLM_TOKENS)),
        SMOLVLM_CHAT_TEMPLATE,
        {**SMOLVLM_PROCESSOR, "processor_class": "Idefics3Processor"},
    ),
    "mistral3": TinyFamily(
        Mistral3ForConditionalGeneration,
        mistral3_config,
        MISTRAL3_PREPROCESSOR,
        TinyTokens(special=(*SPECIAL_TOKENS, *MISTRAL3_TOKENS)),
        MISTRAL3_CHAT_TEMPLATE,
        MISTRAL3_PROCESSOR,
    ),
    "internvl": TinyFamily(
        InternVLForConditionalGeneration,
        internvl_config,
        INTERNVL_PREPROCESSOR,
        TinyTokens(special=(*SPECIAL_TOKENS, *INTERNVL_NAMED.values()), named=tuple(INTERNVL_NAMED.items())),
        INTERNVL_CHAT_TEMPLATE,
        INTERNVL_PROCESSOR,
    ),
    "llava-onevision": TinyFamily(
        LlavaOnevisionForConditionalGeneration,
        llava_onevision_config,
        LLAVA_OV_PREPROCESSOR,
        TinyTokens(special=(*SPECIAL_TOKENS, *LLAVA_OV_TOKENS), named=(("image_token", "<image>"),)),
        LLAVA_OV_CHAT_TEMPLATE,
        LLAVA_OV_PROCESSOR,
    ),
    "llava-next": TinyFamily(
        LlavaNextForConditionalGeneration,
        llava_next_config,
        LLAVA_NEXT_PREPROCESSOR,
        TinyTokens(special=(*SPECIAL_TOKENS, *LLAVA_OV_TOKENS), named=(("image_token", "<image>"),)),
        LLAVA_OV_CHAT_TEMPLATE,
        LLAVA_NEXT_PROCESSOR,
    ),
}


def build_tiny_checkpoint(folder: Path, shape: TinyShape = TinyShape()) -> Path:
    """Write a complete local checkpoint folder; the same shape always gives the same weights."""
    folder = Path(folder)
    family = FAMILIES[shape.family]
    tokenizer = write_processor_files(folder, shape)
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in family.tokens.special}
    torch.manual_seed(shape.seed)
    model = family.model_class(family.config(shape, len(tokenizer), ids)).eval()
    _answer_in_readable_tokens(model, tokenizer, family.tokens.special)
    model.save_pretrained(folder)
    return folder


def write_processor_files(
    folder: Path,
    shape: TinyShape = TinyShape(),
    preprocessor: dict[str, object] | None = None,
    processor: dict[str, object] | None = None,
) -> PreTrainedTokenizerFast:
    """The processor half of a checkpoint: tokenizer, chat template and the family's real image geometry, or the
    preprocessor_config.json and processor_config.json given (a hub checkpoint's geometry, say)."""
    folder.mkdir(parents=True, exist_ok=True)
    family = FAMILIES[shape.family]
    tokenizer = build_tokenizer(family.tokens)
    tokenizer.save_pretrained(folder)
    prefix = "'<think>\\n'" if shape.thinking else "''"  # a thinking model's answer opens with its think block
    template = family.chat_template.replace("GENERATION_PREFIX", prefix)
    (folder / "chat_template.jinja").write_text(template, encoding="utf-8")
    preprocessor = preprocessor or family.preprocessor
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=1), encoding="utf-8")
    processor = processor or family.processor
    if processor:
        (folder / "processor_config.json").write_text(json.dumps(processor, indent=1), encoding="utf-8")
    return tokenizer


def _answer_in_readable_tokens(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, special: tuple[str, ...]
) -> None:
    """Zero the output rows of tokens that are not printable text on their own (stray UTF-8 bytes, control
    characters, special tokens). Their logits become 0 while the readable tokens' random logits are spread
    around 0, so greedy decoding picks readable ones and a demo answer shows words, not replacement marks."""
    unreadable = [i for i in range(len(tokenizer)) if not _readable(tokenizer.decode([i]), special)]
    with torch.no_grad():
        model.lm_head.weight[unreadable] = 0.0


def _readable(text: str, special: tuple[str, ...]) -> bool:
    return text.strip() != "" and text.isprintable() and "\ufffd" not in text and text not in (*special, *THINK_TOKENS)
