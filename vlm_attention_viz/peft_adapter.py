"""`--adapter PATH`: a PEFT adapter (e.g. LoRA) on top of the loaded model.

The adapter stays unmerged (no merge_and_unload), so the captured attention is that of
the adapted model exactly as PEFT runs it. The wrapper forwards `config`,
`set_attn_implementation` and the decoder layers to the wrapped model, so the capture
needs nothing PEFT-specific.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from .errors import UserError
from .weights import check_safetensors

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def read_adapter_config(folder: Path) -> dict[str, Any]:
    """The adapter's adapter_config.json, once the folder looks complete; checked before any model is loaded."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--adapter {folder}: no such folder")
    path = folder / ADAPTER_CONFIG
    if not path.is_file():
        raise UserError(f"--adapter {folder} holds no {ADAPTER_CONFIG}; pass the folder a PEFT save_pretrained() wrote")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path} is not valid JSON") from None
    if not isinstance(config, dict) or not isinstance(config.get("peft_type"), str):
        raise UserError(f"{path} names no peft_type; is it a PEFT adapter?")
    if not any((folder / name).is_file() for name in ADAPTER_WEIGHTS):
        raise UserError(f"--adapter {folder} holds no {ADAPTER_WEIGHTS[0]}; is the download complete?")
    if (folder / ADAPTER_WEIGHTS[0]).is_file():
        check_safetensors(folder / ADAPTER_WEIGHTS[0])
    return config


def adapter_meta(folder: Path | str, config: dict[str, Any]) -> dict[str, Any]:
    """meta.json's `adapter` object (SPEC.md §1)."""
    meta: dict[str, Any] = {
        "path": str(folder),
        "peft_type": config["peft_type"],
        "base_model": config.get("base_model_name_or_path"),
    }
    if isinstance(config.get("r"), int):
        meta["r"] = config["r"]
    targets = config.get("target_modules")
    if isinstance(targets, str):  # PEFT's regex form
        meta["target_modules"] = [targets]
    elif isinstance(targets, list):
        meta["target_modules"] = sorted(str(t) for t in targets)
    return meta


def apply_adapter(model: Any, folder: Path, model_source: str) -> Any:
    """The model wrapped with the adapter, unmerged, in eval mode."""
    from peft import PeftModel  # only imported when an adapter is asked for

    try:
        with warnings.catch_warnings():  # transformers' deprecation notices from inside PEFT would bury our output
            warnings.simplefilter("ignore", FutureWarning)
            return PeftModel.from_pretrained(model, str(folder)).eval()
    except (RuntimeError, ValueError, KeyError) as err:  # shape mismatches, target modules absent from the model
        raise UserError(f"cannot apply the adapter {folder} to {model_source}: {_reason(err)}") from None


def _reason(err: BaseException) -> str:
    """The line that says what is wrong: torch's state-dict errors put it under a header ending in ':'."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()] or [type(err).__name__]
    return lines[1] if len(lines) > 1 and lines[0].endswith(":") else lines[0]
