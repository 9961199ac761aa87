"""Model-agnostic extraction: check inputs, load, (generate,) capture every layer, write the sample.

Cheap checks (image, prompt, output folder) come before the model is loaded, and the
size estimate before anything is written. The sample appears only when complete.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from . import sample_format as fmt
from .capture import AttentionRecorder, AttentionRows, Recorder, capturing_sub_models
from .errors import UserError
from .generate import answer_fields, generate_answer
from .images import copy_image, load_image
from .models import ModelAdapter, PreparedInputs, adapter_for
from .peft_adapter import adapter_meta, apply_adapter, read_adapter_config
from .tokens import build_tokens
from .vision_capture import VisionPlan, VisionRecorder, VisionRows, check_vision_layers, plan_vision
from .writer import BackgroundWriter

DEFAULT_MODEL = "Qwen/Qwen3-VL-2B-Thinking"
MODES = ("prefill", "generate")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


@dataclass
class Request:
    image: Path
    prompt: str
    output_dir: Path
    model: str = DEFAULT_MODEL
    adapter: Path | None = None  # a PEFT adapter folder applied on top of `model`
    model_type: str | None = None
    mode: str = "prefill"
    device: str | None = None  # None: cuda when present, else cpu; "auto": spread over every GPU
    dtype: str = "auto"
    max_pixels: int | None = None
    max_new_tokens: int = 256
    vision_layers: str | None = None  # also capture these vision blocks: "all", "lastK" or "i,j,..."
    overwrite: bool = False
    progress: bool = True


@dataclass
class Result:
    path: Path
    seq_len: int
    grid: tuple[int, int]
    bytes: int
    seconds: float

    def summary(self) -> str:
        rows, cols = self.grid
        return f"wrote {self.path}: {self.seq_len} tokens, image grid {cols}x{rows} (cols x rows), {format_bytes(self.bytes)} in {self.seconds:.1f} s"


def extract(request: Request) -> Result:
    started = time.perf_counter()
    image, image_format = check_inputs(request)
    peft_fields = {"adapter": adapter_meta(request.adapter, read_adapter_config(request.adapter))} if request.adapter else {}
    adapter = adapter_for(request.model, request.model_type)
    device = resolve_device(request.device)
    dtype = resolve_dtype(request.dtype, device)
    model, processor = load(adapter, request.model, device, dtype, request.adapter)
    try:
        prepared = adapter.prepare(processor, image, request.prompt, request.max_pixels)
    except ValueError as err:  # the processor's own refusals, e.g. an aspect ratio above 200
        raise UserError(f"the processor cannot take this image: {first_line(err)}") from None
    prompt_len = prepared.input_ids.shape[1]
    if request.mode == "generate":
        generate_answer(model, prepared, request.max_new_tokens)
    language = adapter.language_config(model)
    layers, heads = language.num_hidden_layers, language.num_attention_heads
    seq_len = prepared.input_ids.shape[1]
    vision = plan_vision(request.vision_layers, adapter, model, processor, prepared) if request.vision_layers else None
    size = fmt.sample_bytes(layers, heads, seq_len) + (vision.bytes if vision else 0)
    check_disk_room(request.output_dir, size, size_formula(layers, heads, seq_len, vision))

    with fmt.SampleWriter(request.output_dir, overwrite=request.overwrite) as writer:
        text_to_image = capture_to(writer, model, adapter, prepared, layers, heads, request.progress, vision)
        meta = {
            "format_version": fmt.FORMAT_VERSION,
            **model_fields(request, adapter, language),
            **peft_fields,
            "image_path": copy_image(writer, request.image, image, image_format),
            "image_size": list(prepared.image_size),
            "original_image_size": list(image.size),
            **sequence_fields(request, processor.tokenizer, prepared, prompt_len),
            **file_fields(layers),
            "text_to_image": [[round(float(v), 6) for v in row] for row in text_to_image],
        }
        if vision:
            meta["vision"] = vision.meta()
        seconds = time.perf_counter() - started
        meta["extraction"] = {"device": device, "dtype": str(dtype).removeprefix("torch."), "seconds": round(seconds, 3), "bytes": size}
        path = writer.commit(meta)
    return Result(path, seq_len, (prepared.grid_rows, prepared.grid_cols), size, seconds)


def model_fields(request: Request, adapter: ModelAdapter, language: Any) -> dict[str, Any]:
    return {
        "model": request.model,
        "model_type": adapter.name,
        "mode": request.mode,
        "prompt": request.prompt,
        "num_layers": language.num_hidden_layers,
        "num_heads": language.num_attention_heads,
        "num_kv_heads": language.num_key_value_heads,
        "dtype": "float16",
    }


def sequence_fields(request: Request, tokenizer: Any, prepared: PreparedInputs, prompt_len: int) -> dict[str, Any]:
    """seq_len, tokens[] and image_grid; in generate mode also the answer fields."""
    tokens = build_tokens(tokenizer, prepared.input_ids[0].tolist(), prepared.image_token_id, prepared.grid_cols)
    fields = {"seq_len": len(tokens), "tokens": tokens, "image_grid": image_grid(prepared)}
    if request.mode == "generate":
        fields.update(answer_fields(tokens, prompt_len, request.max_new_tokens))
    return fields


def file_fields(layers: int) -> dict[str, list[str]]:
    return {
        "layer_files": [fmt.layer_file(i) for i in range(layers)],
        "head_mean_files": [fmt.head_mean_file(i) for i in range(layers)],
        "head_max_files": [fmt.head_max_file(i) for i in range(layers)],
    }


def check_inputs(request: Request) -> tuple[Image.Image, str]:
    """Everything that needs no model, so a typo costs no model load."""
    if not request.prompt.strip():
        raise UserError("the prompt is empty; pass --prompt with some text")
    if request.mode not in MODES:
        raise UserError(f"unknown --mode {request.mode!r}; supported: {', '.join(MODES)}")
    if request.mode == "generate" and request.max_new_tokens < 1:
        raise UserError("--max-new-tokens must be at least 1")
    if request.max_pixels is not None and request.max_pixels < 1:
        raise UserError("--max-pixels must be a positive number of pixels")
    if request.vision_layers is not None:
        check_vision_layers(request.vision_layers)
    fmt.check_target(request.output_dir, request.overwrite)
    return load_image(request.image)


def resolve_device(device: str | None) -> str:
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA GPU is visible to torch")
    return device


def resolve_dtype(name: str, device: str) -> torch.dtype:
    if name == "auto":
        return torch.float32 if device == "cpu" else torch.bfloat16
    if name not in DTYPES:
        raise UserError(f"unknown --dtype {name!r}; choose auto, {', '.join(DTYPES)}")
    return DTYPES[name]


def load(adapter: ModelAdapter, source: str, device: str, dtype: torch.dtype, peft_folder: Path | None) -> tuple[Any, Any]:
    """The model (wrapped with the PEFT adapter when one is given) and its processor."""
    if Path(source).is_dir() and not any(any(Path(source).glob(p)) for p in WEIGHT_PATTERNS):
        raise UserError(f"{source} holds no weights (*.safetensors); is the download complete?")
    try:
        model, processor = adapter.load_model(source, device, dtype), adapter.load_processor(source)
    except OSError as err:
        raise UserError(f"cannot load {source}: {first_line(err)} (not downloaded, and the hub unreachable or offline? pass a local folder with --model)") from None
    return (apply_adapter(model, peft_folder, source) if peft_folder is not None else model), processor


def size_formula(layers: int, heads: int, seq_len: int, vision: VisionPlan | None) -> str:
    formula = f"{layers} layers x {heads + 2} matrices x {seq_len}^2 x 2 bytes"
    if vision:
        formula += f" + {len(vision.blocks)} vision blocks x ({vision.heads + 1} x {vision.patches}^2 + {vision.patches}) x 2 bytes"
    return formula


def check_disk_room(target: Path, size: int, formula: str, hint: str = "lower --max-pixels or free some space") -> None:
    existing = next(p for p in [Path(target), *Path(target).absolute().parents] if p.exists())
    free = shutil.disk_usage(existing).free
    if free < size:
        raise UserError(
            f"the sample needs about {format_bytes(size)} ({formula}) "
            f"but only {format_bytes(free)} is free at {existing}; {hint}"
        )


def capture_to(
    writer: fmt.SampleWriter, model: Any, adapter: ModelAdapter, prepared: PreparedInputs, layers: int, heads: int, progress: bool, vision: VisionPlan | None = None
) -> Any:
    """One forward pass over the whole sequence; each layer's (and vision block's) rows stream to disk as they are computed."""
    seq_len = prepared.input_ids.shape[1]
    layer_bytes = (heads + 2) * seq_len * seq_len * fmt.BYTES_PER_VALUE
    background: BackgroundWriter[AttentionRows | VisionRows] = BackgroundWriter(lambda rows: write_rows(writer, rows), layer_bytes)
    bar = tqdm(total=layers + (len(vision.blocks) if vision else 0), unit="layer", desc="capturing", disable=not progress)
    recorder = AttentionRecorder(background.put, layers, heads, image_span(prepared), on_layer_done=lambda _: bar.update())
    recorders: dict[str, Recorder] = {adapter.language_config_key: recorder}
    vision_recorder = None
    if vision:
        vision_recorder = VisionRecorder(background.put, vision.modules, vision.blocks, vision.geometry.block_calls, on_block_done=lambda _: bar.update())
        recorders[adapter.vision_config_key] = vision_recorder
    inputs = prepared.on(model.device)
    try:
        with capturing_sub_models(model, recorders), torch.inference_mode():
            model(**inputs, use_cache=False, logits_to_keep=1)  # logits are not needed: skip the (N, vocab) head
        background.finish()
    except BaseException:
        background.abort()
        raise
    finally:
        bar.close()
    if vision_recorder:
        writer.write_vision_received(vision_recorder.received_matrix().astype(np.float16))
    return recorder.text_to_image


def write_rows(writer: fmt.SampleWriter, rows: AttentionRows | VisionRows) -> None:
    """Each chunk to its own files; one image per sample, so a vision chunk is always image 0's."""
    if isinstance(rows, VisionRows):
        writer.write_vision_rows(rows.block, rows.rows, rows.attn, rows.head_mean)
    else:
        writer.write_layer_rows(rows.layer, rows.row0, rows.attn, rows.head_mean, rows.head_max)


def image_span(prepared: PreparedInputs) -> tuple[int, int]:
    positions = (prepared.input_ids[0] == prepared.image_token_id).nonzero().flatten().tolist()
    expected = prepared.grid_rows * prepared.grid_cols
    if len(positions) != expected or positions[-1] - positions[0] + 1 != expected:
        raise UserError(f"expected one block of {expected} image tokens, found {len(positions)}; one image per prompt is supported")
    return positions[0], positions[-1]


def image_grid(prepared: PreparedInputs) -> dict[str, int]:
    start, end = image_span(prepared)
    return {"rows": prepared.grid_rows, "cols": prepared.grid_cols, "start_idx": start, "end_idx": end}


def format_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000:
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1000
    return f"{count:.1f} TB"


def first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
