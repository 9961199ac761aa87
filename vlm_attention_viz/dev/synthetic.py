"""Synthetic samples in the real format, for viewer tests and benchmarks at any size.

The attention has the structure real VLM maps show: sinks on the first tokens,
a local band near the diagonal, and text tokens that focus on one image region.
Layers can share files through hard links (--distinct-layers) so that a sample of
36 layers × 32 heads at N=8,192 fits on a normal disk. The token tables and the rollout
are computed from the stored layers by the same code as the extractor's. --vision-blocks adds vision-encoder
attention over the image's patches (merge 2, 16 px patches): a local neighbourhood plus a
ring of salient patches that every patch attends to, as edges are in real ViT maps.

    python -m vlm_attention_viz.dev.synthetic --output-dir output/synth_2100 --seq-len 2100

With --npy-dir it writes the same attention as the inputs of `python -m vlm_attention_viz
import` instead: attention_array.npy [layers, heads, N, N] float32, decoded_tokens.npy
(image tokens spelled <|image_pad|>, as a Qwen tokenizer decodes them) and image.png.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image

from .. import sample_format as fmt
from ..analysis import TokenLayout, TokenMeasures, resolve_device, write_rollout

PREFIX = ["<|im_start|>", "user", "\n", "<|vision_start|>"]
SUFFIX_TEXT = ["<|vision_end|>", "Describe", " this", " image", " in", " detail", "."]
TAIL = ["<|im_end|>", "\n", "<|im_start|>", "assistant", "\n"]
WORDS = [" the", " red", " cat", " sits", " on", " a", " wooden", " table", " near", " window", ","]
SPECIAL = {"<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>"}


def grid_for(image_tokens: int, aspect: float = 16 / 9) -> tuple[int, int]:
    rows = max(1, round((image_tokens / aspect) ** 0.5))
    return rows, max(1, image_tokens // rows)


def build_tokens(seq_len: int) -> tuple[list[dict], dict]:
    """Lay out prompt tokens, an image grid that fills most of seq_len, and answer words."""
    fixed = len(PREFIX) + len(SUFFIX_TEXT) + len(TAIL)
    rows, cols = grid_for(max(1, int((seq_len - fixed) * 0.9)))
    extra = seq_len - fixed - rows * cols
    texts = PREFIX + ["[IMG]"] * (rows * cols) + SUFFIX_TEXT + [WORDS[i % len(WORDS)] for i in range(extra)] + TAIL
    start = len(PREFIX)
    tokens = []
    for i, text in enumerate(texts):
        tok: dict = {"id": i, "text": text, "type": "special" if text in SPECIAL else "text"}
        if start <= i < start + rows * cols:
            tok.update(type="image", grid_pos=fmt.grid_pos(i - start, cols))
        tokens.append(tok)
    grid = fmt.image_grid(rows, cols, start)
    return tokens, grid


def layer_attention(tokens: list[dict], grid: dict, heads: int, layer: int, seed: int, chunk: int = 256) -> np.ndarray:
    """One layer's causal (H, N, N) float16 attention, computed in row chunks."""
    n = len(tokens)
    rng = np.random.default_rng(seed * 1000 + layer)
    is_image = np.array([t["type"] == "image" for t in tokens])
    pos = np.array([t.get("grid_pos", [0, 0]) for t in tokens], dtype=np.float32)
    cols = np.arange(n)
    out = np.empty((heads, n, n), dtype=np.float16)
    for h in range(heads):
        sink, width = 4.0 + rng.random() * 4, 2.0 + 30 * rng.random()
        focus = rng.random((n, 2)) * [grid["rows"], grid["cols"]]  # where each query looks in the image
        for r0 in range(0, n, chunk):
            rows = np.arange(r0, min(n, r0 + chunk))
            logits = -np.abs(rows[:, None] - cols[None, :]) / width
            logits[:, :3] += sink
            d2 = ((pos[None, :, :] - focus[rows][:, None, :]) ** 2).sum(-1)
            logits += np.where(is_image[None, :] & ~is_image[rows][:, None], 3.0 * np.exp(-d2 / 8.0), 0.0)
            logits += 0.3 * rng.standard_normal(logits.shape)
            logits = np.where(cols[None, :] <= rows[:, None], logits, -np.inf)
            probs = np.exp(logits - logits.max(axis=1, keepdims=True))
            out[h, rows] = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float16)
    return out


VISION_MERGE, VISION_PATCH = 2, 16


def vision_attention(rows: int, cols: int, heads: int, block: int, seed: int) -> np.ndarray:
    """One vision block's (H, P, P) float32 attention over row-major patches; every row sums to 1 (not causal)."""
    rng = np.random.default_rng(seed * 1000 + 500 + block)
    r, c = np.divmod(np.arange(rows * cols), cols)
    ring = np.abs(np.hypot((r - (rows - 1) / 2) / rows, (c - (cols - 1) / 2) / cols) - 0.3) < 0.08
    dist = np.hypot(r[:, None] - r[None, :], c[:, None] - c[None, :])
    out = np.empty((heads, rows * cols, rows * cols), dtype=np.float32)
    for h in range(heads):
        logits = -dist / (1.0 + 3 * rng.random()) + (2.0 + 2 * rng.random()) * ring[None, :]
        logits += 0.3 * rng.standard_normal(logits.shape)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        out[h] = probs / probs.sum(axis=1, keepdims=True)
    return out


def write_vision(
    writer: fmt.SampleWriter, grid: dict, image_size: tuple[int, int], num_blocks: int, heads: int, seed: int
) -> dict:
    """Write the last `num_blocks` of a four-block vision tower; return meta's `vision` field."""
    rows, cols = grid["rows"] * VISION_MERGE, grid["cols"] * VISION_MERGE
    blocks = list(range(4 - num_blocks, 4))
    received = np.empty((num_blocks, rows * cols), dtype=np.float32)
    for i, block in enumerate(blocks):
        attn = vision_attention(rows, cols, heads, block, seed)
        mean = attn.mean(axis=0)
        received[i] = mean.sum(axis=0)
        writer.write_vision_rows(block, np.arange(rows * cols), attn.astype(np.float16), mean.astype(np.float16))
    writer.write_vision_received(received.astype(np.float16))
    assert [cols * VISION_PATCH, rows * VISION_PATCH] == list(image_size)
    return {
        "num_blocks": 4,
        "num_heads": heads,
        "blocks": blocks,
        "grid": {"rows": rows, "cols": cols},
        "patch_size": VISION_PATCH,
        "seq_len": rows * cols,
        "block_files": [fmt.vision_block_file(b) for b in blocks],
        "head_mean_files": [fmt.vision_mean_file(b) for b in blocks],
        "received_file": fmt.VISION_RECEIVED_FILE,
    }


def grid_image(grid: dict) -> Image.Image:
    """32 px per grid cell, so the image's aspect ratio is the grid's."""
    return Image.linear_gradient("L").resize((grid["cols"] * 32, grid["rows"] * 32)).convert("RGB")


def write_import_inputs(folder: Path, seq_len: int, layers: int, heads: int, seed: int) -> Path:
    """attention_array.npy, decoded_tokens.npy and image.png, as the earlier .npy-based tools save them; one layer in memory at a time."""
    folder.mkdir(parents=True, exist_ok=True)
    tokens, grid = build_tokens(seq_len)
    texts = ["<|image_pad|>" if t["type"] == "image" else t["text"] for t in tokens]
    np.save(folder / "decoded_tokens.npy", np.array(texts, dtype=str))
    grid_image(grid).save(folder / "image.png")
    array = np.lib.format.open_memmap(
        folder / "attention_array.npy", mode="w+", dtype=np.float32, shape=(layers, heads, seq_len, seq_len)
    )
    for layer in range(layers):
        array[layer] = layer_attention(tokens, grid, heads, layer, seed)
    array.flush()
    del array
    return folder


def write_synthetic(
    target: Path,
    seq_len: int,
    layers: int,
    heads: int,
    distinct_layers: int,
    seed: int,
    overwrite: bool,
    vision_blocks: int = 0,
    vision_heads: int = 2,
) -> Path:
    tokens, grid = build_tokens(seq_len)
    device = resolve_device(None)
    image = grid_image(grid)
    measures = TokenMeasures(
        TokenLayout.of(tokens, [fmt.grid_region(grid, image.size)]), fmt.TokenTables(layers, heads, seq_len)
    )
    text_to_image = fmt.TextToImage(layers, heads, (grid["start_idx"], grid["end_idx"]))
    writer = fmt.SampleWriter(target, overwrite=overwrite)
    with writer:
        image.save(writer.tmp / "image.png")
        for layer in range(layers):
            source = layer % distinct_layers
            if source != layer:  # hard links: the same bytes under another layer's name
                for name in (fmt.layer_file, fmt.head_mean_file, fmt.head_max_file):
                    os.link(writer.tmp / name(source), writer.tmp / name(layer))
                measures.tables.values[:, :, layer] = measures.tables.values[:, :, source]
                text_to_image.copy_layer(source, layer)
                continue
            attn = layer_attention(tokens, grid, heads, layer, seed)
            mean = attn.mean(axis=0, dtype=np.float32).astype(np.float16)
            writer.write_layer(layer, attn, mean, attn.max(axis=0))
            add_measures(measures, layer, attn, device)
            image_keys = slice(grid["start_idx"], grid["end_idx"] + 1)
            text_to_image.add(layer, 0, attn[:, :, image_keys].sum(axis=2, dtype=np.float32))
            del attn
        meta = fmt.build_meta(
            model="synthetic",
            model_type="synthetic",
            mode="prefill",
            prompt="Describe this image in detail.",
            image_path="image.png",
            image_size=image.size,
            original_image_size=image.size,
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=heads,
            tokens=tokens,
            image_grid=grid,
            text_to_image=text_to_image.table(),
            token_tables=measures.tables.write(writer),
        )
        if vision_blocks:
            meta["vision"] = write_vision(writer, grid, image.size, vision_blocks, vision_heads, seed)
        write_rollout(writer.tmp, meta, device)
        return writer.commit(meta)


def add_measures(
    measures: TokenMeasures, layer: int, attn: np.ndarray, device: str, chunk_bytes: int = 32 * 2**20
) -> None:
    """The token tables of one (H, N, N) layer, a block of rows at a time."""
    heads, n, _ = attn.shape
    rows = max(1, chunk_bytes // (heads * n * 4))
    for row0 in range(0, n, rows):
        measures.add_host(layer, row0, attn[:, row0 : row0 + rows], device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--output-dir", type=Path, help="the sample folder to write")
    target.add_argument(
        "--npy-dir", type=Path, help="write the inputs of `python -m vlm_attention_viz import` here instead"
    )
    parser.add_argument("--seq-len", type=int, default=600)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument(
        "--distinct-layers", type=int, default=None, help="compute this many layers, hard-link the rest"
    )
    parser.add_argument(
        "--vision-blocks",
        type=int,
        default=0,
        choices=range(5),
        help="also write vision-encoder attention for this many blocks (of 4)",
    )
    parser.add_argument("--vision-heads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    if args.npy_dir:
        print(f"wrote {write_import_inputs(args.npy_dir, args.seq_len, args.layers, args.heads, args.seed)}")
        return
    distinct = min(args.layers, args.distinct_layers or args.layers)
    path = write_synthetic(
        args.output_dir,
        args.seq_len,
        args.layers,
        args.heads,
        distinct,
        args.seed,
        args.overwrite,
        args.vision_blocks,
        args.vision_heads,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
