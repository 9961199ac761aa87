"""Bad inputs: one clear line on stderr, a non-zero exit, no traceback, nothing written, nothing lost."""

from __future__ import annotations

import errno
import shutil
import struct
import zlib
from collections import namedtuple
from pathlib import Path

import pytest
import torch

from vlm_attention_viz import sample_format as fmt

from conftest import assert_refused, cli_process, extract_args, run, striped_image


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, gqa_model: Path, photo: Path) -> Path:
    """A parent folder holding one good sample, which every refused run must leave byte-identical."""
    root = tmp_path_factory.mktemp("refusals")
    assert run(*extract_args(photo, root / "out" / "kept", gqa_model, prompt="Hi")) == 0
    return root


def bad_inputs(workspace: Path, gqa_model: Path, photo: Path) -> dict[str, tuple[list, str]]:
    text = workspace / "notes.jpg"
    text.write_text("this is not a picture")
    truncated = workspace / "cut.jpg"
    striped_image(200, 120).save(truncated, quality=95)
    truncated.write_bytes(truncated.read_bytes()[:1500])
    sliver = workspace / "sliver.png"
    striped_image(1, 300).save(sliver)
    weightless = workspace / "weightless"
    if not weightless.exists():
        shutil.copytree(gqa_model, weightless, ignore=shutil.ignore_patterns("*.safetensors"))
    weightless_lora = workspace / "weightless_lora"
    weightless_lora.mkdir(exist_ok=True)
    (weightless_lora / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4}')
    bomb = workspace / "bomb.png"
    if not bomb.exists():
        ihdr = b"IHDR" + struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0)  # declares 50,000 x 50,000 RGB
        chunk = struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
        end = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
        bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk + end)
    cut_weights = workspace / "cut_weights"
    if not cut_weights.exists():
        shutil.copytree(gqa_model, cut_weights)
        weights = next(cut_weights.glob("*.safetensors"))
        weights.write_bytes(weights.read_bytes()[:5000])
    broken_config = workspace / "broken_config"
    if not broken_config.exists():
        shutil.copytree(gqa_model, broken_config, ignore=shutil.ignore_patterns("*.safetensors"))
        (broken_config / "config.json").write_text('{"model_type": ')
    garbage_weights = workspace / "garbage_weights"
    if not garbage_weights.exists():
        shutil.copytree(gqa_model, garbage_weights, ignore=shutil.ignore_patterns("*.safetensors"))
        (garbage_weights / "model.safetensors").write_bytes(struct.pack("<Q", 40) + b"not a JSON header at all" * 3)
    garbage_lora = workspace / "garbage_lora"
    garbage_lora.mkdir(exist_ok=True)
    (garbage_lora / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4}')
    (garbage_lora / "adapter_model.safetensors").write_bytes(b"\xff" * 64)
    kept = workspace / "out" / "kept"
    base = ["--prompt", "Describe.", "--model", gqa_model]
    return {
        "missing image": (
            ["--image", workspace / "nope.png", "--output-dir", kept, "--overwrite", *base],
            "image not found",
        ),
        "text named .jpg": (["--image", text, "--output-dir", kept, "--overwrite", *base], "not an image"),
        "truncated jpeg": (["--image", truncated, "--output-dir", kept, "--overwrite", *base], "truncated"),
        "aspect ratio over 200": (["--image", sliver, "--output-dir", kept, "--overwrite", *base], "aspect ratio"),
        "empty prompt": (
            ["--image", photo, "--output-dir", kept, "--overwrite", "--prompt", "  ", "--model", gqa_model],
            "prompt is empty",
        ),
        "output dir is a file": (["--image", photo, "--output-dir", text, *base], "not a folder"),
        "inside a file": (["--image", photo, "--output-dir", text / "sample", *base], "not a folder"),
        "existing sample": (["--image", photo, "--output-dir", kept, *base], "--overwrite"),
        "unknown model type": (
            ["--image", photo, "--output-dir", kept, "--overwrite", *base, "--model-type", "llava-9"],
            "unknown --model-type",
        ),
        "model without weights": (
            ["--image", photo, "--output-dir", workspace / "out" / "new", "--prompt", "Hi", "--model", weightless],
            "no weights",
        ),
        "folder without config": (
            [
                "--image",
                photo,
                "--output-dir",
                workspace / "out" / "new",
                "--prompt",
                "Hi",
                "--model",
                workspace / "out",
            ],
            "no config.json",
        ),
        "foreign folder": (["--image", photo, "--output-dir", workspace, *base], "not a sample"),
        "zero max pixels": (
            ["--image", photo, "--output-dir", workspace / "out" / "new", *base, "--max-pixels", "0"],
            "--max-pixels",
        ),
        "missing adapter": (
            ["--image", photo, "--output-dir", workspace / "out" / "new", *base, "--adapter", workspace / "no-lora"],
            "no such folder",
        ),
        "adapter without config": (
            ["--image", photo, "--output-dir", workspace / "out" / "new", *base, "--adapter", workspace / "out"],
            "adapter_config.json",
        ),
        "folder as image": (["--image", workspace / "out", "--output-dir", kept, "--overwrite", *base], "is a folder"),
        "decompression bomb": (["--image", bomb, "--output-dir", kept, "--overwrite", *base], "too large"),
        "invalid utf-8 prompt": (
            ["--image", photo, "--output-dir", kept, "--overwrite", "--prompt", "bad \udcff", "--model", gqa_model],
            "UTF-8",
        ),
        "truncated weights": (
            ["--image", photo, "--output-dir", workspace / "out" / "new", "--prompt", "Hi", "--model", cut_weights],
            "damaged or truncated",
        ),
        "broken config.json": (
            ["--image", photo, "--output-dir", workspace / "out" / "new", "--prompt", "Hi", "--model", broken_config],
            "not valid JSON",
        ),
        "garbage weights header": (
            ["--image", photo, "--output-dir", workspace / "out" / "new", "--prompt", "Hi", "--model", garbage_weights],
            "damaged or truncated",
        ),
        "garbage adapter weights": (
            ["--image", photo, "--output-dir", workspace / "out" / "new", *base, "--adapter", garbage_lora],
            "adapter_model.safetensors",
        ),
        "adapter without weights": (
            ["--image", photo, "--output-dir", workspace / "out" / "new", *base, "--adapter", weightless_lora],
            "adapter_model",
        ),
    }


CASES = [
    "missing image",
    "text named .jpg",
    "truncated jpeg",
    "aspect ratio over 200",
    "empty prompt",
    "output dir is a file",
    "inside a file",
    "existing sample",
    "unknown model type",
    "model without weights",
    "folder without config",
    "foreign folder",
    "zero max pixels",
    "missing adapter",
    "adapter without config",
    "adapter without weights",
    "folder as image",
    "decompression bomb",
    "invalid utf-8 prompt",
    "truncated weights",
    "broken config.json",
    "garbage weights header",
    "garbage adapter weights",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_refused(
    case: str, workspace: Path, gqa_model: Path, photo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, mentions = bad_inputs(workspace, gqa_model, photo)[case]
    assert_refused(capsys, args, mentions, workspace)


def test_adapter_for_another_model_is_refused(
    workspace: Path, gqa_model: Path, mha_lora: Path, photo: Path, capsys
) -> None:
    """A LoRA trained on the MHA model's 48-wide projections cannot load onto the GQA model's 64-wide ones."""
    bad_inputs(workspace, gqa_model, photo)
    args = [
        "--image",
        photo,
        "--prompt",
        "Hi",
        "--output-dir",
        workspace / "out" / "new",
        "--model",
        gqa_model,
        "--adapter",
        mha_lora,
    ]
    assert_refused(capsys, args, "size mismatch", workspace)


def test_refuses_with_the_estimate_when_the_disk_lacks_room(
    workspace: Path, gqa_model: Path, photo: Path, capsys, monkeypatch
) -> None:
    bad_inputs(workspace, gqa_model, photo)  # same files present before and after
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 1000, 1000))
    args = ["--image", photo, "--prompt", "Hi", "--output-dir", workspace / "out" / "new", "--model", gqa_model]
    assert_refused(capsys, args, "needs about", workspace)


@pytest.mark.parametrize("model_type", [[], ["--model-type", "qwen3-vl"]], ids=["detected", "given"])
def test_weights_unavailable_offline_get_a_clear_message(model_type: list[str], tmp_path: Path, photo: Path) -> None:
    args = [
        "--image",
        photo,
        "--prompt",
        "Hi",
        "--output-dir",
        tmp_path / "s",
        "--model",
        "nobody-here/no-such-vlm",
        *model_type,
    ]
    process = cli_process(*args, env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    _, err = process.communicate(timeout=120)
    assert process.returncode != 0 and "Traceback" not in err
    assert err.strip().splitlines() == [err.strip()] and "offline" in err
    assert not (tmp_path / "s").exists()


def test_disk_filling_up_mid_write_leaves_nothing(
    workspace: Path, gqa_model: Path, photo: Path, capsys, monkeypatch
) -> None:
    """The disk fills after the first rows are on it: one line, and the partial sample is gone."""
    bad_inputs(workspace, gqa_model, photo)
    real_write = fmt.SampleWriter.write_layer_rows

    def write_then_fill_up(self: fmt.SampleWriter, layer: int, *args) -> None:
        if layer > 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, layer, *args)

    monkeypatch.setattr(fmt.SampleWriter, "write_layer_rows", write_then_fill_up)
    args = ["--image", photo, "--prompt", "Hi", "--output-dir", workspace / "out" / "new", "--model", gqa_model]
    assert_refused(capsys, args, "disk filled up", workspace)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_refused(workspace: Path, gqa_model: Path, photo: Path, capsys) -> None:
    args = [
        "--image",
        photo,
        "--prompt",
        "Hi",
        "--output-dir",
        workspace / "out" / "new",
        "--model",
        gqa_model,
        "--device",
        "cuda",
    ]
    assert_refused(capsys, args, "no CUDA GPU", workspace)
