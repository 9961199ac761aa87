"""`python -m vlm_attention_viz rollout SAMPLE_DIR`: add the attention rollout to an existing sample.

Only new files are added, and every other file (meta.json included) stays byte for byte as
it was: the rollout is announced by its own rollout.json, placed last. Every check comes
before torch loads.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import sample_format as fmt
from .errors import UserError
from .safe_write import find_partial_files


@dataclass
class RolloutResult:
    path: Path
    layers: int
    bytes: int
    seconds: float

    def summary(self) -> str:
        return f"added the rollout to {self.path}: {self.layers} layers, {fmt.format_bytes(self.bytes)} in {self.seconds:.1f} s"


def add_rollout(sample_dir: Path, device: str | None) -> RolloutResult:
    started = time.perf_counter()
    meta = check_sample(Path(sample_dir))
    for note in clean_leftovers(Path(sample_dir)):
        print(note, file=sys.stderr)
    check_no_orphans(Path(sample_dir))
    layers, n = meta["num_layers"], meta["seq_len"]
    size = fmt.rollout_bytes(layers, n)
    fmt.check_disk_room(Path(sample_dir), size, f"{layers} layers x {n}^2 x 2 bytes", hint="free some space")
    from .analysis import resolve_device, write_rollout  # torch, once the sample passed

    try:
        write_rollout(Path(sample_dir), meta, resolve_device(device), progress=True)
    except FileExistsError:
        raise UserError(
            f"a rollout appeared in {sample_dir} while this run was writing (another run?); it was left as it is"
        ) from None
    return RolloutResult(Path(sample_dir), layers, size, time.perf_counter() - started)


def check_sample(folder: Path) -> dict[str, Any]:
    """The sample's meta, if folder is a complete sample without a rollout."""
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder")
    try:
        meta = fmt.validate_sample(folder)
    except fmt.FormatError as err:
        raise UserError(f"{folder} is not a sample ({err}); nothing was changed") from None
    if (folder / fmt.ROLLOUT_META_FILE).exists():
        raise UserError(f"{folder} already has a rollout ({fmt.ROLLOUT_META_FILE}); nothing was changed")
    storage = fmt.Storage.of(meta)
    if not storage.serves("rollout"):
        raise UserError(f"{folder} can have no rollout: it needs {fmt.rollout_needs(storage)}; nothing was changed")
    if not fmt.all_softmax(meta.get("layer_attention")):
        raise UserError(
            f"{folder} has linear-attention layers, whose signed matrices are no attention to roll out; nothing was changed"
        )
    return meta


def clean_leftovers(folder: Path) -> list[str]:
    """Remove the partial rollout files that killed runs on this host left; report those of others."""
    notes = []
    for leftover in find_partial_files(folder, fmt.is_rollout_file):
        if leftover.removable:
            leftover.path.unlink()
            notes.append(f"removed {leftover.path.name}, a partial rollout file of a run that was killed")
        else:
            notes.append(f"left {leftover.path.name} as it is: {leftover.why_kept}")
    return notes


def check_no_orphans(folder: Path) -> None:
    """Rollout layer files without rollout.json (a run killed while it renamed its files into place) are
    never replaced: the user removes them."""
    orphans = sorted(p.name for p in folder.iterdir() if fmt.is_rollout_file(p.name))
    if orphans:
        raise UserError(
            f"{folder} holds {', '.join(orphans[:3])}{' and more' if len(orphans) > 3 else ''} but no "
            f"{fmt.ROLLOUT_META_FILE}, so no complete rollout; remove them and run again"
        )
