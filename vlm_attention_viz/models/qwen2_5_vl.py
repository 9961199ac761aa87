"""Qwen2.5-VL: 14 px patches merged 2 x 2, so 28 px per token (read from the checkpoint's processor).

Hub checkpoints keep the language settings at the top of config.json; transformers moves
them into `text_config`, the sub-config the capture switches.

Its vision tower regroups the patches into attention windows (window_index) before the
blocks. Most blocks attend within a window only; those in the vision config's
fullatt_block_indexes attend over each whole image, in that window order. Only those can
be captured (--vision-layers).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from transformers import PreTrainedConfig, PreTrainedModel, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
from transformers.vision_utils import get_vision_window_index

from .base import PatchGridAdapter, PreparedInputs, VisionGeometry


class Qwen2_5VLAdapter(PatchGridAdapter):
    name = "qwen2.5-vl"
    config_model_types = ("qwen2_5_vl",)
    model_class = Qwen2_5_VLForConditionalGeneration
    processor_class = Qwen2_5_VLProcessor
    image_placeholder = "<|image_pad|>"

    def full_attention_blocks(self, model: PreTrainedModel) -> list[int]:
        return sorted(self.vision_config(model).fullatt_block_indexes)

    def vision_geometry(self, model: PreTrainedModel, processor: Any, prepared: PreparedInputs) -> VisionGeometry:
        """The processor's merge-window order, then the tower's regrouping into windows: for each row-major patch,
        its processor index, then where the tower moved that patch."""
        geometry = super().vision_geometry(model, processor, prepared)
        regrouped = window_regrouping(prepared.model_inputs["image_grid_thw"], self.vision_config(model))
        orders = [torch.argsort(tower)[order] for tower, order in zip(regrouped, geometry.patch_orders, strict=True)]
        return replace(geometry, patch_orders=orders)


def window_regrouping(grid_thw: torch.Tensor, config: PreTrainedConfig) -> list[torch.Tensor]:
    """Per image frame, the processor's index of the patch at each of the tower's positions.

    The tower moves whole merge units (merge^2 patches, one LLM token) with the window_index of
    transformers' get_vision_window_index, the function it calls itself. Windows never span frames,
    and each frame is its own attention call in a full-attention block, so one frame's regrouping
    serves every frame of an image.
    """
    merge = config.spatial_merge_size
    orders = []
    for frames, rows, cols in grid_thw.tolist():
        units, _ = get_vision_window_index(torch.tensor([[1, rows, cols]]), merge, config.window_size, config.patch_size)
        patches = (units[:, None] * merge**2 + torch.arange(merge**2)).reshape(-1)
        orders += [patches] * frames
    return orders
