"""Vision-encoder attention (--vision-layers) equals a float32 reference recomputed from each block's inputs."""

from __future__ import annotations

import shutil
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.attention_capture import AttentionRecorder, capturing_sub_models
from vlm_attention_viz.dev.tiny import TinyShape
from vlm_attention_viz.models import adapter_named
from vlm_attention_viz.models.base import merge_window_orders
from vlm_attention_viz.vision_capture import VisionRecorder, VisionRows, vision_attention_modules

from conftest import TinyCheckpoint, assert_refused, extract_args, folder_digest, run, striped_image
from reference import (
    ADAPTER,
    ATOL,
    PROMPT,
    RTOL,
    assemble,
    batch_geometry,
    grab_block_inputs,
    load,
    processed_images,
    reference_for_photo,
    row_major,
    vision_block_reference,
)


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
        for image, ref in enumerate(vision_block_reference(model, block, grabbed[block], orders)):
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
        "text_config": AttentionRecorder(lambda rows: None, 2, 4, list(range(4, 49))),
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
    args = ["--image", photo, "--prompt", PROMPT, "--output-dir", tmp_path / "s", "--model", gqa_model]
    assert_refused(capsys, [*args, "--vision-layers", spec], "the vision tower has", tmp_path, starts="--vision-layers")
    assert not (tmp_path / "s").exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("spec", ["last0", "first2", "1,,2", "", "all,1", "1.5"])
def test_malformed_specs_are_refused_before_the_model_loads(spec: str, photo: Path, tmp_path: Path, capsys) -> None:
    args = ["--image", photo, "--prompt", PROMPT, "--output-dir", tmp_path / "s", "--model", tmp_path / "no-model"]
    assert_refused(capsys, [*args, "--vision-layers", spec], "is malformed", tmp_path, starts="--vision-layers")


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
    assert_refused(
        capsys, args, "2 vision blocks x (3 x 180^2 + 180) x 2 bytes", tmp_path, starts="the sample needs about"
    )
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
    adapted = vision_block_reference(wrapped.get_base_model(), 1, grabbed[1], orders)[0]
    np.testing.assert_allclose(chunks[0].attn.astype(np.float32), adapted, rtol=RTOL, atol=ATOL)
    with wrapped.disable_adapter():
        base = vision_block_reference(wrapped.get_base_model(), 1, grabbed[1], orders)[0]
    assert np.abs(adapted - base).max() > 1e-3  # the LoRA changed the attention, so the test above tells them apart


# The families whose tower attends over the whole image in one call per block, with their test modules' shapes.
WHOLE_IMAGE_TOWERS = {
    "gemma3": TinyShape(family="gemma3", layers=7, heads=4, kv_heads=2, head_dim=16, hidden=64, seed=5),
    "mistral3": TinyShape(family="mistral3", layers=2, heads=4, kv_heads=2, seed=7),
}


@pytest.mark.parametrize("family", sorted(WHOLE_IMAGE_TOWERS))
def test_a_whole_image_tower_equals_its_eager_output_attentions(
    family: str, photo: Path, tmp_path: Path, tiny_checkpoint: TinyCheckpoint
) -> None:
    """Gemma 3's SigLIP (the fixed square's patches) and Mistral 3's Pixtral (the resized image's, under a block
    mask over one image): every block equals the tower's own eager attention, patches row-major."""
    model_dir = tiny_checkpoint(WHOLE_IMAGE_TOWERS[family])
    sample = tmp_path / "s"
    assert run(*extract_args(photo, sample, model_dir, "--vision-layers", "all")) == 0
    meta = fmt.validate_sample(sample)
    inputs, _ = processed_images(family, model_dir, [photo])
    model = adapter_named(family).model_class.from_pretrained(model_dir, attn_implementation="eager").eval()
    sizes = {"image_sizes": inputs["image_sizes"]} if "image_sizes" in inputs else {}
    with torch.no_grad():
        reference = model.model.vision_tower(inputs["pixel_values"], output_attentions=True, **sizes).attentions
    vision = meta["vision"]
    assert vision["blocks"] == list(range(len(reference))) and vision["seq_len"] == reference[0].shape[-1]
    for i, block in enumerate(reference):
        stored = np.asarray(fmt.open_vision_block(sample, meta, i), np.float32)
        np.testing.assert_allclose(stored, block[0].numpy(), rtol=RTOL, atol=ATOL)
