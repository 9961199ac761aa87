"""The per-token tables and the rollout: what the extractor, the importer and `rollout` store equals a NumPy
reference computed from the stored layer files; `rollout` adds exactly its files, or refuses, or leaves nothing."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from analysis_reference import assert_tables_and_rollout_match, components_8
from analysis_reference import spatial_entropy as reference_entropy
from PIL import Image
from test_import import HEADS, LAYERS, SPAN, TEXTS, N, causal_attention, import_args

from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.analysis import _labels_by_propagation, component_labels, spatial_entropy
from vlm_attention_viz.dev.synthetic import build_tokens

from conftest import cli_process, extract_args, folder_digest, run


def rollout_names(layers: int) -> set[str]:
    return {fmt.ROLLOUT_META_FILE, *(fmt.rollout_file(layer) for layer in range(layers))}


def test_extracted_sample_holds_tables_and_rollout_equal_to_the_references(
    gqa_model: Path, photo: Path, tmp_path: Path
) -> None:
    assert run(*extract_args(photo, tmp_path / "s", gqa_model, prompt="Where is it?")) == 0
    assert_tables_and_rollout_match(tmp_path / "s")


def test_extracted_sample_without_rollout_has_none(gqa_model: Path, photo: Path, tmp_path: Path) -> None:
    args = ["--image", photo, "--prompt", "Hi", "--output-dir", tmp_path / "s", "--model", gqa_model, "--no-rollout"]
    assert run(*args) == 0
    meta = fmt.validate_sample(tmp_path / "s")
    assert fmt.read_rollout(tmp_path / "s", meta) is None
    assert not {p.name for p in (tmp_path / "s").iterdir()} & rollout_names(meta["num_layers"])


@pytest.fixture(scope="module")
def import_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("analysis_import")
    np.save(folder / "attention.npy", causal_attention(LAYERS, HEADS, N, seed=5).astype(np.float32))
    np.save(folder / "tokens.npy", TEXTS)
    Image.new("RGB", (320, 200), (30, 120, 200)).save(folder / "image.png")
    return folder


def test_imported_sample_holds_tables_and_rollout_equal_to_the_references(import_inputs: Path, tmp_path: Path) -> None:
    assert run(*import_args(import_inputs, tmp_path / "s", "--image-span", *SPAN, "--grid", "5x8")) == 0
    assert_tables_and_rollout_match(tmp_path / "s")


def test_rollout_adds_exactly_its_files_to_an_imported_sample(import_inputs: Path, tmp_path: Path) -> None:
    sample = tmp_path / "data" / "s"
    assert run(*import_args(import_inputs, sample, "--image-span", *SPAN, "--no-rollout")) == 0
    before = folder_digest(tmp_path)
    assert run("rollout", sample, "--device", "cpu") == 0
    after = folder_digest(tmp_path)
    added = {name.removeprefix("data/s/") for name in set(after) - set(before)}
    assert added == rollout_names(fmt.read_meta(sample)["num_layers"])
    assert {name: after[name] for name in before} == before  # meta.json, index.json and the rest: byte-identical
    assert_tables_and_rollout_match(sample)


@pytest.mark.parametrize("name", ["sample_tiled", "sample_two_images", "sample_padded"])
def test_region_fixtures_hold_tables_and_rollout_equal_to_the_references(name: str) -> None:
    assert_tables_and_rollout_match(Path(__file__).resolve().parents[1] / "fixtures" / "layouts" / name)


def test_spatial_entropy_matches_the_reference_on_shaped_maps() -> None:
    rows, cols = 6, 7
    rng = np.random.default_rng(0)
    snake = np.zeros((rows, cols))
    snake[0, :], snake[1:, -1], snake[-1, :], snake[2, 1:], snake[3, 1] = 1, 1, 1, 1, 1  # one long component
    diagonal = np.eye(rows, cols)  # touching only at corners: one component under 8-connectivity
    two_blobs = np.zeros((rows, cols))
    two_blobs[:2, :2], two_blobs[4:, 4:] = 3.0, 1.0
    maps = [snake, diagonal, two_blobs, rng.random((rows, cols)), np.full((rows, cols), 0.2), np.zeros((rows, cols))]
    values = torch.tensor(np.stack(maps).reshape(len(maps), -1), dtype=torch.float16)
    computed = spatial_entropy(values, rows, cols).numpy()
    expected = [reference_entropy(m.astype(np.float16).astype(np.float64)) for m in maps]
    np.testing.assert_allclose(computed, expected, rtol=1e-6, atol=1e-7, equal_nan=True)
    assert len(components_8(diagonal > diagonal.mean())) == 1 and computed[1] == 0
    assert np.isnan(computed[4]) and np.isnan(computed[5])  # equal values, and no image attention: undefined


def test_both_labellings_find_the_same_components() -> None:
    """SciPy's (the CPU's) and the propagation (a GPU's) split every map into the same components: over the
    pixels of the mask, each label of one is exactly one label of the other."""
    mask = torch.from_numpy(np.random.default_rng(1).random((64, 9, 13)) > 0.55)
    components = []
    for keep, host, device in zip(mask.flatten(1), component_labels(mask), _labels_by_propagation(mask), strict=True):
        pairs = set(zip(host[keep].tolist(), device[keep].tolist(), strict=True))
        assert len({a for a, _ in pairs}) == len({b for _, b in pairs}) == len(pairs)
        components.append(len(pairs))
    assert max(components) > 3  # the maps are split into many components, so the test tells labellings apart


def write_sample_without_rollout(folder: Path, n: int, layers: int) -> Path:
    """A valid sample whose head means are uniform causal rows (every head alike), made without any rollout."""
    tokens, grid = build_tokens(n)
    mean = np.tril(np.ones((n, n))) / np.arange(1, n + 1)[:, None]
    with fmt.SampleWriter(folder) as writer:
        for layer in range(layers):
            writer.write_layer(layer, mean[None].astype(np.float16), mean.astype(np.float16), mean.astype(np.float16))
        (writer.tmp / "image.png").write_bytes(
            (Path(__file__).parents[1] / "fixtures/sample_tiny/image.png").read_bytes()
        )
        meta = fmt.build_meta(
            model="test",
            mode="prefill",
            prompt="p",
            image_path="image.png",
            image_size=(224, 96),
            original_image_size=(224, 96),
            num_layers=layers,
            num_heads=1,
            tokens=tokens,
            image_grid=grid,
        )
        return writer.commit(meta)


def test_rollout_refuses_a_folder_that_is_not_a_sample_or_already_has_one(tmp_path: Path, capsys) -> None:
    user = tmp_path / "mine"
    user.mkdir()
    (user / "meta.json").write_text('{"x": 1}')
    (user / "notes.txt").write_text("mine")
    sample = write_sample_without_rollout(tmp_path / "s", 40, 2)
    assert run("rollout", sample) == 0
    capsys.readouterr()
    before = folder_digest(tmp_path)
    for folder, words in [
        (user, "not a sample"),
        (sample, "already has a rollout"),
        (tmp_path / "nowhere", "not a folder"),
    ]:
        assert run("rollout", folder) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and words in err and err.count("\n") == 1, err
    assert folder_digest(tmp_path) == before


def test_rollout_refuses_layer_files_without_rollout_json(tmp_path: Path, capsys) -> None:
    sample = write_sample_without_rollout(tmp_path / "s", 40, 2)
    (sample / fmt.rollout_file(0)).write_bytes(b"left by a run killed while it renamed")
    before = folder_digest(sample)
    assert run("rollout", sample) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fmt.rollout_file(0) in err and "remove them" in err
    assert folder_digest(sample) == before


def start_rollout_and_wait_for_its_partial_files(sample: Path):
    process = cli_process("rollout", sample, "--device", "cpu")
    while not list(sample.glob(".rollout_layer_*.partial-*")) and process.poll() is None:
        time.sleep(0.01)
    assert process.poll() is None, "the rollout ended before it could be stopped"
    return process


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["sigterm", "sigint"])
def test_a_stop_signal_mid_rollout_leaves_the_sample_as_it_was(tmp_path: Path, signum: int, code: int) -> None:
    sample = write_sample_without_rollout(tmp_path / "s", 1200, 6)
    before = folder_digest(tmp_path)
    process = start_rollout_and_wait_for_its_partial_files(sample)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == code and "Traceback" not in err and "nothing was written" in err
    assert folder_digest(tmp_path) == before


def test_after_a_kill_the_next_rollout_removes_the_partial_files_and_completes(tmp_path: Path, capsys) -> None:
    sample = write_sample_without_rollout(tmp_path / "s", 1200, 6)
    before = folder_digest(sample)
    process = start_rollout_and_wait_for_its_partial_files(sample)
    process.kill()
    process.communicate(timeout=120)
    left = [p.name for p in sample.iterdir() if p.name not in before]
    assert left and all(name.startswith(".") and fmt.is_sample_file(name) for name in left)  # nothing visible
    fmt.validate_sample(sample)
    foreign = sample / ".rollout_layer_00.bin.partial-otherhost-1-abc"
    foreign.write_bytes(b"another host's run")
    assert run("rollout", sample, "--device", "cpu") == 0
    err = capsys.readouterr().err
    assert err.count("removed .rollout_layer_") == len(left) and "otherhost" in err
    after = folder_digest(sample)
    assert set(after) - set(before) == rollout_names(6) | {foreign.name}
    assert {name: after[name] for name in before} == before
