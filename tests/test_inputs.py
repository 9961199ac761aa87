"""Images in every common mode are converted as a user expects; odd sizes are handled by the processor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.images import load_image

from conftest import extract_args, run, striped_image


def save(image: Image.Image, path: Path) -> Path:
    image.save(path)
    return path


def test_transparent_pixels_become_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    image, _ = load_image(save(rgba, tmp_path / "a.png"))
    assert image.mode == "RGB" and image.getpixel((1, 1)) == (255, 255, 255) and image.getpixel((0, 0)) == (0, 0, 255)


def test_palette_grey_and_cmyk_become_rgb(tmp_path: Path) -> None:
    indexed = Image.new("P", (8, 8), 1)
    indexed.putpalette([0, 0, 0, 10, 200, 30])
    palette, _ = load_image(save(indexed, tmp_path / "p.png"))
    grey, _ = load_image(save(Image.new("L", (8, 8), 77), tmp_path / "l.png"))
    cmyk, file_format = load_image(save(Image.new("CMYK", (8, 8), (0, 0, 0, 0)), tmp_path / "c.jpg"))
    assert palette.getpixel((3, 3)) == (10, 200, 30)
    assert grey.getpixel((3, 3)) == (77, 77, 77)
    assert file_format == "JPEG" and cmyk.mode == "RGB" and min(cmyk.getpixel((3, 3))) >= 250  # no ink = white


def test_sixteen_bit_scales_to_eight_bits(tmp_path: Path) -> None:
    values = np.array([[0, 32896, 65535]], dtype=np.uint16)
    image, _ = load_image(save(Image.fromarray(values), tmp_path / "deep.png"))
    assert [image.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


@pytest.mark.parametrize(
    "name, make",
    [
        ("rgba.png", lambda: striped_image(64, 48).convert("RGBA")),
        ("palette.png", lambda: striped_image(64, 48).convert("P")),
        ("grey.png", lambda: striped_image(64, 48).convert("L")),
        ("cmyk.jpg", lambda: striped_image(64, 48).convert("CMYK")),
        ("deep.png", lambda: Image.fromarray(np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20)),
        ("dot.png", lambda: Image.new("RGB", (1, 1), (9, 9, 9))),
    ],
)
def test_extraction_accepts_every_image_mode(name: str, make, gqa_model: Path, tmp_path: Path) -> None:
    image = save(make(), tmp_path / name)
    assert run(*extract_args(image, tmp_path / "out", gqa_model, prompt="What is this?")) == 0
    meta = fmt.validate_sample(tmp_path / "out")
    assert meta["original_image_size"] == list(Image.open(image).size)
    width, height = meta["image_size"]
    assert width * height >= 64 * 64  # the processor's minimum, reached even from 1x1
    assert Image.open(tmp_path / "out" / meta["image_path"]).size == Image.open(image).size


def test_huge_image_is_held_to_max_pixels(gqa_model: Path, tmp_path: Path) -> None:
    image = save(striped_image(3000, 2000), tmp_path / "huge.jpg")
    cap = 256 * 192
    assert run(*extract_args(image, tmp_path / "out", gqa_model, "--max-pixels", cap, prompt="Hi")) == 0
    meta = fmt.read_meta(tmp_path / "out")
    width, height = meta["image_size"]
    assert width * height <= cap and meta["image_grid"]["rows"] * meta["image_grid"]["cols"] <= cap // 1024
    assert meta["original_image_size"] == [3000, 2000] and meta["image_path"] == "image.jpg"


def test_model_type_given_explicitly_matches_detection(gqa_model: Path, photo: Path, tmp_path: Path) -> None:
    assert run(*extract_args(photo, tmp_path / "a", gqa_model, "--model-type", "qwen3-vl", prompt="Hi")) == 0
    assert run(*extract_args(photo, tmp_path / "b", gqa_model, prompt="Hi")) == 0
    assert fmt.read_meta(tmp_path / "a")["model_type"] == fmt.read_meta(tmp_path / "b")["model_type"] == "qwen3-vl"
    assert (tmp_path / "a" / "attn_layer_01.bin").read_bytes() == (tmp_path / "b" / "attn_layer_01.bin").read_bytes()
    index = fmt.list_samples(tmp_path)
    assert [entry["name"] for entry in index] == ["a", "b"]
