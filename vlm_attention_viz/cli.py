"""Command line: `python -m vlm_attention_viz --image … --prompt … --output-dir …`, or `… demo`, `… batch`, `… import`, `… rollout`, `… view`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .errors import UserError
from .sample_format import FormatError
from .stopping import exit_code, stop_message, stop_on_signals

EPILOG = """\
Without a GPU, try the demo: python -m vlm_attention_viz demo [--output-dir output/demo]
It builds a tiny random-weight Qwen3-VL and runs this same pipeline on the CPU.
Attention computed elsewhere (.npy): python -m vlm_attention_viz import --help
A sample in the browser without npm: python -m vlm_attention_viz view SAMPLE_DIR
Many images and prompts, the model loaded once: python -m vlm_attention_viz batch --help
The rollout for a sample made without it: python -m vlm_attention_viz rollout SAMPLE_DIR

Size on disk: layers x (heads + 3) x tokens^2 x 2 bytes (heads, their mean and max, the rollout; e.g. Qwen3-VL-8B
at 2,040 tokens: 10.5 GB), plus 4 token tables of tokens x layers x heads x 2 bytes, plus with --vision-layers:
blocks x ((vision heads + 1) x patches^2 + patches) x 2 bytes. --store triangle halves the matrices;
--store text-rows keeps T x tokens per matrix for the T non-image tokens (README: Disk size).
"""


def add_no_rollout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-rollout",
        dest="rollout",
        action="store_false",
        help="do not write the attention rollout (layers x tokens^2 x 2 bytes); `rollout SAMPLE_DIR` adds it later",
    )


def add_storage_flags(parser: argparse.ArgumentParser) -> None:
    """What a sample keeps of the attention (SPEC.md §1, storage profiles); the token tables stay whole."""
    from .sample_format import DEFAULT_PROFILE, STORAGE_PROFILES

    parser.add_argument(
        "--store",
        default=DEFAULT_PROFILE,
        metavar="{" + ",".join(STORAGE_PROFILES) + "}",
        help="how the matrices are stored: full (N^2 values each), triangle (the causal half, N(N+1)/2, same values), "
        "text-rows (only the rows of non-image tokens, T x N; no rollout) (default: full)",
    )
    parser.add_argument(
        "--layers",
        metavar="SPEC",
        help="keep only these LLM layers: all, lastK (e.g. last4) or a comma list (e.g. 0,12,-1) (default: all)",
    )
    parser.add_argument(
        "--heads",
        metavar="SPEC",
        help="keep only these query heads in the layer files, e.g. 0,3,7 (default: all); the head mean and max are "
        "over all heads",
    )


def extract_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vlm_attention_viz",
        description="Capture the self-attention of every LLM layer and head of a vision-language model for one image + prompt, "
        "and write it as a sample folder for the viewer (format: SPEC.md).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--image",
        type=Path,
        required=True,
        action="append",
        help="the input image (any format Pillow reads; converted to RGB); repeat it for several images, which the "
        "user message holds in this order before the prompt",
    )
    parser.add_argument("--prompt", required=True, help="the text that follows the image in the user message")
    parser.add_argument(
        "--output-dir", type=Path, required=True, help="the sample folder to create, e.g. output/sample1"
    )
    add_model_flags(parser)
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing sample at --output-dir (never replaced without it)",
    )
    return parser


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """The model, device and capture options that one sample and a batch share."""
    from .extract import DEFAULT_MODEL, DTYPES
    from .models import ADAPTERS

    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"hub id or local checkpoint folder (default: {DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--adapter",
        type=Path,
        help="a PEFT adapter folder (e.g. LoRA, with adapter_config.json) applied unmerged on top of --model; "
        "the attention stored is the adapted model's",
    )
    parser.add_argument(
        "--model-type",
        help=f"model family: {', '.join(sorted(ADAPTERS))} (default: detected from the checkpoint's config.json)",
    )
    parser.add_argument(
        "--mode",
        default="prefill",
        metavar="{prefill,generate}",
        help="prefill = the attention over the prompt as the model reads it; generate = answer first (greedy, the "
        "model's normal attention), then the attention over prompt + answer (default: prefill)",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=256,
        help="generate mode: the most answer tokens to generate (default: 256); each adds to N, and size grows with N^2",
    )
    parser.add_argument(
        "--device",
        help='cpu, cuda, cuda:N, or auto = spread the layers over every GPU (device_map="auto"); '
        "default: cuda when available, else cpu",
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        metavar="{auto,float32,bfloat16,float16}",
        help=f"model weights: auto (float32 on cpu, bfloat16 on GPU), {', '.join(DTYPES)}; attention is always computed "
        "in float32 and stored as float16",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        help="resize the image to at most this many pixels, so about max_pixels / token_px^2 image tokens, token_px being "
        "the checkpoint's patch size x merge size (README: Supported models) (default: the checkpoint's processor setting)",
    )
    parser.add_argument(
        "--vision-layers",
        metavar="SPEC",
        help="also capture the vision encoder's self-attention over the image's patches (before the merge) for these "
        "blocks: all, lastK (e.g. last2), or a comma list of block indices (negative counts from the end, e.g. 0,-1); "
        "each block adds (vision heads + 1) x patches^2 x 2 bytes",
    )
    add_storage_flags(parser)
    add_no_rollout(parser)


def batch_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vlm_attention_viz batch",
        description="One sample per manifest line, the model loaded once. Resumable: a finished sample is skipped, "
        "a killed run's partial one made again. A bad line is listed with its reason and the others go on. Under "
        "`accelerate launch` the lines are split between the processes (README: Batch).",
    )
    parser.add_argument(
        "--manifest",
        type=Path,
        required=True,
        help='JSON Lines, one {"image": path, "prompt": text, "id": name} per line (optional "mode", '
        '"max_new_tokens"); image paths relative to the manifest\'s folder',
    )
    parser.add_argument(
        "--output-dir", type=Path, required=True, help="the folder that gets one sample folder per id, and index.json"
    )
    add_model_flags(parser)
    return parser


def demo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vlm_attention_viz demo",
        description="Build (once) a seeded tiny random-weight Qwen3-VL, draw an image, and extract a sample on the CPU, with both vision blocks (--vision-layers all).",
    )
    parser.add_argument(
        "--output-dir", type=Path, default=Path("output/demo"), help="the sample folder (default: output/demo)"
    )
    parser.add_argument(
        "--mode",
        default="prefill",
        metavar="{prefill,generate}",
        help="generate: the random model writes 24 tokens first",
    )
    return parser


def import_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vlm_attention_viz import",
        description="Convert a precomputed attention array into a sample for the viewer. The array is memory-mapped and "
        "converted a few rows at a time, so it may be larger than memory.",
        epilog="Where the image is: --image-span, or --model-type to find the family's image placeholder tokens "
        "(smolvlm and idefics3: its tiles, from their labels). "
        "Its grid: --grid, or the rows x cols = span length nearest the image's aspect ratio. Rules: SPEC.md §2, Import.",
    )
    parser.add_argument(
        "--attention",
        type=Path,
        required=True,
        help=".npy of shape [layers, heads, N, N] (float16, float32 or float64), causal",
    )
    parser.add_argument(
        "--tokens",
        type=Path,
        required=True,
        help=".npy of N token strings, e.g. np.save(path, np.array(texts, dtype=str))",
    )
    parser.add_argument("--image", type=Path, required=True, help="the image the model saw")
    parser.add_argument(
        "--output-dir", type=Path, required=True, help="the sample folder to create, e.g. output/imported1"
    )
    parser.add_argument(
        "--image-span",
        type=int,
        nargs=2,
        metavar=("START", "END"),
        help="indices of the first and last image token (inclusive)",
    )
    parser.add_argument(
        "--grid",
        metavar="ROWSxCOLS",
        help="the image tokens' grid, row-major, e.g. 24x32 = 24 rows of 32 (default: inferred)",
    )
    parser.add_argument(
        "--model-type",
        help="model family (a --model-type of the extractor) whose image placeholder marks the span; recorded in meta.json",
    )
    parser.add_argument(
        "--model",
        default="imported",
        help="a label for the model, recorded in meta.json and index.json (default: imported)",
    )
    parser.add_argument("--prompt", help="the prompt to record (default: the text tokens joined)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing sample at --output-dir")
    parser.add_argument(
        "--device", help="where the token tables and the rollout are computed (default: cuda when available, else cpu)"
    )
    add_storage_flags(parser)
    add_no_rollout(parser)
    return parser


def rollout_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vlm_attention_viz rollout",
        description="Add the attention rollout (SPEC.md §1) to an existing sample, computed from its head-mean files. "
        "Only new files are added (rollout_layer_XX.bin, then rollout.json); every other file stays as it is.",
    )
    parser.add_argument("sample_dir", type=Path, metavar="SAMPLE_DIR", help="the sample folder")
    parser.add_argument("--device", help="where the matmuls run (default: cuda when available, else cpu)")
    return parser


def view_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vlm_attention_viz view",
        description="Serve the viewer that ships with the package, and the sample's folder, on 127.0.0.1 (no npm "
        "needed), and print the URL to open. Ctrl-C stops.",
    )
    parser.add_argument("sample_dir", type=Path, metavar="SAMPLE_DIR", help="the sample folder")
    parser.add_argument("--port", type=int, default=0, help="the port (default: any free one)")
    parser.add_argument("--viewer-dir", type=Path, help="another build of the viewer (npm run build's web/dist)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        with stop_on_signals():
            result = run_command(argv)
    except (UserError, FormatError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a disk or permission problem outside our own checks
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as stop:
        print(stop_message(stop), file=sys.stderr)
        return exit_code(stop)
    summary = result.summary()
    if summary:  # a batch's other processes leave the summary to the main one
        print(summary)
    return getattr(result, "exit_code", 0)


def run_command(argv: list[str]) -> Any:
    """Each subcommand imports only what it needs: `import` and `rollout` check their inputs before torch loads."""
    if argv[:1] == ["demo"]:
        from .dev.demo import run_demo

        args = demo_parser().parse_args(argv[1:])
        quiet_transformers()
        return run_demo(args.output_dir, args.mode)
    if argv[:1] == ["batch"]:
        from .batch import run_batch
        from .extract import Request

        args = vars(batch_parser().parse_args(argv[1:]))
        quiet_transformers()
        manifest, output_dir = args.pop("manifest"), args.pop("output_dir")
        return run_batch(manifest, output_dir, Request(image=Path(), prompt="", output_dir=output_dir, **args))
    if argv[:1] == ["import"]:
        from .importer import ImportRequest, import_sample

        args = import_parser().parse_args(argv[1:])
        return import_sample(ImportRequest(**vars(args)))
    if argv[:1] == ["view"]:
        from .notebook import serve_forever

        args = view_parser().parse_args(argv[1:])
        return serve_forever(args.sample_dir, args.port, args.viewer_dir)
    if argv[:1] == ["rollout"]:
        from .add_rollout import add_rollout

        args = rollout_parser().parse_args(argv[1:])
        return add_rollout(args.sample_dir, args.device)
    from .extract import Request, extract

    args = extract_parser().parse_args(argv)
    quiet_transformers()
    return extract(Request(**vars(args)))


def quiet_transformers() -> None:
    """Our own progress bar and summary say what happens; transformers' loading bars and notices would bury them."""
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    hub_logging.set_verbosity_error()  # its retry notices would bury the one-line error when the hub is unreachable
