"""Streaming attention capture through transformers' AttentionInterface.

A forward pass with the capture implementation computes every attention output with
sdpa, exactly as the model normally would, so hidden states and logits do not change.
Beside it, the recorder recomputes softmax(QK^T * scale + mask) in float32 for a few
query rows at a time (GQA key heads expanded to the query heads), casts the rows to
float16 and hands them on together with their head mean and head max. A layer is never
held whole: device memory is bounded by the row budget, and the host holds what the
background writer has not yet written (see writer.py).

Every row chunk passes through the one `sink` callable (the hook point), so a caller can
write, test or inspect them alike. The same implementation serves the vision tower
(vision_capture.py): a recorder is attached per sub-config, and the attention modules
built from that sub-config report to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from .analysis import TokenMeasures
from .errors import UserError
from .sample_format import TextToImage

CAPTURE_IMPLEMENTATION = "vlm_attention_viz_capture"
DEFAULT_ROW_BUDGET = 32 * 2**20  # bytes of float32 scores per chunk on the device


@dataclass
class AttentionRows:
    """Query rows [row0, row0 + c) of one layer: what the sink receives."""

    layer: int
    row0: int
    attn: np.ndarray  # (H, c, N) float16
    head_mean: np.ndarray  # (c, N) float16, mean over heads taken in float32
    head_max: np.ndarray  # (c, N) float16

    @property
    def nbytes(self) -> int:
        return self.attn.nbytes + self.head_mean.nbytes + self.head_max.nbytes


class Recorder(Protocol):
    """What the capture implementation hands each attention call of the sub-model it watches."""

    def on_attention(
        self,
        module: torch.nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        mask: torch.Tensor | None,
        scaling: float,
        causal: bool,
    ) -> None: ...


def attention_chunks(
    query: torch.Tensor,
    key: torch.Tensor,
    mask: torch.Tensor | None,
    causal: bool,
    scaling: float,
    row_budget: int,
    row_width: int | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """(row0, softmax(QK^T * scale + mask) in float32, (H, c, keys)) for one sequence, a chunk of query rows at a time.

    query (1, H, N, d); key (1, KV heads, N, d), expanded to H. Under a causal mask the keys after a
    chunk's last row get exactly 0, so they are left out: the chunk is (H, c, row0 + c) wide.
    row_width: the values a row takes in the budget where the caller widens the rows (default N).
    """
    batch, heads, n, _ = query.shape
    if batch != 1 or key.shape[2] != n:
        raise RuntimeError("capture needs one sequence and a full pass over it (no cache)")
    key = repeat_kv(key, heads // key.shape[1]).float()
    chunk = rows_per_chunk(heads, row_width or n, row_budget)
    for row0 in range(0, n, chunk):
        rows = min(chunk, n - row0)
        width = row0 + rows if causal else n
        yield (
            row0,
            _probabilities(query[0, :, row0 : row0 + rows].float(), key[0, :, :width], mask, causal, row0, scaling),
        )


def rows_per_chunk(heads: int, width: int, row_budget: int) -> int:
    """How many float32 rows of `width` values per head fit in the row budget (at least one)."""
    return max(1, row_budget // (heads * width * 4))


def _probabilities(
    query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None, causal: bool, row0: int, scaling: float
) -> torch.Tensor:
    """softmax(QK^T * scale + mask) for query rows row0.. over the given keys, in float32: (H, c, keys)."""
    # In place from here on: one (H, c, N) float32 buffer per chunk, not four.
    scores = torch.matmul(query, key.transpose(-1, -2)).mul_(scaling)
    rows = torch.arange(row0, row0 + query.shape[1], device=query.device)
    if causal:
        allowed = torch.arange(key.shape[1], device=query.device)[None, :] <= rows[:, None]
        scores.masked_fill_(~allowed, float("-inf"))
    elif mask is not None and mask.dtype == torch.bool:  # True = may attend
        scores.masked_fill_(~mask[0, :, row0 : row0 + query.shape[1]].to(query.device), float("-inf"))
    elif mask is not None:  # additive float mask
        scores.add_(mask[0, :, row0 : row0 + query.shape[1]].to(query.device, torch.float32))
    scores.sub_(scores.amax(dim=-1, keepdim=True)).exp_()
    return scores.div_(scores.sum(dim=-1, keepdim=True))


class AttentionRecorder:
    """Turns each LLM layer's queries and keys into stored rows, and tallies the text-to-image table and, given
    `measures`, the per-token tables (computed on the device from the float16 rows as they pass)."""

    def __init__(
        self,
        sink: Callable[[AttentionRows], None],
        num_layers: int,
        num_heads: int | list[int],
        image_positions: list[int],
        on_layer_done: Callable[[int], None] = lambda layer: None,
        row_budget: int = DEFAULT_ROW_BUDGET,
        measures: TokenMeasures | None = None,
        stored: StoredRows | None = None,
    ) -> None:
        """image_positions: every image token, ascending (not one block where an image is tiled or has breaks);
        stored: the layers and rows the sink is handed (None: all), the tables still see every row."""
        self.sink = sink
        self.stored = stored or StoredRows()
        start, end = image_positions[0], image_positions[-1]
        contiguous = end - start + 1 == len(image_positions)
        self.image_columns: slice | torch.Tensor = (
            slice(start, end + 1) if contiguous else torch.tensor(image_positions)
        )
        self.on_layer_done = on_layer_done
        self.row_budget = row_budget
        self.text_to_image = TextToImage(num_layers, num_heads, (start, end))
        self.measures = measures

    def on_attention(
        self,
        module: torch.nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        mask: torch.Tensor | None,
        scaling: float,
        causal: bool,
    ) -> None:
        self.record(module.layer_idx, query, key, mask, scaling, causal)

    def record(
        self,
        layer: int,
        query: torch.Tensor,
        key: torch.Tensor,
        mask: torch.Tensor | None,
        scaling: float,
        causal: bool,
    ) -> None:
        for row0, probs in attention_chunks(query, key, mask, causal, scaling, self.row_budget):
            self.emit(layer, row0, probs, query.shape[2])
            del probs
        self.on_layer_done(layer)

    def emit(self, layer: int, row0: int, values: torch.Tensor, n: int, signed: bool = False) -> None:
        """Float32 rows row0.. of a layer, (H, c, keys <= n), to the sink as float16 rows of n with their head mean
        and max, and into the text-to-image table (signed values by their size, so opposite signs do not cancel)."""
        columns = self.image_columns
        if isinstance(columns, torch.Tensor) and columns.device != values.device:
            columns = self.image_columns = columns.to(values.device)
        image = values[:, :, columns]
        # The absolute sum reduced in place (no |values| copy), in float32 then widened
        mass = (
            torch.linalg.vector_norm(image, ord=1, dim=-1).double()
            if signed
            else image.sum(dim=-1, dtype=torch.float64)
        )
        self.text_to_image.add(layer, row0, mass.cpu().numpy())
        stored = values.half()
        if self.measures is not None:
            self.measures.add(layer, row0, stored, signed)
        for start, stop in self.stored.runs(layer, row0, values.shape[1]):
            part = values[:, start - row0 : stop - row0]
            self.sink(
                AttentionRows(
                    layer=layer,
                    row0=start,
                    attn=to_host(stored[:, start - row0 : stop - row0], n),
                    head_mean=to_host(part.mean(dim=0).half(), n),
                    head_max=to_host(part.amax(dim=0).half(), n),
                )
            )


@dataclass(frozen=True)
class StoredRows:
    """The layers and query rows that reach the host: a storage profile that drops image rows or layers never
    copies them off the device."""

    layers: frozenset[int] | None = None  # None: every layer
    rows: np.ndarray | None = None  # ascending token rows; None: every row

    def runs(self, layer: int, row0: int, count: int) -> list[tuple[int, int]]:
        """The runs [start, stop) of consecutive stored rows within rows row0 .. row0 + count."""
        if self.layers is not None and layer not in self.layers:
            return []
        if self.rows is None:
            return [(row0, row0 + count)]
        kept = self.rows[(self.rows >= row0) & (self.rows < row0 + count)]
        breaks = np.flatnonzero(np.diff(kept) != 1) + 1
        return [(int(run[0]), int(run[-1]) + 1) for run in np.split(kept, breaks) if len(run)]


def to_host(values: torch.Tensor, n: int) -> np.ndarray:
    """float16 rows as a NumPy array, zero-filled out to N key columns."""
    host = values.cpu().numpy()
    if host.shape[-1] == n:
        return host
    full = np.zeros((*host.shape[:-1], n), dtype=np.float16)
    full[..., : host.shape[-1]] = host
    return full


# Recorders by the id of the sub-config whose attention modules report to them.
_active: dict[int, Recorder] = {}


def capture_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """The model's own sdpa output; the weights go to the active recorder, never back to the model."""
    if (
        kwargs.get("softcap") is not None
    ):  # sdpa cannot cap the logits, so neither output nor weights would be the model's
        raise UserError("this model soft-caps its attention logits, which the capture does not support")
    output, _ = sdpa_attention_forward(
        module, query, key, value, attention_mask, scaling=scaling, is_causal=is_causal, **kwargs
    )
    recorder = _active.get(id(getattr(module, "config", None)))
    if recorder is not None:
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        recorder.on_attention(
            module, query, key, attention_mask, scale, sdpa_is_causal(module, query, attention_mask, is_causal)
        )
    return output, None


def sdpa_is_causal(
    module: torch.nn.Module, query: torch.Tensor, mask: torch.Tensor | None, is_causal: bool | None
) -> bool:
    """Whether sdpa applies its own causal mask to this call: the call's is_causal, else the module's, and only
    without an explicit mask (the same rule as transformers' sdpa_attention_forward)."""
    wanted = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    return bool(wanted) and mask is None and query.shape[2] > 1


AttentionInterface.register(CAPTURE_IMPLEMENTATION, capture_attention_forward)
# The model builds its mask for our implementation exactly as for sdpa, so the output matches sdpa bit for bit.
AttentionMaskInterface.register(CAPTURE_IMPLEMENTATION, sdpa_mask)


@contextmanager
def capturing(model: PreTrainedModel, language_config_key: str, recorder: Recorder) -> Iterator[None]:
    """Within the block, the language model's attention runs through the recorder; the vision tower stays on sdpa."""
    with capturing_sub_models(model, {language_config_key: recorder}):
        yield


@contextmanager
def capturing_sub_models(model: PreTrainedModel, recorders: dict[str, Recorder]) -> Iterator[None]:
    """Within the block, the attention of each named sub-config (e.g. text_config, vision_config) runs through its
    recorder; every other sub-model stays on its own implementation. Switched back after, even on error."""
    global _active
    configs = {key: getattr(model.config, key) for key in recorders}
    previous = {key: config._attn_implementation for key, config in configs.items()}
    model.set_attn_implementation({key: CAPTURE_IMPLEMENTATION for key in recorders})
    _active = {id(configs[key]): recorder for key, recorder in recorders.items()}
    try:
        yield
    finally:
        _active = {}
        model.set_attn_implementation(previous)
