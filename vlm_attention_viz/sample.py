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
        if self.is_single_grid:
            rows, cols = self.grid
            image = f"image grid {rows}x{cols} (rows x cols)"
        else:
            images = len(self.meta["images"])
            image = f"{images} image{'s' * (images > 1)} in {len(self.regions)} image regions"
        return f"Sample({str(self.path)!r}: {self.seq_len} tokens, {self.num_layers} layers x {self.num_heads} heads, {image})"

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
    def is_single_grid(self) -> bool:
        """One image as one block of grid tokens (meta.json's image_grid); else tiles, breaks or several images."""
        return "image_grid" in self.meta

    @property
    def regions(self) -> list[dict[str, Any]]:
        """meta.json's image_regions (image, kind, rows, cols, rect, tokens); a single grid is one region."""
        return fmt.regions_of(self.meta)

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, cols) of the image tokens of a single-grid sample."""
        grid = self.single_grid("grid")
        return grid["rows"], grid["cols"]

    @property
    def image_span(self) -> tuple[int, int]:
        """First and last image token (inclusive) of a single-grid sample."""
        grid = self.single_grid("image_span")
        return grid["start_idx"], grid["end_idx"]

    def single_grid(self, what: str) -> dict[str, int]:
        if not self.is_single_grid:
            raise ValueError(
                f"Sample.{what} is defined for one image in one grid; this sample's image tokens lie in "
                f"{len(self.regions)} regions: see Sample.regions, and pass region= to image_map"
            )
        return self.meta["image_grid"]

    @cached_property
    def images(self) -> list[Image.Image]:
        """Every image as stored in the sample (the input's own size; the model saw meta["image_size"])."""
        return [read_image(self.path / name) for name in fmt.image_files(self.meta)]

    @property
    def image(self) -> Image.Image:
        """The first image as stored in the sample."""
        return self.images[0]

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
        """(N, N) float16, read-only: row i is what token i attends to. Memory-mapped in a full sample; unpacked
        from a triangle or text-rows one (the rows of image tokens NaN there). A layer or head the sample did not
        keep raises FormatError."""
        layer = checked_index(layer, self.num_layers, "layer")
        if isinstance(head, str):
            if head not in fmt.HEAD_AGGREGATES:
                raise ValueError(f"head must be an int or one of {', '.join(fmt.HEAD_AGGREGATES)}, not {head!r}")
            return fmt.read_matrix(self.path, self.meta, layer, head)
        heads = fmt.layer_heads(self.num_layers, self.num_heads, self.meta.get("layer_attention"))[layer]
        return fmt.read_matrix(self.path, self.meta, layer, checked_index(head, heads, "head"))

    def image_map(self, layer: int, head: Head, token: int, region: int | None = None) -> np.ndarray:
        """Token's attention row over one region's image tokens, as a (rows, cols) float32 array in grid order.
        region: an index of Sample.regions; it may be left out only where the sample has one region."""
        token = checked_index(token, self.seq_len, "token")
        chosen = self.regions[self.region_index(region)]
        row = self.attention(layer, head)[token]
        return np.asarray(row[chosen["tokens"]], dtype=np.float32).reshape(chosen["rows"], chosen["cols"])

    def region_index(self, region: int | None) -> int:
        """region checked against Sample.regions; None for the only region."""
        count = len(self.regions)
        if region is None:
            if count > 1:
                raise ValueError(
                    f"this sample has {count} image regions; pass region=0..{count - 1} (see Sample.regions)"
                )
            return 0
        return checked_index(region, count, "region")


def read_image(path: Path) -> Image.Image:
    with Image.open(path) as opened:
        opened.load()
        return opened.copy()


def checked_index(value: int, count: int, what: str) -> int:
    """value in 0..count-1, or counted from the end when negative, as Python indexes."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not -count <= value < count:
        raise IndexError(f"{what} {value!r} is out of range: the sample has {count} (0..{count - 1})")
    return int(value) % count


def open_sample(path: Path | str) -> Sample:
    """`vav.open`: the sample at path, validated (every file present at its size)."""
    return Sample(path)
