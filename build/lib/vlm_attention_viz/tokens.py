"""meta.json's tokens[]: each token's own piece of the decoded text, its type and grid place."""

from __future__ import annotations

from typing import Any

from .sample_format import grid_pos

IMAGE_TEXT = "[IMG]"
INCOMPLETE = "\ufffd"  # what decode() yields for the bytes of a character not finished yet
# A run stays open while tokens keep ending inside a character. Real text closes it within a few
# tokens; invalid bytes (a random model's output) never do, so a long run is closed as it is.
MAX_RUN_TOKENS = 16


def token_texts(tokenizer: Any, ids: list[int], image_token_id: int) -> list[str]:
    """Split the decoded text into one piece per token; the non-image pieces concatenate back to it.

    A run of tokens is decoded together until it ends on a whole character, so a character
    split over several byte-level tokens goes to the token that completes it and the earlier
    ones get "". Where nothing can complete a run (end of sequence, an image token next, or
    MAX_RUN_TOKENS reached), its replacement characters stay with its last token.
    """
    texts: list[str] = []
    run_start, run_text = 0, ""
    for i, token_id in enumerate(ids):
        if token_id == image_token_id:
            texts.append(IMAGE_TEXT)
            run_start, run_text = i + 1, ""
            continue
        decoded = tokenizer.decode(
            ids[run_start : i + 1], skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
        finished = (
            not decoded.endswith(INCOMPLETE) or i + 1 - run_start >= MAX_RUN_TOKENS or _run_ends(ids, i, image_token_id)
        )
        complete = decoded if finished else decoded.rstrip(INCOMPLETE)
        texts.append(complete[len(run_text) :])
        run_start, run_text = (i + 1, "") if finished else (run_start, complete)
    return texts


def _run_ends(ids: list[int], i: int, image_token_id: int) -> bool:
    """Nothing can complete the run: the sequence ends or an image token follows."""
    return i + 1 == len(ids) or ids[i + 1] == image_token_id


def special_token_ids(tokenizer: Any) -> set[int]:
    return {i for i, added in tokenizer.added_tokens_decoder.items() if added.special} | set(tokenizer.all_special_ids)


def build_tokens(tokenizer: Any, ids: list[int], image_token_id: int, grid_cols: int) -> list[dict[str, Any]]:
    """tokens[] of SPEC.md §1: id, token_id, text, type, and grid_pos for image tokens (row-major)."""
    special = special_token_ids(tokenizer)
    tokens = []
    image_index = 0
    for i, (token_id, text) in enumerate(zip(ids, token_texts(tokenizer, ids, image_token_id), strict=True)):
        token: dict[str, Any] = {"id": i, "token_id": token_id, "text": text, "type": "text"}
        if token_id == image_token_id:
            token.update(type="image", grid_pos=grid_pos(image_index, grid_cols))
            image_index += 1
        elif token_id in special:
            token["type"] = "special"
        tokens.append(token)
    return tokens


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def mark_answer(tokens: list[dict[str, Any]], answer_start: int) -> None:
    """Flag generated tokens, and tokens inside a <think>...</think> block of the assistant turn (tags included).

    The assistant turn starts after the last special token before the answer (the role
    marker), so a thinking template's "<think>" in the generation prompt counts, while
    the user's own text is never scanned.
    """
    specials = [i for i in range(answer_start) if tokens[i]["type"] == "special"]
    inside = False
    for token in tokens[(specials[-1] + 1 if specials else answer_start) :]:
        if token["id"] >= answer_start:
            token["generated"] = True
        opens = token["text"] == THINK_OPEN
        if opens or inside or token["text"] == THINK_CLOSE:
            token["thinking"] = True
        inside = (inside or opens) and token["text"] != THINK_CLOSE
