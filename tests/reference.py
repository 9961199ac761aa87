"""References the tests compare captures against: transformers' eager attention for the LLM, and a float32
recomputation from each vision block's inputs for the tower; also the tolerances that float16 storage allows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers.vision_utils import get_vision_position_ids

from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.attention_capture import AttentionRecorder, capturing
from vlm_attention_viz.dev.tiny import TinyShape
from vlm_attention_viz.models import ModelAdapter, PreparedInputs, adapter_named, detect_model_type
from vlm_attention_viz.models.base import VisionGeometry
from vlm_attention_viz.vision_capture import VisionRows

PROMPT = "Describe this image in detail."


# float16 keeps 11 significant bits: rounding moves a value by at most half an ulp (2^-11 relative).
# One full ulp (2^-10) leaves room for float32 summation order; atol covers float16 subnormals.
RTOL, ATOL = 2.0**-10, 1e-6


def eager_reference(
    model_dir: Path, image_path: Path, model_type: str = "qwen3-vl"
) -> tuple[list[np.ndarray], torch.Tensor, dict]:
    adapter = adapter_named(model_type)
    processor = adapter.load_processor(str(model_dir))
    prepared = adapter.prepare(processor, Image.open(image_path).convert("RGB"), PROMPT, None)
    return eager_attentions(model_type, model_dir, prepared.model_inputs), prepared.model_inputs, processor


def eager_attentions(model_type: str, model_dir: Path, model_inputs: dict) -> list[np.ndarray]:
    """Every layer's (H, N, N) attention as the eager implementation returns it for these inputs."""
    model = adapter_named(model_type).model_class.from_pretrained(model_dir, attn_implementation="eager").eval()
    with torch.no_grad():
        out = model(**model_inputs, output_attentions=True)
    return [a[0].numpy() for a in out.attentions]


def captured_chunks_with_logits_unchanged(
    family: str, model_dir: Path, photo: Path, row_budget: int
) -> tuple[list, int]:
    """The capture's chunks of one forward pass, after checking that logits with capture equal logits
    without, before and after it; also the model's layer count."""
    adapter = adapter_named(family)
    prepared = adapter.prepare(adapter.load_processor(str(model_dir)), Image.open(photo).convert("RGB"), PROMPT, None)
    model = adapter.load_model(str(model_dir), "cpu", torch.float32)
    config = adapter.language_config(model)
    chunks: list = []
    recorder = AttentionRecorder(
        chunks.append,
        config.num_hidden_layers,
        config.num_attention_heads,
        prepared.image_layout().image_positions(),
        row_budget=row_budget,
    )
    with torch.no_grad():
        plain = model(**prepared.model_inputs).logits
        with capturing(model, adapter.language_config_key, recorder):
            captured = model(**prepared.model_inputs, use_cache=False).logits
        after = model(**prepared.model_inputs).logits
    assert torch.equal(plain, captured) and torch.equal(plain, after)
    return chunks, config.num_hidden_layers


ADAPTER = adapter_named("qwen3-vl")


def load(model_dir: Path, adapter: ModelAdapter = ADAPTER) -> tuple[torch.nn.Module, object]:
    return adapter.load_model(str(model_dir), "cpu", torch.float32), adapter.load_processor(str(model_dir))


def grab_block_inputs(model: torch.nn.Module) -> tuple[dict[int, tuple], list]:
    """Forward pre-hooks on the vision blocks: per block, (hidden_states, cu_seqlens, position_embeddings)."""
    grabbed: dict[int, tuple] = {}

    def hook(index: int):
        return lambda module, args, kwargs: grabbed.__setitem__(
            index, (args[0], kwargs["cu_seqlens"], kwargs["position_embeddings"])
        )

    blocks = model.model.visual.blocks
    return grabbed, [block.register_forward_pre_hook(hook(i), with_kwargs=True) for i, block in enumerate(blocks)]


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def row_major(grid_thw: torch.Tensor, merge: int) -> list[torch.Tensor]:
    """Per image, the tower's patch index of each row-major patch, from the tower's own rotary (row, col) positions."""
    positions = get_vision_position_ids(grid_thw, merge)
    orders, start = [], 0
    for _, rows, cols in grid_thw.tolist():
        row_col = positions[start : start + rows * cols]
        orders.append(torch.argsort(row_col[:, 0] * cols + row_col[:, 1]))
        start += rows * cols
    return orders


def rotated_query_key(model: torch.nn.Module, block: int, inputs: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """The block's float32 query and key, (patches, heads, d), from its inputs (qkv, vision RoPE), in the tower's order."""
    hidden, _, (cos, sin) = inputs
    attn = model.model.visual.blocks[block].attn
    with torch.no_grad():
        qkv = attn.qkv(model.model.visual.blocks[block].norm1(hidden)).float()
    query, key, _ = qkv.reshape(hidden.shape[0], 3, attn.num_heads, -1).unbind(1)
    cos, sin = cos.float()[:, None], sin.float()[:, None]
    return rotate(query, cos, sin), rotate(key, cos, sin)


def vision_block_reference(
    model: torch.nn.Module, block: int, inputs: tuple, orders: list[torch.Tensor]
) -> list[np.ndarray]:
    """Per image: softmax(QK^T / sqrt(d)) in float32 from the block's inputs (qkv, vision RoPE), patches row-major."""
    _, cu_seqlens, _ = inputs
    query, key = rotated_query_key(model, block, inputs)
    per_image = []
    for image, order in enumerate(orders):
        span = slice(int(cu_seqlens[image]), int(cu_seqlens[image + 1]))
        q, k = query[span][order].transpose(0, 1), key[span][order].transpose(0, 1)
        per_image.append(torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1).numpy())
    return per_image


def batch_geometry(adapter: ModelAdapter, model: torch.nn.Module, processor: object, batch: dict) -> VisionGeometry:
    """vision_geometry of a batch of images; it reads the patch grids from image_grid_thw, and the first image's
    grid stands in for the token grid."""
    _, rows, cols = batch["image_grid_thw"][0].tolist()
    merge, patch = processor.image_processor.merge_size, processor.image_processor.patch_size
    prepared = PreparedInputs(
        dict(batch), processor.image_token_id, rows // merge, cols // merge, (cols * patch, rows * patch)
    )
    return adapter.vision_geometry(model, processor, prepared)


def assemble(chunks: list[VisionRows], block: int, image: int, patches: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, P, P) attention and (P, P) head mean of one block and image from the recorder's chunks, each row
    put at its own row-major index; every row must come exactly once."""
    mine = [c for c in chunks if (c.block, c.image) == (block, image)]
    rows = np.concatenate([c.rows for c in mine])
    assert sorted(rows.tolist()) == list(range(patches))
    attn = np.zeros((mine[0].attn.shape[0], patches, patches), np.float32)
    mean = np.zeros((patches, patches), np.float32)
    for c in mine:
        attn[:, c.rows], mean[c.rows] = c.attn, c.head_mean
    return attn, mean


def reference_for_photo(model_dir: Path, photo: Path, adapter: ModelAdapter = ADAPTER) -> dict[int, np.ndarray]:
    model, processor = load(model_dir, adapter)
    prepared = adapter.prepare(processor, Image.open(photo).convert("RGB"), PROMPT, None)
    grabbed, hooks = grab_block_inputs(model)
    with torch.no_grad():
        model(**prepared.model_inputs)
    for hook in hooks:
        hook.remove()
    orders = row_major(prepared.model_inputs["image_grid_thw"], processor.image_processor.merge_size)
    return {block: vision_block_reference(model, block, grabbed[block], orders)[0] for block in grabbed}


def processed_images(family: str, model_dir: Path, images: list[Path]) -> tuple[dict, object]:
    """The family's processor inputs for these images and the prompt, and the processor."""
    adapter = adapter_named(family)
    processor = adapter.load_processor(str(model_dir))
    opened = [Image.open(path).convert("RGB") for path in images]
    return adapter.prepare_images(processor, opened, PROMPT, None).model_inputs, processor


def assert_detected_and_equal_to_eager(
    family: str, shape: TinyShape, model_dir: Path, sample: Path, image: Path
) -> None:
    """The CLI found the family from config.json, and every layer and head mean equals eager attention."""
    meta = fmt.validate_sample(sample)
    assert detect_model_type(str(model_dir)) == family and meta["model_type"] == family
    reference, _, _ = eager_reference(model_dir, image, family)
    assert len(reference) == meta["num_layers"] == shape.layers and reference[0].shape[0] == shape.heads
    assert_layers_equal(sample, meta, reference)


def assert_layers_equal(sample: Path, meta: dict, reference: list[np.ndarray]) -> None:
    """Every stored layer, its head mean and its head max equal the reference to float16 rounding."""
    for layer, ref in enumerate(reference):
        stored = np.asarray(fmt.open_layer(sample, meta, layer), np.float32)
        np.testing.assert_allclose(stored, ref, rtol=RTOL, atol=ATOL)
        for kind, expected in (("mean", ref.mean(0)), ("max", ref.max(0))):
            aggregate = np.asarray(fmt.open_head_aggregate(sample, meta, layer, kind), np.float32)
            np.testing.assert_allclose(aggregate, expected, rtol=RTOL, atol=ATOL)


def processed(model_dir: Path, photo: Path) -> dict:
    adapter = adapter_named("qwen3-vl")
    return adapter.prepare(
        adapter.load_processor(str(model_dir)), Image.open(photo).convert("RGB"), PROMPT, None
    ).model_inputs


def unrolled_implicit_attention(
    query: torch.Tensor, key: torch.Tensor, g: torch.Tensor, beta: torch.Tensor
) -> np.ndarray:
    """The gated delta rule's implicit attention written out directly in float64, one head at a time:
    A[t, s] = beta_s k_s^T [prod_{r=s+1..t} exp(g_r) (I - beta_r k_r k_r^T)] q_t, the product ordered so that
    the factor of the latest step meets q_t first; 0 for s > t. query, key (H, N, d_k); g, beta (H, N)."""
    heads, n, d = key.shape
    out = np.zeros((heads, n, n))
    q, k, decay, b = (x.double().numpy() for x in (query, key, g.exp(), beta))
    eye = np.eye(d)
    for h in range(heads):
        for t in range(n):
            carried = q[h, t]  # [prod_{r=s+1..t} M_r] q_t, grown from r = t down
            for s in range(t, -1, -1):
                out[h, t, s] = b[h, s] * k[h, s] @ carried
                carried = decay[h, s] * (eye - b[h, s] * np.outer(k[h, s], k[h, s])) @ carried
    return out
