"""`python -m vlm_attention_viz import`: a precomputed [layers, heads, N, N] .npy array into a sample.

The array is memory-mapped and read a chunk of query rows at a time, so arrays larger
than memory convert. Every check that needs no pass over the values (shapes, dtype,
token count, span, grid, output folder, disk room) comes before anything is written,
and before torch (for the token tables and the rollout) is loaded.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from . import sample_format as fmt
from .errors import UserError
from .image_layout import ImageLayout
from .images import copy_image, load_image
from .import_layout import import_tokens, load_token_texts, resolve_grid, resolve_span
from .index_spec import check_storage_flags, resolve_storage

if TYPE_CHECKING:
    from .analysis import TokenMeasures
    from .models import ModelAdapter

INPUT_DTYPE_SIZES = (2, 4, 8)  # float16, float32, float64, in either byte order
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
    device: str | None = None  # where the token tables and the rollout are computed; None: cuda when present
    rollout: bool = True
    store: str = fmt.DEFAULT_PROFILE  # the storage profile, sample_format.STORAGE_PROFILES
    layers: str | None = None  # keep these layers (index spec); None: all
    heads: str | None = None  # keep these heads; None: all


@dataclass
class ImportResult:
    path: Path
    shape: tuple[int, ...]
    layout: ImageLayout
    bytes: int
    seconds: float

    def summary(self) -> str:
        layers, heads, n, _ = self.shape
        return (
            f"wrote {self.path}: {n} tokens, {layers} layers x {heads} heads, {self.layout.summary()}, "
            f"{fmt.format_bytes(self.bytes)} in {self.seconds:.1f} s"
        )


@dataclass
class ImportPlan:
    """Everything known once the inputs are checked, before anything is written."""

    attention: AttentionFile
    tokens: list[dict[str, Any]]
    layout: ImageLayout
    image: Image.Image
    image_format: str
    storage: fmt.Storage

    @property
    def text_tokens(self) -> int:
        return self.attention.shape[2] - len(self.layout.image_positions())

    @property
    def rollout(self) -> bool:
        """Whether the storage keeps what the rollout is computed from."""
        return self.storage.serves("rollout")


def import_sample(request: ImportRequest) -> ImportResult:
    started = time.perf_counter()
    plan = plan_import(request)
    layers, heads, n, _ = plan.attention.shape
    rollout = request.rollout and plan.rollout
    size = fmt.stored_bytes(plan.storage, n, plan.text_tokens, rollout)
    formula = fmt.stored_formula(plan.storage, n, plan.text_tokens, rollout=rollout)
    fmt.check_disk_room(request.output_dir, size, formula, hint="free some space")
    from .analysis import TokenLayout, TokenMeasures, resolve_device, write_rollout  # torch, once the inputs passed

    device = resolve_device(request.device)
    print(f"writing {request.output_dir}: about {fmt.format_bytes(size)} ({formula})", flush=True)
    if request.rollout and not rollout:
        print(f"no rollout: it needs {fmt.rollout_needs(plan.storage)}", flush=True)
    with fmt.SampleWriter(request.output_dir, overwrite=request.overwrite) as writer:
        layout = TokenLayout.of(plan.tokens, plan.layout.region_entries())
        measures = TokenMeasures(layout, fmt.TokenTables(layers, heads, n))
        store = fmt.ProfileWriter(writer, plan.storage, fmt.profile_rows(plan.tokens, plan.storage.profile))
        text_to_image = convert_layers(store, plan.attention, plan.layout.image_positions(), measures, device)
        image_path = copy_image(writer, Path(request.image), plan.image, plan.image_format)
        meta = import_meta(request, plan, image_path, text_to_image, measures.tables.write(writer))
        if rollout:
            write_rollout(writer.tmp, meta, device)
        path = writer.commit(meta)
    return ImportResult(path, plan.attention.shape, plan.layout, size, time.perf_counter() - started)


def plan_import(request: ImportRequest) -> ImportPlan:
    """Every check that needs no pass over the values, cheapest first."""
    check_storage_flags(request.store, request.layers, request.heads)
    for note in fmt.prepare_target(request.output_dir, request.overwrite):
        print(note, file=sys.stderr)
    attention = open_attention(Path(request.attention))
    storage = resolve_storage(request.store, request.layers, request.heads, *attention.shape[:2])
    n = attention.shape[2]
    texts = load_token_texts(request.tokens)
    if len(texts) != n:
        raise UserError(f"{request.tokens} holds {len(texts)} tokens but the attention is {n} x {n}")
    image, image_format = load_image(request.image)
    layout = token_layout(request, texts, image.size)
    return ImportPlan(attention, import_tokens(texts, layout), layout, image, image_format, storage)


def token_layout(request: ImportRequest, texts: list[str], image_size: tuple[int, int]) -> ImageLayout:
    """Where the image tokens are: the family's own layout read from the token texts where its adapter has one
    (tiles and a global view) and no span is given; else one grid over the span, as given or inferred."""
    adapter = family_adapter(request.model_type) if request.model_type else None
    if adapter is not None and request.image_span is None and request.grid is None:
        layout = adapter.import_layout(texts)
        if layout is not None:
            return layout
    span = resolve_span(request.image_span, adapter.image_placeholder if adapter else None, texts)
    rows, cols = resolve_grid(request.grid, span[1] - span[0] + 1, image_size)
    return ImageLayout.single_grid(rows, cols, span[0], image_size)


def family_adapter(model_type: str) -> ModelAdapter:
    """The family's adapter; the adapters load transformers, so only when asked for."""
    from .models import adapter_named

    return adapter_named(model_type)


def import_meta(
    request: ImportRequest, plan: ImportPlan, image_path: str, text_to_image: np.ndarray, token_tables: list[str]
) -> dict[str, Any]:
    layers, heads, _, _ = plan.attention.shape
    text = "".join(t["text"] for t in plan.tokens if t["type"] == "text")
    return fmt.build_meta(
        model=request.model,
        model_type=request.model_type,
        mode="prefill",
        prompt=request.prompt if request.prompt is not None else text,
        num_layers=layers,
        num_heads=heads,
        tokens=plan.tokens,
        **plan.layout.meta_fields([image_path], [plan.image.size]),
        text_to_image=text_to_image,
        storage=plan.storage,
        token_tables=token_tables,
        **{
            "import": {
                "attention": str(request.attention),
                "tokens": str(request.tokens),
                "input_dtype": plan.attention.dtype.name,
            }
        },
    )


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
        raise UserError(
            f"{path} has shape {list(array.shape)}; expected [layers, heads, N, N] (square attention per head)"
        )
    if array.dtype.kind != "f" or array.dtype.itemsize not in INPUT_DTYPE_SIZES:
        raise UserError(f"{path} holds {array.dtype.name} values; expected float16, float32 or float64")
    return AttentionFile(path, array.shape, array.dtype)


def convert_layers(
    store: fmt.ProfileWriter, attention: AttentionFile, image: list[int], measures: TokenMeasures, device: str
) -> np.ndarray:
    """Write every layer as float16 rows plus head mean and max (as the storage keeps them), fill the token tables
    from the float16 rows of every layer and head (on `device`); return the text-to-image table (L, H)."""
    layers, heads, n, _ = attention.shape
    chunk = max(1, CHUNK_BYTES // (heads * n * max(4, attention.dtype.itemsize)))
    span = (image[0], image[-1])
    table = fmt.TextToImage(layers, heads, span)
    columns = np.asarray(image)
    for layer in range(layers):
        for row0 in range(0, n, chunk):
            raw = attention.rows(layer, row0, chunk)
            check_values(raw, layer, row0)
            stored = raw.astype(np.float16)  # straight from the input dtype: one rounding, not two through float32
            check_float16(stored, layer, row0)
            values = raw.astype(np.float32, copy=False)  # the mean and sums in float32, as the extractor does
            head_max = raw.max(axis=0)
            check_causal(head_max, layer, row0, span)
            store.write_layer_rows(
                layer, row0, stored, values.mean(axis=0).astype(np.float16), head_max.astype(np.float16)
            )
            table.add(layer, row0, values[:, :, columns].sum(axis=-1, dtype=np.float64))
            measures.add_host(layer, row0, stored, device)
    return table.table()


def check_values(block: np.ndarray, layer: int, row0: int) -> None:
    """Attention probabilities: finite and never negative."""
    if not np.isfinite(block).all():
        raise UserError(f"layer {layer} holds NaN or infinite values (rows from {row0})")
    if (block < 0).any():
        raise UserError(
            f"layer {layer} holds negative values (rows from {row0}, min {float(block.min()):.3g}); attention probabilities are never negative"
        )


def check_float16(stored: np.ndarray, layer: int, row0: int) -> None:
    """Values above float16's largest (65,504) would be stored as infinity."""
    if not np.isfinite(stored).all():
        raise UserError(
            f"layer {layer} holds values above 65,504, which float16 cannot store (rows from {row0}); attention probabilities are at most 1"
        )


def check_causal(head_max: np.ndarray, layer: int, row0: int, span: tuple[int, int]) -> None:
    """An imported sample's layers are causal softmax (no layer_attention): nothing outside what that kind reaches."""
    rows = np.arange(row0, row0 + head_max.shape[0])
    later = ~fmt.reachable(fmt.CAUSAL, rows, head_max.shape[1], [span])
    if later.any() and head_max[later].max() > CAUSAL_TOLERANCE:
        raise UserError(
            f"layer {layer} is not causal: a token attends to a later one (rows from {row0}); the format stores causal attention"
        )
