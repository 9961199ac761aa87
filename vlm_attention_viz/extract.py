"""Model-agnostic extraction: check inputs, load, (generate,) capture every layer, write the sample.

Cheap checks (image, prompt, output folder) come before the model is loaded, and the
size estimate before anything is written. The sample appears only when complete.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from . import sample_format as fmt
from .analysis import TokenLayout, TokenMeasures, resolve_device, write_rollout
from .attention_capture import AttentionRecorder, AttentionRows, Recorder, StoredRows, capturing_sub_models
from .errors import UserError
from .generate import answer_fields, generate_answer
from .image_layout import ImageLayout
from .images import copy_image, open_image
from .index_spec import check_storage_flags, resolve_storage
from .linear_capture import capturing_linear_layers
from .models import ModelAdapter, PreparedInputs, adapter_for
from .peft_adapter import adapter_meta, apply_adapter, read_adapter_config
from .tokens import build_tokens
from .vision_capture import VisionPlan, VisionRecorder, VisionRows, check_vision_layers, plan_vision
from .weights import check_weight_files
from .writer import BackgroundWriter

DEFAULT_MODEL = "Qwen/Qwen3-VL-2B-Thinking"
MODES = ("prefill", "generate")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Request:
    # A file, or an image in memory (stored as PNG); several: in the user message in this order, before the prompt.
    image: Path | Image.Image | list[Path | Image.Image]
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
    store: str = fmt.DEFAULT_PROFILE  # the storage profile, sample_format.STORAGE_PROFILES
    layers: str | None = None  # keep these LLM layers (index spec); None: all
    heads: str | None = None  # keep these query heads; None: all
    overwrite: bool = False
    progress: bool = True
    rollout: bool = True  # also write the attention rollout (SPEC.md §1)
    update_index: bool = True  # rewrite index.json beside the sample once it is committed

    @property
    def images(self) -> list[Path | Image.Image]:
        return self.image if isinstance(self.image, list) else [self.image]


@dataclass
class Result:
    path: Path
    seq_len: int
    layout: ImageLayout
    bytes: int
    seconds: float

    def summary(self) -> str:
        return f"wrote {self.path}: {self.seq_len} tokens, {self.layout.summary()}, {fmt.format_bytes(self.bytes)} in {self.seconds:.1f} s"


def extract(request: Request) -> Result:
    """The CLI's run: cheap checks, load the model, then capture() on it."""
    started = time.perf_counter()
    opened = check_inputs(request)
    return capture_loaded(load_model(request), request, opened, started)


def load_model(request: Request) -> LoadedModel:
    """request's model, adapter and processor on its device; the adapter folder and weights checked first."""
    peft_fields = adapter_meta(request.adapter, read_adapter_config(request.adapter)) if request.adapter else None
    adapter = adapter_for(request.model, request.model_type)
    adapter.check_max_pixels(request.max_pixels)
    device = resolve_device(request.device)
    dtype = resolve_dtype(request.dtype, device)
    model, processor = load(adapter, request.model, device, dtype, request.adapter)
    return LoadedModel(model, processor, adapter, request.model, device, peft_fields)


@dataclass
class LoadedModel:
    """A model ready for capture, and what meta.json says about it."""

    model: Any
    processor: Any
    adapter: ModelAdapter
    source: str  # meta.json's `model`
    device: str  # meta.json's extraction.device
    peft_fields: dict[str, Any] | None  # meta.json's `adapter`


def capture_loaded(
    loaded: LoadedModel, request: Request, opened: list[tuple[Image.Image, str]], started: float
) -> Result:
    """Capture the images + prompt on a loaded model into request.output_dir; opened: check_inputs' images."""
    model, processor, adapter = loaded.model, loaded.processor, loaded.adapter
    adapter.check_max_pixels(request.max_pixels)
    try:
        prepared = adapter.prepare_images(processor, [image for image, _ in opened], request.prompt, request.max_pixels)
    except ValueError as err:  # the processor's own refusals, e.g. an aspect ratio above 200
        raise UserError(f"the processor cannot take this image: {first_line(err)}") from None
    layout = prepared.image_layout()
    prompt_len = prepared.input_ids.shape[1]
    if request.mode == "generate":
        generate_answer(model, prepared, request.max_new_tokens)
    language = adapter.language_config(model)
    layers, heads = language.num_hidden_layers, language.num_attention_heads
    kinds = adapter.layer_attention(model)
    seq_len = prepared.input_ids.shape[1]
    vision = plan_vision(request.vision_layers, adapter, model, processor, prepared) if request.vision_layers else None
    storage = resolve_storage(request.store, request.layers, request.heads, layers, heads)
    text_tokens = seq_len - len(layout.image_positions())
    rollout = request.rollout and storage.serves("rollout") and fmt.all_softmax(kinds)
    size = fmt.stored_bytes(storage, seq_len, text_tokens, rollout, kinds) + (vision.bytes if vision else 0)
    formula = fmt.stored_formula(storage, seq_len, text_tokens, vision.shape if vision else None, rollout, kinds)
    fmt.check_disk_room(request.output_dir, size, formula)
    announce(f"writing {request.output_dir}: about {fmt.format_bytes(size)} ({formula})", request.progress)
    if request.rollout and not storage.serves("rollout"):
        announce(f"no rollout: it needs {fmt.rollout_needs(storage)}", request.progress)

    tokens = build_tokens(
        processor.tokenizer, prepared.input_ids[0].tolist(), prepared.image_token_id, prepared.grid_cols
    )
    layout.place(tokens)
    with fmt.SampleWriter(request.output_dir, overwrite=request.overwrite, update_index=request.update_index) as writer:
        store = fmt.ProfileWriter(writer, storage, fmt.profile_rows(tokens, storage.profile))
        text_to_image, tables = capture_to(
            store,
            model,
            adapter,
            prepared,
            layout,
            fmt.layer_heads(layers, heads, kinds),
            request.progress,
            TokenLayout.of(tokens, layout.region_entries()),
            vision,
        )
        names = [
            copy_image(writer, path, image, image_format, index)
            for index, (path, (image, image_format)) in enumerate(zip(request.images, opened, strict=True))
        ]
        meta = fmt.build_meta(
            model=loaded.source,
            model_type=adapter.name,
            mode=request.mode,
            prompt=request.prompt,
            **layout.meta_fields(names, [image.size for image, _ in opened]),
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=adapter.num_kv_heads(model),
            tokens=tokens,
            text_to_image=text_to_image,
            storage=storage,
            token_tables=tables.write(writer),
            layer_attention=kinds,
            adapter=loaded.peft_fields,
            vision=vision.meta() if vision else None,
            **(answer_fields(tokens, prompt_len, request.max_new_tokens) if request.mode == "generate" else {}),
        )
        if rollout:
            write_rollout(writer.tmp, meta, str(model.device), request.progress)  # a device_map's first device
        seconds = time.perf_counter() - started
        meta["extraction"] = {
            "device": loaded.device,
            "dtype": str(model.dtype).removeprefix("torch."),
            "seconds": round(seconds, 3),
            "bytes": size,
        }
        path = writer.commit(meta)
    return Result(path, seq_len, layout, size, seconds)


def announce(line: str, progress: bool) -> None:
    """A line on stdout before the run writes anything, so a large sample is never a surprise."""
    if progress:
        print(line, flush=True)


def check_inputs(request: Request) -> list[tuple[Image.Image, str]]:
    """Everything that needs no model, so a typo costs no model load."""
    if not request.prompt.strip():
        raise UserError("the prompt is empty; pass --prompt with some text")
    check_options(request)
    check_prompt(request.prompt)
    for note in fmt.prepare_target(request.output_dir, request.overwrite):
        print(note, file=sys.stderr)
    return [open_image(image) for image in request.images]


def check_options(request: Request) -> None:
    """The flags that hold for every sample of a run, so a batch checks them once."""
    if request.mode not in MODES:
        raise UserError(f"unknown --mode {request.mode!r}; supported: {', '.join(MODES)}")
    if request.mode == "generate" and request.max_new_tokens < 1:
        raise UserError("--max-new-tokens must be at least 1")
    if request.max_pixels is not None and request.max_pixels < 1:
        raise UserError("--max-pixels must be a positive number of pixels")
    if request.vision_layers is not None:
        check_vision_layers(request.vision_layers)
        if len(request.images) > 1:
            raise UserError("--vision-layers takes one --image; the vision overlay shows one image's patches")
    check_storage_flags(request.store, request.layers, request.heads)


def check_prompt(prompt: str) -> None:
    """A prompt from a shell in another locale, or bytes pasted from a binary file, holds lone surrogates."""
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as err:
        raise UserError(f"the prompt is not valid UTF-8 text (at character {err.start}); pass it as UTF-8") from None


def resolve_dtype(name: str, device: str) -> torch.dtype:
    if name == "auto":
        return torch.float32 if device == "cpu" else torch.bfloat16
    if name not in DTYPES:
        raise UserError(f"unknown --dtype {name!r}; choose auto, {', '.join(DTYPES)}")
    return DTYPES[name]


def load(
    adapter: ModelAdapter, source: str, device: str, dtype: torch.dtype, peft_folder: Path | None
) -> tuple[Any, Any]:
    """The model (wrapped with the PEFT adapter when one is given) and its processor."""
    if Path(source).is_dir():
        check_weight_files(Path(source))
    try:
        model, processor = adapter.load_model(source, device, dtype), adapter.load_processor(source)
    except OSError as err:
        raise UserError(
            f"cannot load {source}: {first_line(err)} (not downloaded, and the hub unreachable or offline? pass a local folder with --model)"
        ) from None
    return (apply_adapter(model, peft_folder, source) if peft_folder is not None else model), processor


def capture_to(
    store: fmt.ProfileWriter,
    model: Any,
    adapter: ModelAdapter,
    prepared: PreparedInputs,
    image_layout: ImageLayout,
    heads: list[int],
    progress: bool,
    layout: TokenLayout,
    vision: VisionPlan | None = None,
) -> tuple[list[np.ndarray], fmt.TokenTables]:
    """One forward pass over the whole sequence; each layer's (and vision block's) rows stream to disk as they are
    computed. heads: per layer, the heads it stores. Returns the text-to-image table and the per-token tables."""
    seq_len = prepared.input_ids.shape[1]
    layers = len(heads)
    # About one stored layer waits for the disk: a profile that keeps less holds less on the host.
    storage = store.storage
    layer_bytes = (max(heads) + 2) * storage.matrix_values(seq_len, len(store.rows)) * fmt.BYTES_PER_VALUE
    background: BackgroundWriter[AttentionRows | VisionRows] = BackgroundWriter(
        lambda rows: write_rows(store, rows), layer_bytes
    )
    bar = tqdm(
        total=layers + (len(vision.blocks) if vision else 0), unit="layer", desc="capturing", disable=not progress
    )
    measures = TokenMeasures(layout, fmt.TokenTables(layers, max(heads), seq_len))
    recorder = AttentionRecorder(
        background.put,
        layers,
        heads,
        image_layout.image_positions(),
        on_layer_done=lambda _: bar.update(),
        measures=measures,
        stored=StoredRows(frozenset(storage.layers), None if storage.kind.image_rows else store.rows),
    )
    recorders: dict[str, Recorder] = {adapter.language_config_key: recorder}
    vision_recorder = None
    if vision:
        vision_recorder = VisionRecorder(
            background.put,
            vision.modules,
            vision.blocks,
            vision.geometry.block_calls,
            on_block_done=lambda _: bar.update(),
        )
        recorders[adapter.vision_config_key] = vision_recorder
    inputs = prepared.on(model.device)
    try:
        with (
            capturing_sub_models(model, recorders),
            capturing_linear_layers(adapter.linear_layers(model), recorder),
            torch.inference_mode(),
        ):
            # Logits are not needed: only the last position's goes through the (N, vocab) head. Named by index, not
            # as a count, so that no model drops earlier query rows of its last layers (Gemma 4 does for a count).
            model(**inputs, use_cache=False, logits_to_keep=torch.tensor([seq_len - 1]))
        background.finish()
    except BaseException:
        background.abort()
        raise
    finally:
        bar.close()
    if vision_recorder:
        store.writer.write_vision_received(vision_recorder.received_matrix().astype(np.float16))
    return recorder.text_to_image.table(), measures.tables


def write_rows(store: fmt.ProfileWriter, rows: AttentionRows | VisionRows) -> None:
    """Each chunk to its own files, LLM rows as the storage profile keeps them; one image per sample, so a vision
    chunk is always image 0's."""
    if isinstance(rows, VisionRows):
        store.writer.write_vision_rows(rows.block, rows.rows, rows.attn, rows.head_mean)
    else:
        store.write_layer_rows(rows.layer, rows.row0, rows.attn, rows.head_mean, rows.head_max)


def first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
