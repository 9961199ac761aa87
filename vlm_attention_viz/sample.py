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
    def text_to_image(self) -> np.ndarray | None:
        """(layers, heads): the attention mass the tokens after the image give to the image tokens, on average."""
        table = self.meta.get("text_to_image")
        return None if table is None else np.array(table, dtype=np.float64)

    def attention(self, layer: int, head: Head = "mean") -> np.ndarray:
        """(N, N) float16, read-only: row i is what token i attends to. Memory-mapped in a full sample; unpacked
        from a triangle or text-rows one (the rows of image tokens NaN there). A layer or head the sample did not
        keep raises FormatError."""
        layer = checked_index(layer, self.num_layers, "layer")
        if isinstance(head, str):
            if head not in fmt.HEAD_AGGREGATES:
                raise ValueError(f"head must be an int or one of {', '.join(fmt.HEAD_AGGREGATES)}, not {head!r}")
            return fmt.read_matrix(self.path, self.meta, layer, head)
        return fmt.read_matrix(self.path, self.meta, layer, checked_index(head, self.num_heads, "head"))

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
