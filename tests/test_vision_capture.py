"""Vision-encoder attention (--vision-layers) equals a float32 reference recomputed from each block's inputs."""

from __future__ import annotations

import shutil
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import folder_digest, run, striped_image
from PIL import Image
from transformers.vision_utils import get_vision_position_ids

from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.capture import AttentionRecorder, capturing_sub_models
from vlm_attention_viz.models import ModelAdapter, PreparedInputs, adapter_named
from vlm_attention_viz.models.base import VisionGeometry, merge_window_orders
from vlm_attention_viz.vision_capture import VisionRecorder, VisionRows, vision_attention_modules

PROMPT = "Describe this image in detail."
RTOL, ATOL = 2.0**-10, 1e-6  # float16 rounding, as in test_capture_reference.py
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


def reference(model: torch.nn.Module, block: int, inputs: tuple, orders: list[torch.Tensor]) -> list[np.ndarray]:
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
    return {block: reference(model, block, grabbed[block], orders)[0] for block in grabbed}


@pytest.fixture(scope="module")
def samples(gqa_model: Path, photo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vision")
    made = {}
    for name, extra in {"plain": [], "all": ["--vision-layers", "all"], "last1": ["--vision-layers", "last1"]}.items():
        made[name] = root / name
        assert (
            run(
                "--image",
                photo,
                "--prompt",
                PROMPT,
                "--output-dir",
                made[name],
                "--model",
                gqa_model,
                "--device",
                "cpu",
                *extra,
            )
            == 0
        )
    return made


@pytest.mark.parametrize("name, blocks", [("all", [0, 1]), ("last1", [1])])
def test_vision_files_equal_the_reference_from_block_inputs(
    samples: dict[str, Path], name: str, blocks: list[int], gqa_model: Path, photo: Path
) -> None:
    meta = fmt.validate_sample(samples[name])
    vision = meta["vision"]
    assert vision["blocks"] == blocks and vision["num_blocks"] == 2 and vision["num_heads"] == 2
    # the photo is 288 x 160 px for the model: 9 x 5 tokens, 18 x 10 patches of 16 px before the 2 x 2 merge
    assert vision["grid"] == {"rows": 10, "cols": 18} and vision["patch_size"] == 16 and vision["seq_len"] == 180
    expected = reference_for_photo(gqa_model, photo)
    received = np.asarray(fmt.open_vision_received(samples[name], meta), np.float32)
    for i, block in enumerate(blocks):
        ref = expected[block]
        np.testing.assert_allclose(
            np.asarray(fmt.open_vision_block(samples[name], meta, i), np.float32), ref, rtol=RTOL, atol=ATOL
        )
        np.testing.assert_allclose(
            np.asarray(fmt.open_vision_mean(samples[name], meta, i), np.float32), ref.mean(0), rtol=RTOL, atol=ATOL
        )
        np.testing.assert_allclose(received[i], ref.mean(0).sum(0), rtol=RTOL, atol=ATOL)
        assert abs(received[i].mean() - 1) < 1e-3  # each row sums to 1, so the column sums average 1


def test_vision_layers_leave_the_llm_files_unchanged(samples: dict[str, Path]) -> None:
    plain = folder_digest(samples["plain"])
    with_vision = folder_digest(samples["all"])
    llm_files = [name for name in plain if name.startswith("attn_")]
    assert len(llm_files) == 6 and all(with_vision[name] == plain[name] for name in llm_files)
    assert "vision" not in fmt.read_meta(samples["plain"])


def test_two_images_of_different_sizes_each_match_their_own_reference(gqa_model: Path) -> None:
    model, processor = load(gqa_model)
    images = [striped_image(300, 170), striped_image(140, 230)]
    batch = processor.image_processor(images, return_tensors="pt")
    grid_thw, merge = batch["image_grid_thw"], processor.image_processor.merge_size
    assert grid_thw[0].tolist() != grid_thw[1].tolist()
    visual = model.model.visual
    modules = vision_attention_modules(model, model.config.vision_config)
    assert len(modules) == 2
    chunks: list[VisionRows] = []
    # a small row budget splits every image of every block into several chunks
    geometry = batch_geometry(ADAPTER, model, processor, batch)
    recorder = VisionRecorder(chunks.append, modules, [0, 1], geometry.block_calls, row_budget=2 * 180 * 4 * 16)
    grabbed, hooks = grab_block_inputs(model)
    with torch.no_grad():
        plain = visual(batch["pixel_values"], grid_thw=grid_thw)
        with capturing_sub_models(model, {"vision_config": recorder}):
            captured = visual(batch["pixel_values"], grid_thw=grid_thw)
    for hook in hooks:
        hook.remove()
    assert torch.equal(plain.last_hidden_state, captured.last_hidden_state) and torch.equal(
        plain.pooler_output, captured.pooler_output
    )
    assert all(torch.equal(a, b) for a, b in zip(plain.deepstack_features, captured.deepstack_features, strict=True))
    orders = row_major(grid_thw, merge)
    for block in (0, 1):
        for image, ref in enumerate(reference(model, block, grabbed[block], orders)):
            assert len([c for c in chunks if (c.block, c.image) == (block, image)]) > 1
            attn, mean = assemble(chunks, block, image, ref.shape[1])
            np.testing.assert_allclose(attn, ref, rtol=RTOL, atol=ATOL)
            np.testing.assert_allclose(mean, ref.mean(0), rtol=RTOL, atol=ATOL)
            np.testing.assert_allclose(recorder.received[(block, image)].numpy(), ref.mean(0).sum(0), rtol=1e-5)


def test_merge_window_order_puts_the_towers_patches_row_major() -> None:
    grid_thw = torch.tensor([[1, 10, 18], [1, 4, 6]])
    for mine, towers in zip(merge_window_orders(grid_thw, 2), row_major(grid_thw, 2), strict=True):
        assert torch.equal(mine, towers)


def test_capture_leaves_the_vision_output_and_the_logits_unchanged(gqa_model: Path, photo: Path) -> None:
    model, processor = load(gqa_model)
    prepared = ADAPTER.prepare(processor, Image.open(photo).convert("RGB"), PROMPT, None)
    geometry = ADAPTER.vision_geometry(model, processor, prepared)
    tower_outputs: list = []
    model.model.visual.register_forward_hook(lambda module, args, output: tower_outputs.append(output.pooler_output))
    recorders = {
        "text_config": AttentionRecorder(lambda rows: None, 2, 4, (4, 48)),
        "vision_config": VisionRecorder(
            lambda rows: None, vision_attention_modules(model, model.config.vision_config), [0, 1], geometry.block_calls
        ),
    }
    with torch.no_grad():
        plain = model(**prepared.model_inputs).logits
        with capturing_sub_models(model, recorders):
            captured = model(**prepared.model_inputs, use_cache=False).logits
    assert torch.equal(plain, captured)
    assert torch.equal(tower_outputs[0], tower_outputs[1])
    assert model.config.vision_config._attn_implementation == "sdpa"  # switched back


@pytest.mark.parametrize("spec", ["last3", "2", "-3", "0,5"])
def test_out_of_range_blocks_are_refused_before_the_capture(
    spec: str, gqa_model: Path, photo: Path, tmp_path: Path, capsys
) -> None:
    assert_refused(
        capsys,
        [
            "--image",
            photo,
            "--prompt",
            PROMPT,
            "--output-dir",
            tmp_path / "s",
            "--model",
            gqa_model,
            "--vision-layers",
            spec,
        ],
        "--vision-layers",
        "the vision tower has",
    )
    assert not (tmp_path / "s").exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("spec", ["last0", "first2", "1,,2", "", "all,1", "1.5"])
def test_malformed_specs_are_refused_before_the_model_loads(spec: str, photo: Path, tmp_path: Path, capsys) -> None:
    assert_refused(
        capsys,
        [
            "--image",
            photo,
            "--prompt",
            PROMPT,
            "--output-dir",
            tmp_path / "s",
            "--model",
            tmp_path / "no-model",
            "--vision-layers",
            spec,
        ],
        "--vision-layers",
        "is malformed",
    )


def test_the_size_estimate_counts_the_vision_files(
    samples: dict[str, Path], gqa_model: Path, photo: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    llm_bytes = fmt.read_meta(samples["plain"])["extraction"]["bytes"]
    meta = fmt.read_meta(samples["all"])
    on_disk = sum(
        (samples["all"] / name).stat().st_size for name in folder_digest(samples["all"]) if name.endswith(".bin")
    )
    assert meta["extraction"]["bytes"] == llm_bytes + fmt.vision_bytes(2, 2, 180) == on_disk
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(
        shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - llm_bytes, llm_bytes)
    )  # room for the LLM files only
    args = [
        "--image",
        photo,
        "--prompt",
        PROMPT,
        "--output-dir",
        tmp_path / "s",
        "--model",
        gqa_model,
        "--vision-layers",
        "all",
    ]
    assert_refused(capsys, args, "the sample needs about", "2 vision blocks x (3 x 180^2 + 180) x 2 bytes")
    assert list(tmp_path.iterdir()) == []


def test_vision_capture_works_through_a_peft_wrapper(gqa_model: Path, photo: Path) -> None:
    """LoRA on the vision qkv: the wrapped tower's blocks are still found, and what is stored is the adapted attention."""
    peft = pytest.importorskip("peft")
    model, processor = load(gqa_model)
    prepared = ADAPTER.prepare(processor, Image.open(photo).convert("RGB"), PROMPT, None)
    bare_modules = vision_attention_modules(model, model.config.vision_config)
    wrapped = peft.get_peft_model(model, peft.LoraConfig(target_modules=["qkv"], r=2, init_lora_weights=False))
    modules = vision_attention_modules(wrapped, wrapped.config.vision_config)
    assert len(modules) == 2 and all(a is b for a, b in zip(modules, bare_modules, strict=True))
    chunks: list[VisionRows] = []
    recorder = VisionRecorder(
        chunks.append, modules, [1], ADAPTER.vision_geometry(model, processor, prepared).block_calls
    )
    grabbed, hooks = grab_block_inputs(wrapped.get_base_model())
    with torch.no_grad(), capturing_sub_models(wrapped, {"vision_config": recorder}):
        wrapped(**prepared.model_inputs, use_cache=False)
    for hook in hooks:
        hook.remove()
    orders = row_major(prepared.model_inputs["image_grid_thw"], processor.image_processor.merge_size)
    adapted = reference(wrapped.get_base_model(), 1, grabbed[1], orders)[0]
    np.testing.assert_allclose(chunks[0].attn.astype(np.float32), adapted, rtol=RTOL, atol=ATOL)
    with wrapped.disable_adapter():
        base = reference(wrapped.get_base_model(), 1, grabbed[1], orders)[0]
    assert np.abs(adapted - base).max() > 1e-3  # the LoRA changed the attention, so the test above tells them apart


def assert_refused(capsys: pytest.CaptureFixture[str], args: list, starts: str, mentions: str) -> None:
    assert run(*args) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.split("\n") if line and not line.startswith("\r")]
    assert len(lines) == 1 and lines[0].startswith(f"error: {starts}") and mentions in lines[0], err
