"""Qwen3-VL: what differs from the shared pipeline."""

from __future__ import annotations

import json
from typing import Any

from PIL import Image
from transformers import AutoProcessor, AutoTokenizer, Qwen3VLForConditionalGeneration, Qwen3VLProcessor
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.utils import cached_file, is_torchvision_available

from ..errors import UserError
from .base import ModelAdapter, PreparedInputs


class ImageTextProcessor(Qwen3VLProcessor):
    """Qwen3VLProcessor without its video half, whose base class needs torchvision.

    ProcessorMixin takes its parts from this __init__'s signature, so the video
    processor the parent passes along is dropped.
    """

    def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: str | None = None, **kwargs: Any) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class Qwen3VLAdapter(ModelAdapter):
    name = "qwen3-vl"
    config_model_types = ("qwen3_vl",)
    model_class = Qwen3VLForConditionalGeneration
    image_placeholder = "<|image_pad|>"

    def load_processor(self, source: str) -> Any:
        if is_torchvision_available():
            return AutoProcessor.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
        image_processor = Qwen2VLImageProcessorPil.from_pretrained(source)
        return ImageTextProcessor(image_processor, tokenizer, chat_template=_chat_template(source, tokenizer))

    def prepare(self, processor: Any, image: Image.Image, prompt: str, max_pixels: int | None) -> PreparedInputs:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        image_processor = processor.image_processor
        size = dict(image_processor.size)
        if max_pixels is not None:
            size = {"shortest_edge": min(size["shortest_edge"], max_pixels), "longest_edge": max_pixels}
        inputs = processor(text=[text], images=[image], size=size, return_tensors="pt")
        _, patch_rows, patch_cols = (int(v) for v in inputs["image_grid_thw"][0])
        merge, patch = image_processor.merge_size, image_processor.patch_size
        return PreparedInputs(
            model_inputs=dict(inputs),
            image_token_id=processor.image_token_id,
            grid_rows=patch_rows // merge,
            grid_cols=patch_cols // merge,
            image_size=(patch_cols * patch, patch_rows * patch),
        )


def _chat_template(source: str, tokenizer: Any) -> str:
    """The processor's chat template: chat_template.jinja, else chat_template.json, else the tokenizer's."""
    jinja = cached_file(source, "chat_template.jinja", _raise_exceptions_for_missing_entries=False)
    if jinja:
        with open(jinja, encoding="utf-8") as f:
            return f.read()
    legacy = cached_file(source, "chat_template.json", _raise_exceptions_for_missing_entries=False)
    if legacy:
        with open(legacy, encoding="utf-8") as f:
            return json.load(f)["chat_template"]
    if tokenizer.chat_template:
        return tokenizer.chat_template
    raise UserError(f"{source} has no chat template (chat_template.jinja or chat_template.json)")
