"""Storage profiles (--store) and subsets (--layers, --heads): through the CLI, every stored value equals the full
sample's, the files have the sizes the profile's formula gives, and bad flags are refused before the model loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vlm_attention_viz import open as open_sample
from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.attention_capture import AttentionRecorder, StoredRows, capturing

from conftest import assert_refused, run
from reference import ADAPTER, ATOL, RTOL, eager_reference

# Each case: the extra flags, the profile, the kept layers and heads of the 2-layer, 4-head tiny model.
CASES = {
    "triangle": (["--store", "triangle"], "triangle", (0, 1), (0, 1, 2, 3)),
    "text-rows": (["--store", "text-rows"], "text-rows", (0, 1), (0, 1, 2, 3)),
    "full subset": (["--layers", "-1", "--heads", "0,3"], "full", (1,), (0, 3)),
    "triangle subset": (["--store", "triangle", "--layers", "0", "--heads", "last2"], "triangle", (0,), (2, 3)),
    "text-rows subset": (["--store", "text-rows", "--heads", "1"], "text-rows", (0, 1), (1,)),
}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory, gqa_model: Path, photo: Path) -> dict[str, Path]:
    """The same image and prompt extracted once in full and once per case."""
    root = tmp_path_factory.mktemp("storage")
    samples = {}
    for name, (flags, *_) in {"full": ([],), **CASES}.items():
        folder = root / name.replace(" ", "_")
        args = ["--image", photo, "--prompt", "Where is it?", "--output-dir", folder, "--model", gqa_model, *flags]
        assert run(*args) == 0
        samples[name] = folder
    return samples


def attention_files(folder: Path, meta: dict) -> dict[str, int]:
    """The sizes of the attention files the storage shapes (layer, mean and max files)."""
    names = meta["layer_files"] + meta["head_mean_files"] + meta["head_max_files"]
    return {name: (folder / name).stat().st_size for name in names}


@pytest.mark.parametrize("case", CASES)
def test_every_stored_value_equals_the_full_samples(extracted: dict[str, Path], case: str) -> None:
    _, profile, layers, heads = CASES[case]
    full, stored = fmt.validate_sample(extracted["full"]), fmt.validate_sample(extracted[case])
    assert stored["storage"] == {"profile": profile, "layers": list(layers), "heads": list(heads)}
    kept_rows = fmt.stored_rows(stored)
    image_rows = np.setdiff1d(np.arange(stored["seq_len"]), kept_rows)
    assert (len(image_rows) > 0) == (profile == "text-rows")
    for layer in layers:
        for head in [*heads, "mean", "max"]:
            want = fmt.read_matrix(extracted["full"], full, layer, head)
            got = fmt.read_matrix(extracted[case], stored, layer, head)
            np.testing.assert_array_equal(got[kept_rows], want[kept_rows])
            assert np.isnan(got[image_rows]).all()
    for measure in fmt.TOKEN_TABLES:  # computed from every layer and head in the capture pass, whatever is stored
        assert (extracted[case] / fmt.token_table_file(measure)).read_bytes() == (
            extracted["full"] / fmt.token_table_file(measure)
        ).read_bytes()
    assert stored["text_to_image"] == full["text_to_image"]


@pytest.mark.parametrize("case", CASES)
def test_files_have_the_sizes_of_the_profile_formula(extracted: dict[str, Path], case: str) -> None:
    _, profile, layers, heads = CASES[case]
    meta = fmt.validate_sample(extracted[case])
    n, text = meta["seq_len"], sum(t["type"] != "image" for t in meta["tokens"])
    matrix = {"full": n * n, "triangle": n * (n + 1) // 2, "text-rows": text * n}[profile] * 2
    sizes = attention_files(extracted[case], meta)
    assert sizes == {
        **{fmt.layer_file(layer): len(heads) * matrix for layer in layers},
        **{fmt.head_mean_file(layer): matrix for layer in layers},
        **{fmt.head_max_file(layer): matrix for layer in layers},
    }
    storage = fmt.Storage.of(meta)
    rollout = (extracted[case] / fmt.ROLLOUT_META_FILE).exists()
    assert rollout == (profile != "text-rows" and len(layers) == 2)
    on_disk = sum(sizes.values()) + sum(
        (extracted[case] / name).stat().st_size
        for name in fmt.sample_files(meta, fmt.read_rollout(extracted[case], meta))
        if name.startswith(("token_", "rollout_layer_"))
    )
    assert on_disk == fmt.stored_bytes(storage, n, text, rollout) == meta["extraction"]["bytes"]


def test_triangle_halves_the_matrices_and_keeps_the_full_rollout(extracted: dict[str, Path]) -> None:
    full, triangle = extracted["full"], extracted["triangle"]
    n = fmt.read_meta(full)["seq_len"]
    assert (triangle / fmt.layer_file(0)).stat().st_size * 2 == (full / fmt.layer_file(0)).stat().st_size * (n + 1) / n
    for layer in range(2):
        assert (triangle / fmt.rollout_file(layer)).read_bytes() == (full / fmt.rollout_file(layer)).read_bytes()


def test_a_full_sample_records_no_storage(extracted: dict[str, Path]) -> None:
    assert "storage" not in fmt.read_meta(extracted["full"])


def test_the_api_reads_each_profile_and_names_what_is_not_kept(extracted: dict[str, Path]) -> None:
    full = open_sample(extracted["full"])
    text_rows = open_sample(extracted["text-rows subset"])
    last = full.seq_len - 1
    np.testing.assert_array_equal(text_rows.image_map(-1, 1, last), full.image_map(-1, 1, last))
    with pytest.raises(fmt.FormatError, match=r"head 0 is not stored in this sample \(it keeps heads 1\)"):
        text_rows.attention(0, 0)
    with pytest.raises(fmt.FormatError, match="layer 0 is not stored"):
        open_sample(extracted["full subset"]).attention(0, "mean")


def test_rollout_refuses_a_text_rows_sample_in_one_line(extracted: dict[str, Path], capsys) -> None:
    assert_refused(
        capsys, ["rollout", extracted["text-rows"]], "holds only the rows of non-image tokens", extracted["text-rows"]
    )


def test_rollout_refuses_a_layer_subset_in_one_line(extracted: dict[str, Path], capsys) -> None:
    folder = extracted["full subset"]
    assert_refused(capsys, ["rollout", folder], "keeps only layers 1", folder)


@pytest.mark.parametrize(
    ("flags", "mentions"),
    [
        (["--store", "diagonal"], "unknown --store 'diagonal'; choose full, triangle, text-rows"),
        (["--layers", "0,,1"], "--layers '0,,1' is malformed"),
        (["--heads", "first2"], "--heads 'first2' is malformed"),
    ],
)
def test_bad_storage_flags_are_refused_before_the_model_loads(
    flags: list[str], mentions: str, photo: Path, tmp_path: Path, capsys
) -> None:
    """The model named does not exist: had it been looked for, the error would name it instead."""
    args = [
        "--image",
        photo,
        "--prompt",
        "Hi",
        "--output-dir",
        tmp_path / "s",
        "--model",
        tmp_path / "no-model",
        *flags,
    ]
    assert_refused(capsys, args, mentions, tmp_path)


@pytest.mark.parametrize(
    ("flags", "mentions"),
    [
        (["--layers", "2"], "--layers 2: layer 2 is out of range; the model has 2 layers"),
        (["--heads", "last5"], "--heads last5: each layer has only 4 heads"),
    ],
)
def test_subsets_beyond_the_model_are_refused_before_anything_is_written(
    flags: list[str], mentions: str, gqa_model: Path, photo: Path, tmp_path: Path, capsys
) -> None:
    args = ["--image", photo, "--prompt", "Hi", "--output-dir", tmp_path / "s", "--model", gqa_model, *flags]
    assert_refused(capsys, args, mentions, tmp_path)


@pytest.fixture(scope="module")
def npy_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vlm_attention_viz.dev.synthetic import write_import_inputs

    return write_import_inputs(tmp_path_factory.mktemp("storage_npy"), seq_len=40, layers=2, heads=3, seed=0)


def import_to(npy: Path, folder: Path, *flags: str) -> Path:
    args = ["import", "--attention", npy / "attention_array.npy", "--tokens", npy / "decoded_tokens.npy"]
    assert run(*args, "--image", npy / "image.png", "--output-dir", folder, "--model-type", "qwen3-vl", *flags) == 0
    return folder


@pytest.mark.parametrize(
    "flags", [["--store", "triangle"], ["--store", "text-rows", "--layers", "1", "--heads", "0,2"]]
)
def test_the_importer_stores_each_profile_with_the_full_imports_values(
    npy_inputs: Path, tmp_path: Path, flags: list[str]
) -> None:
    full_dir = import_to(npy_inputs, tmp_path / "full")
    stored_dir = import_to(npy_inputs, tmp_path / "stored", *flags)
    full, stored = fmt.validate_sample(full_dir), fmt.validate_sample(stored_dir)
    storage = fmt.Storage.of(stored)
    rows = fmt.stored_rows(stored)
    for layer in storage.layers:
        for head in [*storage.heads, "mean", "max"]:
            want = fmt.read_matrix(full_dir, full, layer, head)
            np.testing.assert_array_equal(fmt.read_matrix(stored_dir, stored, layer, head)[rows], want[rows])
    assert (stored_dir / fmt.token_table_file("row_entropy")).read_bytes() == (
        full_dir / fmt.token_table_file("row_entropy")
    ).read_bytes()


def test_the_importer_refuses_bad_storage_flags_before_reading_the_array(tmp_path: Path, capsys) -> None:
    args = [
        "import",
        "--attention",
        tmp_path / "missing.npy",
        "--tokens",
        tmp_path / "t.npy",
        "--image",
        tmp_path / "i.png",
    ]
    assert_refused(
        capsys, [*args, "--output-dir", tmp_path / "s", "--layers", "x"], "--layers 'x' is malformed", tmp_path
    )


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.mark.parametrize("profile", ["triangle", "text-rows"])
def test_the_storage_fixtures_hold_the_values_of_sample_tiny(profile: str) -> None:
    """fixtures/storage/*, which format.ts is tested against too, hold sample_tiny's attention in their profile."""
    full_dir, stored_dir = FIXTURES / "sample_tiny", FIXTURES / "storage" / profile
    full, stored = fmt.validate_sample(full_dir), fmt.validate_sample(stored_dir)
    storage = fmt.Storage.of(stored)
    assert storage.profile == profile
    rows = fmt.stored_rows(stored)
    for layer in storage.layers:
        for head in [*storage.heads, "mean", "max"]:
            want = fmt.read_matrix(full_dir, full, layer, head)
            np.testing.assert_array_equal(fmt.read_matrix(stored_dir, stored, layer, head)[rows], want[rows])


def test_a_profile_without_image_rows_or_some_layers_copies_only_the_stored_rows_off_the_device(
    gqa_model: Path, photo: Path
) -> None:
    """The recorder hands the host the stored layers' stored rows only, each run of consecutive rows as one chunk,
    equal to eager attention there; the text-to-image table still sees every layer."""
    reference, inputs, processor = eager_reference(gqa_model, photo)
    ids = inputs["input_ids"][0].tolist()
    image = [i for i, t in enumerate(ids) if t == processor.image_token_id]
    text_rows = np.array([i for i in range(len(ids)) if i not in set(image)])
    chunks: list = []
    recorder = AttentionRecorder(
        chunks.append, 2, 4, image, row_budget=4 * len(ids) * 4 * 7, stored=StoredRows(frozenset({1}), text_rows)
    )
    model = ADAPTER.load_model(str(gqa_model), "cpu", torch.float32)
    with torch.no_grad(), capturing(model, ADAPTER.language_config_key, recorder):
        model(**inputs, use_cache=False)
    assert {c.layer for c in chunks} == {1}
    rows = np.concatenate([np.arange(c.row0, c.row0 + c.attn.shape[1]) for c in chunks])
    assert np.array_equal(rows, text_rows)
    assert all(c.row0 in (0, image[-1] + 1) or c.row0 % 7 == 0 for c in chunks)  # runs cut only by chunks
    for c in chunks:
        expected = reference[1][:, c.row0 : c.row0 + c.attn.shape[1]]
        np.testing.assert_allclose(c.attn.astype(np.float32), expected, rtol=RTOL, atol=ATOL)
    assert all(np.isfinite(table).all() and table.any() for table in recorder.text_to_image.table())
