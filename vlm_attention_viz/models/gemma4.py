"""Gemma 4: the image resized keeping its aspect ratio to at most the processor's soft-token budget
(max_soft_tokens), cut into 16 px patches and pooled 3 x 3 into one token each, row-major; all read from
the checkpoint's processor and the patch positions it reports.

Its language model alternates sliding-window and global layers. With use_bidirectional_attention =
"vision" (the larger checkpoints), the image's tokens see each other in both directions on the sliding
layers only; global layers stay causal. transformers builds those masks and hands them to the attention
function, which the capture applies as they arrive (layer_attention records them). Its layers call the
attention with scaling 1 (q and k are normalised instead), and the last num_kv_shared_layers layers reuse
an earlier layer's keys and values; the capture takes scale, keys and values as each call passes them.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image
from transformers import (
    AutoImageProcessor,
    AutoTokenizer,
    Gemma4ForConditionalGeneration,
    Gemma4Processor,
    PreTrainedModel,
    ProcessorMixin,
)
from transformers.utils import is_torchvision_available

from .. import sample_format as fmt
from ..errors import UserError
from ..image_layout import ImageLayout, Region, runs_of
from .base import ModelAdapter, PreparedInputs, chat_template, user_message


class Gemma4Adapter(ModelAdapter):
    name = "gemma4"
    config_model_types = ("gemma4",)
    model_class = Gemma4ForConditionalGeneration
    image_placeholder = "<|image|>"
    max_pixels_refusal = "its processor sizes images by a token budget (max_soft_tokens in preprocessor_config.json)"

    def load_processor(self, source: str) -> Any:
        if is_torchvision_available():
            return Gemma4Processor.from_pretrained(source)
        return image_only_processor(source)

    def prepare_images(
        self, processor: Any, images: list[Image.Image], prompt: str, max_pixels: int | None
    ) -> PreparedInputs:
        text = processor.apply_chat_template(
            user_message(len(images), prompt), add_generation_prompt=True, tokenize=False
        )
        inputs = processor(text=[text], images=[images], return_tensors="pt")
        grids = [pooled_grid(positions, processor.image_processor) for positions in inputs["image_position_ids"]]
        (rows, cols, size), layout = grids[0], None
        if len(images) > 1:  # each image its own grid, in its own run of image tokens, in prompt order
            runs = runs_of(inputs["input_ids"][0].tolist(), processor.image_token_id)
            if len(runs) != len(images):
                raise UserError(f"the processor wrote {len(runs)} runs of image tokens for {len(images)} images")
            regions = [
                Region(i, "image", r, c, (0, 0, *wh), run)
                for i, ((r, c, wh), run) in enumerate(zip(grids, runs, strict=True))
            ]
            layout = ImageLayout([wh for _, _, wh in grids], regions)
        return PreparedInputs(dict(inputs), processor.image_token_id, rows, cols, size, layout)

    def num_kv_heads(self, model: PreTrainedModel) -> int | None:
        """Global layers have key heads of their own (num_global_key_value_heads), so no one count fits."""
        return None

    def layer_attention(self, model: PreTrainedModel) -> list[dict[str, Any]]:
        config = self.language_config(model)
        bidirectional = config.use_bidirectional_attention == "vision"
        return [
            fmt.layer_kind("sliding", window=config.sliding_window, image_bidirectional=bidirectional)
            if layer_type == "sliding_attention"
            else fmt.layer_kind("causal")
            for layer_type in config.layer_types
        ]


def pooled_grid(positions: torch.Tensor, image_processor: Any) -> tuple[int, int, tuple[int, int]]:
    """(token rows, token cols, (w, h) px) of one image from its patches' (x, y) positions (padding is -1): the
    pooler orders each pooling_kernel_size² block of patches into one token, row-major."""
    patch_cols, patch_rows = (int(v) + 1 for v in positions.max(dim=0).values)
    pool, patch = image_processor.pooling_kernel_size, image_processor.patch_size
    return patch_rows // pool, patch_cols // pool, (patch_cols * patch, patch_rows * patch)


class _WithoutAbsentParts(ProcessorMixin):
    """Drops the parts given as None before ProcessorMixin checks them against the class's parts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{key: value for key, value in kwargs.items() if value is not None})


def image_only_processor(source: str) -> Gemma4Processor:
    """Gemma4Processor without its video processor (which needs torchvision) and audio feature extractor.

    ProcessorMixin takes its parts from __init__'s signature, so a subclass whose __init__ names only the
    image processor and the tokenizer is built from those two; Gemma4Processor's own __init__ still passes
    the other two (as None), which _WithoutAbsentParts, next in the method order, leaves out.
    """

    class ImageOnlyProcessor(Gemma4Processor, _WithoutAbsentParts):
        def __init__(
            self, image_processor: Any = None, tokenizer: Any = None, chat_template: str | None = None, **kwargs: Any
        ) -> None:
            super().__init__(None, image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    tokenizer = AutoTokenizer.from_pretrained(source)
    return ImageOnlyProcessor(
        AutoImageProcessor.from_pretrained(source), tokenizer, chat_template=chat_template(source, tokenizer)
    )
