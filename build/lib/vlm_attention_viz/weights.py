"""Weight files are read before any model loads, so a cut download fails in one line and not deep inside a load."""

from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError, safe_open

from .errors import UserError

WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


def check_weight_files(folder: Path) -> None:
    """A local checkpoint holds weights, and every safetensors file among them is whole."""
    if not any(any(folder.glob(p)) for p in WEIGHT_PATTERNS):
        raise UserError(f"{folder} holds no weights (*.safetensors); is the download complete?")
    for path in sorted(folder.glob("*.safetensors")):
        check_safetensors(path)


def check_safetensors(path: Path) -> None:
    """The header parses and the file holds every byte it declares; the tensors themselves are not read."""
    try:
        with safe_open(str(path), "np"):
            pass
    except (SafetensorError, OSError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"{path} is damaged or truncated ({reason}); download it again") from None
