"""GPU scale benchmark (a script, not a test): a random-weight Qwen3-VL-8B, built from its config on the GPU.

No download: the shapes are Qwen3-VL-8B's (36 layers, 32 heads, 8 KV heads, head_dim 128, hidden 4,096; a
27-block vision tower), the weights random, the processor the tiny checkpoint's with Qwen3-VL's real
geometry (16 px patches, 2 x 2 merge, so 32 x 32 px per token). For each N it measures
  - the extraction's wall time (vav.capture, the CLI's own path) against writing the same bytes to the same disk;
  - the peak GPU memory above the weights, against what output_attentions keeps (its arithmetic, L x H x N^2 x 2
    bytes in bfloat16, and a real eager run where that fits);
  - both again with --store text-rows.
A full sample at N = 8,192 is 169 GB; when the disk cannot hold a sample, the model is cut to the layers it can
hold, and the figures say so (time and bytes scale with the layers; the peak does not).

    .venv/bin/python benchmarks/gpu_scale.py [--tokens 2040,8192] [--workdir bench-output/gpu]   # under 8 min on an H100/H200
    .venv/bin/python benchmarks/gpu_scale.py --shape tiny --device cpu --tokens 300             # a smoke run anywhere
"""

from __future__ import annotations

import argparse
import math
import shutil
import time
from pathlib import Path

import torch
from extract_memory import write_same_bytes
from PIL import Image
from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

import vlm_attention_viz as vav
from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.dev.tiny import SPECIAL_TOKENS, TinyShape, write_processor_files
from vlm_attention_viz.safe_write import folder_bytes

PIXELS_PER_TOKEN = 32 * 32
SHAPES = {  # text tower, vision tower
    "8b": (
        {"hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36, "num_attention_heads": 32,
         "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936},
        {"depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "num_heads": 16,
         "num_position_embeddings": 2304, "deepstack_visual_indexes": [8, 16, 24]},
    ),
    "tiny": (
        {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
         "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 1024},
        {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
         "num_position_embeddings": 256, "deepstack_visual_indexes": [0]},
    ),
}  # fmt: skip


def build_config(shape: str, layers: int, ids: dict[str, int]) -> Qwen3VLConfig:
    text, vision = SHAPES[shape]
    mrope = [24, 20, 20] if text["head_dim"] == 128 else [2, 3, 3]  # half of head_dim rotates, in 3 sections
    return Qwen3VLConfig(
        text_config={
            **text,
            "num_hidden_layers": layers,
            "max_position_embeddings": 262144,
            "rope_parameters": {"rope_type": "default", "rope_theta": 5e6, "mrope_section": mrope, "mrope_interleaved": True},
            "eos_token_id": ids["<|im_end|>"],
        },
        vision_config={**vision, "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2,
                       "out_hidden_size": text["hidden_size"]},
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )  # fmt: skip


def random_model(shape: str, layers: int, ids: dict[str, int], device: str) -> Qwen3VLForConditionalGeneration:
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    with torch.device(device):
        model = Qwen3VLForConditionalGeneration._from_config(build_config(shape, layers, ids), dtype=dtype)
    return model.eval()


def photo(tokens: int) -> Image.Image:
    """A 16:9 picture that Qwen3-VL turns into about `tokens` image tokens."""
    cols = round(math.sqrt(tokens * 16 / 9))
    rows = max(1, round(tokens / cols))
    size = (cols * 32, rows * 32)
    return Image.effect_mandelbrot(size, (-2.0, -1.2, 1.0, 1.2), 60).convert("RGB")


def layers_that_fit(folder: Path, layers: int, heads: int, n: int, store: str) -> int:
    """The most layers whose sample the disk holds under the storage profile, with 10% to spare."""
    free = shutil.disk_usage(folder).free * 0.9
    sized = [fmt.stored_bytes(fmt.Storage.everything(count, heads, store), n, TEXT_TOKENS) for count in (1, 2)]
    return max(1, min(layers, int(free // (sized[1] - sized[0]))))


TEXT_TOKENS = 30  # about the prompt's tokens around the image


def measure(args: argparse.Namespace, processor: object, ids: dict[str, int], tokens: int, store: str) -> None:
    text, _ = SHAPES[args.shape]
    heads = text["num_attention_heads"]
    layers = layers_that_fit(args.workdir, text["num_hidden_layers"], heads, tokens + TEXT_TOKENS, store)
    model = random_model(args.shape, layers, ids, args.device)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        weights = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    image, out = photo(tokens), args.workdir / f"sample-{tokens}"
    started = time.perf_counter()
    sample = vav.capture(model, processor, image, "Describe this image in detail.", out, overwrite=True,
                         max_pixels=image.width * image.height, progress=False, store=store)  # fmt: skip
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() - weights if cuda else float("nan")
    n, size = sample.seq_len, folder_bytes(out)
    shutil.rmtree(out)
    disk = write_same_bytes(args.workdir, size, sync=True)
    kept = layers * heads * n * n * 2  # bfloat16 probabilities of every layer, held until the forward ends
    cut = "" if layers == text["num_hidden_layers"] else f" (cut from {text['num_hidden_layers']} to fit the disk)"
    print(f"N = {n}, --store {store}: {layers} layers{cut} x {heads} heads, sample {fmt.format_bytes(size)}")
    print(f"  extraction {seconds:.1f} s; writing the same bytes with fsync {disk:.1f} s")
    print(f"  peak GPU memory above the weights {fmt.format_bytes(peak) if cuda else 'n/a (cpu)'}; "
          f"output_attentions keeps {fmt.format_bytes(kept)} (L x H x N^2 x 2)")  # fmt: skip
    if cuda and args.eager and store == fmt.DEFAULT_PROFILE and kept < 0.5 * torch.cuda.mem_get_info()[0]:
        print(
            f"  eager output_attentions measured: {fmt.format_bytes(eager_peak(model, processor, image))} above the weights"
        )
    del model
    if cuda:
        torch.cuda.empty_cache()


def eager_peak(model: Qwen3VLForConditionalGeneration, processor: object, image: Image.Image) -> int:
    """Peak GPU memory above the weights of one eager forward pass with output_attentions=True."""
    from vlm_attention_viz.models import adapter_named

    adapter = adapter_named("qwen3-vl")
    prepared = adapter.prepare(processor, image, "Describe this image in detail.", image.width * image.height)
    model.set_attn_implementation("eager")
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        model(**prepared.on(model.device).model_inputs, output_attentions=True, logits_to_keep=1)
    torch.cuda.synchronize()
    model.set_attn_implementation("sdpa")
    return torch.cuda.max_memory_allocated() - base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=SHAPES, default="8b")
    parser.add_argument("--tokens", default="2040,8192", help="image tokens per run, comma-separated")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--workdir", type=Path, default=Path("bench-output/gpu"))
    parser.add_argument("--store", default="full,text-rows", help="storage profiles to measure, comma-separated")
    parser.add_argument("--no-eager", dest="eager", action="store_false", help="skip the measured eager run")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    tokenizer = write_processor_files(args.workdir / "processor", TinyShape(family="qwen3-vl"))
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in SPECIAL_TOKENS}
    build_config(args.shape, SHAPES[args.shape][0]["num_hidden_layers"], ids).save_pretrained(
        args.workdir / "processor"
    )
    processor = vav.load_processor(str(args.workdir / "processor"))  # a checkpoint folder without weights
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"device: {name}; shape {args.shape}; torch {torch.__version__}")
    for tokens in map(int, args.tokens.split(",")):
        for store in args.store.split(","):
            measure(args, processor, ids, tokens, store)


if __name__ == "__main__":
    main()
