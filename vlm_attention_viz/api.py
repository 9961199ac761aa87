"""The Python API on a model the caller has already loaded: `vav.capture(model, processor, image, prompt, output_dir)`.

The CLI loads the model and then runs the same capture (extract.capture_loaded), so a
sample made here equals the CLI's. Refusals are the CLI's, raised as UserError or
FormatError with the same messages.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from PIL import Image

from . import sample_format as fmt
from .errors import UserError
from .extract import LoadedModel, Request, capture_loaded, check_inputs
from .models import adapter_for, adapter_for_config
from .peft_adapter import adapter_meta
from .sample import Sample, open_sample

ImageInput = str | os.PathLike[str] | Image.Image
IN_MEMORY_ADAPTER = "(in memory)"  # meta.json's adapter.path when the caller does not say where it came from


def capture(
    model: Any,
    processor: Any,
    image: ImageInput | list[ImageInput],
    prompt: str,
    output_dir: str | os.PathLike[str],
    mode: str = "prefill",
    *,
    max_new_tokens: int = 256,
    max_pixels: int | None = None,
    vision_layers: str | None = None,
    model_type: str | None = None,
    adapter_path: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    store: str = fmt.DEFAULT_PROFILE,
    layers: str | None = None,
    heads: str | None = None,
) -> Sample:
    """Capture every layer's attention for one image (or a list of them, as --image repeated) + prompt into the
    sample folder output_dir, and open it.

    model: a supported family, on any device or device_map, PEFT-wrapped or not; its family is read from
    model.config. processor: the checkpoint's processor (`load_processor(model_id)` builds it without
    torchvision). The options are the CLI's (--mode, --max-new-tokens, --max-pixels, --vision-layers,
    --model-type, --overwrite, --store, --layers, --heads); adapter_path is recorded as meta.json's adapter.path for a PEFT model.
    """
    started = time.perf_counter()
    source = str(model.config._name_or_path or type(model).__name__)
    request = Request(
        image=[as_image(i) for i in image] if isinstance(image, list) else as_image(image),
        prompt=prompt,
        output_dir=Path(output_dir),
        model=source,
        model_type=model_type,
        mode=mode,
        max_pixels=max_pixels,
        max_new_tokens=max_new_tokens,
        vision_layers=vision_layers,
        overwrite=overwrite,
        progress=progress,
        store=store,
        layers=layers,
        heads=heads,
    )
    opened = check_inputs(request)
    adapter = adapter_for_config(model.config, model_type, source)
    check_processor(processor)
    loaded = LoadedModel(model, processor, adapter, source, device_label(model), peft_fields(model, adapter_path))
    return open_sample(capture_loaded(loaded, request, opened, started).path)


def as_image(image: ImageInput) -> Path | Image.Image:
    return image if isinstance(image, Image.Image) else Path(image)


def load_processor(source: str, model_type: str | None = None) -> Any:
    """The processor the CLI builds for a checkpoint (from its parts where AutoProcessor needs torchvision)."""
    return adapter_for(source, model_type).load_processor(source)


def check_processor(processor: Any) -> None:
    if not hasattr(processor, "image_processor") or not hasattr(processor, "tokenizer"):
        raise UserError(
            f"the processor ({type(processor).__name__}) has no image processor; without torchvision AutoProcessor "
            "gives only the tokenizer for Qwen-VL checkpoints: pass vav.load_processor(model_id) instead"
        )


def device_label(model: Any) -> str:
    """meta.json's extraction.device: the model's device, or every device of a device_map spread over several."""
    devices = sorted({str(d) for d in (getattr(model, "hf_device_map", None) or {}).values()})
    return ", ".join(devices) if len(devices) > 1 else str(model.device)


def peft_fields(model: Any, adapter_path: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """meta.json's `adapter` for a PEFT-wrapped model (its active adapter's config), None for a plain one."""
    configs = getattr(model, "peft_config", None)
    if not configs:
        return None
    active = getattr(model, "active_adapter", None)
    config = configs[active if isinstance(active, str) else next(iter(configs))]
    targets = config.target_modules
    fields = {
        "peft_type": str(getattr(config.peft_type, "value", config.peft_type)),
        "base_model_name_or_path": config.base_model_name_or_path,
        "r": getattr(config, "r", None),
        "target_modules": sorted(targets) if isinstance(targets, (set, list, tuple)) else targets,
    }
    return adapter_meta(str(adapter_path) if adapter_path is not None else IN_MEMORY_ADAPTER, fields)
