"""Vision-encoder self-attention, per image, at the patch level (before the merge).

The vision tower calls its attention function once per image (the packed patches split
by cu_seqlens), with no mask and is_causal=False. Switching the vision sub-config to the
capture implementation (capture.capturing_sub_models) hands each call to a VisionRecorder:
sdpa still computes the output, and for the chosen blocks the recorder streams
softmax(QK^T * scale) in float32, row chunk by row chunk, with patches put in row-major
order first. Beside the rows it sums the head mean's columns: the attention each patch
receives.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import sample_format as fmt
from .capture import DEFAULT_ROW_BUDGET, attention_chunks, to_host
from .errors import UserError
from .models import ModelAdapter, PreparedInputs
from .models.base import VisionGeometry


@dataclass
class VisionRows:
    """Query patches [row0, row0 + c) of one block for one image, patches row-major."""

    block: int
    image: int
    row0: int
    attn: np.ndarray  # (H, c, P) float16
    head_mean: np.ndarray  # (c, P) float16, mean over heads taken in float32

    @property
    def nbytes(self) -> int:
        return self.attn.nbytes + self.head_mean.nbytes


class VisionRecorder:
    """Receives every vision attention call; records the chosen blocks, image by image."""

    def __init__(
        self,
        sink: Callable[[VisionRows], None],
        modules: list[torch.nn.Module],
        blocks: list[int],
        patch_orders: list[torch.Tensor],
        on_block_done: Callable[[int], None] = lambda block: None,
        row_budget: int = DEFAULT_ROW_BUDGET,
    ) -> None:
        """modules: the tower's attention modules in block order; patch_orders[i]: for image i, the index in the
        tower's patch order of each row-major patch."""
        self.sink = sink
        self.blocks = blocks
        self.patch_orders = patch_orders
        self.on_block_done = on_block_done
        self.row_budget = row_budget
        self._block_of = {id(module): block for block, module in enumerate(modules)}
        self._images_seen = [0] * len(modules)
        # (block, image) -> (P,) float32 column sums of the head mean
        self.received: dict[tuple[int, int], torch.Tensor] = {}

    def on_attention(self, module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None, scaling: float, causal: bool) -> None:
        block = self._block_of[id(module)]
        image = self._images_seen[block]
        self._images_seen[block] += 1
        if block in self.blocks:
            self.record(block, image, query, key, mask, scaling, causal)

    def record(self, block: int, image: int, query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None, scaling: float, causal: bool) -> None:
        if mask is not None or causal:
            raise UserError("this vision tower masks its attention; vision capture supports full attention per image only")
        if image >= len(self.patch_orders) or query.shape[2] != len(self.patch_orders[image]):
            raise UserError(f"vision block {block} attends over {query.shape[2]} patches, which is not one whole image; this model's vision attention is not supported")
        order = self.patch_orders[image].to(query.device)
        query, key = query.index_select(2, order), key.index_select(2, order)
        patches = query.shape[2]
        received = torch.zeros(patches, dtype=torch.float32, device=query.device)
        for row0, probs in attention_chunks(query, key, None, False, scaling, self.row_budget):
            mean = probs.mean(dim=0)
            received += mean.sum(dim=0)
            self.sink(VisionRows(block, image, row0, to_host(probs.half(), patches), to_host(mean.half(), patches)))
            del probs, mean
        self.received[(block, image)] = received.cpu()
        self.on_block_done(block)

    def received_matrix(self, image: int = 0) -> np.ndarray:
        """(len(blocks), P) float32: per chosen block, the attention each patch of the image receives."""
        return torch.stack([self.received[(block, image)] for block in self.blocks]).numpy()


def vision_attention_modules(model: torch.nn.Module, vision_config: object) -> list[torch.nn.Module]:
    """The vision tower's attention modules in block order.

    Vision attention has no layer_idx; it is found as the modules built from the vision
    sub-config that carry `is_causal` (every transformers attention module does), in
    registration order, which is block order. A PEFT wrapper wraps their linear layers,
    not these modules, so the same modules are found through it.
    """
    return [m for m in model.modules() if getattr(m, "config", None) is vision_config and hasattr(m, "is_causal")]


_SPEC = re.compile(r"all|last[1-9][0-9]*|-?[0-9]+(,-?[0-9]+)*")
SPEC_HELP = "'all', 'lastK' (the last K blocks, K >= 1) or a comma list of block indices such as '0,5,-1' (negative counts from the end)"


def check_vision_layers(spec: str) -> None:
    """The syntax alone, so a typo is refused before the model loads."""
    if not _SPEC.fullmatch(spec.replace(" ", "")):
        raise UserError(f"--vision-layers {spec!r} is malformed; use {SPEC_HELP}")


def vision_blocks(spec: str, depth: int) -> list[int]:
    """The block indices a --vision-layers value names, ascending and unique, checked against the tower's depth."""
    check_vision_layers(spec)
    spec = spec.replace(" ", "")
    if spec == "all":
        return list(range(depth))
    if spec.startswith("last"):
        count = int(spec[4:])
        if count > depth:
            raise UserError(f"--vision-layers {spec}: the vision tower has only {depth} blocks")
        return list(range(depth - count, depth))
    indices = [int(part) for part in spec.split(",")]
    outside = [i for i in indices if not -depth <= i < depth]
    if outside:
        raise UserError(f"--vision-layers {spec}: block {outside[0]} is out of range; the vision tower has {depth} blocks (0..{depth - 1}, or -{depth}..-1 from the end)")
    return sorted({i % depth for i in indices})


@dataclass
class VisionPlan:
    """What --vision-layers captures, settled (and checked) after the model loads and before the capture pass."""

    depth: int
    heads: int
    blocks: list[int]
    geometry: VisionGeometry
    modules: list[torch.nn.Module]

    @property
    def patches(self) -> int:
        return self.geometry.rows * self.geometry.cols

    @property
    def bytes(self) -> int:
        return fmt.vision_bytes(len(self.blocks), self.heads, self.patches)

    def meta(self) -> dict[str, Any]:
        """meta.json's `vision` field (SPEC.md §1)."""
        return {
            "num_blocks": self.depth,
            "num_heads": self.heads,
            "blocks": self.blocks,
            "grid": {"rows": self.geometry.rows, "cols": self.geometry.cols},
            "patch_size": self.geometry.patch_size,
            "seq_len": self.patches,
            "block_files": [fmt.vision_block_file(b) for b in self.blocks],
            "head_mean_files": [fmt.vision_mean_file(b) for b in self.blocks],
            "received_file": fmt.VISION_RECEIVED_FILE,
        }


def plan_vision(spec: str, adapter: ModelAdapter, model: torch.nn.Module, processor: Any, prepared: PreparedInputs) -> VisionPlan:
    depth, heads = adapter.vision_shape(model)
    blocks = vision_blocks(spec, depth)
    check_whole_image_blocks(spec, blocks, adapter.name, adapter.full_attention_blocks(model))
    modules = vision_attention_modules(model, adapter.vision_config(model))
    if len(modules) != depth:
        raise UserError(f"found {len(modules)} vision attention modules for a tower of {depth} blocks; vision capture cannot map them to blocks")
    return VisionPlan(depth, heads, blocks, adapter.vision_geometry(model, processor, prepared), modules)


def check_whole_image_blocks(spec: str, blocks: list[int], family: str, full_attention: list[int] | None) -> None:
    """Refuse blocks that attend within windows: they hold no image-wide matrix. `all` and `lastK` keep their
    meaning for every family, so they are refused too when they take in such a block; the error lists the
    blocks that can be captured, to name instead."""
    windowed = [b for b in blocks if full_attention is not None and b not in full_attention]
    if windowed:
        named = f"block {windowed[0]} attends" if len(windowed) == 1 else f"blocks {', '.join(map(str, windowed))} attend"
        capturable = ", ".join(map(str, full_attention or [])) or "none"
        raise UserError(f"--vision-layers {spec}: {family} {named} within windows only; blocks that attend over the whole image: {capturable}")
