"""Qwen2.5-VL: 14 px patches merged 2 x 2, so 28 px per token (read from the checkpoint's processor).

Hub checkpoints keep the language settings at the top of config.json; transformers moves
them into `text_config`, the sub-config the capture switches.

Its vision tower regroups the patches into attention windows (window_index) before the
blocks. The blocks in the vision config's fullatt_block_indexes attend over each whole
image, in that window order; every other block calls its attention once per window
(cu_window_seqlens). Both kinds are captured (--vision-layers): tower_layout tells the
shared capture which patches each call covers.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
from transformers.vision_utils import get_vision_window_index

from .base import PackedPatches, PatchGridAdapter


class Qwen2_5VLAdapter(PatchGridAdapter):
    name = "qwen2.5-vl"
    config_model_types = ("qwen2_5_vl",)
    model_class = Qwen2_5_VLForConditionalGeneration
    processor_class = Qwen2_5_VLProcessor
    image_placeholder = "<|image_pad|>"

    def tower_layout(
        self, model: PreTrainedModel, grid_thw: torch.Tensor, packed: PackedPatches
    ) -> tuple[torch.Tensor, list[list[int]]]:
        """The tower moves whole merge units (merge^2 patches, one LLM token) into window order with the
        window_index of transformers' get_vision_window_index, the function it calls itself; its windowed
        blocks split that order at cu_window_seqlens, its full-attention blocks at the frames."""
        config = self.vision_config(model)
        merge = config.spatial_merge_size
        units, window_bounds = get_vision_window_index(grid_thw, merge, config.window_size, config.patch_size)
        tower_order = (units[:, None] * merge**2 + torch.arange(merge**2)).reshape(-1)
        full = set(config.fullatt_block_indexes)
        return tower_order, [
            packed.frame_bounds if block in full else window_bounds.tolist() for block in range(config.depth)
        ]
