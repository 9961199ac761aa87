"""Extraction benchmark (a script, not a test): memory and time of streaming capture on the CPU.

A tiny random Qwen3-VL (or the --family given) with many layers reads an image of N >= 1,500 tokens. Each
measurement runs in its own process so that peaks do not mix:
  - streaming: the extractor's capture pass, writing a real sample (layers, token tables), then its rollout;
  - output_attentions: the same model on eager attention with output_attentions=True;
  - plain: the same forward pass with no attention kept (the floor).
Peak memory is the resident set's highest value during the pass minus its value just
before it (model and inputs already loaded), sampled every 2 ms. Time: the capture pass
against writing the same number of bytes to the same disk.

    .venv/bin/python benchmarks/extract_memory.py [--family qwen3-vl] [--layers 24] [--heads 4] [--max-pixels 1600000] [--vision-layers all]

With --vision-layers, the streaming run also captures those vision blocks (P = 4 x the image tokens).
--family picks the tiny model's family (a --model-type value), e.g. qwen2.5-vl for its windowed vision blocks, or
qwen3.5 for its Gated DeltaNet layers (three of every four), whose implicit attention streams like the softmax rows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import torch
from PIL import Image

from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.analysis import TokenLayout, write_rollout
from vlm_attention_viz.dev.tiny import TinyShape, build_tiny_checkpoint
from vlm_attention_viz.extract import capture_to
from vlm_attention_viz.models import adapter_named
from vlm_attention_viz.tokens import build_tokens
from vlm_attention_viz.vision_capture import plan_vision

PROMPT = "Describe this image in detail."


class PeakRss:
    """Highest resident set size seen while the block runs, sampled by a thread."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakRss:
        self.baseline = self.process.memory_info().rss
        self.peak = self.baseline
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.002)

    @property
    def above_baseline(self) -> int:
        return self.peak - self.baseline


def child(
    kind: str, family: str, model_dir: str, image: str, max_pixels: int, out: str, vision_layers: str | None
) -> dict:
    torch.set_grad_enabled(False)
    adapter = adapter_named(family)
    processor = adapter.load_processor(model_dir)
    prepared = adapter.prepare(processor, Image.open(image).convert("RGB"), PROMPT, max_pixels)
    attn = "eager" if kind == "output_attentions" else "sdpa"
    model = adapter.model_class.from_pretrained(model_dir, attn_implementation=attn).eval()
    config = adapter.language_config(model)
    layers, heads = config.num_hidden_layers, config.num_attention_heads
    layer_heads = fmt.layer_heads(layers, heads, adapter.layer_attention(model))
    vision = (
        plan_vision(vision_layers, adapter, model, processor, prepared)
        if vision_layers and kind == "streaming"
        else None
    )
    ids = prepared.input_ids[0].tolist()
    tokens = build_tokens(processor.tokenizer, ids, prepared.image_token_id, prepared.grid_cols)
    image_layout = prepared.image_layout()
    image_layout.place(tokens)
    rollout_seconds = 0.0
    started = time.perf_counter()
    with PeakRss() as rss:
        if kind == "streaming":
            with fmt.SampleWriter(Path(out), overwrite=True) as writer:
                store = fmt.ProfileWriter(
                    writer, fmt.Storage.everything(layers, heads), fmt.profile_rows(tokens, fmt.DEFAULT_PROFILE)
                )
                _, tables = capture_to(
                    store,
                    model,
                    adapter,
                    prepared,
                    image_layout,
                    layer_heads,
                    False,
                    TokenLayout.of(tokens, image_layout.region_entries()),
                    vision,
                )
                tables.write(writer)
                rollout_started = time.perf_counter()
                if fmt.all_softmax(adapter.layer_attention(model)):
                    meta = {"seq_len": len(tokens), "num_layers": layers, **fmt.file_fields(layers)}
                    write_rollout(writer.tmp, meta, "cpu")
                rollout_seconds = time.perf_counter() - rollout_started
        elif kind == "output_attentions":
            kept = model(**prepared.model_inputs, output_attentions=True, logits_to_keep=1).attentions
            del kept
        else:
            model(**prepared.model_inputs, use_cache=False, logits_to_keep=1)
    seconds = time.perf_counter() - started
    vision_fields = (
        {
            "vision_bytes": vision.bytes,
            "patches": vision.patches,
            "vision_blocks": len(vision.blocks),
            "vision_heads": vision.heads,
        }
        if vision
        else {}
    )
    return {
        "kind": kind,
        "peak_above_model": rss.above_baseline,
        "seconds": seconds - rollout_seconds,
        "rollout_seconds": rollout_seconds,
        "seq_len": prepared.input_ids.shape[1],
        "layers": layers,
        "heads": heads,
        "layer_heads": layer_heads,
        **vision_fields,
    }


def write_same_bytes(folder: Path, size: int, sync: bool) -> float:
    """Seconds to write `size` bytes in 4 MiB blocks; with sync, until they are on the device."""
    block = os.urandom(4 * 2**20)
    path = folder / "write_baseline.bin"
    started = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
        f.write(block[: size % len(block)])
        if sync:
            os.fsync(f.fileno())
    seconds = time.perf_counter() - started
    path.unlink()
    return seconds


def run_child(
    kind: str, family: str, model_dir: Path, image: Path, max_pixels: int, out: Path, vision_layers: str | None
) -> dict:
    args = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--family",
        family,
        "--model-dir",
        str(model_dir),
        "--image",
        str(image),
        "--max-pixels",
        str(max_pixels),
        "--out",
        str(out),
    ]
    args += ["--vision-layers", vision_layers] if vision_layers else []
    return json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="qwen3-vl", help="the tiny model's family, a --model-type value")
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--heads", type=int, default=4, help="query heads (Qwen3.5's linear layers get twice as many)")
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=1_600_000,
        help="image pixels; tokens ~ max_pixels / 1024 (Qwen3-VL) or / 784 (Qwen2-VL, Qwen2.5-VL)",
    )
    parser.add_argument("--workdir", type=Path, default=Path("bench-output"))
    parser.add_argument("--vision-layers", help="also capture these vision blocks in the streaming run (e.g. all)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(
            json.dumps(
                child(
                    args.child, args.family, args.model_dir, args.image, args.max_pixels, args.out, args.vision_layers
                )
            )
        )
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    model_dir = build_tiny_checkpoint(
        args.workdir / f"tiny-{args.family}-{args.layers}-layers-{args.heads}-heads",
        TinyShape(family=args.family, layers=args.layers, heads=args.heads, kv_heads=2, hidden=16 * args.heads),
    )
    image = args.workdir / "bench.png"
    Image.effect_mandelbrot((1600, 1200), (-2.0, -1.2, 1.0, 1.2), 60).convert("RGB").save(image)
    sample = args.workdir / "bench-sample"
    results = {
        kind: run_child(kind, args.family, model_dir, image, args.max_pixels, sample, args.vision_layers)
        for kind in ("plain", "streaming", "output_attentions")
    }
    stream = results["streaming"]
    n, layer_heads = stream["seq_len"], stream["layer_heads"]
    size = sum(h + 2 for h in layer_heads) * n * n * fmt.BYTES_PER_VALUE + stream.get("vision_bytes", 0)  # no rollout
    cached, synced = write_same_bytes(args.workdir, size, sync=False), write_same_bytes(args.workdir, size, sync=True)
    print(
        f"model: tiny {args.family}, {stream['layers']} layers, heads per layer {sorted(set(layer_heads))}; N = {n} tokens"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}"
    )
    for kind, result in results.items():
        print(
            f"{kind:>18}: peak RSS above model {fmt.format_bytes(result['peak_above_model'])}, {result['seconds']:.1f} s"
        )
    print(f"one layer of attention (H x N^2 x 2 bytes): {fmt.format_bytes(max(layer_heads) * n**2 * 2)}")
    float32_layer = max(layer_heads) * n**2 * 4
    print(
        f"one layer's float32 matrix (H x N^2 x 4 bytes, H = {max(layer_heads)}): {fmt.format_bytes(float32_layer)}; "
        f"streaming peak / that = {stream['peak_above_model'] / float32_layer:.2f}"
    )
    if "patches" in stream:
        block = stream["vision_heads"] * stream["patches"] ** 2 * 2
        print(
            f"vision: {stream['vision_blocks']} blocks x {stream['vision_heads']} heads, P = {stream['patches']} patches; one block (Hv x P^2 x 2 bytes): {fmt.format_bytes(block)}"
        )
    print(
        f"sample bytes: {fmt.format_bytes(size)}; writing them alone: {cached:.1f} s (page cache), {synced:.1f} s (fsync)"
    )
    print(
        f"streaming capture pass (forward + attention + token tables + writes): {stream['seconds']:.1f} s; the same forward without capture: {results['plain']['seconds']:.1f} s"
    )
    print(
        f"rollout after the capture (L x N^2 x 2 bytes, float32 matmuls on the CPU): {stream['rollout_seconds']:.1f} s"
    )


if __name__ == "__main__":
    main()
