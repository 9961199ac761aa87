"""Measures derived from attention rows, and attention rollout, computed in torch on any device.

The per-token measures (sample_format.TOKEN_TABLES) are computed from the float16 values a
sample stores, so that anyone can recompute them from the layer files and get the same
numbers. The rollout reads the head-mean files of a folder, holds R_{l-1} whole on the
device and multiplies row chunks of Ā_l against it, writing R_l as it goes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from tqdm import tqdm

from . import sample_format as fmt
from .errors import UserError
from .safe_write import make_partial_file, rename_noreplace


def resolve_device(device: str | None) -> str:
    """None: cuda when present, else cpu."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA GPU is visible to torch")
    return device


Columns = slice | np.ndarray  # token positions: a slice where they are one ascending block, else an index array


@dataclass
class TokenLayout:
    """Where the image and the special tokens sit in the sequence: what the measures need of meta.json."""

    image: Columns  # every image token of every region, ascending
    entropy_region: Columns  # the spatial entropy's region (sample_format.entropy_region), in row-major grid order
    grid_rows: int  # of the entropy region
    grid_cols: int
    special: np.ndarray  # (N,) bool

    @classmethod
    def of(cls, tokens: list[dict[str, Any]], regions: list[dict[str, Any]]) -> TokenLayout:
        """From meta.json's tokens and its regions (sample_format.regions_of)."""
        special = np.array([t["type"] == "special" for t in tokens])
        chosen = regions[fmt.entropy_region(regions)]
        image = sorted(p for region in regions for p in region["tokens"])
        return cls(as_columns(image), as_columns(chosen["tokens"]), chosen["rows"], chosen["cols"], special)

    @property
    def entropy_end(self) -> int:
        """The rows from here on see the whole entropy region (exclusive end of its last token)."""
        region = self.entropy_region
        return region.stop if isinstance(region, slice) else int(region.max()) + 1


def as_columns(positions: list[int]) -> Columns:
    """A slice for one ascending block of positions (the plain grid), the positions as an array otherwise."""
    start = positions[0]
    if positions == list(range(start, start + len(positions))):
        return slice(start, start + len(positions))
    return np.array(positions, dtype=np.int64)


def select_columns(values: torch.Tensor, columns: Columns) -> torch.Tensor:
    """values[..., columns] on values' device."""
    if isinstance(columns, slice):
        return values[..., columns]
    return values[..., torch.from_numpy(columns).to(values.device)]


@dataclass
class TokenMeasures:
    """Fills the per-token tables from chunks of stored rows as they pass."""

    layout: TokenLayout
    tables: fmt.TokenTables

    def add(self, layer: int, row0: int, rows: torch.Tensor, signed: bool = False) -> None:
        """rows (H, c, K) on any device: query rows row0.. of one layer, as token_measures takes them."""
        self.tables.add(layer, row0, token_measures(rows, row0, self.layout, signed).cpu().numpy())

    def add_host(self, layer: int, row0: int, rows: np.ndarray, device: str) -> None:
        """The same for rows held by the host, computed on `device`."""
        self.add(layer, row0, torch.from_numpy(rows).to(device))


def token_measures(rows: torch.Tensor, row0: int, layout: TokenLayout, signed: bool = False) -> torch.Tensor:
    """rows (H, c, K): query rows row0.. of one layer over keys 0..K-1 (the keys after are 0), the stored
    float16 values in any dtype that holds them. signed: a linear layer's implicit attention, whose shares are
    taken of the absolute values and whose entropies are undefined (NaN).

    Returns (c, H, len(TOKEN_TABLES)) float32, the measures in TOKEN_TABLES order.
    """
    values = F.pad(rows.float(), (0, len(layout.special) - rows.shape[-1]))
    if signed:
        values = values.abs()
    image = select_columns(values, layout.image)
    special = torch.as_tensor(layout.special, device=values.device, dtype=torch.float32)
    measures = {
        "image_share": image.sum(dim=-1),
        "special_share": values @ special,
        "row_entropy": torch.special.entr(values).sum(dim=-1),
        "image_entropy": torch.full(image.shape[:2], float("nan"), device=values.device),
    }
    # Only rows after the region see all of it; earlier rows see a causal prefix of the grid, whose shape says
    # more about the mask than about where the row looks. Skipping them also skips most rows of an image-heavy
    # sequence.
    if signed:
        measures["row_entropy"] = torch.full_like(measures["row_entropy"], float("nan"))
    after_region = max(0, layout.entropy_end - row0)
    if after_region < image.shape[1] and not signed:
        maps = select_columns(values[:, after_region:], layout.entropy_region)
        measures["image_entropy"][:, after_region:] = spatial_entropy(maps, layout.grid_rows, layout.grid_cols)
    return torch.stack([measures[name] for name in fmt.TOKEN_TABLES], dim=-1).transpose(0, 1)


def spatial_entropy(maps: torch.Tensor, grid_rows: int, grid_cols: int) -> torch.Tensor:
    """The spatial entropy of each (..., rows·cols) image map in grid order (SPEC.md §1, token tables).

    B = a > mean(a), compared exactly (a·P > Σa in float64, which is exact for float16 values);
    C_i = the 8-connected components of B; p_i = Σ_{C_i} a / Σ_B a; SE = -Σ p_i log p_i.
    NaN where B is empty: a map of zeros (the row sees no image token) or of equal values.
    """
    shape = maps.shape[:-1]
    flat = maps.reshape(-1, grid_rows * grid_cols).double()
    above = flat * flat.shape[1] > flat.sum(dim=1, keepdim=True)
    labels = component_labels(above.view(-1, grid_rows, grid_cols)).view(flat.shape)
    masses = torch.zeros_like(flat).scatter_add_(1, labels, torch.where(above, flat, 0.0))
    shares = masses / masses.sum(dim=1, keepdim=True)  # 0/0 = NaN for an empty B
    return torch.special.entr(shares).sum(dim=1).float().view(shape)


def component_labels(mask: torch.Tensor) -> torch.Tensor:
    """(M, R, C) bool -> (M, R·C) int64: each pixel of `mask` labelled with a number below R·C that its
    8-connected component alone has within its map; any number for pixels outside the mask, which carry no
    mass. On the CPU SciPy labels the whole stack in one C pass, ten times faster than propagation there; on
    a GPU the propagation runs on the device and the maps never cross to the host."""
    if mask.device.type == "cpu":
        return _labels_on_host(mask)
    return _labels_by_propagation(mask)


# In-plane neighbours only: a stack of maps is labelled at once, and no component crosses from one map to the next.
_EIGHT_NEIGHBOURS_IN_PLANE = np.pad(np.ones((1, 3, 3), dtype=bool), ((1, 1), (0, 0), (0, 0)))


def _labels_on_host(mask: torch.Tensor) -> torch.Tensor:
    maps, rows, cols = mask.shape
    labels, _ = ndimage.label(mask.numpy(), structure=_EIGHT_NEIGHBOURS_IN_PLANE)
    flat = labels.reshape(maps, rows * cols).astype(np.int64)
    # Labels run in raster order over the stack, so map m holds the numbers after those of maps 0..m-1.
    before = np.concatenate([[0], np.maximum.accumulate(flat.max(axis=1))[:-1]])
    return torch.from_numpy(np.where(flat > 0, flat - before[:, None] - 1, 0))


def _labels_by_propagation(mask: torch.Tensor) -> torch.Tensor:
    """Min-label propagation over the 3x3 neighbourhood (a max-pool of negated labels), with pointer jumping
    (label <- label of label) so that long components converge in a few dozen steps; each step works on the
    maps still changing. Each component ends with the smallest flat index in it."""
    maps, rows, cols = mask.shape
    outside = float(rows * cols)  # above every label; float32 holds indices exactly up to 2^24
    index = torch.arange(rows * cols, device=mask.device, dtype=torch.float32).view(1, rows, cols)
    labels = torch.where(mask, index, outside)
    active = torch.arange(maps, device=mask.device)
    while active.numel():
        step = _propagation_step(labels[active], mask[active], outside)
        changed = (step != labels[active]).flatten(1).any(dim=1)
        labels[active] = step
        active = active[changed]
    return torch.where(mask, labels, 0.0).view(maps, -1).long()


def _propagation_step(labels: torch.Tensor, mask: torch.Tensor, outside: float) -> torch.Tensor:
    """One step on (m, R, C) labels: the minimum over each pixel's 3x3 neighbourhood, then pointer jumping."""
    maps = labels.shape[0]
    neighbours = -F.max_pool2d(-labels.unsqueeze(1), kernel_size=3, stride=1, padding=1).squeeze(1)
    step = torch.where(mask, neighbours, outside).view(maps, -1)
    jumped = torch.gather(step, 1, step.clamp(max=outside - 1).long())
    return torch.where(mask.view(maps, -1), jumped, outside).view(labels.shape)


# ---------------------------------------------------------------- rollout

ROLLOUT_CHUNK_BYTES = 64 * 2**20  # float32 rows of Ā_l (and of R_l) per matmul


def write_rollout(folder: Path, meta: dict[str, Any], device: str, progress: bool = False) -> list[str]:
    """Compute R_l = Ā_l ⋯ Ā_0 from the folder's head-mean files and add the rollout files to it.

    Every layer is first written, a chunk of rows at a time, to a hidden partial sibling; then each appears
    by one rename that cannot replace anything, and rollout.json, which says they are there, comes last.
    On any error or stop, the partial files and the files this call placed are removed again.
    Holds R_{l-1} and R_l whole on the device: 2 x N² float32. Returns the new names.
    """
    n, layers = meta["seq_len"], meta["num_layers"]
    partials: dict[str, Path] = {}
    placed: list[str] = []
    previous: torch.Tensor | None = None
    try:
        for layer in tqdm(range(layers), unit="layer", desc="rollout", disable=not progress):
            current = torch.empty((n, n), dtype=torch.float32, device=device)
            rows = rollout_layer_rows(folder / meta["head_mean_files"][layer], previous, current, fmt.profile_of(meta))
            partials[fmt.rollout_file(layer)] = write_partial(folder / fmt.rollout_file(layer), rows)
            previous = current
        partials[fmt.ROLLOUT_META_FILE] = write_partial_json(folder / fmt.ROLLOUT_META_FILE, fmt.rollout_meta(layers))
        for name, partial in partials.items():
            rename_noreplace(partial, folder / name)
            placed.append(name)
    except BaseException:
        for path in [*partials.values(), *(folder / name for name in placed)]:
            path.unlink(missing_ok=True)
        raise
    return placed


def rollout_layer_rows(
    mean_file: Path, previous: torch.Tensor | None, current: torch.Tensor, profile: str = fmt.DEFAULT_PROFILE
) -> Iterator[np.ndarray]:
    """Fill current = R_l = Ā_l · previous (Ā_0 alone for the first layer) a chunk of rows at a time, yielding
    each chunk as float16. The head mean is stored as `profile` (full or triangle); the rollout is written full."""
    n = current.shape[0]
    chunk = max(1, ROLLOUT_CHUNK_BYTES // (n * 4))
    for row0 in range(0, n, chunk):
        mixed = residual_mix(fmt.read_full_rows(mean_file, profile, n, row0, chunk), row0, current.device)
        rows = current[row0 : row0 + mixed.shape[0]]
        if previous is None:
            rows.copy_(mixed)
        else:
            torch.matmul(mixed, previous, out=rows)
        yield rows.half().cpu().numpy()


def residual_mix(mean_rows: np.ndarray, row0: int, device: torch.device) -> torch.Tensor:
    """Rows row0.. of Ā = ½·mean_h A + ½·I with each row renormalised to sum to 1, float32 on the device."""
    rows = torch.from_numpy(mean_rows).to(device, torch.float32).mul_(0.5)
    diagonal = torch.arange(rows.shape[0], device=device)
    rows[diagonal, diagonal + row0] += 0.5
    return rows.div_(rows.sum(dim=1, keepdim=True))


def write_partial(target: Path, chunks: Iterator[np.ndarray]) -> Path:
    """The chunks, one after the other, in a new hidden partial sibling of target."""
    partial = make_partial_file(target)
    try:
        with open(partial, "wb") as f:
            for chunk in chunks:
                f.write(memoryview(np.ascontiguousarray(chunk, dtype="<f2")).cast("B"))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return partial


def write_partial_json(target: Path, value: Any) -> Path:
    partial = make_partial_file(target)
    partial.write_text(json.dumps(value, ensure_ascii=False, indent=1), encoding="utf-8")
    return partial
