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
from ..image_layout import ImageLayout, Region, runs_of
from .base import ModelAdapter, PreparedInputs, VisionGeometry, auto_processor, user_message, whole_image_geometry


class Gemma3Adapter(ModelAdapter):
    name = "gemma3"
    config_model_types = ("gemma3",)
    model_class = Gemma3ForConditionalGeneration
    image_placeholder = "<image_soft_token>"
    max_pixels_refusal = "it sees every image at its processor's one square size (896 x 896 px on the hub)"

    def load_processor(self, source: str) -> Any:
        return auto_processor(source)

    def prepare_images(
        self, processor: Any, images: list[Image.Image], prompt: str, max_pixels: int | None
    ) -> PreparedInputs:
        size = processor.image_processor.size
        text = processor.apply_chat_template(
            user_message(len(images), prompt), add_generation_prompt=True, tokenize=False
        )
        inputs = processor(text=[text], images=[images], return_tensors="pt")
        side = math.isqrt(processor.image_seq_length)  # the pooled tokens form a square grid, row-major
        image_size = (size["width"], size["height"])
        image_token = processor.tokenizer.image_token_id
        layout = None
        if len(images) > 1:  # each image its own square, in its own run of image tokens, in prompt order
            runs = runs_of(inputs["input_ids"][0].tolist(), image_token)
            if len(runs) != len(images):
                raise UserError(f"the processor wrote {len(runs)} runs of image tokens for {len(images)} images")
            regions = [Region(i, "image", side, side, (0, 0, *image_size), run) for i, run in enumerate(runs)]
            layout = ImageLayout([image_size] * len(images), regions)
        return PreparedInputs(dict(inputs), image_token, side, side, image_size, layout)

    def vision_geometry(self, model: PreTrainedModel, processor: Any, prepared: PreparedInputs) -> VisionGeometry:
        """SigLIP over the whole square: (image_size / patch_size)² patches, row-major, before the pooling."""
        config = self.vision_config(model)
        side = config.image_size // config.patch_size
        return whole_image_geometry(side, side, config.patch_size, config.num_hidden_layers)

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
