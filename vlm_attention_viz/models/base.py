"""What a model family must tell the extractor; everything else is shared.

An adapter says how to load the model and its processor, how to build the prompt
(the checkpoint's own chat template), where the image tokens are and how they form a
grid. Capture, token texts and writing never name a model family.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from PIL import Image
from transformers import PreTrainedConfig, PreTrainedModel


@dataclass
class PreparedInputs:
    """One image + prompt, ready for model(**model_inputs)."""

    model_inputs: dict[str, Any]
    image_token_id: int
    grid_rows: int
    grid_cols: int
    image_size: tuple[int, int]  # (w, h) the model saw after the processor's resize

    @property
    def input_ids(self) -> torch.Tensor:
        return self.model_inputs["input_ids"]

    def on(self, device: torch.device) -> dict[str, Any]:
        """The model inputs moved to the device of the model's first layers."""
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.model_inputs.items()}


@dataclass
class VisionGeometry:
    """The image as the vision tower sees it: its patch grid before the merge, and the order patches arrive in."""

    rows: int
    cols: int
    patch_size: int  # pixels per patch side
    patch_orders: list[torch.Tensor]  # per attention call (image): the tower's index of each row-major patch


def merge_window_orders(grid_thw: torch.Tensor, merge: int) -> list[torch.Tensor]:
    """Per image frame, the index of each row-major patch in merge-window order.

    Qwen processors emit a frame's patches merge window by merge window, (h/m, w/m, m, m):
    all m x m patches of one LLM token together. Patch (r, c) = (R*m + i, C*m + j) sits at
    ((R * w/m + C) * m + i) * m + j; listing those in row-major (R, i, C, j) order gives the
    permutation that makes the tower's order row-major.
    """
    orders = []
    for frames, rows, cols in grid_thw.tolist():
        windows = torch.arange(rows * cols).reshape(rows // merge, cols // merge, merge, merge)
        orders += [windows.permute(0, 2, 1, 3).reshape(-1)] * frames  # each frame is its own attention call
    return orders


class ModelAdapter(ABC):
    """Subclass per model family and register it in models/__init__.py."""

    name: ClassVar[str]  # the --model-type value
    config_model_types: ClassVar[tuple[str, ...]]  # `model_type` values in checkpoint config.json files
    model_class: ClassVar[type[PreTrainedModel]]
    language_config_key: ClassVar[str] = "text_config"  # sub-config of the LLM whose attention is captured
    vision_config_key: ClassVar[str] = "vision_config"  # sub-config of the vision tower (--vision-layers)

    def load_model(self, source: str, device: str, dtype: torch.dtype) -> PreTrainedModel:
        """Load on `device`; "auto" spreads the layers over every GPU with accelerate."""
        model = self.model_class.from_pretrained(source, dtype=dtype, attn_implementation="sdpa", device_map=device)
        return model.eval()

    def language_config(self, model: PreTrainedModel) -> PreTrainedConfig:
        return getattr(model.config, self.language_config_key)

    def vision_config(self, model: PreTrainedModel) -> PreTrainedConfig:
        return getattr(model.config, self.vision_config_key)

    def vision_shape(self, model: PreTrainedModel) -> tuple[int, int]:
        """(blocks, heads per block) of the vision tower."""
        config = self.vision_config(model)
        return config.depth, config.num_heads

    def vision_geometry(self, processor: Any, prepared: PreparedInputs) -> VisionGeometry:
        """Qwen's convention, shared by its families: image_grid_thw counts patches before the merge, and the
        patches arrive in merge-window order. A family whose tower reorders them further overrides this."""
        image_processor = processor.image_processor
        grid_thw = prepared.model_inputs["image_grid_thw"]
        _, rows, cols = (int(v) for v in grid_thw[0])
        return VisionGeometry(rows, cols, image_processor.patch_size, merge_window_orders(grid_thw, image_processor.merge_size))

    @abstractmethod
    def load_processor(self, source: str) -> Any:
        """The checkpoint's processor, built from its parts where AutoProcessor cannot be used."""

    @abstractmethod
    def prepare(self, processor: Any, image: Image.Image, prompt: str, max_pixels: int | None) -> PreparedInputs:
        """Apply the chat template (one user message: image, then text; generation prompt added) and process."""
