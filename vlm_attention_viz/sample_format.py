"""The on-disk sample format: the one place that writes, reads and validates it.

A sample is a folder holding meta.json, one float16 (H, N, N) file per layer, a
head-mean and a head-max (N, N) file per layer, and the image; optionally the vision
encoder's attention per captured block (the `vision` field), the per-token (N, L, H)
tables of TOKEN_TABLES (the `token_tables` field) and the attention rollout (one (N, N)
file per layer, announced by rollout.json beside meta.json). SPEC.md describes
every field; web/src/data/format.ts is the TypeScript twin of this module, and both
are tested against fixtures/sample_tiny.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .safe_write import (
    Leftover,
    find_leftovers,
    make_partial_folder,
    remove_tree,
    rename_exchange,
    rename_noreplace,
    write_json_atomic,
)

FORMAT_VERSION = 2  # the newest this module reads; a sample is written as 1 unless it has image regions
REGIONS_FORMAT_VERSION = 2  # image_regions and images: a reader of version 1 could not place their tokens
META_FILE = "meta.json"
INDEX_FILE = "index.json"
VISION_RECEIVED_FILE = "vision_received.bin"
ROLLOUT_META_FILE = "rollout.json"
ROLLOUT_FORMULA = "R_l = Ā_l ⋯ Ā_0, Ā_l = ½·mean_h A_l + ½·I with each row renormalised to sum 1"
TOKEN_TYPES = ("text", "image", "special")
# What a region of image tokens covers: the whole image (one grid), one tile of it, or the whole image downscaled.
REGION_KINDS = ("image", "tile", "global")
# Tokens of an image's layout that are not patches and are never drawn as such (a token's `layout` field).
LAYOUT_ROLES = ("tile_label", "separator", "row_break", "row_end")
BYTES_PER_VALUE = 2  # float16


class FormatError(ValueError):
    """A sample folder or meta.json that does not follow the format."""


def layer_file(layer: int) -> str:
    return f"attn_layer_{layer:02d}.bin"


def head_mean_file(layer: int) -> str:
    return f"attn_mean_layer_{layer:02d}.bin"


def head_max_file(layer: int) -> str:
    return f"attn_max_layer_{layer:02d}.bin"


def vision_block_file(block: int) -> str:
    return f"vision_attn_block_{block:02d}.bin"


def vision_mean_file(block: int) -> str:
    return f"vision_mean_block_{block:02d}.bin"


def rollout_file(layer: int) -> str:
    return f"rollout_layer_{layer:02d}.bin"


class TokenTable(NamedTuple):
    file: str
    meaning: str


# The per-token measures, each an (N, L, H) float16 file: row t holds query token t's value for every layer and
# head, so one token's (L, H) table is one range of L·H·2 bytes. SPEC.md §1 gives the exact formulas.
TOKEN_TABLES: dict[str, TokenTable] = {
    "image_share": TokenTable("token_image_share.bin", "the row's attention summed over the image tokens"),
    "special_share": TokenTable("token_special_share.bin", "the row's attention summed over the special tokens"),
    "row_entropy": TokenTable("token_row_entropy.bin", "Shannon entropy of the whole row, in nats"),
    "image_entropy": TokenTable(
        "token_image_entropy.bin", "spatial entropy of the row's image map (lower = more localized); NaN: undefined"
    ),
}


def token_table_file(measure: str) -> str:
    return TOKEN_TABLES[measure].file


class StorageProfile(NamedTuple):
    layout: str  # where row i of an (N, N) matrix lies in its stored form
    image_rows: bool  # whether the rows of image tokens are stored
    causal_columns: bool  # whether a row stores only its causal columns 0..i (else all N)
    matrix_values: Callable[[int, int], int]  # (N, T non-image tokens) -> float16 values one matrix stores
    matrix_formula: str  # the same in words, for the size messages
    views: tuple[str, ...]  # what a reader serves from it, among STORAGE_VIEWS

    @property
    def whole_rows(self) -> bool:
        """Every row at its full width: the plain (N, N) layout."""
        return self.image_rows and not self.causal_columns


# What a reader can serve: a token's row (where it looks), a token's column (what looks at it), the rollout.
STORAGE_VIEWS = ("row", "column", "rollout")
# How the layer, head-mean and head-max files hold their matrices; a layer file stacks its kept heads' matrices.
# Per layer a sample stores (kept heads + 2) x matrix_values x 2 bytes. SPEC.md §1 says what a reader does.
STORAGE_PROFILES: dict[str, StorageProfile] = {
    "full": StorageProfile(
        "row i at element i·N, all N columns", True, False, lambda n, text: n * n, "N^2", STORAGE_VIEWS
    ),
    "triangle": StorageProfile(
        "row i holds columns 0..i, at element i(i+1)/2: the causal triangle, rows back to back",
        True,
        True,
        lambda n, text: n * (n + 1) // 2,
        "N(N+1)/2",
        STORAGE_VIEWS,
    ),
    "text-rows": StorageProfile(
        "only the rows of non-image tokens, in token order, all N columns: stored row k = the k-th non-image token",
        False,
        False,
        lambda n, text: text * n,
        "T x N",
        ("row", "column"),
    ),
}
DEFAULT_PROFILE = "full"


@dataclass(frozen=True)
class Storage:
    """meta.json's `storage`: the profile and the kept layers and heads (original indices, ascending)."""

    profile: str
    layers: tuple[int, ...]
    heads: tuple[int, ...]
    num_layers: int
    num_heads: int

    @classmethod
    def everything(cls, num_layers: int, num_heads: int, profile: str = DEFAULT_PROFILE) -> Storage:
        return cls(profile, tuple(range(num_layers)), tuple(range(num_heads)), num_layers, num_heads)

    @classmethod
    def of(cls, meta: dict[str, Any]) -> Storage:
        """The storage a (validated) meta.json records; absent = full, every layer and head."""
        field = meta.get("storage", {})
        everything = cls.everything(meta["num_layers"], meta["num_heads"])
        return cls(
            profile_of(meta),
            tuple(field.get("layers", everything.layers)),
            tuple(field.get("heads", everything.heads)),
            meta["num_layers"],
            meta["num_heads"],
        )

    def stored_heads(self, layer_attention: list[dict] | None) -> list[int]:
        """Per kept layer, the heads its file holds: the kept heads of `--heads`, else that layer's own count (a
        subset of heads is kept only where every layer has the sample's heads)."""
        if len(self.heads) < self.num_heads:
            return [len(self.heads)] * len(self.layers)
        per_layer = layer_heads(self.num_layers, self.num_heads, layer_attention)
        return [per_layer[layer] for layer in self.layers]

    @property
    def is_default(self) -> bool:
        return self == Storage.everything(self.num_layers, self.num_heads)

    def meta_field(self) -> dict[str, Any] | None:
        """meta.json's `storage`, or None for the default (full, everything), so such samples stay as before."""
        if self.is_default:
            return None
        return {"profile": self.profile, "layers": list(self.layers), "heads": list(self.heads)}

    @property
    def kind(self) -> StorageProfile:
        return STORAGE_PROFILES[self.profile]

    @property
    def keeps_all_layers(self) -> bool:
        return len(self.layers) == self.num_layers

    def serves(self, view: str) -> bool:
        """Whether a reader can serve this view; the rollout needs every layer's whole head mean."""
        served = view in STORAGE_PROFILES[self.profile].views
        return served and (view != "rollout" or self.keeps_all_layers)

    def matrix_values(self, seq_len: int, text_tokens: int) -> int:
        return STORAGE_PROFILES[self.profile].matrix_values(seq_len, text_tokens)

    def layer_position(self, layer: int) -> int:
        """Where a model layer sits in meta.json's file lists; FormatError when the sample does not keep it."""
        if layer not in self.layers:
            raise FormatError(f"layer {layer} is not stored in this sample (it keeps layers {_listed(self.layers)})")
        return self.layers.index(layer)

    def head_position(self, head: int) -> int:
        """Where a model head sits in a layer file; FormatError when the sample does not keep it."""
        if head not in self.heads:
            raise FormatError(f"head {head} is not stored in this sample (it keeps heads {_listed(self.heads)})")
        return self.heads.index(head)


def profile_of(meta: dict[str, Any]) -> str:
    """The storage profile of a meta.json; absent = full."""
    return meta.get("storage", {}).get("profile", DEFAULT_PROFILE)


def _listed(indices: tuple[int, ...]) -> str:
    return ", ".join(map(str, indices))


def stored_rows(meta: dict[str, Any]) -> np.ndarray:
    """The token rows a matrix of this sample holds, in stored order."""
    return profile_rows(meta["tokens"], Storage.of(meta).profile)


def profile_rows(tokens: list[dict[str, Any]], profile: str) -> np.ndarray:
    """The token rows a profile stores, in order: every token, or only those that are not image tokens."""
    if STORAGE_PROFILES[profile].image_rows:
        return np.arange(len(tokens))
    return np.array([i for i, t in enumerate(tokens) if t["type"] != "image"], dtype=np.int64)


def row_starts(rows: np.ndarray, n: int, profile: str) -> np.ndarray:
    """Where each stored row begins within a stored matrix, in values, and (last) the matrix's size: the rows lie
    back to back, each N long, or i + 1 long (row i's causal columns) where the profile keeps only those."""
    lengths = rows + 1 if STORAGE_PROFILES[profile].causal_columns else np.full(len(rows), n)
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])


def stored_mask(rows: np.ndarray, row0: int, count: int, n: int, profile: str) -> np.ndarray:
    """(count, N) bool: the values of full rows row0.. that the profile stores, in row-major (= stored) order."""
    mask = np.zeros((count, n), dtype=bool)
    mask[rows[(rows >= row0) & (rows < row0 + count)] - row0] = True
    if STORAGE_PROFILES[profile].causal_columns:
        mask &= np.arange(n)[None, :] <= np.arange(row0, row0 + count)[:, None]
    return mask


def text_token_count(meta: dict[str, Any]) -> int:
    return sum(t["type"] != "image" for t in meta["tokens"])


_TABLE_FILES = "|".join(re.escape(table.file) for table in TOKEN_TABLES.values())
# Every name a file of a sample can have; nothing else may be in a folder this tool replaces or cleans up.
SAMPLE_FILE = re.compile(
    r"meta\.json|attn_(mean_|max_)?layer_\d+\.bin|vision_(attn|mean)_block_\d+\.bin|vision_received\.bin"
    rf"|image(_\d+)?\.(png|jpg|gif|webp)|\.meta\.json\..+\.tmp|{_TABLE_FILES}|rollout_layer_\d+\.bin|rollout\.json"
    r"|\.(rollout_layer_\d+\.bin|rollout\.json)\.partial-.+"
)
ROLLOUT_FILE = re.compile(r"rollout_layer_\d+\.bin|rollout\.json")


def is_rollout_file(name: str) -> bool:
    return ROLLOUT_FILE.fullmatch(name) is not None


def is_sample_file(name: str) -> bool:
    return SAMPLE_FILE.fullmatch(name) is not None


def file_fields(layers: int, kept: tuple[int, ...] | None = None) -> dict[str, list[str]]:
    """meta.json's per-layer file lists: one name per kept layer (default all), named by the model's layer index."""
    indices = range(layers) if kept is None else kept
    return {
        "layer_files": [layer_file(i) for i in indices],
        "head_mean_files": [head_mean_file(i) for i in indices],
        "head_max_files": [head_max_file(i) for i in indices],
    }


def grid_pos(offset: int, cols: int) -> list[int]:
    """[row, col] of the offset-th image token in a row-major grid of `cols` columns."""
    return [offset // cols, offset % cols]


def image_grid(rows: int, cols: int, start: int) -> dict[str, int]:
    """meta.json's image_grid: rows × cols image tokens from index `start` on."""
    return {"rows": rows, "cols": cols, "start_idx": start, "end_idx": start + rows * cols - 1}


def image_region(
    image: int, kind: str, rows: int, cols: int, rect: tuple[int, int, int, int] | list[int], tokens: list[int]
) -> dict[str, Any]:
    """One entry of meta.json's image_regions: rows × cols image tokens of image `image`, `tokens` their positions
    in row-major order, covering rect = [x, y, w, h] of that image in its `size` coordinates."""
    return {"image": image, "kind": kind, "rows": rows, "cols": cols, "rect": list(rect), "tokens": list(tokens)}


def grid_region(grid: dict[str, int], image_size: tuple[int, int] | list[int]) -> dict[str, Any]:
    """A single grid (image_grid) as the one region over its whole image."""
    tokens = list(range(grid["start_idx"], grid["end_idx"] + 1))
    return image_region(0, "image", grid["rows"], grid["cols"], (0, 0, *image_size), tokens)


def regions_of(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """meta.json's image_regions; a single-grid sample's image_grid as its one region."""
    if "image_regions" in meta:
        return meta["image_regions"]
    return [grid_region(meta["image_grid"], meta["image_size"])]


def entropy_region(regions: list[dict[str, Any]]) -> int:
    """The region whose map the spatial entropy is taken over (SPEC.md §1, token tables): the first image's
    global view if it has one, else of its regions the one covering the most of it (a single grid), then the one
    with more tokens, then the first."""
    first_image = [k for k, region in enumerate(regions) if region["image"] == 0]
    return min(
        first_image,
        key=lambda k: (
            regions[k]["kind"] != "global",
            -regions[k]["rect"][2] * regions[k]["rect"][3],
            -len(regions[k]["tokens"]),
            k,
        ),
    )


def image_entry(path: str, size: tuple[int, int] | list[int], original_size: tuple[int, int] | list[int]) -> dict:
    """One entry of meta.json's images: the file in the sample, the size the model saw it at, the file's own size."""
    return {"path": path, "size": list(size), "original_size": list(original_size)}


# ---------------------------------------------------------------- sizes


def vision_bytes(num_blocks: int, num_heads: int, num_patches: int) -> int:
    """Bytes of the vision files: per captured block H heads plus the head mean, and one received vector."""
    return num_blocks * ((num_heads + 1) * num_patches * num_patches + num_patches) * BYTES_PER_VALUE


def token_table_bytes(num_layers: int, num_heads: int, seq_len: int) -> int:
    """Bytes of one (N, L, H) token table (H: the most heads of any layer)."""
    return seq_len * num_layers * num_heads * BYTES_PER_VALUE


def rollout_bytes(num_layers: int, seq_len: int) -> int:
    """Bytes of the rollout files: one (N, N) matrix per layer (rollout.json aside)."""
    return num_layers * seq_len * seq_len * BYTES_PER_VALUE


def sample_bytes(
    num_layers: int, num_heads: int, seq_len: int, layer_attention: list[dict] | None = None, rollout: bool = True
) -> int:
    """Bytes of all attention files: per layer its heads (layer_heads) plus the mean and max matrices (and the
    rollout), and the token tables."""
    heads = layer_heads(num_layers, num_heads, layer_attention)
    matrices = sum(h + 2 + rollout for h in heads) * seq_len * seq_len * BYTES_PER_VALUE
    return matrices + len(TOKEN_TABLES) * token_table_bytes(num_layers, max(heads, default=0), seq_len)


def size_formula(
    layers: int,
    heads: int,
    seq_len: int,
    vision: tuple[int, int, int] | None = None,
    layer_attention: list[dict] | None = None,
    rollout: bool = True,
) -> str:
    """How sample_bytes (+ vision_bytes for (blocks, heads, patches)) adds up, for the messages that print it."""
    per_layer = layer_heads(layers, heads, layer_attention)
    counts = Counter(per_layer)
    matrices = " + ".join(f"{count} layers x {h + 2 + rollout} matrices" for h, count in sorted(counts.items()))
    formula = f"{matrices if len(counts) == 1 else f'({matrices})'} x {seq_len}^2 x 2 bytes"
    formula += f" + {len(TOKEN_TABLES)} token tables x {seq_len} x {layers} x {max(per_layer)} x 2 bytes"
    if vision:
        blocks, vision_heads, patches = vision
        formula += f" + {blocks} vision blocks x ({vision_heads + 1} x {patches}^2 + {patches}) x 2 bytes"
    return formula


def stored_bytes(
    storage: Storage, seq_len: int, text_tokens: int, rollout: bool = True, layer_attention: list[dict] | None = None
) -> int:
    """sample_bytes under a storage profile and a subset of layers and heads: per kept layer its stored heads
    plus the mean and max, each matrix_values x 2 bytes; the rollout (when the storage serves it) and the token
    tables stay whole."""
    if storage.is_default:
        return sample_bytes(storage.num_layers, storage.num_heads, seq_len, layer_attention, rollout)
    matrix = storage.matrix_values(seq_len, text_tokens) * BYTES_PER_VALUE
    layers = sum(h + 2 for h in storage.stored_heads(layer_attention)) * matrix
    widest = max(layer_heads(storage.num_layers, storage.num_heads, layer_attention))
    tables = len(TOKEN_TABLES) * token_table_bytes(storage.num_layers, widest, seq_len)
    return (
        layers + tables + (rollout_bytes(storage.num_layers, seq_len) if rollout and storage.serves("rollout") else 0)
    )


def stored_formula(
    storage: Storage,
    seq_len: int,
    text_tokens: int,
    vision: tuple[int, int, int] | None = None,
    rollout: bool = True,
    layer_attention: list[dict] | None = None,
) -> str:
    """size_formula for stored_bytes."""
    if storage.is_default:
        return size_formula(storage.num_layers, storage.num_heads, seq_len, vision, layer_attention, rollout)
    formula = (
        f"{len(storage.layers)} layers x {len(storage.heads) + 2} matrices x "
        f"{STORAGE_PROFILES[storage.profile].matrix_formula} x 2 bytes ({storage.profile}, N = {seq_len}"
        + (f", T = {text_tokens} non-image tokens)" if "T" in STORAGE_PROFILES[storage.profile].matrix_formula else ")")
    )
    if rollout and storage.serves("rollout"):
        formula += f" + rollout {storage.num_layers} x {seq_len}^2 x 2 bytes"
    formula += f" + {len(TOKEN_TABLES)} token tables x {seq_len} x {storage.num_layers} x {storage.num_heads} x 2 bytes"
    if vision:
        blocks, vision_heads, patches = vision
        formula += f" + {blocks} vision blocks x ({vision_heads + 1} x {patches}^2 + {patches}) x 2 bytes"
    return formula


def format_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000:
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1000
    return f"{count:.1f} TB"


def check_disk_room(target: Path, size: int, formula: str, hint: str = "lower --max-pixels or free some space") -> None:
    """Refuse a sample the disk cannot hold, naming the partial folders of earlier runs that take room there."""
    existing = next(p for p in [Path(target), *Path(target).absolute().parents] if p.exists())
    free = shutil.disk_usage(existing).free
    if free >= size:
        return
    kept = find_leftovers(Path(target), is_sample_file)
    held = (
        f"; partial folders of earlier runs hold {format_bytes(sum(k.bytes for k in kept))} there ({', '.join(k.path.name for k in kept)})"
        if kept
        else ""
    )
    raise FormatError(
        f"the sample needs about {format_bytes(size)} ({formula}) but only {format_bytes(free)} is free at {existing}{held}; {hint}"
    )


# ---------------------------------------------------------------- attention kinds

# What a layer's stored matrices are (meta.json `layer_attention`, one entry per layer, SPEC.md §1). A sample
# without the field has causal softmax in every layer.
ATTENTION_KINDS: dict[str, str] = {
    "causal": "softmax; row i sums to 1 over tokens 0..i",
    "sliding": "softmax; row i sums to 1 over the last `window` tokens up to i",
    "linear": "implicit attention of a linear-attention layer, o_t = sum_s A[t,s] v_s: signed, unnormalised, "
    "over tokens 0..i; q, k and v pass a short causal convolution (`conv_kernel` tokens) first",
}
SOFTMAX_KINDS = ("causal", "sliding")
CAUSAL: dict[str, Any] = {"kind": "causal"}


def layer_kind(
    kind: str,
    *,
    window: int | None = None,
    image_bidirectional: bool = False,
    before_output_gate: bool = False,
    conv_kernel: int | None = None,
    num_heads: int | None = None,
) -> dict[str, Any]:
    """One `layer_attention` entry. image_bidirectional: image tokens also see the later tokens of their own image
    (within the window when sliding); before_output_gate: the weights are taken before the layer multiplies its
    output by a sigmoid gate; num_heads: this layer's heads when they differ from the sample's num_heads."""
    entry: dict[str, Any] = {"kind": kind}
    optional = {
        "window": window,
        "image_bidirectional": image_bidirectional or None,
        "before_output_gate": before_output_gate or None,
        "conv_kernel": conv_kernel,
        "num_heads": num_heads,
    }
    entry.update({key: value for key, value in optional.items() if value is not None})
    return entry


def layer_heads(num_layers: int, num_heads: int, layer_attention: list[dict] | None) -> list[int]:
    """The heads stored for each layer: the entry's num_heads where it has one, else the sample's."""
    if layer_attention is None:
        return [num_heads] * num_layers
    return [entry.get("num_heads", num_heads) for entry in layer_attention]


def all_softmax(layer_attention: list[dict] | None) -> bool:
    """Whether every layer stores softmax weights, as the rollout needs (a linear layer's are signed)."""
    return all(entry["kind"] in SOFTMAX_KINDS for entry in layer_attention or [])


def stored_heads(meta: dict[str, Any]) -> list[int]:
    """Per stored layer file, the heads it holds."""
    return Storage.of(meta).stored_heads(meta.get("layer_attention"))


def table_heads(meta: dict[str, Any]) -> int:
    """The head axis of the token tables: the most heads of any layer (a layer with fewer leaves NaN there)."""
    return max(layer_heads(meta["num_layers"], meta["num_heads"], meta.get("layer_attention")))


def meta_layer_kinds(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Each layer's `layer_attention` entry; causal softmax for a sample without the field."""
    return meta.get("layer_attention") or [CAUSAL] * meta["num_layers"]


def image_blocks(regions: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Per image, in prompt order, its first and last image token: where an image_bidirectional layer lets an
    image token see its own image's later tokens (the families with such layers write an image as one run)."""
    blocks: dict[int, tuple[int, int]] = {}
    for region in regions:
        first, last = region["tokens"][0], region["tokens"][-1]
        low, high = blocks.get(region["image"], (first, last))
        blocks[region["image"]] = (min(low, first), max(high, last))
    return [blocks[image] for image in sorted(blocks)]


def reachable(entry: dict[str, Any], rows: np.ndarray, n: int, blocks: list[tuple[int, int]]) -> np.ndarray:
    """(len(rows), n) bool: the key columns each query row of a layer of this kind may weigh. The mask transformers
    builds: causal, or within its own image block (image_blocks) when image_bidirectional; and then, when sliding,
    keys after row - window."""
    keys, queries = np.arange(n)[None, :], np.asarray(rows)[:, None]
    allowed = keys <= queries
    if entry.get("image_bidirectional"):
        for start, end in blocks:
            allowed |= (keys >= start) & (keys <= end) & (queries >= start) & (queries <= end)
    if "window" in entry:
        allowed &= keys > queries - entry["window"]
    return allowed


# ---------------------------------------------------------------- building meta.json


def build_meta(
    *,
    model: str,
    mode: str,
    prompt: str,
    image_path: str,
    image_size: tuple[int, int] | list[int],
    original_image_size: tuple[int, int] | list[int],
    num_layers: int,
    num_heads: int,
    tokens: list[dict[str, Any]],
    image_grid: dict[str, int] | None,
    text_to_image: np.ndarray | list[np.ndarray] | None = None,
    image_regions: list[dict[str, Any]] | None = None,
    images: list[dict[str, Any]] | None = None,
    storage: Storage | None = None,
    **optional: Any,
) -> dict[str, Any]:
    """meta.json (SPEC.md §1), the one builder every writer uses; optional fields given as None are left out.

    One image as one grid: image_grid. Anything else (tiles, a thumbnail, tokens that are not patches, several
    images): image_regions and images, image_grid None, and the format version that has them.
    storage: the profile and kept layers and heads; None or the default (full, everything) records no `storage`."""
    meta: dict[str, Any] = {
        "format_version": REGIONS_FORMAT_VERSION if image_regions is not None else 1,
        "model": model,
        "mode": mode,
        "prompt": prompt,
        "image_path": image_path,
        "image_size": list(image_size),
        "original_image_size": list(original_image_size),
        "num_layers": num_layers,
        "num_heads": num_heads,
        "seq_len": len(tokens),
        "dtype": "float16",
        "tokens": tokens,
        **({"image_grid": image_grid} if image_grid is not None else {}),
        **({"image_regions": image_regions, "images": images} if image_regions is not None else {}),
        **file_fields(num_layers, storage.layers if storage else None),
    }
    if storage is not None and storage.meta_field() is not None:
        meta["storage"] = storage.meta_field()
    if text_to_image is not None:
        meta["text_to_image"] = [[round(float(v), 6) for v in row] for row in text_to_image]
    meta.update({key: value for key, value in optional.items() if value is not None})
    return meta


class TextToImage:
    """meta.json's text_to_image: per layer and head, the attention that a token after the image gives to the
    image tokens, averaged over those tokens (for a linear layer, the absolute weights: see ATTENTION_KINDS).
    Fed one chunk of query rows at a time. num_heads: one count for every layer, or one per layer."""

    def __init__(self, num_layers: int, num_heads: int | list[int], image_span: tuple[int, int]) -> None:
        self.end = image_span[1]
        heads = num_heads if isinstance(num_heads, list) else [num_heads] * num_layers
        self.sums = [np.zeros(h, dtype=np.float64) for h in heads]
        self.rows = np.zeros(num_layers, dtype=np.int64)

    def add(self, layer: int, row0: int, image_share: np.ndarray) -> None:
        """image_share (H, c): the attention each query row row0.. gives to the image tokens, summed over them."""
        after = image_share[:, max(0, self.end + 1 - row0) :]
        self.sums[layer] += after.sum(axis=1, dtype=np.float64)
        self.rows[layer] += after.shape[1]

    def copy_layer(self, source: int, layer: int) -> None:
        """Layer `layer` holds the same attention as `source` (a synthetic sample's hard-linked layers)."""
        self.sums[layer] = self.sums[source]
        self.rows[layer] = self.rows[source]

    def table(self) -> list[np.ndarray]:
        return [sums / max(1, rows) for sums, rows in zip(self.sums, self.rows, strict=True)]


class TokenTables:
    """The TOKEN_TABLES files, gathered a chunk of query rows at a time: L·H values per token and measure, so
    4·N·L·H float16 in all (75 MB at N=8,192 with 36 x 32 heads), written whole at the end. H is the most heads
    of any layer; a layer with fewer keeps NaN in the rest."""

    def __init__(self, num_layers: int, num_heads: int, seq_len: int) -> None:
        self.values = np.full((len(TOKEN_TABLES), seq_len, num_layers, num_heads), np.nan, dtype=np.float16)

    def add(self, layer: int, row0: int, measures: np.ndarray) -> None:
        """measures (c, h, len(TOKEN_TABLES)): query rows row0.. of one layer's h heads, the measures in table order."""
        rows, heads = measures.shape[:2]
        self.values[:, row0 : row0 + rows, layer, :heads] = np.moveaxis(measures, -1, 0)

    def write(self, writer: SampleWriter) -> list[str]:
        """Write every table; return meta.json's token_tables."""
        for values, measure in zip(self.values, TOKEN_TABLES, strict=True):
            writer.write_array(token_table_file(measure), values)
        return list(TOKEN_TABLES)


def rollout_meta(num_layers: int) -> dict[str, Any]:
    """rollout.json: its presence says the rollout files are all there."""
    return {"layers": num_layers, "formula": ROLLOUT_FORMULA}


# ---------------------------------------------------------------- validation

_REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format_version": int,
    "model": str,
    "prompt": str,
    "image_path": str,
    "image_size": list,
    "num_layers": int,
    "num_heads": int,
    "seq_len": int,
    "dtype": str,
    "tokens": list,
    "layer_files": list,
    "head_mean_files": list,
    "head_max_files": list,
}


def validate_meta(meta: Any) -> None:
    """Raise FormatError naming the first field that breaks the format."""
    if not isinstance(meta, dict):
        raise FormatError("meta.json must hold a JSON object")
    for field, kind in _REQUIRED_FIELDS.items():
        if field not in meta:
            raise FormatError(f"meta.json lacks the field '{field}'")
        if not isinstance(meta[field], kind) or isinstance(meta[field], bool):
            raise FormatError(f"meta.json field '{field}' has the wrong type")
    if meta["format_version"] > FORMAT_VERSION:
        raise FormatError(f"format_version {meta['format_version']} is newer than this tool ({FORMAT_VERSION})")
    if meta["dtype"] != "float16":
        raise FormatError(f"dtype must be float16, not {meta['dtype']!r}")
    n, layers, heads = meta["seq_len"], meta["num_layers"], meta["num_heads"]
    if n < 1 or layers < 1 or heads < 1:
        raise FormatError("seq_len, num_layers and num_heads must be positive")
    if "storage" in meta:
        _validate_storage(meta["storage"], layers, heads)
    kept = len(meta["storage"]["layers"]) if "storage" in meta else layers
    for field in ("layer_files", "head_mean_files", "head_max_files"):
        names = meta[field]
        if len(names) != kept or not all(isinstance(x, str) and _is_plain_name(x) for x in names):
            raise FormatError(f"'{field}' must list {kept} plain file names")
    if not _is_plain_name(meta["image_path"]):
        raise FormatError("'image_path' must be a plain file name inside the sample")
    _validate_tokens(meta["tokens"], n)
    if "image_regions" in meta:
        _validate_regions(meta)
    elif isinstance(meta.get("image_grid"), dict):
        _validate_grid(meta["image_grid"], meta["tokens"], n)
    else:
        raise FormatError("meta.json lacks the field 'image_grid'")
    if "vision" in meta:
        _validate_vision(meta["vision"], meta["image_size"])
    if "layer_attention" in meta:
        _validate_layer_attention(meta["layer_attention"], layers)
    if "adapter" in meta:
        _validate_adapter(meta["adapter"])
    if "import" in meta and not isinstance(meta["import"], dict):
        raise FormatError("'import' must be an object")
    if "token_tables" in meta:
        _validate_token_tables(meta["token_tables"])
    storage = Storage.of(meta)
    if text_token_count(meta) == 0 and not storage.kind.image_rows:
        raise FormatError(f"a {storage.profile} sample needs at least one token that is not an image token")


def _validate_storage(storage: Any, layers: int, heads: int) -> None:
    if not isinstance(storage, dict) or storage.get("profile") not in STORAGE_PROFILES:
        raise FormatError(f"'storage' must be an object whose 'profile' is one of {', '.join(STORAGE_PROFILES)}")
    for field, count in (("layers", layers), ("heads", heads)):
        indices = storage.get(field)
        if (
            not isinstance(indices, list)
            or not indices
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in indices)
            or indices != sorted(set(indices))
            or not 0 <= indices[0] <= indices[-1] < count
        ):
            raise FormatError(f"storage.{field} must list ascending, unique indices below {count}")


def _validate_token_tables(measures: Any) -> None:
    if (
        not isinstance(measures, list)
        or not all(isinstance(m, str) and m in TOKEN_TABLES for m in measures)
        or len(set(measures)) != len(measures)
    ):
        raise FormatError(f"'token_tables' must list distinct measures among {', '.join(TOKEN_TABLES)}")


def rollout_needs(storage: Storage) -> str:
    """Why a sample stored this way has no rollout: what the rollout needs and the storage lacks."""
    if not storage.kind.image_rows:
        return f"whole head-mean matrices, and a {storage.profile} sample holds only the rows of non-image tokens"
    return f"every layer's head mean, and this sample keeps only layers {_listed(storage.layers)}"


def validate_rollout_meta(rollout: Any, meta: dict[str, Any]) -> None:
    if not isinstance(rollout, dict) or not isinstance(rollout.get("formula"), str):
        raise FormatError(f"{ROLLOUT_META_FILE} must hold an object with the string 'formula'")
    if rollout.get("layers") != meta["num_layers"] or isinstance(rollout.get("layers"), bool):
        raise FormatError(f"{ROLLOUT_META_FILE} 'layers' must equal num_layers ({meta['num_layers']})")


def _is_plain_name(name: str) -> bool:
    return name not in ("", ".", "..") and "/" not in name and "\\" not in name


def _validate_tokens(tokens: list[Any], n: int) -> None:
    if len(tokens) != n:
        raise FormatError(f"tokens has {len(tokens)} entries but seq_len is {n}")
    for i, tok in enumerate(tokens):
        if not isinstance(tok, dict) or tok.get("id") != i:
            raise FormatError(f"tokens[{i}] must be an object with id {i}")
        if not isinstance(tok.get("text"), str):
            raise FormatError(f"tokens[{i}] lacks a text string")
        if tok.get("type") not in TOKEN_TYPES:
            raise FormatError(f"tokens[{i}].type must be one of {TOKEN_TYPES}")
        if tok["type"] == "image" and not _is_pair(tok.get("grid_pos")):
            raise FormatError(f"tokens[{i}] is an image token without grid_pos [row, col]")
        if "layout" in tok and (tok["layout"] not in LAYOUT_ROLES or tok["type"] == "image"):
            raise FormatError(f"tokens[{i}].layout must be one of {LAYOUT_ROLES}, on a token that is not a patch")


def _is_pair(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value)


def _validate_grid(grid: dict[str, Any], tokens: list[dict[str, Any]], n: int) -> None:
    for key in ("rows", "cols", "start_idx", "end_idx"):
        if not isinstance(grid.get(key), int):
            raise FormatError(f"image_grid lacks the integer '{key}'")
    start, end = grid["start_idx"], grid["end_idx"]
    if not 0 <= start <= end < n or end - start + 1 != grid["rows"] * grid["cols"]:
        raise FormatError("image_grid span does not match rows × cols inside the sequence")
    for i in range(start, end + 1):
        if tokens[i]["type"] != "image" or tokens[i]["grid_pos"] != grid_pos(i - start, grid["cols"]):
            raise FormatError(f"tokens[{i}] does not sit at its row-major place in image_grid")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_images(images: Any) -> list[list[int]]:
    """meta.json's images (format 2); returns each image's size."""
    if not isinstance(images, list) or not images:
        raise FormatError("'images' must be a non-empty list")
    for i, image in enumerate(images):
        if (
            not isinstance(image, dict)
            or not _is_plain_name(image.get("path", ""))
            or not all(_is_pair(image.get(k)) and min(image[k]) >= 1 for k in ("size", "original_size"))
        ):
            raise FormatError(
                f"images[{i}] must hold a plain file name 'path' and positive [w, h] 'size', 'original_size'"
            )
    return [image["size"] for image in images]


def _validate_regions(meta: dict[str, Any]) -> None:
    """image_regions: every image token sits in exactly one region, at its row-major place there."""
    if meta["format_version"] < REGIONS_FORMAT_VERSION:
        raise FormatError(f"image_regions need format_version {REGIONS_FORMAT_VERSION}")
    sizes = _validate_images(meta.get("images"))
    if meta["images"][0]["path"] != meta["image_path"] or meta["images"][0]["size"] != meta["image_size"]:
        raise FormatError("image_path and image_size must be those of images[0]")
    regions, tokens = meta["image_regions"], meta["tokens"]
    if not isinstance(regions, list) or not regions:
        raise FormatError("'image_regions' must be a non-empty list")
    placed = 0
    for k, region in enumerate(regions):
        placed += _validate_region(k, region, sizes, tokens)
    if placed != sum(tok["type"] == "image" for tok in tokens):
        raise FormatError("every image token must belong to one of image_regions")


def _validate_region(k: int, region: Any, sizes: list[list[int]], tokens: list[dict[str, Any]]) -> int:
    where = f"image_regions[{k}]"
    if not isinstance(region, dict) or not all(_is_int(region.get(key)) for key in ("image", "rows", "cols")):
        raise FormatError(f"{where} must hold the integers 'image', 'rows' and 'cols'")
    if not 0 <= region["image"] < len(sizes) or region["rows"] < 1 or region["cols"] < 1:
        raise FormatError(f"{where}: image must index images, rows and cols must be positive")
    if region.get("kind") not in REGION_KINDS:
        raise FormatError(f"{where}.kind must be one of {REGION_KINDS}")
    rect, (width, height) = region.get("rect"), sizes[region["image"]]
    if not (isinstance(rect, list) and len(rect) == 4 and all(_is_int(v) for v in rect)):
        raise FormatError(f"{where}.rect must be [x, y, w, h]")
    x, y, w, h = rect
    # A rect may reach past its image where the processor padded the image before cutting the grid.
    if w < 1 or h < 1 or x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise FormatError(f"{where}.rect must overlap its image's size {width}x{height}")
    positions = region.get("tokens")
    if not isinstance(positions, list) or len(positions) != region["rows"] * region["cols"]:
        raise FormatError(f"{where}.tokens must list rows × cols token positions")
    for offset, i in enumerate(positions):
        tok = tokens[i] if _is_int(i) and 0 <= i < len(tokens) else None
        if (
            tok is None
            or tok["type"] != "image"
            or tok.get("region") != k
            or tok["grid_pos"] != grid_pos(offset, region["cols"])
        ):
            raise FormatError(f"{where}.tokens[{offset}] is not an image token of this region at its row-major place")
    return len(positions)


def _validate_adapter(adapter: Any) -> None:
    """The optional `adapter` object of a sample made with --adapter."""
    if (
        not isinstance(adapter, dict)
        or not isinstance(adapter.get("path"), str)
        or not isinstance(adapter.get("peft_type"), str)
    ):
        raise FormatError("'adapter' must be an object with the strings 'path' and 'peft_type'")
    if not isinstance(adapter.get("base_model"), (str, type(None))):
        raise FormatError("adapter.base_model must be a string or null")
    if "r" in adapter and (not isinstance(adapter["r"], int) or isinstance(adapter["r"], bool)):
        raise FormatError("adapter.r must be an integer")
    targets = adapter.get("target_modules", [])
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise FormatError("adapter.target_modules must be a list of strings")


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _validate_layer_attention(entries: Any, layers: int) -> None:
    """One entry per layer: a kind of ATTENTION_KINDS and the fields that kind takes."""
    if not isinstance(entries, list) or len(entries) != layers:
        raise FormatError(f"'layer_attention' must list {layers} entries, one per layer")
    for i, entry in enumerate(entries):
        where = f"layer_attention[{i}]"
        if not isinstance(entry, dict) or entry.get("kind") not in ATTENTION_KINDS:
            raise FormatError(f"{where} must be an object whose kind is one of {', '.join(ATTENTION_KINDS)}")
        kind = entry["kind"]
        if ("window" in entry) != (kind == "sliding") or ("window" in entry and not _is_positive_int(entry["window"])):
            raise FormatError(f"{where}: a positive integer 'window' is required for sliding layers and only there")
        if ("conv_kernel" in entry) != (kind == "linear") or (
            "conv_kernel" in entry and not _is_positive_int(entry["conv_kernel"])
        ):
            raise FormatError(f"{where}: a positive integer 'conv_kernel' is required for linear layers and only there")
        for flag in ("image_bidirectional", "before_output_gate"):
            if flag in entry and (entry[flag] is not True or kind not in SOFTMAX_KINDS):
                raise FormatError(f"{where}: '{flag}' is true on a softmax layer or absent")
        if "num_heads" in entry and not _is_positive_int(entry["num_heads"]):
            raise FormatError(f"{where}: 'num_heads' must be a positive integer")


_VISION_INT_FIELDS = ("num_blocks", "num_heads", "patch_size", "seq_len")


def _validate_vision(vision: Any, image_size: list[Any]) -> None:
    if not isinstance(vision, dict):
        raise FormatError("meta.json field 'vision' must be an object")
    for field in _VISION_INT_FIELDS:
        if not isinstance(vision.get(field), int) or isinstance(vision[field], bool) or vision[field] < 1:
            raise FormatError(f"vision lacks the positive integer '{field}'")
    blocks = vision.get("blocks")
    if (
        not isinstance(blocks, list)
        or not blocks
        or not all(isinstance(b, int) and not isinstance(b, bool) for b in blocks)
    ):
        raise FormatError("vision.blocks must be a non-empty list of block indices")
    if blocks != sorted(set(blocks)) or not 0 <= blocks[0] <= blocks[-1] < vision["num_blocks"]:
        raise FormatError(f"vision.blocks must be ascending, unique and below num_blocks ({vision['num_blocks']})")
    for field in ("block_files", "head_mean_files"):
        names = vision.get(field)
        if (
            not isinstance(names, list)
            or len(names) != len(blocks)
            or not all(isinstance(x, str) and _is_plain_name(x) for x in names)
        ):
            raise FormatError(f"vision.{field} must list {len(blocks)} plain file names")
    if not isinstance(vision.get("received_file"), str) or not _is_plain_name(vision["received_file"]):
        raise FormatError("vision.received_file must be a plain file name inside the sample")
    grid = vision.get("grid")
    if not isinstance(grid, dict) or not all(isinstance(grid.get(k), int) and grid[k] >= 1 for k in ("rows", "cols")):
        raise FormatError("vision.grid must hold positive integer 'rows' and 'cols'")
    if grid["rows"] * grid["cols"] != vision["seq_len"]:
        raise FormatError("vision.seq_len must equal vision.grid rows × cols")
    if [grid["cols"] * vision["patch_size"], grid["rows"] * vision["patch_size"]] != image_size:
        raise FormatError("vision.grid × patch_size must cover image_size exactly")


def _expected_sizes(meta: dict[str, Any], rollout: dict[str, Any] | None) -> dict[str, int]:
    """Every attention file of the sample (with its rollout when rollout.json is given) and its size in bytes."""
    n, layers = meta["seq_len"], meta["num_layers"]
    storage = Storage.of(meta)
    matrix = storage.matrix_values(n, text_token_count(meta)) * BYTES_PER_VALUE
    expected = {name: h * matrix for name, h in zip(meta["layer_files"], stored_heads(meta), strict=True)}
    for name in meta["head_mean_files"] + meta["head_max_files"]:
        expected[name] = matrix
    for measure in meta.get("token_tables", []):
        expected[token_table_file(measure)] = token_table_bytes(layers, table_heads(meta), n)
    if rollout is not None and not storage.serves("rollout"):
        raise FormatError(f"{ROLLOUT_META_FILE} is there, but a rollout needs {rollout_needs(storage)}")
    if rollout is not None:
        for layer in range(layers):
            expected[rollout_file(layer)] = n * n * BYTES_PER_VALUE
    if "vision" in meta:
        vision = meta["vision"]
        p = vision["seq_len"]
        for name in vision["block_files"]:
            expected[name] = vision["num_heads"] * p * p * BYTES_PER_VALUE
        for name in vision["head_mean_files"]:
            expected[name] = p * p * BYTES_PER_VALUE
        expected[vision["received_file"]] = len(vision["blocks"]) * p * BYTES_PER_VALUE
    return expected


def validate_sample(sample_dir: Path) -> dict[str, Any]:
    """Check meta.json (and rollout.json when there) and every file's size; return the meta."""
    meta = read_meta(sample_dir)
    for name, size in _expected_sizes(meta, read_rollout(sample_dir, meta)).items():
        path = sample_dir / name
        if not path.is_file():
            raise FormatError(f"{path} is missing")
        if path.stat().st_size != size:
            raise FormatError(f"{path} has {path.stat().st_size} bytes, expected {size}")
    for name in image_files(meta):
        if not (sample_dir / name).is_file():
            raise FormatError(f"the image {name} is missing")
    return meta


def image_files(meta: dict[str, Any]) -> list[str]:
    """The sample's image files, in image order."""
    return [image["path"] for image in meta["images"]] if "images" in meta else [meta["image_path"]]


def sample_files(meta: dict[str, Any], rollout: dict[str, Any] | None = None) -> set[str]:
    """The names of every file a sample holds (its rollout's with the rollout.json given)."""
    extra = {ROLLOUT_META_FILE} if rollout is not None else set()
    return {META_FILE, *image_files(meta), *_expected_sizes(meta, rollout), *extra}


# ---------------------------------------------------------------- reading


def read_meta(sample_dir: Path) -> dict[str, Any]:
    path = Path(sample_dir) / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FormatError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FormatError(f"{path} is not valid JSON: {err}") from None
    except OSError as err:
        raise FormatError(f"cannot read {path}: {(err.strerror or str(err)).lower()}") from None
    validate_meta(meta)
    return meta


def read_rollout(sample_dir: Path, meta: dict[str, Any]) -> dict[str, Any] | None:
    """The checked rollout.json, or None when the sample has no rollout."""
    path = Path(sample_dir) / ROLLOUT_META_FILE
    try:
        rollout = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FormatError(f"{path} is not valid JSON: {err}") from None
    except OSError as err:
        raise FormatError(f"cannot read {path}: {(err.strerror or str(err)).lower()}") from None
    validate_rollout_meta(rollout, meta)
    return rollout


def open_layer(sample_dir: Path, meta: dict[str, Any], layer: int) -> np.memmap:
    """Memory-map one layer of a full-profile sample as (kept heads, N, N) float16 without reading it;
    read_matrix serves every profile."""
    _require_full(meta)
    n = meta["seq_len"]
    return open_stored_layer(sample_dir, meta, layer).reshape(-1, n, n)


# The head aggregates a sample stores per layer, and meta.json's list of their files.
HEAD_AGGREGATES = {"mean": "head_mean_files", "max": "head_max_files"}


def open_head_aggregate(sample_dir: Path, meta: dict[str, Any], layer: int, kind: str) -> np.memmap:
    """Memory-map a layer's head-'mean' or head-'max' matrix of a full-profile sample as (N, N) float16."""
    _require_full(meta)
    n = meta["seq_len"]
    return open_stored_aggregate(sample_dir, meta, layer, kind).reshape(n, n)


def _require_full(meta: dict[str, Any]) -> None:
    storage = Storage.of(meta)
    if not storage.kind.whole_rows:
        raise FormatError(
            f"this sample is stored as {storage.profile}, not as (N, N) matrices; read it with read_matrix"
        )


def open_stored_layer(sample_dir: Path, meta: dict[str, Any], layer: int) -> np.memmap:
    """A kept layer's file as stored: (kept heads, values of one matrix) float16, memory-mapped."""
    storage = Storage.of(meta)
    position = storage.layer_position(layer)
    name = meta["layer_files"][position]
    shape = (stored_heads(meta)[position], storage.matrix_values(meta["seq_len"], text_token_count(meta)))
    return np.memmap(Path(sample_dir) / name, dtype=np.float16, mode="r", shape=shape)


def open_stored_aggregate(sample_dir: Path, meta: dict[str, Any], layer: int, kind: str) -> np.memmap:
    """A kept layer's head-'mean' or head-'max' file as stored: (values of one matrix,) float16, memory-mapped."""
    storage = Storage.of(meta)
    name = meta[HEAD_AGGREGATES[kind]][storage.layer_position(layer)]
    shape = (storage.matrix_values(meta["seq_len"], text_token_count(meta)),)
    return np.memmap(Path(sample_dir) / name, dtype=np.float16, mode="r", shape=shape)


def read_matrix(sample_dir: Path, meta: dict[str, Any], layer: int, head: int | str) -> np.ndarray:
    """One (N, N) float16 matrix of a kept layer, whatever the profile: a head (the model's index, kept) or a head
    aggregate. Full: a read-only memory map. Triangle: unpacked, 0 above the diagonal as stored nowhere.
    Text-rows: unpacked, NaN in the rows of image tokens, which the sample does not hold."""
    storage = Storage.of(meta)
    if isinstance(head, str):
        stored = open_stored_aggregate(sample_dir, meta, layer, head)
    else:
        stored = open_stored_layer(sample_dir, meta, layer)[storage.head_position(head)]
    return unpack_matrix(stored, meta)


def unpack_matrix(stored: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """A matrix's stored values as the (N, N) matrix (SPEC.md §1, storage profiles): the columns a row does not
    store are 0 (the causal mask's), the rows not stored NaN."""
    n, profile = meta["seq_len"], profile_of(meta)
    if STORAGE_PROFILES[profile].whole_rows:
        return stored.reshape(n, n)
    rows = stored_rows(meta)
    matrix = np.full((n, n), np.nan, dtype=np.float16)
    matrix[rows] = 0
    matrix[stored_mask(rows, 0, n, n, profile)] = stored
    matrix.flags.writeable = False
    return matrix


def read_full_rows(path: Path, profile: str, n: int, row0: int, count: int) -> np.ndarray:
    """Rows row0.. of an (N, N) matrix file of a profile that stores every row, as (count, N) float16 read without
    a memory map (a map would keep its pages resident); the rollout reads its head means so."""
    if not STORAGE_PROFILES[profile].image_rows:
        raise FormatError(f"a {profile} sample does not hold every row of its matrices")
    count = min(count, n - row0)
    starts = row_starts(np.arange(n), n, profile)
    first = int(starts[row0])
    values = np.fromfile(path, dtype="<f2", count=int(starts[row0 + count]) - first, offset=first * BYTES_PER_VALUE)
    if STORAGE_PROFILES[profile].whole_rows:
        return values.reshape(count, n)
    rows = np.zeros((count, n), dtype=np.float16)
    rows[stored_mask(np.arange(n), row0, count, n, profile)] = values
    return rows


def open_token_table(sample_dir: Path, meta: dict[str, Any], measure: str) -> np.memmap:
    """Memory-map one TOKEN_TABLES measure as (N, L, H) float16."""
    shape = (meta["seq_len"], meta["num_layers"], table_heads(meta))
    return np.memmap(Path(sample_dir) / token_table_file(measure), dtype=np.float16, mode="r", shape=shape)


def open_rollout(sample_dir: Path, meta: dict[str, Any], layer: int) -> np.memmap:
    """Memory-map the rollout up to `layer`, R_layer, as (N, N) float16."""
    n = meta["seq_len"]
    return np.memmap(Path(sample_dir) / rollout_file(layer), dtype=np.float16, mode="r", shape=(n, n))


def open_vision_block(sample_dir: Path, meta: dict[str, Any], index: int) -> np.memmap:
    """Memory-map the i-th captured vision block (meta["vision"]["blocks"][i]) as (heads, P, P) float16."""
    vision = meta["vision"]
    p = vision["seq_len"]
    return np.memmap(
        Path(sample_dir) / vision["block_files"][index], dtype=np.float16, mode="r", shape=(vision["num_heads"], p, p)
    )


def open_vision_mean(sample_dir: Path, meta: dict[str, Any], index: int) -> np.memmap:
    """Memory-map the i-th captured vision block's head mean as (P, P) float16."""
    vision = meta["vision"]
    p = vision["seq_len"]
    return np.memmap(Path(sample_dir) / vision["head_mean_files"][index], dtype=np.float16, mode="r", shape=(p, p))


def open_vision_received(sample_dir: Path, meta: dict[str, Any]) -> np.memmap:
    """Memory-map the attention each patch receives, per captured block: (blocks, P) float16."""
    vision = meta["vision"]
    shape = (len(vision["blocks"]), vision["seq_len"])
    return np.memmap(Path(sample_dir) / vision["received_file"], dtype=np.float16, mode="r", shape=shape)


# ---------------------------------------------------------------- writing


def check_target(target: Path, overwrite: bool) -> None:
    """Refuse, before anything is loaded, a target this run could not write or must not replace.

    Only a folder that validates as a sample and holds nothing but a sample's files is ever
    replaced, and only with overwrite: a folder of the user's own files is never touched.
    """
    target = Path(target)
    for ancestor in reversed([target, *target.parents]):  # from the root down, so the first problem is named
        if ancestor.is_symlink() and not ancestor.exists():
            raise FormatError(f"{ancestor} is a symbolic link to {os.readlink(ancestor)}, which does not exist")
        if ancestor.exists() and not ancestor.is_dir():
            raise FormatError(f"{ancestor} exists and is not a folder")
    if target.is_symlink():
        raise FormatError(
            f"{target} is a symbolic link (to {os.readlink(target)}); pass the folder it points to, or another --output-dir"
        )
    _check_writable(target)
    if _holds_anything(target):
        refusal = replace_refusal(target)
        if refusal:
            raise FormatError(refusal)
        if not overwrite:
            raise FormatError(f"{target} already holds a sample; pass --overwrite to replace it")


def _holds_anything(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def _check_writable(target: Path) -> None:
    """Create and remove an empty hidden folder where the sample will go: the one test that every filesystem answers truly."""
    probe = _write_probe(target)
    try:
        os.rmdir(make_partial_folder(probe))
    except OSError as err:
        raise FormatError(f"cannot write in {probe.parent}: {(err.strerror or str(err)).lower()}") from None


def _write_probe(target: Path) -> Path:
    """The first missing folder on the way to target (target itself when its parent exists); the probe is
    named after it, so a probe cut short by a kill is found as that name's leftover."""
    path = Path(target).absolute()
    while not path.parent.exists():
        path = path.parent
    return path


def replace_refusal(folder: Path) -> str | None:
    """Why this existing, non-empty folder must not be replaced, or None when it is a sample and nothing else."""
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    try:
        meta = validate_sample(folder)
    except FormatError as err:
        return f"{folder} holds {shown}, and is not a sample ({err}); nothing was changed; choose another --output-dir"
    own = sample_files(meta, read_rollout(folder, meta))
    # Hidden partial files of this tool's runs go with the sample; anything else is the user's.
    extra = [name for name in names if name.rstrip("/") not in own and not _is_partial_file_of_ours(name)]
    if extra:
        return f"{folder} holds a sample and also {', '.join(extra[:4])}, which are not a sample's; nothing was changed; choose another --output-dir"
    return None


def _is_partial_file_of_ours(name: str) -> bool:
    """A hidden file (not a folder: those end in '/' here) that one of this tool's runs writes beside a sample's files."""
    return name.startswith(".") and not name.endswith("/") and is_sample_file(name)


def prepare_target(target: Path, overwrite: bool) -> list[str]:
    """check_target, then deal with the partial folders that killed runs left for this target: remove those
    that are surely ours and dead, report the others. Returns one line per leftover."""
    check_target(target, overwrite)
    target = Path(target)
    names = {target.absolute(), _write_probe(target), target.absolute().parent / INDEX_FILE}
    leftovers = [leftover for name in sorted(names) for leftover in find_leftovers(name, is_sample_file)]
    return [_handle_leftover(leftover) for leftover in leftovers]


def _handle_leftover(leftover: Leftover) -> str:
    size = format_bytes(leftover.bytes)
    if leftover.removable:
        remove_tree(leftover.path)
        return f"removed {leftover.path} ({size}), left by a run that was killed"
    return f"left {leftover.path} ({size}) as it is: {leftover.why_kept}; remove it once it is no longer needed"


def consecutive_runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) slices of `indices` within which each index is one more than the one before."""
    breaks = (np.flatnonzero(np.diff(indices) != 1) + 1).tolist()
    return list(zip([0, *breaks], [*breaks, len(indices)], strict=True))


class SampleWriter:
    """Writes a sample into a hidden sibling folder and moves it into place on commit.

    Until commit() the target path is untouched, so an interrupted run leaves no folder
    that looks like a sample; close() without commit() removes the partial one. commit()
    either claims a free name with a rename that cannot replace, or (overwrite) swaps the
    new sample with the old in one step, so the name never shows a half of either.
    """

    def __init__(self, target: Path, overwrite: bool = False, update_index: bool = True) -> None:
        self.target = Path(target)
        self.overwrite = overwrite
        self.update_index = update_index  # off where one other process alone writes index.json (batch)
        check_target(self.target, overwrite)
        # Parents this writer creates are removed again if the sample is never committed.
        self.created_parents = [p for p in reversed(self.target.parents) if not p.exists()]
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.committed = False
        self.tmp = make_partial_folder(self.target)

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_array(self, name: str, array: np.ndarray) -> None:
        if array.dtype != np.float16:
            raise FormatError(f"{name}: attention must be float16, got {array.dtype}")
        np.ascontiguousarray(array).tofile(self.tmp / name)

    def write_layer(self, layer: int, attn: np.ndarray, head_mean: np.ndarray, head_max: np.ndarray) -> None:
        """Store one layer: (H, N, N) attention plus its (N, N) head mean and max."""
        self.write_array(layer_file(layer), attn)
        self.write_array(head_mean_file(layer), head_mean)
        self.write_array(head_max_file(layer), head_max)

    def write_layer_rows(
        self, layer: int, row0: int, attn: np.ndarray, head_mean: np.ndarray, head_max: np.ndarray
    ) -> None:
        """Store query rows row0.. of one layer: attn (H, c, N), head_mean and head_max (c, N), all float16.

        Rows land at their final offsets, so a layer is written in pieces and never held whole.
        """
        self._write_head_rows(layer_file(layer), row0, attn)
        self._write_at(head_mean_file(layer), 2 * row0 * attn.shape[2], head_mean)
        self._write_at(head_max_file(layer), 2 * row0 * attn.shape[2], head_max)

    def write_vision_rows(self, block: int, rows: np.ndarray, attn: np.ndarray, head_mean: np.ndarray) -> None:
        """Store query patches `rows` (row-major indices, in any order) of one vision block: attn (heads, c, P) and
        head_mean (c, P), float16. Each run of consecutive indices lands at its own offset. The files are made
        full size first (zero-filled, sparse), so rows never written read as 0 and the sizes match meta.json."""
        heads, _, patches = attn.shape
        self._make_size(vision_block_file(block), heads * patches * patches * BYTES_PER_VALUE)
        self._make_size(vision_mean_file(block), patches * patches * BYTES_PER_VALUE)
        for start, end in consecutive_runs(rows):
            self._write_head_rows(vision_block_file(block), int(rows[start]), attn[:, start:end])
            self._write_at(vision_mean_file(block), 2 * int(rows[start]) * patches, head_mean[start:end])

    def write_vision_received(self, received: np.ndarray) -> None:
        """Store the attention each patch receives, per captured block: (blocks, P)."""
        self.write_array(VISION_RECEIVED_FILE, received)

    def _write_head_rows(self, name: str, row0: int, attn: np.ndarray) -> None:
        """Rows row0.. of every head of an (H, N, N) file, each at its final offset."""
        heads, _, n = attn.shape
        for h in range(heads):
            self._write_at(name, 2 * (h * n + row0) * n, attn[h])

    def _make_size(self, name: str, size: int) -> None:
        """Create the file, or extend it, to `size` bytes of zeros; the filesystem stores no data for them."""
        fd = os.open(self.tmp / name, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)
        finally:
            os.close(fd)

    def _write_at(self, name: str, offset: int, array: np.ndarray) -> None:
        if array.dtype != np.float16:
            raise FormatError(f"{name}: attention must be float16, got {array.dtype}")
        fd = os.open(self.tmp / name, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            data = memoryview(np.ascontiguousarray(array).astype("<f2", copy=False)).cast("B")
            while data:
                written = os.pwrite(fd, data, offset)
                data, offset = data[written:], offset + written
        finally:
            os.close(fd)

    def copy_file(self, source: Path, name: str) -> None:
        shutil.copyfile(source, self.tmp / name)

    def commit(self, meta: dict[str, Any]) -> Path:
        """Write meta.json, check the whole sample, then move it into place."""
        write_json_atomic(self.tmp / META_FILE, meta)
        validate_sample(self.tmp)
        if self.overwrite and _holds_anything(self.target):
            refusal = replace_refusal(self.target)  # again: the folder may have changed since the run began
            if refusal:
                raise FormatError(refusal)
            self._swap_with_target()
        else:
            self._claim_target()
        self.committed = True
        if self.update_index:
            write_index(self.target.parent)
        return self.target

    def _swap_with_target(self) -> None:
        """Afterwards self.tmp holds the old sample, which close() removes."""
        try:
            rename_exchange(self.tmp, self.target)
        except OSError as err:
            reason = (err.strerror or str(err)).lower()
            raise FormatError(
                f"cannot replace {self.target}: {reason}; the sample there was left as it is, and this run's was not kept"
            ) from None

    def _claim_target(self) -> None:
        try:
            if self.target.is_dir() and not self.target.is_symlink():
                os.rmdir(self.target)  # an empty folder the user made; rmdir cannot remove anything else
            rename_noreplace(self.tmp, self.target)
        except OSError as err:
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            raise FormatError(
                f"{self.target} appeared while this run was writing (another run?); it was left as it is, and this run's sample was not kept"
            ) from None

    def close(self) -> None:
        remove_tree(self.tmp)
        if not self.committed:
            for parent in reversed(self.created_parents):
                try:
                    parent.rmdir()
                except OSError:  # no longer empty: someone else wrote there
                    break


class ProfileWriter:
    """Writes the rows, heads and layers a storage profile keeps of each chunk the capture streams, each at its final
    offset. The chunks carry every layer and head, so the token tables and text_to_image stay whole."""

    def __init__(self, writer: SampleWriter, storage: Storage, rows: np.ndarray) -> None:
        self.writer = writer
        self.storage = storage
        self.rows = rows  # the token rows a matrix stores (stored_rows)
        self.heads = np.array(storage.heads)
        self.all_heads = len(storage.heads) == storage.num_heads
        self.starts: np.ndarray | None = None  # row_starts, once N is known

    def write_layer_rows(
        self, layer: int, row0: int, attn: np.ndarray, head_mean: np.ndarray, head_max: np.ndarray
    ) -> None:
        """Query rows row0.. of one layer: attn (H, c, N) over every head, head_mean and head_max (c, N), float16."""
        if layer not in self.storage.layers:
            return
        kept = attn if self.all_heads else attn[self.heads]
        if self.storage.kind.whole_rows:
            self.writer.write_layer_rows(layer, row0, kept, head_mean, head_max)
            return
        count, n = attn.shape[1], attn.shape[2]
        if self.starts is None:
            self.starts = row_starts(self.rows, n, self.storage.profile)
        first = int(np.searchsorted(self.rows, row0))
        mask = stored_mask(self.rows, row0, count, n, self.storage.profile)
        self._write_packed(layer, int(self.starts[first]), int(self.starts[-1]), kept, head_mean, head_max, mask)

    def _write_packed(
        self,
        layer: int,
        offset: int,
        matrix_values: int,
        kept: np.ndarray,
        head_mean: np.ndarray,
        head_max: np.ndarray,
        mask: np.ndarray,
    ) -> None:
        """The masked values of a chunk, in row-major order, at element `offset` of each matrix: the stored values
        of a chunk's rows lie back to back."""
        if not mask.any():
            return
        write = self.writer._write_at
        for h, head in enumerate(kept):
            write(layer_file(layer), BYTES_PER_VALUE * (h * matrix_values + offset), head[mask])
        write(head_mean_file(layer), BYTES_PER_VALUE * offset, head_mean[mask])
        write(head_max_file(layer), BYTES_PER_VALUE * offset, head_max[mask])


def is_served(root: Path, path: Path) -> bool:
    """Whether a data server rooted at root serves this file: its real path, links followed, lies inside
    root and under no hidden name (web/server/safe-path.ts applies the same rule)."""
    try:
        inside = path.resolve(strict=True).relative_to(Path(root).resolve())
    except (OSError, ValueError):
        return False
    return not any(part.startswith(".") for part in inside.parts)


def write_index(parent: Path) -> None:
    """List the parent's samples in index.json so a static host needs no directory listing."""
    write_json_atomic(Path(parent) / INDEX_FILE, {"samples": list_samples(parent)})


def list_samples(parent: Path) -> list[dict[str, Any]]:
    """The parent's samples: every folder that is not hidden and validates as one (web/server/sample-index.ts lists the same)."""
    entries = []
    for child in sorted(Path(parent).iterdir()):
        if child.name.startswith(".") or not child.is_dir():
            continue
        try:
            meta = validate_sample(child)
        except FormatError:
            continue
        if not all(is_served(parent, child / name) for name in sample_files(meta)):
            continue
        entries.append(
            {
                "name": child.name,
                "model": meta["model"],
                "prompt": meta["prompt"],
                "mode": meta.get("mode", "prefill"),
                "seq_len": meta["seq_len"],
                "num_layers": meta["num_layers"],
                "num_heads": meta["num_heads"],
            }
        )
    return entries
