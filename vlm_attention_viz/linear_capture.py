"""The implicit attention of linear-attention layers (the gated delta rule of Gated DeltaNet), streamed like softmax rows.

Such a layer keeps a state S_t (d_k x d_v per head) instead of attending:

    S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,    o_t = S_t^T q_t

with q and k L2-normalised and q scaled by d_k^-1/2 (transformers' torch_recurrent_gated_delta_rule).
Unrolled, o_t = sum_s A[t, s] v_s with A[t, s] = q_t . u_{t,s}, where u_{t,s} is beta_s k_s carried
through the same decays and projections up to t: u_{t,s} = exp(g_t) (I - beta_t k_t k_t^T) u_{t-1,s},
u_{t,t} = beta_t k_t. U = [u_{t,0} .. u_{t,t}] ((H, N, d_k) float32 on the device) is carried a block of
rows at a time (unroll_block), the rows gathered in chunks under the row budget and handed to the recorder
like softmax rows. A is signed and unnormalised (sample_format.ATTENTION_KINDS["linear"]).

Each family's adapter says which modules are such layers and how their q, k, g and beta come from the
layer's input (models/qwen3_5.py); the forward pass itself is not touched, so its output does not change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from .attention_capture import DEFAULT_ROW_BUDGET, AttentionRecorder, rows_per_chunk


@dataclass
class GatedDelta:
    """One layer's inputs to the gated delta rule, per value head, in float32: query (H, N, d_k) L2-normalised and
    scaled by d_k^-1/2, key (H, N, d_k) L2-normalised, g (H, N) the log decay, beta (H, N) the write strength."""

    query: torch.Tensor
    key: torch.Tensor
    g: torch.Tensor
    beta: torch.Tensor


# A linear layer's module, and how its GatedDelta comes from the module and the hidden states it is called with.
LinearLayer = tuple[torch.nn.Module, Callable[[torch.nn.Module, torch.Tensor], GatedDelta]]


BLOCK = 64  # rows unrolled together: their earlier columns come from one matmul against U


def implicit_attention_chunks(
    delta: GatedDelta, row_budget: int = DEFAULT_ROW_BUDGET, block: int = BLOCK
) -> Iterator[tuple[int, torch.Tensor]]:
    """(row0, A[:, row0:row0 + c, :] in float32, (H, c, N)), for every row chunk in order; zero after each row's token."""
    heads, n, _ = delta.key.shape
    carried = torch.zeros_like(delta.key)  # U before the block being unrolled: row s holds u_{t,s}
    chunk = rows_per_chunk(heads, n, row_budget)
    for row0 in range(0, n, chunk):
        rows = torch.zeros(heads, min(chunk, n - row0), n, dtype=torch.float32, device=delta.key.device)
        for start in range(row0, row0 + rows.shape[1], block):
            end = min(start + block, row0 + rows.shape[1])
            unroll_block(delta, carried, start, end, rows[:, start - row0 : end - row0])
        yield row0, rows


def unroll_block(delta: GatedDelta, carried: torch.Tensor, start: int, end: int, out: torch.Tensor) -> None:
    """Rows start..end-1 of A into out (H, end - start, N), and carried from U_{start-1} to U_{end-1}, in place.

    Each step t applies M_t = exp(g_t)(I - beta_t k_t k_t^T) to the block's own columns (u_{t,s}, s >= start) and
    to the running product P_t = M_t ... M_start (d_k x d_k). M_t is symmetric, so the rows of P_t^T transform as
    the u do, and both are kept as the rows of one matrix: [P_t^T; u_{t,start}; ..; u_{t,t}]. Its product with q_t
    gives P_t^T q_t and the row's own columns at once. The columns before the block are u_{t,s} = P_t u_{start-1,s},
    so A[t, s] = (P_t^T q_t) . u_{start-1,s}: one matmul for the whole block.
    """
    heads, _, dk = delta.key.shape
    written = delta.beta[:, start:end, None] * delta.key[:, start:end]  # beta_s k_s
    decay = delta.g[:, start:end].exp()[:, :, None, None]
    stacked = torch.zeros(heads, dk + end - start, dk, device=carried.device)
    stacked[:, :dk] = torch.eye(dk, device=carried.device)
    pulled = torch.empty(heads, end - start, dk, device=carried.device)  # P_t^T q_t
    for i, t in enumerate(range(start, end)):
        moved = stacked[:, : dk + i]  # P^T and the block's earlier columns: M_t applies to them all
        along_key = torch.bmm(moved, delta.key[:, t, :, None])
        moved.baddbmm_(along_key, written[:, None, i], alpha=-1).mul_(decay[:, i])
        stacked[:, dk + i] = written[:, i]
        seen = torch.bmm(stacked[:, : dk + i + 1], delta.query[:, t, :, None])[:, :, 0]
        pulled[:, i], out[:, i, start : t + 1] = seen[:, :dk], seen[:, dk:]
    earlier = carried[:, :start]
    out[:, :, :start] = torch.bmm(pulled, earlier.transpose(1, 2))
    carried[:, :start] = torch.bmm(earlier, stacked[:, :dk])  # u_{end-1,s} = P u_{start-1,s}, as rows: u^T P^T
    carried[:, start:end] = stacked[:, dk:]


@contextmanager
def capturing_linear_layers(
    layers: dict[int, LinearLayer], recorder: AttentionRecorder, row_budget: int = DEFAULT_ROW_BUDGET
) -> Iterator[None]:
    """Within the block, each linear layer's implicit attention goes to the recorder as its layer's rows, computed
    from the layer's input before the layer runs. The hooks are removed after, even on error."""

    def hook(layer: int, inputs_of: Callable[[torch.nn.Module, torch.Tensor], GatedDelta]) -> Callable[..., None]:
        def record(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
            with torch.no_grad():
                delta = inputs_of(module, hidden)
                for row0, rows in implicit_attention_chunks(delta, row_budget):
                    recorder.emit(layer, row0, rows, delta.key.shape[1], signed=True)
            recorder.on_layer_done(layer)

        return record

    handles = [
        module.register_forward_pre_hook(hook(layer, inputs_of), with_kwargs=True)
        for layer, (module, inputs_of) in layers.items()
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
