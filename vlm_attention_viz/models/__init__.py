"""The adapter registry: --model-type names and checkpoint model_type values map to adapters."""

from __future__ import annotations

from pathlib import Path

from transformers import PreTrainedConfig

from ..errors import UserError
from .base import ModelAdapter, PreparedInputs
from .qwen2_5_vl import Qwen2_5VLAdapter
from .qwen2_vl import Qwen2VLAdapter
from .qwen3_vl import Qwen3VLAdapter

ADAPTERS: dict[str, type[ModelAdapter]] = {adapter.name: adapter for adapter in (Qwen3VLAdapter, Qwen2_5VLAdapter, Qwen2VLAdapter)}

__all__ = ["ADAPTERS", "ModelAdapter", "PreparedInputs", "adapter_named", "detect_model_type"]


def adapter_named(name: str) -> ModelAdapter:
    if name not in ADAPTERS:
        raise UserError(f"unknown --model-type {name!r}; supported: {', '.join(sorted(ADAPTERS))}")
    return ADAPTERS[name]()


def detect_model_type(source: str) -> str:
    """The --model-type whose adapter handles this checkpoint, from its config.json's model_type."""
    if Path(source).is_dir() and not (Path(source) / "config.json").is_file():
        raise UserError(f"{source} has no config.json; is it a model folder?")
    try:
        config, _ = PreTrainedConfig.get_config_dict(source)
    except OSError:
        raise UserError(f"cannot read the config of {source!r}: not a local folder, and not on the hub or in the cache (offline?)") from None
    model_type = config.get("model_type")
    for adapter in ADAPTERS.values():
        if model_type in adapter.config_model_types:
            return adapter.name
    raise UserError(f"{source} is a {model_type!r} model, which no adapter supports; supported: {', '.join(sorted(ADAPTERS))}")
