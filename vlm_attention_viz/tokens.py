"""meta.json's tokens[]: each token's own piece of the decoded text, its type and grid place."""

from __future__ import annotations

from typing import Any

IMAGE_TEXT = "[IMG]"
INCOMPLETE = "\ufffd"  # what decode() yields for the bytes of a character not finished yet


def token_texts(tokenizer: Any, ids: list[int], image_token_id: int) -> list[str]:
    """Split the decoded text into one piece per token; the non-image pieces concatenate back to it.

    A run of tokens is decoded together until it ends on a whole character, so a character
    split over several byte-level tokens goes to the token that completes it and the earlier
    ones get "".
    """
    texts: list[str] = []
    run_start, run_text = 0, ""
    for i, token_id in enumerate(ids):
        if token_id == image_token_id:
            texts.append(IMAGE_TEXT)
            run_start, run_text = i + 1, ""
            continue
        decoded = tokenizer.decode(ids[run_start : i + 1], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        complete = decoded.rstrip(INCOMPLETE)
        texts.append(complete[len(run_text) :])
        if complete == decoded:
            run_start, run_text = i + 1, ""
        else:
            run_text = complete
    return texts


def special_token_ids(tokenizer: Any) -> set[int]:
    return {i for i, added in tokenizer.added_tokens_decoder.items() if added.special} | set(tokenizer.all_special_ids)


def build_tokens(tokenizer: Any, ids: list[int], image_token_id: int, grid_cols: int) -> list[dict[str, Any]]:
    """tokens[] of SPEC.md §1: id, token_id, text, type, and grid_pos for image tokens (row-major)."""
    special = special_token_ids(tokenizer)
    tokens = []
    image_index = 0
    for i, (token_id, text) in enumerate(zip(ids, token_texts(tokenizer, ids, image_token_id))):
        token: dict[str, Any] = {"id": i, "token_id": token_id, "text": text, "type": "text"}
        if token_id == image_token_id:
            token.update(type="image", grid_pos=[image_index // grid_cols, image_index % grid_cols])
            image_index += 1
        elif token_id in special:
            token["type"] = "special"
        tokens.append(token)
    return tokens
