"""LLaVA-NeXT (1.6): LLaVA-OneVision's anyres layout (llava_onevision.py) without its cap on the stitched grid,
for every image of the prompt alike; the tower (CLIP) adds a CLS feature that the "default" strategy drops. Its
processor has no video part, so AutoProcessor builds it without torchvision."""

from __future__ import annotations

from typing import Any

from transformers import LlavaNextForConditionalGeneration

from ..errors import UserError
from ..image_layout import ImageLayout
from .base import auto_processor
from .llava_onevision import LlavaOnevisionAdapter, StitchedGrid, anyres_layout


class LlavaNextAdapter(LlavaOnevisionAdapter):
    name = "llava-next"
    config_model_types = ("llava_next",)
    model_class = LlavaNextForConditionalGeneration

    def load_processor(self, source: str) -> Any:
        return auto_processor(source)

    def stitched_grid(self, processor: Any, crop_px: int) -> StitchedGrid:
        """The tower's patches per crop side; the CLS feature, where there is one, is dropped by the strategy."""
        if processor.vision_feature_select_strategy != "default" and processor.num_additional_image_tokens:
            raise UserError("a tower's extra features kept by vision_feature_select_strategy 'full' are not understood")
        return StitchedGrid(crop_px // processor.patch_size, None)

    def layout(
        self, processor: Any, originals: list[tuple[int, int]], runs: list[list[int]], crop_px: int
    ) -> ImageLayout:
        return anyres_layout(processor, originals, runs, crop_px, self.stitched_grid(processor, crop_px))
