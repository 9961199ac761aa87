"""`import`: the token list, where the image tokens are and the grid they form (SPEC.md §2, Import).

The image span is given, or found as the one run of the named model family's image
placeholder text. The grid is given, or the factor pair of the span's length whose
aspect ratio is nearest the image's. A tiled family's adapter reads its regions from the
token texts instead (ModelAdapter.import_layout).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .image_layout import ImageLayout
from .tokens import IMAGE_TEXT

# A grid whose cols/rows is further than this factor from the image's aspect ratio is not taken as the image's.
GRID_ASPECT_TOLERANCE = 1.25
SPECIAL_TOKEN = re.compile(r"<\|[^<>]*\|>")
GRID_SPEC = re.compile(r"(\d+)\s*[xX×]\s*(\d+)")
SAVE_TOKENS_HINT = "save them as a string array: np.save(path, np.array(tokens, dtype=str))"


def load_token_texts(path: Path) -> list[str]:
    """Each token's text from a 1-D string .npy (np.save of a list of str), never unpickled."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"tokens file not found: {path}")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):  # object arrays need pickle; other files are not .npy at all
        raise UserError(
            f"{path} is not a .npy array of strings (object arrays are not unpickled); {SAVE_TOKENS_HINT}"
        ) from None
    if not isinstance(array, np.ndarray) or array.ndim != 1 or array.dtype.kind not in "US":
        what = f"{array.dtype} values of shape {array.shape}" if isinstance(array, np.ndarray) else "an .npz archive"
        raise UserError(f"{path} holds {what}, not a list of token strings; {SAVE_TOKENS_HINT}")
    if array.dtype.kind == "S":
        return [bytes(t).decode("utf-8", errors="replace") for t in array]
    texts = [str(t) for t in array]
    for i, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise UserError(
                f"{path}: token {i} is not valid text (a lone surrogate, {text!r}); save each token's decoded text"
            ) from None
    return texts


def resolve_span(span: tuple[int, int] | None, placeholder: str | None, texts: list[str]) -> tuple[int, int]:
    """The image tokens' first and last index (inclusive): as given, else the placeholder's one run."""
    if span is not None:
        start, end = span
        if not 0 <= start <= end < len(texts):
            raise UserError(
                f"--image-span {start} {end} is not inside the sequence of {len(texts)} tokens (0..{len(texts) - 1}, START <= END)"
            )
        return start, end
    if placeholder is None:
        raise UserError(
            "where is the image? pass --image-span START END, or --model-type to find its placeholder tokens"
        )
    positions = [i for i, text in enumerate(texts) if text == placeholder]
    if not positions:
        raise UserError(f"no {placeholder} tokens in the token list; pass --image-span START END")
    if positions[-1] - positions[0] + 1 != len(positions):
        raise UserError(
            f"the {placeholder} tokens do not form one run (one image per sample); pass --image-span START END"
        )
    return positions[0], positions[-1]


def resolve_grid(spec: str | None, count: int, image_size: tuple[int, int]) -> tuple[int, int]:
    """(rows, cols) with rows x cols = count: as given (ROWSxCOLS), else inferred from the image's aspect ratio."""
    if spec is None:
        return infer_grid(count, image_size)
    match = GRID_SPEC.fullmatch(spec.strip())
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise UserError(f"--grid {spec!r}: expected ROWSxCOLS, e.g. 24x32")
    rows, cols = int(match[1]), int(match[2])
    if rows * cols != count:
        raise UserError(f"--grid {rows}x{cols} holds {rows * cols} tokens but the image span holds {count}")
    return rows, cols


def infer_grid(count: int, image_size: tuple[int, int]) -> tuple[int, int]:
    """The factor pair rows x cols = count whose cols/rows is nearest the image's width/height."""
    width, height = image_size
    pairs = [(rows, count // rows) for rows in range(1, count + 1) if count % rows == 0]
    rows, cols = min(pairs, key=lambda pair: _aspect_distance(pair, width / height))
    if _aspect_distance((rows, cols), width / height) > math.log(GRID_ASPECT_TOLERANCE):
        raise UserError(
            f"cannot infer the grid: no rows x cols = {count} has about the image's aspect ratio ({width}x{height}, "
            f"nearest {rows}x{cols}); pass --grid ROWSxCOLS"
        )
    return rows, cols


def _aspect_distance(pair: tuple[int, int], aspect: float) -> float:
    rows, cols = pair
    return abs(math.log(cols / rows / aspect))


def import_tokens(texts: list[str], layout: ImageLayout) -> list[dict[str, Any]]:
    """tokens[] of SPEC.md §1: the layout's image tokens (with their region and grid_pos) and layout roles, special
    for <|...|> and for the layout's other tokens (tile labels, separators, row ends), else text."""
    image = set(layout.image_positions())
    tokens = []
    for i, text in enumerate(texts):
        if i in image:
            tokens.append({"id": i, "text": IMAGE_TEXT, "type": "image"})
        else:
            special = SPECIAL_TOKEN.fullmatch(text) or i in layout.roles
            tokens.append({"id": i, "text": text, "type": "special" if special else "text"})
    layout.place(tokens)
    return tokens
