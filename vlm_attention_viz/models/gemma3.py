"""Gemma 3: every image resized to one fixed square (896 px on the hub), cut into 14 px patches and
average-pooled to a fixed token grid (16 x 16 = 256 tokens), read from the checkpoint's processor.

Its language model alternates sliding-window layers with global ones (the config's layer_types) and
lets the image's tokens attend to each other in both directions: transformers builds that mask and
hands it to the attention function, which the capture applies as it arrives (layer_attention records it).
"""

from __future__ import annotations

import math
from typing import Any

from PIL import Image
from transformers import Gemma3ForConditionalGeneration, PreTrainedModel

from .. import sample_format as fmt
from ..errors import UserError
from .base import ModelAdapter, PreparedInputs, auto_processor, one_image


class Gemma3Adapter(ModelAdapter):
    name = "gemma3"
    config_model_types = ("gemma3",)
    model_class = Gemma3ForConditionalGeneration
    image_placeholder = "<image_soft_token>"

    def load_processor(self, source: str) -> Any:
        return auto_processor(source)

    def prepare_images(
        self, processor: Any, images: list[Image.Image], prompt: str, max_pixels: int | None
    ) -> PreparedInputs:
        image = one_image(self.name, images)
        size = processor.image_processor.size
        if max_pixels is not None:
            raise UserError(
                f"--max-pixels does not apply to {self.name}: it sees every image at {size['width']}x{size['height']} px"
            )
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = processor(text=[text], images=[image], return_tensors="pt")
        side = math.isqrt(processor.image_seq_length)  # the pooled tokens form a square grid, row-major
        return PreparedInputs(
            dict(inputs), processor.tokenizer.image_token_id, side, side, (size["width"], size["height"])
        )

    def layer_attention(self, model: PreTrainedModel) -> list[dict[str, Any]]:
        """Sliding layers see the last `sliding_window` keys, global layers every earlier one; in both, the
        image's tokens also see the later ones of their image (within the window on sliding layers)."""
        config = self.language_config(model)
        return [
            fmt.layer_kind("sliding", window=config.sliding_window, image_bidirectional=True)
            if layer_type == "sliding_attention"
            else fmt.layer_kind("causal", image_bidirectional=True)
            for layer_type in config.layer_types
        ]
