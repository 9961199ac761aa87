"""Qwen3-VL: 16 px patches merged 2 x 2, so 32 px per token (read from the checkpoint's processor)."""

from __future__ import annotations

from transformers import Qwen3VLForConditionalGeneration, Qwen3VLProcessor

from .base import PatchGridAdapter


class Qwen3VLAdapter(PatchGridAdapter):
    name = "qwen3-vl"
    config_model_types = ("qwen3_vl",)
    model_class = Qwen3VLForConditionalGeneration
    processor_class = Qwen3VLProcessor
    image_placeholder = "<|image_pad|>"
