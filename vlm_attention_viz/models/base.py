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


class ModelAdapter(ABC):
    """Subclass per model family and register it in models/__init__.py."""

    name: ClassVar[str]  # the --model-type value
    config_model_types: ClassVar[tuple[str, ...]]  # `model_type` values in checkpoint config.json files
    model_class: ClassVar[type[PreTrainedModel]]
    language_config_key: ClassVar[str] = "text_config"  # sub-config of the LLM whose attention is captured
    image_placeholder: ClassVar[str]  # the text of an image token as a tokenizer decodes it; `import` finds the image by it

    def load_model(self, source: str, device: str, dtype: torch.dtype) -> PreTrainedModel:
        """Load on `device`; "auto" spreads the layers over every GPU with accelerate."""
        model = self.model_class.from_pretrained(source, dtype=dtype, attn_implementation="sdpa", device_map=device)
        return model.eval()

    def language_config(self, model: PreTrainedModel) -> PreTrainedConfig:
        return getattr(model.config, self.language_config_key)

    @abstractmethod
    def load_processor(self, source: str) -> Any:
        """The checkpoint's processor, built from its parts where AutoProcessor cannot be used."""

    @abstractmethod
    def prepare(self, processor: Any, image: Image.Image, prompt: str, max_pixels: int | None) -> PreparedInputs:
        """Apply the chat template (one user message: image, then text; generation prompt added) and process."""
