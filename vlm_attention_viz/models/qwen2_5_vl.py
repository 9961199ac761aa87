"""Qwen2.5-VL: 14 px patches merged 2 x 2, so 28 px per token (read from the checkpoint's processor).

Hub checkpoints keep the language settings at the top of config.json; transformers moves
them into `text_config`, the sub-config the capture switches.
"""

from __future__ import annotations

from typing import Any, NoReturn

from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor

from ..errors import UserError
from .base import PatchGridAdapter, PreparedInputs


class Qwen2_5VLAdapter(PatchGridAdapter):
    name = "qwen2.5-vl"
    config_model_types = ("qwen2_5_vl",)
    model_class = Qwen2_5_VLForConditionalGeneration
    processor_class = Qwen2_5_VLProcessor
    image_placeholder = "<|image_pad|>"

    def vision_geometry(self, processor: Any, prepared: PreparedInputs) -> NoReturn:
        # Its tower regroups the patches into windows (window_index) and most blocks attend within a
        # window only; the stored matrices would need that order undone and zeros outside the windows.
        raise UserError("--vision-layers is not supported for qwen2.5-vl yet: its vision tower attends within windows of reordered patches")
