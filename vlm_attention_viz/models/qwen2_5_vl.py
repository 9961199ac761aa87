"""Qwen2.5-VL: 14 px patches merged 2 x 2, so 28 px per token (read from the checkpoint's processor).

Hub checkpoints keep the language settings at the top of config.json; transformers moves
them into `text_config`, the sub-config the capture switches.
"""

from __future__ import annotations

from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor

from .base import PatchGridAdapter


class Qwen2_5VLAdapter(PatchGridAdapter):
    name = "qwen2.5-vl"
    config_model_types = ("qwen2_5_vl",)
    model_class = Qwen2_5_VLForConditionalGeneration
    processor_class = Qwen2_5_VLProcessor
