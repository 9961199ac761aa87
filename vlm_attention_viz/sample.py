"""A sample folder as Python objects: its tokens, image, grid and memory-mapped attention (`vav.open`).

Every read goes through sample_format.py, which owns the format; this module only names
things and checks indices.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import sample_format as fmt

Head = int | str  # a query head 0..H-1, or a head aggregate of sample_format.HEAD_AGGREGATES ("mean", "max")


class Sample:
    """One validated sample folder (SPEC.md §1). Matrices are read-only memory maps: nothing is read until used."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.meta: dict[str, Any] = fmt.validate_sample(self.path)

    def __repr__(self) -> str:
        rows, cols = self.grid
        return (
            f"Sample({str(self.path)!r}: {self.seq_len} tokens, {self.num_layers} layers x {self.num_heads} heads, "
            f"image grid {rows}x{cols} (rows x cols))"
        )

    @property
    def tokens(self) -> list[dict[str, Any]]:
        """meta.json's tokens: id, text, type, grid_pos (image tokens), ..."""
        return self.meta["tokens"]

    @property
    def seq_len(self) -> int:
        return self.meta["seq_len"]

    @property
    def num_layers(self) -> int:
        return self.meta["num_layers"]

    @property
    def num_heads(self) -> int:
        return self.meta["num_heads"]

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, cols) of the image tokens."""
        grid = self.meta["image_grid"]
        return grid["rows"], grid["cols"]

    @property
    def image_span(self) -> tuple[int, int]:
        """First and last image token (inclusive)."""
        grid = self.meta["image_grid"]
        return grid["start_idx"], grid["end_idx"]

    @cached_property
    def image(self) -> Image.Image:
        """The image as stored in the sample (the input's own size; the model saw meta["image_size"])."""
        with Image.open(self.path / self.meta["image_path"]) as opened:
            opened.load()
            return opened.copy()

    @property
    def text_to_image(self) -> np.ndarray | list[np.ndarray] | None:
        """(layers, heads): the attention mass the tokens after the image give to the image tokens, on average (a
        linear layer's by absolute value). A list of one array per layer where layers differ in heads (layer_attention)."""
        table = self.meta.get("text_to_image")
        if table is None:
            return None
        rows = [np.array(row, dtype=np.float64) for row in table]
        return np.stack(rows) if len({len(row) for row in rows}) == 1 else rows

    def attention(self, layer: int, head: Head = "mean") -> np.ndarray:
        """(N, N) float16, read-only and memory-mapped: row i is what token i attends to."""
        layer = checked_index(layer, self.num_layers, "layer")
        if isinstance(head, str):
            if head not in fmt.HEAD_AGGREGATES:
                raise ValueError(f"head must be an int or one of {', '.join(fmt.HEAD_AGGREGATES)}, not {head!r}")
            return fmt.open_head_aggregate(self.path, self.meta, layer, head)
        heads = fmt.open_layer(self.path, self.meta, layer)  # (that layer's heads, N, N)
        return heads[checked_index(head, heads.shape[0], "head")]

    def image_map(self, layer: int, head: Head, token: int) -> np.ndarray:
        """Token's attention row over the image tokens, as a (rows, cols) float32 array in grid order."""
        token = checked_index(token, self.seq_len, "token")
        start, end = self.image_span
        return np.asarray(self.attention(layer, head)[token, start : end + 1], dtype=np.float32).reshape(self.grid)


def checked_index(value: int, count: int, what: str) -> int:
    """value in 0..count-1, or counted from the end when negative, as Python indexes."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not -count <= value < count:
        raise IndexError(f"{what} {value!r} is out of range: the sample has {count} (0..{count - 1})")
    return int(value) % count


def open_sample(path: Path | str) -> Sample:
    """`vav.open`: the sample at path, validated (every file present at its size)."""
    return Sample(path)
