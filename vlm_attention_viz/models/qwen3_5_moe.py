"""Qwen3.5-MoE: Qwen3.5's hybrid attention (gated full-attention and Gated DeltaNet layers), experts in the MLPs."""

from __future__ import annotations

from transformers import Qwen3_5MoeForConditionalGeneration

from .qwen3_5 import Qwen3_5Adapter


class Qwen3_5MoeAdapter(Qwen3_5Adapter):
    name = "qwen3.5-moe"
    config_model_types = ("qwen3_5_moe",)
    model_class = Qwen3_5MoeForConditionalGeneration
