"""`python -m vlm_attention_viz import`: a precomputed [layers, heads, N, N] .npy array into a sample.

The array is memory-mapped and read a chunk of query rows at a time, so arrays larger
than memory convert. Every check that needs no pass over the values (shapes, dtype,
token count, span, grid, output folder, disk room) comes before anything is written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import sample_format as fmt
from .errors import UserError
from .extract import check_disk_room, file_fields, format_bytes, size_formula
from .images import copy_image, load_image
from .import_layout import import_tokens, load_token_texts, resolve_grid, resolve_span
from .models import adapter_named

INPUT_DTYPES = (np.float16, np.float32, np.float64)
CHUNK_BYTES = 64 * 2**20  # rows read at once (at least 4 bytes a value)
# Above the diagonal a causal model's attention is exactly 0; allow float noise, not a bidirectional map.
CAUSAL_TOLERANCE = 1e-6


@dataclass
class ImportRequest:
    attention: Path
    tokens: Path
    image: Path
    output_dir: Path
    image_span: tuple[int, int] | None = None  # first and last image token, inclusive
    grid: str | None = None  # "ROWSxCOLS"
    model_type: str | None = None
    model: str = "imported"
    prompt: str | None = None
    overwrite: bool = False


@dataclass
class ImportResult:
    path: Path
    shape: tuple[int, ...]
    grid: tuple[int, int]
    bytes: int
    seconds: float

    def summary(self) -> str:
        layers, heads, n, _ = self.shape
        rows, cols = self.grid
        return (
            f"wrote {self.path}: {n} tokens, {layers} layers x {heads} heads, image grid {cols}x{rows} (cols x rows), "
            f"{format_bytes(self.bytes)} in {self.seconds:.1f} s"
        )


@dataclass
class ImportPlan:
    """Everything known once the inputs are checked, before anything is written."""

    attention: AttentionFile
    tokens: list[dict[str, Any]]
    span: tuple[int, int]
    grid: tuple[int, int]  # rows, cols
    image: Image.Image
    image_format: str


def import_sample(request: ImportRequest) -> ImportResult:
    started = time.perf_counter()
    plan = plan_import(request)
    layers, heads, n, _ = plan.attention.shape
    size = fmt.sample_bytes(layers, heads, n)
    check_disk_room(request.output_dir, size, size_formula(layers, heads, n, None), hint="free some space")
    with fmt.SampleWriter(request.output_dir, overwrite=request.overwrite) as writer:
        text_to_image = convert_layers(writer, plan.attention, plan.span)
        image_path = copy_image(writer, Path(request.image), plan.image, plan.image_format)
        path = writer.commit(import_meta(request, plan, image_path, text_to_image))
    return ImportResult(path, plan.attention.shape, plan.grid, size, time.perf_counter() - started)


def plan_import(request: ImportRequest) -> ImportPlan:
    """Every check that needs no pass over the values, cheapest first."""
    fmt.check_target(request.output_dir, request.overwrite)
    attention = open_attention(Path(request.attention))
    n = attention.shape[2]
    texts = load_token_texts(request.tokens)
    if len(texts) != n:
        raise UserError(f"{request.tokens} holds {len(texts)} tokens but the attention is {n} x {n}")
    image, image_format = load_image(request.image)
    placeholder = adapter_named(request.model_type).image_placeholder if request.model_type else None
    span = resolve_span(request.image_span, placeholder, texts)
    rows, cols = resolve_grid(request.grid, span[1] - span[0] + 1, image.size)
    return ImportPlan(attention, import_tokens(texts, span, cols), span, (rows, cols), image, image_format)


def import_meta(request: ImportRequest, plan: ImportPlan, image_path: str, text_to_image: np.ndarray) -> dict[str, Any]:
    layers, heads, n, _ = plan.attention.shape
    (rows, cols), (start, end) = plan.grid, plan.span
    text = "".join(t["text"] for t in plan.tokens if t["type"] == "text")
    return {
        "format_version": fmt.FORMAT_VERSION,
        "model": request.model,
        **({"model_type": request.model_type} if request.model_type else {}),
        "mode": "prefill",
        "prompt": request.prompt if request.prompt is not None else text,
        "image_path": image_path,
        "image_size": list(plan.image.size),
        "original_image_size": list(plan.image.size),
        "num_layers": layers,
        "num_heads": heads,
        "seq_len": n,
        "dtype": "float16",
        "tokens": plan.tokens,
        "image_grid": {"rows": rows, "cols": cols, "start_idx": start, "end_idx": end},
        **file_fields(layers),
        "text_to_image": [[round(float(v), 6) for v in row] for row in text_to_image],
        "import": {"attention": str(request.attention), "tokens": str(request.tokens), "input_dtype": str(plan.attention.dtype)},
    }


@dataclass
class AttentionFile:
    """A checked [layers, heads, N, N] .npy, read a block of rows at a time through a memory map."""

    path: Path
    shape: tuple[int, int, int, int]
    dtype: np.dtype

    def rows(self, layer: int, row0: int, count: int) -> np.ndarray:
        """Query rows row0.. of one layer, every head, copied out of a map that is closed again at once:
        one long-lived map would keep every page read resident in this process until the end."""
        mapped = np.load(self.path, mmap_mode="r")
        return np.array(mapped[layer, :, row0 : row0 + count])


def open_attention(path: Path) -> AttentionFile:
    """Check the array's header (shape, dtype) without reading its values."""
    if not path.is_file():
        raise UserError(f"attention file not found: {path}")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise UserError(f"{path} is not a .npy array of numbers (np.save of a [layers, heads, N, N] array)") from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise UserError(f"{path} is an .npz archive; pass the one [layers, heads, N, N] array saved with np.save")
    if array.ndim != 4 or array.shape[2] != array.shape[3] or 0 in array.shape:
        raise UserError(f"{path} has shape {list(array.shape)}; expected [layers, heads, N, N] (square attention per head)")
    if array.dtype not in INPUT_DTYPES:
        raise UserError(f"{path} holds {array.dtype} values; expected float16, float32 or float64")
    return AttentionFile(path, array.shape, array.dtype)


def convert_layers(writer: fmt.SampleWriter, attention: AttentionFile, span: tuple[int, int]) -> np.ndarray:
    """Write every layer as float16 rows plus head mean and max; return the text-to-image table (L, H)."""
    layers, heads, n, _ = attention.shape
    chunk = max(1, CHUNK_BYTES // (heads * n * max(4, attention.dtype.itemsize)))
    table = np.zeros((layers, heads))
    for layer in range(layers):
        for row0 in range(0, n, chunk):
            raw = attention.rows(layer, row0, chunk)
            head_max = raw.max(axis=0)
            check_block(raw, head_max, layer, row0)
            values = raw.astype(np.float32, copy=False)  # the mean and sums in float32, as the extractor does
            # float16 straight from the input dtype: one rounding, not two through float32
            writer.write_layer_rows(layer, row0, raw.astype(np.float16), values.mean(axis=0).astype(np.float16), head_max.astype(np.float16))
            table[layer] += image_mass(values, row0, span)
    return table / max(1, n - span[1] - 1)


def check_block(block: np.ndarray, head_max: np.ndarray, layer: int, row0: int) -> None:
    """Values the viewer can show: finite, and causal (it reads a column from its own row down)."""
    if not np.isfinite(block).all():
        raise UserError(f"layer {layer} holds NaN or infinite values (rows from {row0})")
    rows = np.arange(row0, row0 + block.shape[1])
    later = np.arange(block.shape[2])[None, :] > rows[:, None]
    if later.any() and head_max[later].max() > CAUSAL_TOLERANCE:
        raise UserError(f"layer {layer} is not causal: a token attends to a later one (rows from {row0}); the format stores causal attention")


def image_mass(block: np.ndarray, row0: int, span: tuple[int, int]) -> np.ndarray:
    """Per head: summed over this block's query rows after the image, the attention they give to image tokens."""
    start, end = span
    first = max(0, end + 1 - row0)
    return block[:, first:, start : end + 1].sum(axis=(1, 2), dtype=np.float64)
