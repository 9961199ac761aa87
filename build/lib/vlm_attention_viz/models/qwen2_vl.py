"""Qwen2-VL: 14 px patches merged 2 x 2, so 28 px per token (read from the checkpoint's processor).

Hub checkpoints keep the language settings at the top of config.json; transformers moves
them into `text_config`, the sub-config the capture switches.
"""

from __future__ import annotations

from transformers import Qwen2VLForConditionalGeneration, Qwen2VLProcessor

from .base import PatchGridAdapter


class Qwen2VLAdapter(PatchGridAdapter):
    name = "qwen2-vl"
    config_model_types = ("qwen2_vl",)
    model_class = Qwen2VLForConditionalGeneration
    processor_class = Qwen2VLProcessor
    image_placeholder = "<|image_pad|>"
