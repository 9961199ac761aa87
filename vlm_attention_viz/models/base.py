"""What a model family must tell the extractor; everything else is shared.

An adapter says how to load the model and its processor, how to build the prompt
(the checkpoint's own chat template), where the image tokens are and how they form a
grid. Capture, token texts and writing never name a model family.

A family whose processor reports the image as a patch grid (image_grid_thw) subclasses
PatchGridAdapter and names only its --model-type, config model_type, model class and
processor class.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from PIL import Image
from transformers import (
    AutoImageProcessor,
    AutoProcessor,
    AutoTokenizer,
    PreTrainedConfig,
    PreTrainedModel,
    ProcessorMixin,
)
from transformers.utils import cached_file, is_torchvision_available

from ..errors import UserError
from ..image_layout import ImageLayout, Region, runs_of
from ..linear_capture import LinearLayer


@dataclass
class PreparedInputs:
    """The images + prompt, ready for model(**model_inputs)."""

    model_inputs: dict[str, Any]
    image_token_id: int
    grid_rows: int  # the first image's token grid, for a family that writes each image as one grid
    grid_cols: int
    image_size: tuple[int, int]  # (w, h) the model saw after the processor's resize
    layout: ImageLayout | None = None  # where every image's tokens are; None: one image, one grid, one run

    @property
    def input_ids(self) -> torch.Tensor:
        return self.model_inputs["input_ids"]

    def image_layout(self) -> ImageLayout:
        """The layout, checked against the image placeholders in input_ids."""
        ids = self.input_ids[0].tolist()
        layout = self.layout
        if layout is None:
            runs = runs_of(ids, self.image_token_id)
            start = runs[0][0] if runs else 0
            layout = ImageLayout.single_grid(self.grid_rows, self.grid_cols, start, self.image_size)
        layout.check(ids, self.image_token_id)
        return layout

    def on(self, device: torch.device) -> dict[str, Any]:
        """The model inputs moved to the device of the model's first layers."""
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.model_inputs.items()}


@dataclass
class PatchCall:
    """One call of a vision block's attention function: the patches of one image (frame) it attends over."""

    image: int  # which image (frame), counted over the whole batch
    image_patches: int  # P, the patches of that whole image
    patches: torch.Tensor  # the row-major index (within the image) of each patch, in the order the call sees them


@dataclass
class VisionGeometry:
    """The image as the vision tower sees it: its patch grid before the merge, and what each attention call covers."""

    rows: int
    cols: int
    patch_size: int  # pixels per patch side
    block_calls: list[list[PatchCall]]  # per block, its attention calls in the order the tower makes them


def whole_image_geometry(rows: int, cols: int, patch_size: int, depth: int) -> VisionGeometry:
    """A tower whose every block attends over the image's rows x cols patches in one call, in row-major order."""
    call = PatchCall(0, rows * cols, torch.arange(rows * cols))
    return VisionGeometry(rows, cols, patch_size, [[call] for _ in range(depth)])


def merge_window_orders(grid_thw: torch.Tensor, merge: int) -> list[torch.Tensor]:
    """Per image frame, the index of each row-major patch in merge-window order.

    Qwen processors emit a frame's patches merge window by merge window, (h/m, w/m, m, m):
    all m x m patches of one LLM token together. Patch (r, c) = (R*m + i, C*m + j) sits at
    ((R * w/m + C) * m + i) * m + j; listing those in row-major (R, i, C, j) order gives the
    permutation that makes the tower's order row-major.
    """
    orders = []
    for frames, rows, cols in grid_thw.tolist():
        windows = torch.arange(rows * cols).reshape(rows // merge, cols // merge, merge, merge)
        orders += [windows.permute(0, 2, 1, 3).reshape(-1)] * frames  # each frame is its own attention call
    return orders


@dataclass
class PackedPatches:
    """Every patch of a batch in the processor's packed order: its frame, and its row-major index in that frame."""

    frame: torch.Tensor
    patch: torch.Tensor
    frame_bounds: list[int]  # where each frame starts in the packed order, then the total

    @classmethod
    def of(cls, grid_thw: torch.Tensor, merge: int) -> PackedPatches:
        row_major_of = [torch.argsort(order) for order in merge_window_orders(grid_thw, merge)]
        frame = torch.cat([torch.full((len(p),), i) for i, p in enumerate(row_major_of)])
        bounds = torch.tensor([0] + [len(p) for p in row_major_of]).cumsum(0).tolist()
        return cls(frame, torch.cat(row_major_of), bounds)

    def calls(self, tower_order: torch.Tensor, bounds: list[int]) -> list[PatchCall]:
        """The attention calls over the tower's positions [bounds[i], bounds[i+1]); tower_order: the packed index of
        the patch at each tower position. A call never spans frames (the towers attend within a frame at most)."""
        frame, patch = self.frame[tower_order], self.patch[tower_order]
        calls = []
        for start, end in zip(bounds[:-1], bounds[1:], strict=True):
            image = int(frame[start])
            if not torch.all(frame[start:end] == image):
                raise UserError("a vision attention call spans two images; vision capture cannot map it to one image")
            size = self.frame_bounds[image + 1] - self.frame_bounds[image]
            calls.append(PatchCall(image, size, patch[start:end]))
        return calls


class ModelAdapter(ABC):
    """Subclass per model family and register it in models/__init__.py."""

    name: ClassVar[str]  # the --model-type value
    config_model_types: ClassVar[tuple[str, ...]]  # `model_type` values in checkpoint config.json files
    model_class: ClassVar[type[PreTrainedModel]]
    language_config_key: ClassVar[str] = "text_config"  # sub-config of the LLM whose attention is captured
    vision_config_key: ClassVar[str] = "vision_config"  # sub-config of the vision tower (--vision-layers)
    image_placeholder: ClassVar[
        str
    ]  # the text of an image token as a tokenizer decodes it; `import` finds the image by it
    max_pixels_refusal: ClassVar[str | None] = None  # why --max-pixels does not apply to the family; None: it does

    def check_max_pixels(self, max_pixels: int | None) -> None:
        """Refuse --max-pixels for a family whose processor does not size images by pixels (before the load)."""
        if max_pixels is not None and self.max_pixels_refusal:
            raise UserError(f"--max-pixels does not apply to {self.name}: {self.max_pixels_refusal}")

    def load_model(self, source: str, device: str, dtype: torch.dtype) -> PreTrainedModel:
        """Load on `device`; "auto" spreads the layers over every GPU with accelerate."""
        model = self.model_class.from_pretrained(source, dtype=dtype, attn_implementation="sdpa", device_map=device)
        return model.eval()

    def language_config(self, model: PreTrainedModel) -> PreTrainedConfig:
        return getattr(model.config, self.language_config_key)

    def vision_config(self, model: PreTrainedModel) -> PreTrainedConfig:
        return getattr(model.config, self.vision_config_key)

    def vision_shape(self, model: PreTrainedModel) -> tuple[int, int]:
        """(blocks, heads per block) of the vision tower."""
        config = self.vision_config(model)
        return config.num_hidden_layers, config.num_attention_heads

    def num_kv_heads(self, model: PreTrainedModel) -> int | None:
        """meta.json's num_kv_heads (GQA); None where layers differ in it (the field is then left out)."""
        return self.language_config(model).num_key_value_heads

    def layer_attention(self, model: PreTrainedModel) -> list[dict[str, Any]] | None:
        """meta.json's layer_attention: per LLM layer, what its stored matrices are (sample_format.layer_kind);
        None: causal softmax in every layer, the field left out."""
        return None

    def linear_layers(self, model: PreTrainedModel) -> dict[int, LinearLayer]:
        """The LLM's linear-attention layers by index, each its module and how its delta-rule inputs come from the
        module's input (linear_capture.py); none by default."""
        return {}

    def vision_geometry(self, model: PreTrainedModel, processor: Any, prepared: PreparedInputs) -> VisionGeometry:
        """The patch grid, and per block which patches each of its attention calls covers (for --vision-layers)."""
        raise UserError(f"--vision-layers is not supported for {self.name} models")

    def import_layout(self, texts: list[str]) -> ImageLayout | None:
        """`import --model-type`: the image regions read from the token texts as the processor writes them;
        None: the image is the one run of image_placeholder."""
        return None

    @abstractmethod
    def load_processor(self, source: str) -> Any:
        """The checkpoint's processor, built from its parts where AutoProcessor cannot be used."""

    def prepare(self, processor: Any, image: Image.Image, prompt: str, max_pixels: int | None) -> PreparedInputs:
        """Apply the chat template (one user message: image, then text; generation prompt added) and process."""
        return self.prepare_images(processor, [image], prompt, max_pixels)

    @abstractmethod
    def prepare_images(
        self, processor: Any, images: list[Image.Image], prompt: str, max_pixels: int | None
    ) -> PreparedInputs:
        """prepare with one or more images, in the user message before the text, in the order given."""


class PatchGridAdapter(ModelAdapter):
    """A family whose processor cuts the resized image into square patches, reports them as
    image_grid_thw = (frames, patch rows, patch cols), and merges merge_size x merge_size
    patches into one LLM token. The family names its processor class; patch size, merge size
    and pixel bounds are read from the checkpoint's image processor."""

    processor_class: ClassVar[type[ProcessorMixin]]

    def load_processor(self, source: str) -> Any:
        if is_torchvision_available():
            return AutoProcessor.from_pretrained(source)
        return image_text_processor(self.processor_class, source)

    def prepare_images(
        self, processor: Any, images: list[Image.Image], prompt: str, max_pixels: int | None
    ) -> PreparedInputs:
        text = processor.apply_chat_template(
            user_message(len(images), prompt), add_generation_prompt=True, tokenize=False
        )
        size = pixel_bounds(processor.image_processor, max_pixels)
        inputs = processor(text=[text], images=images, size=size, return_tensors="pt")
        grids = [merged_grid(thw, processor.image_processor) for thw in inputs["image_grid_thw"].tolist()]
        rows, cols, image_size = grids[0]
        layout = None
        if len(images) > 1:  # each image its own grid, in its own run of placeholders, in prompt order
            runs = runs_of(inputs["input_ids"][0].tolist(), processor.image_token_id)
            regions = [
                Region(i, "image", r, c, (0, 0, *wh), run)
                for i, ((r, c, wh), run) in enumerate(zip(grids, runs, strict=True))
            ]
            layout = ImageLayout([wh for _, _, wh in grids], regions)
        return PreparedInputs(dict(inputs), processor.image_token_id, rows, cols, image_size, layout)

    def vision_shape(self, model: PreTrainedModel) -> tuple[int, int]:
        config = self.vision_config(model)
        return config.depth, config.num_heads

    def vision_geometry(self, model: PreTrainedModel, processor: Any, prepared: PreparedInputs) -> VisionGeometry:
        """image_grid_thw counts patches before the merge; the tower sees them in the processor's merge-window
        order, moved as tower_layout says."""
        image_processor = processor.image_processor
        grid_thw = prepared.model_inputs["image_grid_thw"]
        _, rows, cols = (int(v) for v in grid_thw[0])
        packed = PackedPatches.of(grid_thw, image_processor.merge_size)
        tower_order, block_bounds = self.tower_layout(model, grid_thw, packed)
        by_bounds: dict[tuple[int, ...], list[PatchCall]] = {}  # blocks with the same calls share one list
        for bounds in block_bounds:
            if tuple(bounds) not in by_bounds:
                by_bounds[tuple(bounds)] = packed.calls(tower_order, bounds)
        return VisionGeometry(
            rows, cols, image_processor.patch_size, [by_bounds[tuple(bounds)] for bounds in block_bounds]
        )

    def tower_layout(
        self, model: PreTrainedModel, grid_thw: torch.Tensor, packed: PackedPatches
    ) -> tuple[torch.Tensor, list[list[int]]]:
        """(the packed index of the patch at each of the tower's positions, per block the boundaries of its
        attention calls). By default the tower keeps the processor's order and every block attends over each
        whole frame; a family whose tower regroups the patches overrides this."""
        depth, _ = self.vision_shape(model)
        return torch.arange(packed.frame_bounds[-1]), [packed.frame_bounds] * depth


def user_message(images: int, prompt: str) -> list[dict[str, Any]]:
    """The one user message: the images, then the text."""
    content = [{"type": "image"} for _ in range(images)] + [{"type": "text", "text": prompt}]
    return [{"role": "user", "content": content}]


def auto_processor(source: str) -> ProcessorMixin:
    """AutoProcessor, for a processor with no video part (it builds without torchvision), with the checkpoint's
    chat template where the processor did not pick it up."""
    processor = AutoProcessor.from_pretrained(source)
    if processor.chat_template is None:
        processor.chat_template = chat_template(source, processor.tokenizer)
    return processor


def image_text_processor(processor_class: type[ProcessorMixin], source: str, **settings: Any) -> ProcessorMixin:
    """processor_class built from the checkpoint's tokenizer, image processor and chat template alone (and the
    processor's own `settings`, e.g. SmolVLM's image_seq_len).

    Without torchvision the checkpoint's video processor cannot be built, so AutoProcessor
    falls back to the bare tokenizer. ProcessorMixin takes its parts from __init__'s
    signature, so a subclass whose __init__ has no video processor drops that part.
    """

    class ImageTextProcessor(processor_class):  # type: ignore[misc, valid-type]
        def __init__(
            self, image_processor: Any = None, tokenizer: Any = None, chat_template: str | None = None, **kwargs: Any
        ) -> None:
            super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    tokenizer = AutoTokenizer.from_pretrained(source)
    return ImageTextProcessor(
        AutoImageProcessor.from_pretrained(source),
        tokenizer,
        chat_template=chat_template(source, tokenizer),
        **settings,
    )


def processor_settings(source: str) -> dict[str, Any]:
    """processor_config.json's settings of the processor itself (SmolVLM's image_seq_len, Pixtral's patch and
    merge sizes), without its class name."""
    path = cached_file(source, "processor_config.json", _raise_exceptions_for_missing_entries=False)
    if not path:
        return {}
    with open(path, encoding="utf-8") as f:
        settings = json.load(f)
    return {key: value for key, value in settings.items() if key != "processor_class"}


def chat_template(source: str, tokenizer: Any) -> str:
    """The processor's chat template: chat_template.jinja, else chat_template.json, else the tokenizer's."""
    jinja = cached_file(source, "chat_template.jinja", _raise_exceptions_for_missing_entries=False)
    if jinja:
        with open(jinja, encoding="utf-8") as f:
            return f.read()
    legacy = cached_file(source, "chat_template.json", _raise_exceptions_for_missing_entries=False)
    if legacy:
        with open(legacy, encoding="utf-8") as f:
            return json.load(f)["chat_template"]
    if tokenizer.chat_template:
        return tokenizer.chat_template
    raise UserError(f"{source} has no chat template (chat_template.jinja or chat_template.json)")


def pixel_bounds(image_processor: Any, max_pixels: int | None) -> dict[str, int]:
    """The resize bounds as the processor call takes them, lowered to max_pixels when given.

    Checkpoints spell the bounds three ways: size = {shortest_edge, longest_edge}, top-level
    min_pixels / max_pixels (which the image processor folds into the first form), or
    size = {min_pixels, max_pixels}, which it keeps as is and could not resize with; all
    three end up as the first form here.
    """
    size = image_processor.size
    low, high = size.get("shortest_edge") or size.get("min_pixels"), size.get("longest_edge") or size.get("max_pixels")
    if max_pixels is not None:
        low, high = min(low, max_pixels), max_pixels
    return {"shortest_edge": low, "longest_edge": high}


def merged_grid(image_grid_thw: list[int], image_processor: Any) -> tuple[int, int, tuple[int, int]]:
    """(token rows, token cols, (w, h) in pixels the model saw) from one image's (frames, patch rows, patch cols)."""
    _, patch_rows, patch_cols = image_grid_thw
    merge, patch = image_processor.merge_size, image_processor.patch_size
    return patch_rows // merge, patch_cols // merge, (patch_cols * patch, patch_rows * patch)
