"""Vision-encoder self-attention, per image, at the patch level (before the merge).

A vision tower calls its attention function once per image, or once per window of an
image (Qwen2.5-VL's windowed blocks), with no mask and is_causal=False. Switching the
vision sub-config to the capture implementation (capture.capturing_sub_models) hands each
call to a VisionRecorder: sdpa still computes the output, and for the chosen blocks the
recorder streams softmax(QK^T * scale) in float32, row chunk by row chunk, as rows of the
whole image with patches row-major: a call over part of an image gives its rows exactly 0
outside the patches it covers. Beside the rows it sums the head mean's columns: the
attention each patch receives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import sample_format as fmt
from .attention_capture import DEFAULT_ROW_BUDGET, attention_chunks, rows_per_chunk, to_host
from .errors import UserError
from .index_spec import IndexKind, check_index_spec, resolve_index_spec
from .models import ModelAdapter, PreparedInputs
from .models.base import PatchCall, VisionGeometry


@dataclass
class VisionRows:
    """Query patches `rows` (row-major indices) of one block for one image, each a row over all P patches."""

    block: int
    image: int
    rows: np.ndarray  # (c,) int64
    attn: np.ndarray  # (H, c, P) float16
    head_mean: np.ndarray  # (c, P) float16, mean over heads taken in float32

    @property
    def nbytes(self) -> int:
        return self.attn.nbytes + self.head_mean.nbytes


class _GatheredRows:
    """Full-width rows of one (block, image) gathered from calls over parts of the image (windows) until they
    fill one chunk of the row budget, so small windows go to the writer together. The buffer is kept and
    zeroed for the next chunk: a fresh one per chunk, among a window's many small allocations, fragments the
    host heap (the resident set doubled in BENCHMARKS.md's run)."""

    def __init__(self, probs: torch.Tensor) -> None:
        self.probs = probs  # (H, capacity, P) float32, zero outside each call's patches
        self.block = self.image = -1
        self.rows: list[torch.Tensor] = []
        self.filled = 0

    def suits(self, heads: int, width: int, count: int) -> bool:
        return (self.probs.shape[0], self.probs.shape[2]) == (heads, width) and count <= self.probs.shape[1]

    def has_room(self, block: int, image: int, count: int) -> bool:
        return (self.block, self.image) == (block, image) and self.filled + count <= self.probs.shape[1]

    def add(self, block: int, image: int, rows: torch.Tensor, columns: torch.Tensor, probs: torch.Tensor) -> None:
        self.block, self.image = block, image
        self.probs.narrow(1, self.filled, len(rows)).index_copy_(2, columns, probs)
        self.rows.append(rows)
        self.filled += len(rows)

    def clear(self) -> None:
        self.probs[:, : self.filled].zero_()
        self.rows, self.filled = [], 0


class VisionRecorder:
    """Receives every vision attention call; records the chosen blocks, call by call."""

    def __init__(
        self,
        sink: Callable[[VisionRows], None],
        modules: list[torch.nn.Module],
        blocks: list[int],
        block_calls: list[list[PatchCall]],
        on_block_done: Callable[[int], None] = lambda block: None,
        row_budget: int = DEFAULT_ROW_BUDGET,
    ) -> None:
        """modules: the tower's attention modules in block order; block_calls[b]: block b's attention calls, in
        the order the tower makes them (VisionGeometry.block_calls)."""
        self.sink = sink
        self.blocks = blocks
        self.block_calls = block_calls
        self.on_block_done = on_block_done
        self.row_budget = row_budget
        self._block_of = {id(module): block for block, module in enumerate(modules)}
        self._calls_seen = [0] * len(modules)
        self._gathered: _GatheredRows | None = None
        # (block, image) -> (P,) float32 column sums of the head mean
        self.received: dict[tuple[int, int], torch.Tensor] = {}

    def on_attention(
        self,
        module: torch.nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        mask: torch.Tensor | None,
        scaling: float,
        causal: bool,
    ) -> None:
        block = self._block_of[id(module)]
        index = self._calls_seen[block]
        self._calls_seen[block] += 1
        if block not in self.blocks:
            return
        calls = self.block_calls[block]
        if index >= len(calls) or query.shape[2] != len(calls[index].patches):
            raise UserError(
                f"vision block {block} attends over {query.shape[2]} patches in a call its model's geometry does not foresee; this model's vision attention is not supported"
            )
        self.record(block, calls[index], query, key, mask, scaling, causal)
        if index == len(calls) - 1:
            self._flush()
            self._gathered = None  # the next block may not attend within windows
            self.on_block_done(block)

    def record(
        self,
        block: int,
        call: PatchCall,
        query: torch.Tensor,
        key: torch.Tensor,
        mask: torch.Tensor | None,
        scaling: float,
        causal: bool,
    ) -> None:
        if causal or not masks_nothing(mask):
            raise UserError(
                "this vision tower masks its attention; vision capture supports full attention over images or windows only"
            )
        # ascending row-major order: a call's rows then form runs of consecutive rows in the files
        order = torch.argsort(call.patches).to(query.device)
        patches = call.patches.to(query.device)[order]
        query, key = query.index_select(2, order), key.index_select(2, order)
        width = call.image_patches
        self.received.setdefault((block, call.image), torch.zeros(width, dtype=torch.float32, device=query.device))
        for row0, probs in attention_chunks(query, key, None, False, scaling, self.row_budget, row_width=width):
            rows = patches[row0 : row0 + probs.shape[1]]
            if len(patches) == width:  # the whole image: the rows are already full width
                self._emit(block, call.image, rows, probs)
            else:
                self._gather(block, call, rows, patches, probs)
            del probs

    def _gather(
        self, block: int, call: PatchCall, rows: torch.Tensor, columns: torch.Tensor, probs: torch.Tensor
    ) -> None:
        gathered = self._gathered
        if gathered is not None and gathered.filled and not gathered.has_room(block, call.image, len(rows)):
            self._flush()
        heads, width = probs.shape[0], call.image_patches
        if gathered is None or not gathered.suits(heads, width, len(rows)):
            capacity = max(len(rows), rows_per_chunk(heads, width, self.row_budget))
            gathered = self._gathered = _GatheredRows(
                torch.zeros(heads, capacity, width, dtype=torch.float32, device=probs.device)
            )
        gathered.add(block, call.image, rows, columns, probs)

    def _flush(self) -> None:
        gathered = self._gathered
        if gathered is not None and gathered.filled:
            self._emit(gathered.block, gathered.image, torch.cat(gathered.rows), gathered.probs[:, : gathered.filled])
            gathered.clear()

    def _emit(self, block: int, image: int, rows: torch.Tensor, probs: torch.Tensor) -> None:
        mean = probs.mean(dim=0)
        self.received[(block, image)] += mean.sum(dim=0)
        width = probs.shape[2]
        self.sink(
            VisionRows(block, image, rows.cpu().numpy(), to_host(probs.half(), width), to_host(mean.half(), width))
        )

    def received_matrix(self, image: int = 0) -> np.ndarray:
        """(len(blocks), P) float32: per chosen block, the attention each patch of the image receives."""
        return torch.stack([self.received[(block, image)] for block in self.blocks]).cpu().numpy()


def masks_nothing(mask: torch.Tensor | None) -> bool:
    """No mask, or one that lets every patch see every other (Pixtral's block mask over a single image)."""
    if mask is None:
        return True
    return bool(mask.all()) if mask.dtype == torch.bool else bool((mask == 0).all())


def vision_attention_modules(model: torch.nn.Module, vision_config: object) -> list[torch.nn.Module]:
    """The vision tower's attention modules in block order.

    Vision attention has no layer_idx; it is found as the modules built from the vision
    sub-config that carry `is_causal` (every transformers attention module does), in
    registration order, which is block order. A PEFT wrapper wraps their linear layers,
    not these modules, so the same modules are found through it.
    """
    return [m for m in model.modules() if getattr(m, "config", None) is vision_config and hasattr(m, "is_causal")]


VISION_BLOCKS = IndexKind("--vision-layers", "block", "the vision tower")


def check_vision_layers(spec: str) -> None:
    """The syntax alone, so a typo is refused before the model loads."""
    check_index_spec(spec, VISION_BLOCKS)


def vision_blocks(spec: str, depth: int) -> list[int]:
    """The block indices a --vision-layers value names, ascending and unique, checked against the tower's depth."""
    return resolve_index_spec(spec, depth, VISION_BLOCKS)


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
    def shape(self) -> tuple[int, int, int]:
        """(captured blocks, heads, patches), as sample_format's size arithmetic takes them."""
        return len(self.blocks), self.heads, self.patches

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


def plan_vision(
    spec: str, adapter: ModelAdapter, model: torch.nn.Module, processor: Any, prepared: PreparedInputs
) -> VisionPlan:
    depth, heads = adapter.vision_shape(model)
    blocks = vision_blocks(spec, depth)
    modules = vision_attention_modules(model, adapter.vision_config(model))
    if len(modules) != depth:
        raise UserError(
            f"found {len(modules)} vision attention modules for a tower of {depth} blocks; vision capture cannot map them to blocks"
        )
    return VisionPlan(depth, heads, blocks, adapter.vision_geometry(model, processor, prepared), modules)
