"""Generate mode: the model answers first, then the capture pass reads prompt + answer."""

from __future__ import annotations

from typing import Any

import torch

from .models import PreparedInputs
from .tokens import mark_answer


def generate_answer(model: Any, prepared: PreparedInputs, max_new_tokens: int) -> None:
    """Greedy generation with the model's normal attention, then the inputs extended to prompt + answer.

    The answer is exactly what a plain greedy generate() gives; the capture pass then reads
    the whole sequence at once. Per-token inputs beside input_ids get ones for the attention
    mask and zeros (= text) for token types on the new tokens.
    """
    with torch.inference_mode():
        sequence = model.generate(
            **prepared.on(model.device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
        )
    prompt_len = prepared.input_ids.shape[1]
    answer = sequence[:, prompt_len:].cpu()
    extended = {}
    for key, value in prepared.model_inputs.items():
        if key == "input_ids":
            value = torch.cat([value, answer], dim=1)
        elif isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape == (1, prompt_len):
            fill = torch.ones_like(answer) if key == "attention_mask" else torch.zeros_like(answer)
            value = torch.cat([value, fill.to(value.dtype)], dim=1)
        extended[key] = value
    prepared.model_inputs = extended


def answer_fields(tokens: list[dict[str, Any]], answer_start: int, max_new_tokens: int) -> dict[str, Any]:
    """meta.json's generate-mode fields; marks the answer's tokens (and thinking) in place."""
    mark_answer(tokens, answer_start)
    return {
        "generation": {"max_new_tokens": max_new_tokens, "do_sample": False, "new_tokens": len(tokens) - answer_start},
        "answer": "".join(t["text"] for t in tokens[answer_start:]),
        "answer_start": answer_start,
    }
