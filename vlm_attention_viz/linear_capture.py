"""The implicit attention of linear-attention layers (the gated delta rule of Gated DeltaNet), streamed like softmax rows.

Such a layer keeps a state S_t (d_k x d_v per head) instead of attending:

    S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,    o_t = S_t^T q_t

with q and k L2-normalised and q scaled by d_k^-1/2 (transformers' torch_recurrent_gated_delta_rule).
Unrolled, o_t = sum_s A[t, s] v_s with A[t, s] = q_t . u_{t,s}, where u_{t,s} is beta_s k_s carried
through the same decays and projections up to t: u_{t,s} = exp(g_t) (I - beta_t k_t k_t^T) u_{t-1,s},
u_{t,t} = beta_t k_t. The recurrence is run on U_t = [u_{t,0} .. u_{t,t}] ((H, N, d_k) float32 on the
device), one row of A per step, gathered in chunks under the row budget and handed to the recorder like
softmax rows. A is signed and unnormalised (sample_format.ATTENTION_KINDS["linear"]).

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


def implicit_attention_chunks(
    delta: GatedDelta, row_budget: int = DEFAULT_ROW_BUDGET
) -> Iterator[tuple[int, torch.Tensor]]:
    """(row0, A[:, row0:row0 + c, :] in float32, (H, c, N)), for every row chunk in order; zero after each row's token."""
    heads, n, _ = delta.key.shape
    carried = torch.zeros_like(delta.key)  # U_t: row s holds u_{t,s}
    written = delta.beta[:, :, None] * delta.key  # beta_s k_s
    decay = delta.g.exp()
    chunk = rows_per_chunk(heads, n, row_budget)
    for row0 in range(0, n, chunk):
        rows = torch.zeros(heads, min(chunk, n - row0), n, dtype=torch.float32, device=delta.key.device)
        for t in range(row0, row0 + rows.shape[1]):
            step(carried, written, delta.key, decay, t)
            rows[:, t - row0, : t + 1] = torch.bmm(carried[:, : t + 1], delta.query[:, t, :, None])[:, :, 0]
        yield row0, rows


def step(carried: torch.Tensor, written: torch.Tensor, key: torch.Tensor, decay: torch.Tensor, t: int) -> None:
    """U_{t-1} -> U_t in place: project out beta_t k_t (k_t . u), decay by exp(g_t), then append beta_t k_t."""
    earlier = carried[:, :t]
    along_key = torch.bmm(earlier, key[:, t, :, None])  # (H, t, 1): k_t . u_{t-1,s}
    earlier.baddbmm_(along_key, written[:, t, None, :], alpha=-1).mul_(decay[:, t, None, None])
    carried[:, t] = written[:, t]


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
