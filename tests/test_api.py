"""The Python API: capture() on a model the test loads itself equals the CLI's sample; Sample and plot() read the files."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from transformers import Qwen3VLForConditionalGeneration

import vlm_attention_viz as vav
from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.errors import UserError

from conftest import folder_digest, run
from reference import PROMPT

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "fixtures" / "sample_tiny"
TILED = REPO / "fixtures" / "layouts" / "sample_tiled"
TWO_IMAGES = REPO / "fixtures" / "layouts" / "sample_two_images"
# transformers' deprecation notice, raised inside PEFT's loading; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")


@pytest.fixture(scope="module")
def loaded(gqa_model: Path) -> tuple[Qwen3VLForConditionalGeneration, object]:
    """The tiny model as a user loads it in a notebook, and its processor."""
    model = Qwen3VLForConditionalGeneration.from_pretrained(str(gqa_model)).eval()
    return model, vav.load_processor(str(gqa_model))


def without_seconds(meta: dict) -> dict:
    return {**meta, "extraction": {k: v for k, v in meta["extraction"].items() if k != "seconds"}}


def assert_same_sample(api: Path, cli: Path, except_files: tuple[str, ...] = ()) -> None:
    """Every attention file byte for byte, and meta.json but for the run's duration."""
    skip = {fmt.META_FILE, *except_files}
    api_files = {k: v for k, v in folder_digest(api).items() if k not in skip}
    assert api_files == {k: v for k, v in folder_digest(cli).items() if k not in skip} and len(api_files) > 3
    assert without_seconds(fmt.read_meta(api)) == without_seconds(fmt.read_meta(cli))


@pytest.mark.parametrize("mode", ["prefill", "generate"])
def test_capture_on_a_loaded_model_writes_the_clis_sample(
    loaded: tuple, gqa_model: Path, photo: Path, tmp_path: Path, mode: str
) -> None:
    model, processor = loaded
    cli_args = ["--mode", mode, "--max-new-tokens", "4"]
    assert (
        run("--image", photo, "--prompt", PROMPT, "--output-dir", tmp_path / "cli", "--model", gqa_model, *cli_args)
        == 0
    )
    sample = vav.capture(model, processor, photo, PROMPT, tmp_path / "api", mode=mode, max_new_tokens=4, progress=False)
    assert isinstance(sample, vav.Sample) and sample.path == tmp_path / "api"
    assert_same_sample(tmp_path / "api", tmp_path / "cli")
    table = json.loads((tmp_path / "api" / "meta.json").read_text())["text_to_image"]
    np.testing.assert_array_equal(sample.text_to_image, np.array(table))
    assert sample.text_to_image.shape == (sample.num_layers, sample.num_heads)
    assert json.loads((tmp_path / "index.json").read_text())["samples"][0]["name"] == "api"


def test_capture_with_a_storage_profile_writes_the_clis_sample(
    loaded: tuple, gqa_model: Path, photo: Path, tmp_path: Path
) -> None:
    model, processor = loaded
    flags = ["--store", "text-rows", "--layers", "-1", "--heads", "1,2"]
    assert (
        run("--image", photo, "--prompt", PROMPT, "--output-dir", tmp_path / "cli", "--model", gqa_model, *flags) == 0
    )
    vav.capture(
        model, processor, photo, PROMPT, tmp_path / "api", store="text-rows", layers="-1", heads="1,2", progress=False
    )
    assert_same_sample(tmp_path / "api", tmp_path / "cli")
    assert fmt.read_meta(tmp_path / "api")["storage"] == {"profile": "text-rows", "layers": [1], "heads": [1, 2]}


def test_capture_takes_a_pil_image_and_stores_it_as_png(loaded: tuple, photo: Path, tmp_path: Path) -> None:
    model, processor = loaded
    vav.capture(model, processor, photo, PROMPT, tmp_path / "from_file", progress=False)
    in_memory = Image.open(photo)
    sample = vav.capture(model, processor, in_memory, PROMPT, tmp_path / "from_pil", progress=False)
    assert sample.meta["image_path"] == "image.png"
    assert np.array_equal(np.asarray(sample.image), np.asarray(in_memory.convert("RGB")))
    assert_same_sample(tmp_path / "from_pil", tmp_path / "from_file")


def test_capture_on_a_peft_wrapped_model_writes_the_clis_adapter_sample(
    gqa_model: Path, gqa_lora: Path, photo: Path, tmp_path: Path
) -> None:
    from peft import PeftModel

    args = ["--image", photo, "--prompt", PROMPT, "--model", gqa_model, "--adapter", gqa_lora]
    assert run(*args, "--output-dir", tmp_path / "cli") == 0
    base = Qwen3VLForConditionalGeneration.from_pretrained(str(gqa_model))
    model = PeftModel.from_pretrained(base, str(gqa_lora)).eval()
    processor = vav.load_processor(str(gqa_model))
    sample = vav.capture(model, processor, photo, PROMPT, tmp_path / "api", adapter_path=gqa_lora, progress=False)
    assert sample.meta["adapter"]["peft_type"] == "LORA"
    assert_same_sample(tmp_path / "api", tmp_path / "cli")


def test_capture_refuses_what_the_cli_refuses_with_an_exception_and_writes_nothing(
    loaded: tuple, gqa_model: Path, photo: Path, tmp_path: Path
) -> None:
    model, processor = loaded
    with pytest.raises(UserError, match="the prompt is empty"):
        vav.capture(model, processor, photo, "  ", tmp_path / "s", progress=False)
    with pytest.raises(UserError, match="image not found"):
        vav.capture(model, processor, tmp_path / "nope.png", PROMPT, tmp_path / "s", progress=False)
    with pytest.raises(UserError, match="not qwen2-vl"):
        vav.capture(model, processor, photo, PROMPT, tmp_path / "s", model_type="qwen2-vl", progress=False)
    with pytest.raises(UserError, match="vav.load_processor"):
        vav.capture(model, processor.tokenizer, photo, PROMPT, tmp_path / "s", progress=False)
    assert list(tmp_path.iterdir()) == []
    vav.capture(model, processor, photo, PROMPT, tmp_path / "s", progress=False)
    before = folder_digest(tmp_path / "s")
    with pytest.raises(fmt.FormatError, match="already holds a sample"):
        vav.capture(model, processor, photo, "Another prompt.", tmp_path / "s", progress=False)
    assert folder_digest(tmp_path / "s") == before


def test_sample_accessors_equal_the_files() -> None:
    sample = vav.open(FIXTURE)
    meta = json.loads((FIXTURE / "meta.json").read_text())
    n, heads = meta["seq_len"], meta["num_heads"]
    assert sample.tokens == meta["tokens"] and sample.seq_len == n
    assert sample.grid == (meta["image_grid"]["rows"], meta["image_grid"]["cols"])
    assert sample.image.size == Image.open(FIXTURE / meta["image_path"]).size
    np.testing.assert_array_equal(sample.text_to_image, np.array(meta["text_to_image"]))
    start, end = meta["image_grid"]["start_idx"], meta["image_grid"]["end_idx"]
    for layer in range(meta["num_layers"]):
        stored = np.fromfile(FIXTURE / meta["layer_files"][layer], dtype="<f2").reshape(heads, n, n)
        for head in range(heads):
            np.testing.assert_array_equal(sample.attention(layer, head), stored[head])
            after_image = stored[head, end + 1 :, start : end + 1].sum(axis=1, dtype=np.float32)
            assert sample.text_to_image[layer, head] == pytest.approx(after_image.mean(), abs=1e-6)
        for kind, files in (("mean", "head_mean_files"), ("max", "head_max_files")):
            expected = np.fromfile(FIXTURE / meta[files][layer], dtype="<f2").reshape(n, n)
            np.testing.assert_array_equal(sample.attention(layer, kind), expected)
    start, end = meta["image_grid"]["start_idx"], meta["image_grid"]["end_idx"]
    row = np.fromfile(FIXTURE / meta["layer_files"][1], dtype="<f2").reshape(heads, n, n)[2, n - 1, start : end + 1]
    np.testing.assert_array_equal(sample.image_map(1, 2, n - 1), row.astype(np.float32).reshape(sample.grid))
    np.testing.assert_array_equal(sample.image_map(-1, 2, -1), sample.image_map(1, 2, n - 1))


def test_attention_is_a_read_only_memory_map() -> None:
    matrix = vav.open(FIXTURE).attention(0, 1)
    assert isinstance(matrix, np.memmap) and not matrix.flags.writeable
    with pytest.raises(ValueError):
        matrix[0, 0] = 1


def test_sample_accessors_refuse_indices_outside_the_sample() -> None:
    sample = vav.open(FIXTURE)
    with pytest.raises(IndexError, match="layer 2 is out of range"):
        sample.attention(2, 0)
    with pytest.raises(IndexError, match="head 3"):
        sample.attention(0, 3)
    with pytest.raises(ValueError, match="mean, max"):
        sample.attention(0, "min")
    with pytest.raises(IndexError, match="token 40"):
        sample.image_map(0, "mean", 40)


def test_open_refuses_a_folder_that_is_not_a_sample(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "s")
    (tmp_path / "s" / "attn_layer_01.bin").write_bytes(b"\0" * 10)
    with pytest.raises(fmt.FormatError, match="attn_layer_01.bin has 10 bytes"):
        vav.open(tmp_path / "s")


def test_plot_draws_the_stored_row_over_the_image_with_a_colour_bar_and_caption() -> None:
    sample = vav.open(FIXTURE)
    figure = vav.plot(sample, layer=1, head="max", token=39)
    image_axes, colorbar_axes = figure.axes
    background, overlay = image_axes.get_images()
    assert background.get_array().shape[:2] == (sample.image.height, sample.image.width)
    np.testing.assert_array_equal(np.asarray(overlay.get_array()), sample.image_map(1, "max", 39))
    assert overlay.get_extent() == [0, sample.image.width, sample.image.height, 0]
    assert colorbar_axes.get_ylabel() == "attention"
    title = image_axes.get_title()
    assert "token #39" in title and "layer 1" in title and "max over 3 heads" in title
    assert "head 2" in vav.plot(FIXTURE, layer=0, head=2, token=5).axes[0].get_title()


def test_image_map_of_a_region_sample_is_that_region_s_tokens_in_grid_order() -> None:
    sample = vav.open(TILED)
    meta = json.loads((TILED / "meta.json").read_text())
    n, heads = meta["seq_len"], meta["num_heads"]
    assert sample.regions == meta["image_regions"] and not sample.is_single_grid
    stored = np.fromfile(TILED / meta["layer_files"][1], dtype="<f2").reshape(heads, n, n)[1, n - 1]
    for k, region in enumerate(meta["image_regions"]):
        expected = stored[region["tokens"]].astype(np.float32).reshape(region["rows"], region["cols"])
        np.testing.assert_array_equal(sample.image_map(1, 1, n - 1, region=k), expected)
    assert "1 image in 7 image regions" in repr(sample)


def test_region_samples_refuse_the_single_grid_accessors_and_name_the_regions() -> None:
    sample = vav.open(TWO_IMAGES)
    with pytest.raises(ValueError, match="pass region=0..13"):
        sample.image_map(0, "mean", -1)
    with pytest.raises(ValueError, match="14 regions: see Sample.regions"):
        _ = sample.grid
    with pytest.raises(ValueError, match="Sample.image_span"):
        _ = sample.image_span
    with pytest.raises(IndexError, match="region 14 is out of range"):
        sample.image_map(0, "mean", -1, region=14)
    assert [image.size for image in sample.images] == [tuple(i["original_size"]) for i in sample.meta["images"]]


def test_plot_of_a_region_lays_its_map_over_its_rectangle_of_its_image() -> None:
    sample = vav.open(TWO_IMAGES)
    region = 9  # a tile of the second image
    x, y, w, h = sample.regions[region]["rect"]
    figure = vav.plot(sample, layer=0, head="mean", token=-1, region=region)
    background, overlay = figure.axes[0].get_images()
    assert background.get_array().shape[:2] == (sample.images[1].height, sample.images[1].width)
    np.testing.assert_array_equal(np.asarray(overlay.get_array()), sample.image_map(0, "mean", -1, region=region))
    assert overlay.get_extent() == [x, x + w, y + h, y]  # the stored image is the size the model saw
    assert "region 9 (tile, image 1)" in figure.axes[0].get_title()


def test_importing_the_package_needs_neither_torch_nor_matplotlib() -> None:
    import subprocess
    import sys

    code = "import sys, vlm_attention_viz as vav; vav.open(sys.argv[1]); print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code, str(FIXTURE)], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert out.stdout.split() == ["False", "False"]


def readme_python_api_example() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs(gqa_model: Path, photo: Path, tmp_path: Path, monkeypatch) -> None:
    example = readme_python_api_example()
    assert "Qwen/Qwen3-VL-2B-Instruct" in example and "photo.jpg" in example
    shutil.copy(photo, tmp_path / "photo.jpg")  # a PNG under that name: PIL reads the content
    monkeypatch.chdir(tmp_path)
    exec(compile(example.replace("Qwen/Qwen3-VL-2B-Instruct", str(gqa_model)), "README.md", "exec"), {})
    assert vav.open(tmp_path / "output" / "notebook-sample").num_layers == 2
    assert (tmp_path / "attention.png").stat().st_size > 0
