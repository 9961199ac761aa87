"""Import benchmark (a script, not a test): memory and speed of `python -m vlm_attention_viz import`.

Writes a causal float32 attention array [layers, heads, N, N] (one head at a time, so the
generator stays small), its token strings and an image into --workdir, then imports it
in this process. Reports the resident set's peak above its value before the import
(sampled every 2 ms), split into anonymous memory (the process's own buffers) and
file-backed pages (the memory-mapped input, which the kernel can drop at any time),
and the input read rate. Inputs and sample are removed at the end.

    .venv/bin/python benchmarks/import_memory.py [--layers 4 --heads 8 --seq-len 6144]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
from extract_memory import PeakRss
from PIL import Image

from vlm_attention_viz.extract import format_bytes
from vlm_attention_viz.importer import ImportRequest, import_sample


class PeakAnon(PeakRss):
    """The same sampler, counting resident memory that is not file-backed (rss - shared)."""

    def _sample(self) -> None:
        while not self._stop.is_set():
            info = self.process.memory_info()
            self.peak = max(self.peak, info.rss - info.shared)
            time.sleep(0.002)

    def __enter__(self) -> PeakAnon:
        super().__enter__()
        info = self.process.memory_info()
        self.baseline = self.peak = info.rss - info.shared
        return self


def write_inputs(folder: Path, layers: int, heads: int, n: int) -> tuple[int, int]:
    """Qwen-style tokens around a square image span; row i spreads its mass over tokens 0..i."""
    side = int((n * 0.8) ** 0.5)
    span = (4, 4 + side * side - 1)
    texts = ["<|im_start|>", "user", "\n", "<|vision_start|>"] + ["<|image_pad|>"] * (side * side)
    texts += [" word"] * (n - len(texts))
    np.save(folder / "tokens.npy", np.array(texts, dtype=str))
    Image.new("RGB", (side * 32, side * 32), (90, 140, 60)).save(folder / "image.png")
    array = np.lib.format.open_memmap(
        folder / "attention.npy", mode="w+", dtype=np.float32, shape=(layers, heads, n, n)
    )
    causal = np.tril(np.ones((n, n), dtype=np.float32)) / np.arange(1, n + 1, dtype=np.float32)[:, None]
    for layer in range(layers):
        for head in range(heads):
            array[layer, head] = causal
    array.flush()
    return span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=6144)
    parser.add_argument("--workdir", type=Path, default=Path("bench-output/import"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    write_inputs(args.workdir, args.layers, args.heads, args.seq_len)
    shutil.rmtree(args.workdir / "sample", ignore_errors=True)
    request = ImportRequest(
        args.workdir / "attention.npy",
        args.workdir / "tokens.npy",
        args.workdir / "image.png",
        args.workdir / "sample",
        model_type="qwen3-vl",
    )
    with PeakRss() as rss, PeakAnon() as anon:
        started = time.perf_counter()
        result = import_sample(request)
        seconds = time.perf_counter() - started
    size = (args.workdir / "attention.npy").stat().st_size
    print(
        f"input {format_bytes(size)} float32 [{args.layers}, {args.heads}, {args.seq_len}, {args.seq_len}] -> sample {format_bytes(result.bytes)}"
    )
    print(f"import: {seconds:.1f} s, {size / seconds / 1e6:.0f} MB/s of input")
    print(
        f"peak above start: resident {format_bytes(rss.above_baseline)}, of which anonymous {format_bytes(anon.above_baseline)}"
    )
    shutil.rmtree(args.workdir / "sample")
    for name in ("attention.npy", "tokens.npy", "image.png"):
        (args.workdir / name).unlink()


if __name__ == "__main__":
    main()
