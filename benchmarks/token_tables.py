"""Token-table and rollout benchmark (a script, not a test): the time of one capture chunk's measures and of
one rollout layer, at the sizes the extractor meets.

A chunk is what the recorder hands on at a given N and H (rows_per_chunk under DEFAULT_ROW_BUDGET):
synthetic causal rows whose image part has the speckle of real maps (noise plus a few bright regions), so
the components are many and irregular. The spatial entropy's label propagation runs until no label changes;
the script prints how many steps that took.

    .venv/bin/python benchmarks/token_tables.py [--seq-len 8192] [--heads 32] [--grid 64x112] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vlm_attention_viz.analysis import TokenLayout, rollout_layer_rows, token_measures
from vlm_attention_viz.attention_capture import DEFAULT_ROW_BUDGET, rows_per_chunk


def chunk_rows(heads: int, rows: int, n: int, layout: TokenLayout, seed: int = 0) -> torch.Tensor:
    """(H, rows, N) float16 softmax rows with bright image regions, queries from the end of the sequence."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn((heads, rows, n), generator=generator)
    grid = torch.zeros((heads * rows, 1, layout.grid_rows, layout.grid_cols))
    grid[:, :, :: layout.grid_rows // 4 or 1, :: layout.grid_cols // 4 or 1] = 6.0
    blobs = F.max_pool2d(grid, 5, stride=1, padding=2).view(heads, rows, -1)
    logits[:, :, layout.entropy_region] += blobs
    return torch.softmax(logits, dim=-1).half()


def time_measures(chunk: torch.Tensor, row0: int, layout: TokenLayout, device: str) -> float:
    """Seconds of token_measures on one chunk taken as rows row0.., after a warm-up."""
    token_measures(chunk, row0, layout)
    started = time.perf_counter()
    token_measures(chunk, row0, layout)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq-len", type=int, default=8192)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--layers", type=int, default=36, help="for the per-sample estimate")
    parser.add_argument("--grid", default="64x112", help="image tokens ROWSxCOLS (default: 7,168 of the 8,192)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rollout-seq-len", type=int, default=2048, help="N of the one rollout layer timed")
    args = parser.parse_args()
    grid_rows, grid_cols = map(int, args.grid.split("x"))
    n, heads = args.seq_len, args.heads
    image = slice(16, 16 + grid_rows * grid_cols)
    layout = TokenLayout(image, image, grid_rows, grid_cols, np.arange(n) < 4)
    rows = rows_per_chunk(heads, n, DEFAULT_ROW_BUDGET)
    chunk = chunk_rows(heads, rows, n, layout).to(args.device)
    after_image = time_measures(chunk, n - rows, layout, args.device)  # rows that see the whole image
    within_image = time_measures(chunk, 0, layout, args.device)  # rows up to the image's end: no spatial entropy
    per_layer_after = -(-(n - layout.entropy_end) // rows)
    per_layer_within = -(-layout.entropy_end // rows)
    total = args.layers * (per_layer_after * after_image + per_layer_within * within_image)
    print(f"machine: torch threads {torch.get_num_threads()}, device {args.device}")
    print(f"chunk: {heads} heads x {rows} rows x N = {n}, image grid {grid_rows}x{grid_cols} ({heads * rows} maps)")
    print(
        f"token measures of one chunk after the image: {after_image * 1000:.0f} ms, within it: {within_image * 1000:.0f} ms"
    )
    print(
        f"estimate for {args.layers} layers ({per_layer_after} + {per_layer_within} chunks each): {total:.0f} s on {args.device}"
    )

    m = args.rollout_seq_len
    mean = torch.softmax(torch.randn((m, m)).masked_fill(torch.ones(m, m).triu(1).bool(), -torch.inf), dim=-1)
    previous = torch.eye(m, device=args.device)
    current = torch.empty((m, m), device=args.device)
    with tempfile.TemporaryDirectory() as folder:
        mean_file = Path(folder) / "mean.bin"
        mean.half().numpy().tofile(mean_file)
        started = time.perf_counter()
        for _ in rollout_layer_rows(mean_file, previous, current):
            pass
    print(f"one rollout layer at N = {m}: {time.perf_counter() - started:.2f} s on {args.device}")


if __name__ == "__main__":
    main()
