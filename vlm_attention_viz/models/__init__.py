"""The adapter registry: --model-type names and checkpoint model_type values map to adapters."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import PreTrainedConfig

from ..errors import UserError
from .base import ModelAdapter, PreparedInputs
from .gemma3 import Gemma3Adapter
from .gemma4 import Gemma4Adapter
from .idefics3 import Idefics3Adapter
from .internvl import InternVLAdapter
from .llava_next import LlavaNextAdapter
from .llava_onevision import LlavaOnevisionAdapter
from .mistral3 import Mistral3Adapter
from .qwen2_5_vl import Qwen2_5VLAdapter
from .qwen2_vl import Qwen2VLAdapter
from .qwen3_5 import Qwen3_5Adapter
from .qwen3_5_moe import Qwen3_5MoeAdapter
from .qwen3_vl import Qwen3VLAdapter
from .qwen3_vl_moe import Qwen3VLMoeAdapter
from .smolvlm import SmolVLMAdapter

ADAPTERS: dict[str, type[ModelAdapter]] = {
    adapter.name: adapter
    for adapter in (
        Qwen3VLAdapter,
        Qwen3VLMoeAdapter,
        Qwen2_5VLAdapter,
        Qwen2VLAdapter,
        Qwen3_5Adapter,
        Qwen3_5MoeAdapter,
        Gemma3Adapter,
        Gemma4Adapter,
        SmolVLMAdapter,
        Idefics3Adapter,
        Mistral3Adapter,
        InternVLAdapter,
        LlavaOnevisionAdapter,
        LlavaNextAdapter,
    )
}

__all__ = [
    "ADAPTERS",
    "ModelAdapter",
    "PreparedInputs",
    "adapter_for",
    "adapter_for_config",
    "adapter_named",
    "detect_model_type",
]


def adapter_named(name: str) -> ModelAdapter:
    if name not in ADAPTERS:
        raise UserError(f"unknown --model-type {name!r}; supported: {', '.join(sorted(ADAPTERS))}")
    return ADAPTERS[name]()


def adapter_for(source: str, model_type: str | None) -> ModelAdapter:
    """The adapter --model-type names, else the one the checkpoint's config.json asks for.

    A named type is refused only for a checkpoint another adapter claims (its weights would not
    fit); a model_type no adapter knows may be a renamed variant, so the named adapter tries it.
    """
    if model_type is None:
        return adapter_named(detect_model_type(source))
    return named_adapter_for(model_type, lambda: checkpoint_model_type(source), source)


def adapter_for_config(config: PreTrainedConfig, model_type: str | None, source: str) -> ModelAdapter:
    """adapter_for, for a model already loaded: the same rules, applied to its config's model_type."""
    if model_type is None:
        return claimed_adapter(config.model_type, source)()
    return named_adapter_for(model_type, lambda: config.model_type, source)


def named_adapter_for(model_type: str, checkpoint_type: Callable[[], str | None], source: str) -> ModelAdapter:
    """The adapter model_type names (checked before the checkpoint is read), unless another adapter claims it."""
    adapter = adapter_named(model_type)
    claimed_by = claiming_adapter(checkpoint_type())
    if claimed_by is not None and claimed_by.name != model_type:
        raise UserError(
            f"{source} is a {claimed_by.name} model, not {model_type}; pass --model-type {claimed_by.name}, or leave it out to detect it"
        )
    return adapter


def detect_model_type(source: str) -> str:
    """The --model-type whose adapter handles this checkpoint, from its config.json's model_type."""
    return claimed_adapter(checkpoint_model_type(source), source).name


def claimed_adapter(model_type: str | None, source: str) -> type[ModelAdapter]:
    adapter = claiming_adapter(model_type)
    if adapter is None:
        raise UserError(
            f"{source} is a {model_type!r} model, which no adapter supports; supported: {', '.join(sorted(ADAPTERS))}"
        )
    return adapter


def claiming_adapter(model_type: str | None) -> type[ModelAdapter] | None:
    return next((adapter for adapter in ADAPTERS.values() if model_type in adapter.config_model_types), None)


def checkpoint_model_type(source: str) -> str | None:
    if Path(source).is_dir():
        return local_config(Path(source)).get("model_type")
    try:
        config, _ = PreTrainedConfig.get_config_dict(source)
    except OSError:
        raise UserError(
            f"cannot read the config of {source!r}: not a local folder, and not on the hub or in the cache (offline?)"
        ) from None
    return config.get("model_type")


def local_config(folder: Path) -> dict[str, Any]:
    """A local checkpoint's config.json, read here so a broken one is named as such, not as a missing model."""
    path = folder / "config.json"
    if not path.is_file():
        raise UserError(f"{folder} has no config.json; is it a model folder?")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is not valid JSON ({err}); is the download complete?") from None
    if not isinstance(config, dict):
        raise UserError(f"{path} does not hold a JSON object")
    return config
