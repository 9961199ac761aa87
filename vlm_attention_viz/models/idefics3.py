"""Idefics3, SmolVLM's predecessor: the same tiles, global view and prompt layout (smolvlm.py); its processor
has no video part, so AutoProcessor builds it without torchvision."""

from __future__ import annotations

from typing import Any

from transformers import Idefics3ForConditionalGeneration

from .base import auto_processor
from .smolvlm import SmolVLMAdapter


class Idefics3Adapter(SmolVLMAdapter):
    name = "idefics3"
    config_model_types = ("idefics3",)
    model_class = Idefics3ForConditionalGeneration

    def load_processor(self, source: str) -> Any:
        return auto_processor(source)
