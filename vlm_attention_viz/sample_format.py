"""The on-disk sample format: the one place that writes, reads and validates it.

A sample is a folder holding meta.json, one float16 (H, N, N) file per layer, a
head-mean and a head-max (N, N) file per layer, and the image; optionally the vision
encoder's attention per captured block (the `vision` field). SPEC.md describes
every field; web/src/format.ts is the TypeScript twin of this module, and both
are tested against fixtures/sample_tiny.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
META_FILE = "meta.json"
INDEX_FILE = "index.json"
VISION_RECEIVED_FILE = "vision_received.bin"
TOKEN_TYPES = ("text", "image", "special")
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


def vision_bytes(num_blocks: int, num_heads: int, num_patches: int) -> int:
    """Bytes of the vision files: per captured block H heads plus the head mean, and one received vector."""
    return num_blocks * ((num_heads + 1) * num_patches * num_patches + num_patches) * BYTES_PER_VALUE


def sample_bytes(num_layers: int, num_heads: int, seq_len: int) -> int:
    """Bytes of all attention files: per layer H heads plus the mean and max matrices."""
    return num_layers * (num_heads + 2) * seq_len * seq_len * BYTES_PER_VALUE


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
    "image_grid": dict,
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
    for field in ("layer_files", "head_mean_files", "head_max_files"):
        names = meta[field]
        if len(names) != layers or not all(isinstance(x, str) and _is_plain_name(x) for x in names):
            raise FormatError(f"'{field}' must list {layers} plain file names")
    if not _is_plain_name(meta["image_path"]):
        raise FormatError("'image_path' must be a plain file name inside the sample")
    _validate_tokens(meta["tokens"], n)
    _validate_grid(meta["image_grid"], meta["tokens"], n)
    if "vision" in meta:
        _validate_vision(meta["vision"], meta["image_size"])
    if "adapter" in meta:
        _validate_adapter(meta["adapter"])
    if "import" in meta and not isinstance(meta["import"], dict):
        raise FormatError("'import' must be an object")


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
        offset = i - start
        if tokens[i]["type"] != "image" or tokens[i]["grid_pos"] != [offset // grid["cols"], offset % grid["cols"]]:
            raise FormatError(f"tokens[{i}] does not sit at its row-major place in image_grid")


def _validate_adapter(adapter: Any) -> None:
    """The optional `adapter` object of a sample made with --adapter."""
    if not isinstance(adapter, dict) or not isinstance(adapter.get("path"), str) or not isinstance(adapter.get("peft_type"), str):
        raise FormatError("'adapter' must be an object with the strings 'path' and 'peft_type'")
    if not isinstance(adapter.get("base_model"), (str, type(None))):
        raise FormatError("adapter.base_model must be a string or null")
    if "r" in adapter and (not isinstance(adapter["r"], int) or isinstance(adapter["r"], bool)):
        raise FormatError("adapter.r must be an integer")
    targets = adapter.get("target_modules", [])
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise FormatError("adapter.target_modules must be a list of strings")




_VISION_INT_FIELDS = ("num_blocks", "num_heads", "patch_size", "seq_len")


def _validate_vision(vision: Any, image_size: list[Any]) -> None:
    if not isinstance(vision, dict):
        raise FormatError("meta.json field 'vision' must be an object")
    for field in _VISION_INT_FIELDS:
        if not isinstance(vision.get(field), int) or isinstance(vision[field], bool) or vision[field] < 1:
            raise FormatError(f"vision lacks the positive integer '{field}'")
    blocks = vision.get("blocks")
    if not isinstance(blocks, list) or not blocks or not all(isinstance(b, int) and not isinstance(b, bool) for b in blocks):
        raise FormatError("vision.blocks must be a non-empty list of block indices")
    if blocks != sorted(set(blocks)) or not 0 <= blocks[0] <= blocks[-1] < vision["num_blocks"]:
        raise FormatError(f"vision.blocks must be ascending, unique and below num_blocks ({vision['num_blocks']})")
    for field in ("block_files", "head_mean_files"):
        names = vision.get(field)
        if not isinstance(names, list) or len(names) != len(blocks) or not all(isinstance(x, str) and _is_plain_name(x) for x in names):
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


def _expected_sizes(meta: dict[str, Any]) -> dict[str, int]:
    """Every attention file of the sample and its size in bytes."""
    n, heads = meta["seq_len"], meta["num_heads"]
    expected = {name: heads * n * n * BYTES_PER_VALUE for name in meta["layer_files"]}
    for name in meta["head_mean_files"] + meta["head_max_files"]:
        expected[name] = n * n * BYTES_PER_VALUE
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
    """Check meta.json and every file's size; return the meta."""
    meta = read_meta(sample_dir)
    for name, size in _expected_sizes(meta).items():
        path = sample_dir / name
        if not path.is_file():
            raise FormatError(f"{path} is missing")
        if path.stat().st_size != size:
            raise FormatError(f"{path} has {path.stat().st_size} bytes, expected {size}")
    if not (sample_dir / meta["image_path"]).is_file():
        raise FormatError(f"the image {meta['image_path']} is missing")
    return meta


# ---------------------------------------------------------------- reading


def read_meta(sample_dir: Path) -> dict[str, Any]:
    path = Path(sample_dir) / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FormatError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FormatError(f"{path} is not valid JSON: {err}") from None
    validate_meta(meta)
    return meta


def open_layer(sample_dir: Path, meta: dict[str, Any], layer: int) -> np.memmap:
    """Memory-map one layer as (H, N, N) float16 without reading it."""
    n = meta["seq_len"]
    return np.memmap(Path(sample_dir) / meta["layer_files"][layer], dtype=np.float16, mode="r", shape=(meta["num_heads"], n, n))


def open_head_aggregate(sample_dir: Path, meta: dict[str, Any], layer: int, kind: str) -> np.memmap:
    """Memory-map a layer's head-'mean' or head-'max' matrix as (N, N) float16."""
    names = {"mean": meta["head_mean_files"], "max": meta["head_max_files"]}[kind]
    n = meta["seq_len"]
    return np.memmap(Path(sample_dir) / names[layer], dtype=np.float16, mode="r", shape=(n, n))


def open_vision_block(sample_dir: Path, meta: dict[str, Any], index: int) -> np.memmap:
    """Memory-map the i-th captured vision block (meta["vision"]["blocks"][i]) as (heads, P, P) float16."""
    vision = meta["vision"]
    p = vision["seq_len"]
    return np.memmap(Path(sample_dir) / vision["block_files"][index], dtype=np.float16, mode="r", shape=(vision["num_heads"], p, p))


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
    """Refuse a target that is a file, a foreign folder, or a sample to keep; cheap, so callers check it first."""
    target = Path(target)
    for ancestor in [target, *target.parents]:
        if ancestor.exists() and not ancestor.is_dir():
            raise FormatError(f"{ancestor} exists and is not a folder")
    if (target / META_FILE).exists() and not overwrite:
        raise FormatError(f"{target} already holds a sample; pass --overwrite to replace it")
    if target.is_dir() and any(target.iterdir()) and not (target / META_FILE).exists():
        raise FormatError(f"{target} is a non-empty folder that is not a sample; choose another --output-dir")


def consecutive_runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) slices of `indices` within which each index is one more than the one before."""
    breaks = (np.flatnonzero(np.diff(indices) != 1) + 1).tolist()
    return list(zip([0, *breaks], [*breaks, len(indices)], strict=True))


class SampleWriter:
    """Writes a sample into a hidden sibling folder and renames it into place on commit.

    Until commit() the target path is untouched, so an interrupted run leaves no
    folder that looks like a sample; close() without commit() removes the partial one.
    """

    def __init__(self, target: Path, overwrite: bool = False) -> None:
        self.target = Path(target)
        check_target(self.target, overwrite)
        # Parents this writer creates are removed again if the sample is never committed.
        self.created_parents = [p for p in reversed(self.target.parents) if not p.exists()]
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.committed = False
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.partial-", dir=self.target.parent))
        self.tmp.chmod(0o755)  # mkdtemp makes it private; a sample is meant to be served

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

    def write_layer_rows(self, layer: int, row0: int, attn: np.ndarray, head_mean: np.ndarray, head_max: np.ndarray) -> None:
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
        """Write meta.json, check the whole sample, then swap it into place."""
        _write_json_atomic(self.tmp / META_FILE, meta)
        validate_sample(self.tmp)
        old = None
        if self.target.exists():
            old = self.target.with_name(f".{self.target.name}.old-{os.getpid()}")
            self.target.rename(old)
        self.tmp.rename(self.target)
        if old is not None:
            shutil.rmtree(old)
        write_index(self.target.parent)
        self.committed = True
        return self.target

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        if not self.committed:
            for parent in reversed(self.created_parents):
                try:
                    parent.rmdir()
                except OSError:  # no longer empty: someone else wrote there
                    break


def _write_json_atomic(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)


def write_index(parent: Path) -> None:
    """List the parent's samples in index.json so a static host needs no directory listing."""
    _write_json_atomic(Path(parent) / INDEX_FILE, {"samples": list_samples(parent)})


def list_samples(parent: Path) -> list[dict[str, Any]]:
    entries = []
    for child in sorted(Path(parent).iterdir()):
        if child.name.startswith(".") or not (child / META_FILE).is_file():
            continue
        try:
            meta = read_meta(child)
        except FormatError:
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
