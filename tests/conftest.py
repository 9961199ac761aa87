"""Tiny real checkpoints of every family (and LoRA adapters on them), each built once per test session and saved
with save_pretrained; the fixtures and helpers the test modules share."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image

from vlm_attention_viz.cli import main
from vlm_attention_viz.dev.tiny import FAMILIES, TinyShape, build_tiny_checkpoint

from reference import PROMPT

# Query heads != KV heads, two layers.
GQA = TinyShape(layers=2, heads=4, kv_heads=2, seed=0)
# Plain multi-head attention, three layers, another width.
MHA = TinyShape(layers=3, heads=3, kv_heads=3, hidden=48, seed=1)


TinyCheckpoint = Callable[[TinyShape], Path]  # the tiny_checkpoint fixture: a shape's checkpoint folder


def checkpoint_key(shape: TinyShape) -> str:
    """A hash of everything a tiny checkpoint is built from: its shape and its family's processor files."""
    family = FAMILIES[shape.family]
    built_from = {
        "shape": dataclasses.asdict(shape),
        "model": family.model_class.__name__,
        "preprocessor": family.preprocessor,
        "processor": family.processor,
        "tokens": dataclasses.asdict(family.tokens),
        "chat_template": family.chat_template,
    }
    return hashlib.sha256(json.dumps(built_from, sort_keys=True).encode()).hexdigest()[:16]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> TinyCheckpoint:
    """Each tiny checkpoint built once per run, cached by checkpoint_key; tests read it, never change it."""
    folder = tmp_path_factory.mktemp("checkpoints")

    def built(shape: TinyShape) -> Path:
        path = folder / f"{shape.family}-{checkpoint_key(shape)}"
        return path if path.is_dir() else build_tiny_checkpoint(path, shape)

    return built


@pytest.fixture(scope="session")
def gqa_model(tiny_checkpoint: TinyCheckpoint) -> Path:
    return tiny_checkpoint(GQA)


@pytest.fixture(scope="session")
def mha_model(tiny_checkpoint: TinyCheckpoint) -> Path:
    return tiny_checkpoint(MHA)


def save_lora(model_dir: Path, folder: Path, seed: int) -> Path:
    """A LoRA on the LLM's q/k/v projections, saved as PEFT does. Random B (init_lora_weights=False) so it
    changes the attention; the usual zero B would leave the model as it was."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen3VLForConditionalGeneration

    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration.from_pretrained(model_dir)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM"
    )
    with warnings.catch_warnings():  # transformers' deprecation notice from inside PEFT
        warnings.simplefilter("ignore", FutureWarning)
        get_peft_model(model, config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def gqa_lora(gqa_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_lora(gqa_model, tmp_path_factory.mktemp("gqa_lora"), seed=3)


@pytest.fixture(scope="session")
def mha_lora(mha_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fits the MHA model only: its projections have other shapes than the GQA model's."""
    return save_lora(mha_model, tmp_path_factory.mktemp("mha_lora"), seed=4)


def striped_image(width: int, height: int) -> Image.Image:
    """Non-uniform content, so attention differs between patches."""
    image = Image.new("RGB", (width, height))
    image.putdata([((x * 7) % 256, (y * 5) % 256, ((x + y) * 3) % 256) for y in range(height) for x in range(width)])
    return image


@pytest.fixture(scope="session")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300x170 px: the processor makes it 288x160 = a 5x9 token grid (non-square, odd sides)."""
    path = tmp_path_factory.mktemp("images") / "photo.png"
    striped_image(300, 170).save(path)
    return path


def run(*args: str | Path) -> int:
    """The CLI as a user runs it, in this process (no model reload cost per test)."""
    return main([str(a) for a in args])


def extract_args(image: Path, output_dir: Path, model: Path, *flags: object, prompt: str = PROMPT) -> list[object]:
    """The extractor's command line for one image, as a user types it, with any further flags."""
    return ["--image", image, "--prompt", prompt, "--output-dir", output_dir, "--model", model, *flags]


def cli_process(*args: str | Path, env: dict[str, str] | None = None, ignore_sigint: bool = False) -> subprocess.Popen:
    """The CLI in its own process, as a shell starts it; ignore_sigint: as a background job of a non-interactive shell."""
    return subprocess.Popen(
        [sys.executable, "-m", "vlm_attention_viz", *map(str, args)],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None,
    )


def folder_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_refused(
    capsys: pytest.CaptureFixture[str], args: list, mentions: str, untouched: Path | None = None, starts: str = ""
) -> None:
    """One `error: STARTS...` line naming MENTIONS on stderr, a non-zero exit, no traceback, and the folder
    `untouched` byte-identical afterwards: nothing written, nothing lost, no partial folder."""
    before = folder_digest(untouched) if untouched else None
    code = run(*args)
    err = capsys.readouterr().err
    assert code != 0
    lines = [line for line in err.split("\n") if line and not line.startswith("\r")]  # minus a progress bar
    assert len(lines) == 1 and lines[0].startswith(f"error: {starts}") and mentions in lines[0], err
    assert "Traceback" not in err
    if untouched:
        assert folder_digest(untouched) == before
