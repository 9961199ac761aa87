"""Qwen3-VL-MoE (30B-A3B, 235B-A22B): Qwen3-VL's image geometry and attention, experts in the MLPs only."""

from __future__ import annotations

from transformers import Qwen3VLMoeForConditionalGeneration, Qwen3VLProcessor

from .base import PatchGridAdapter


class Qwen3VLMoeAdapter(PatchGridAdapter):
    name = "qwen3-vl-moe"
    config_model_types = ("qwen3_vl_moe",)
    model_class = Qwen3VLMoeForConditionalGeneration
    processor_class = Qwen3VLProcessor
    image_placeholder = "<|image_pad|>"
