"""Where each image's pixels went in the token sequence: regions of image tokens, and the tokens that are not patches.

An adapter builds an ImageLayout from what its processor did (tile counts, grids, the image token
positions in input_ids); the shared code turns it into meta.json's fields (SPEC.md §1) and names no
family. One image as one grid is written as today's image_grid; anything else as image_regions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import sample_format as fmt
from .errors import UserError


@dataclass
class Region:
    """rows × cols image tokens of one image; positions[r * cols + c] is the token at grid (r, c)."""

    image: int
    kind: str  # one of sample_format.REGION_KINDS
    rows: int
    cols: int
    rect: tuple[int, int, int, int]  # x, y, w, h in the image's size coordinates
    positions: list[int]


@dataclass
class ImageLayout:
    """Every image's size as the model saw it, its regions, and the role of each non-patch layout token."""

    image_sizes: list[tuple[int, int]]  # (w, h) per image
    regions: list[Region]
    roles: dict[int, str] = field(default_factory=dict)  # token position -> one of sample_format.LAYOUT_ROLES

    @classmethod
    def single_grid(cls, rows: int, cols: int, start: int, size: tuple[int, int]) -> ImageLayout:
        """One image as one row-major grid of tokens from position `start` on."""
        return cls([size], [Region(0, "image", rows, cols, (0, 0, *size), list(range(start, start + rows * cols)))])

    def image_positions(self) -> list[int]:
        """Every image token's position, ascending: the tokens the text-to-image share sums over."""
        return sorted(p for region in self.regions for p in region.positions)

    def is_single_grid(self) -> bool:
        """One image, one region over all of it, its tokens one contiguous block: today's image_grid says it all."""
        if len(self.image_sizes) != 1 or len(self.regions) != 1 or self.roles:
            return False
        (region,) = self.regions
        start = region.positions[0]
        return region.rect == (0, 0, *self.image_sizes[0]) and region.positions == list(
            range(start, start + region.rows * region.cols)
        )

    def check(self, input_ids: list[int], image_token_id: int) -> None:
        """Every image placeholder of input_ids is a region's token or a row end, and every region token is one."""
        placeholders = {i for i, token in enumerate(input_ids) if token == image_token_id}
        placed = self.image_positions()
        row_ends = {p for p, role in self.roles.items() if role == "row_end"}
        if len(set(placed)) != len(placed) or set(placed) | row_ends != placeholders or row_ends & set(placed):
            raise UserError(
                f"the processor wrote {len(placeholders)} image tokens, but the image layout places {len(placed)} "
                f"patches and {len(row_ends)} row ends; this checkpoint's image layout is not understood"
            )

    def place(self, tokens: list[dict[str, Any]]) -> None:
        """Give tokens[] their region, grid_pos and layout role (SPEC.md §1)."""
        for token in tokens:
            if token["type"] == "image":
                token.pop("grid_pos", None)
                token["type"] = "special"
        for k, region in enumerate(self.regions):
            for offset, position in enumerate(region.positions):
                tokens[position].update(type="image", region=k, grid_pos=fmt.grid_pos(offset, region.cols))
        for position, role in self.roles.items():
            tokens[position]["layout"] = role
        if self.is_single_grid():
            for token in tokens:
                token.pop("region", None)

    def region_entries(self) -> list[dict[str, Any]]:
        """The regions as meta.json's image_regions entries."""
        return [fmt.image_region(r.image, r.kind, r.rows, r.cols, r.rect, r.positions) for r in self.regions]

    def meta_fields(self, image_files: list[str], original_sizes: list[tuple[int, int]]) -> dict[str, Any]:
        """build_meta's image fields: image_path, image_size, original_image_size, and image_grid or image_regions."""
        first = {
            "image_path": image_files[0],
            "image_size": self.image_sizes[0],
            "original_image_size": original_sizes[0],
        }
        if self.is_single_grid():
            (region,) = self.regions
            return {**first, "image_grid": fmt.image_grid(region.rows, region.cols, region.positions[0])}
        return {
            **first,
            "image_grid": None,
            "image_regions": self.region_entries(),
            "images": [
                fmt.image_entry(name, size, original)
                for name, size, original in zip(image_files, self.image_sizes, original_sizes, strict=True)
            ],
        }

    def summary(self) -> str:
        """For the run's last line: the grid, or how many images and regions of which grids."""
        if self.is_single_grid():
            return f"image grid {self.regions[0].cols}x{self.regions[0].rows} (cols x rows)"
        kinds: dict[str, int] = {}
        for region in self.regions:
            label = f"{region.kind} {region.cols}x{region.rows}"
            kinds[label] = kinds.get(label, 0) + 1
        images = len(self.image_sizes)
        parts = ", ".join(f"{count} x {label}" for label, count in kinds.items())
        return f"{images} image{'s' * (images > 1)} in {len(self.regions)} regions ({parts}, cols x rows)"


def runs_of(input_ids: list[int], token_id: int) -> list[list[int]]:
    """The positions of token_id, split into runs of consecutive positions."""
    runs: list[list[int]] = []
    for i, token in enumerate(input_ids):
        if token != token_id:
            continue
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs
