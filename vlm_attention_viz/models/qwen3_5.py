"""Qwen3.5: Qwen3-VL's image geometry (16 px patches merged 2 x 2, read from the checkpoint's processor) and a
hybrid language model. Its config's layer_types name each layer:

- full_attention: softmax attention whose output the layer multiplies by sigmoid(gate); captured through
  AttentionInterface like any softmax layer, so the stored weights are those before the gate;
- linear_attention: a Gated DeltaNet layer, which never forms attention weights; its implicit attention is
  unrolled from the layer's own q, k, g and beta (linear_capture.py), per value head.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, Qwen3_5ForConditionalGeneration, Qwen3VLProcessor
from transformers.models.qwen3_5.modeling_qwen3_5 import apply_mask_to_padding_states, causal_conv1d_fn, l2norm

from .. import sample_format as fmt
from ..linear_capture import GatedDelta, LinearLayer
from .base import PatchGridAdapter


class Qwen3_5Adapter(PatchGridAdapter):
    name = "qwen3.5"
    config_model_types = ("qwen3_5",)
    model_class = Qwen3_5ForConditionalGeneration
    processor_class = Qwen3VLProcessor
    image_placeholder = "<|image_pad|>"

    def layer_attention(self, model: PreTrainedModel) -> list[dict[str, Any]]:
        config = self.language_config(model)
        return [
            fmt.layer_kind("linear", conv_kernel=config.linear_conv_kernel_dim, num_heads=config.linear_num_value_heads)
            if layer_type == "linear_attention"
            else fmt.layer_kind("causal", before_output_gate=True)
            for layer_type in config.layer_types
        ]

    def linear_layers(self, model: PreTrainedModel) -> dict[int, LinearLayer]:
        return {
            layer: (module.linear_attn, gated_delta_of)
            for layer, module in enumerate(model.model.language_model.layers)
            if hasattr(module, "linear_attn")
        }


def gated_delta_of(
    module: torch.nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> GatedDelta:
    """What a Gated DeltaNet layer (transformers' Qwen3_5GatedDeltaNet and its MoE twin) feeds its delta rule,
    computed from the layer's input as its forward computes it: the projections, the causal convolution over
    q, k and v, the per-head split, the gates; then, as the rule does, q and k repeated to the value heads,
    L2-normalised, q scaled by d_k^-1/2. One sequence, no cache."""
    hidden = apply_mask_to_padding_states(hidden, attention_mask)
    mixed = causal_conv1d_fn(
        module.in_proj_qkv(hidden).transpose(1, 2),
        module.conv1d.weight.squeeze(1),
        module.conv1d.bias,
        module.activation,
    ).transpose(1, 2)
    query, key, _ = torch.split(mixed, [module.key_dim, module.key_dim, module.value_dim], dim=-1)
    n = hidden.shape[1]
    per_value_head = module.num_v_heads // module.num_k_heads
    query, key = (
        x.reshape(n, module.num_k_heads, module.head_k_dim)
        .repeat_interleave(per_value_head, dim=1)
        .transpose(0, 1)
        .float()
        for x in (query[0], key[0])
    )
    beta = module.in_proj_b(hidden)[0].sigmoid().transpose(0, 1).float()
    g = -module.A_log.float().exp() * F.softplus(module.in_proj_a(hidden)[0].float() + module.dt_bias)
    query = l2norm(query, dim=-1, eps=1e-6)
    return GatedDelta(query / query.shape[-1] ** 0.5, l2norm(key, dim=-1, eps=1e-6), g.transpose(0, 1), beta)
