"""Nothing the user has is lost: foreign folders are never replaced, runs never clobber each other, stops leave nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.dev.synthetic import write_synthetic
from vlm_attention_viz.safe_write import host_label

from conftest import cli_process, folder_digest, run, striped_image

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"


def user_folder(root: Path) -> Path:
    folder = root / "p"
    (folder / "sub").mkdir(parents=True)
    (folder / "meta.json").write_text('{"x": 1}')
    (folder / "results.csv").write_text("data\n")
    (folder / "sub" / "n.txt").write_text("n")
    return folder


def test_demo_and_overwrite_never_replace_a_folder_of_user_files(
    tmp_path: Path, gqa_model: Path, photo: Path, capsys
) -> None:
    folder = user_folder(tmp_path)
    before = folder_digest(folder)
    assert run("demo", "--output-dir", folder) == 2
    assert run("--image", photo, "--prompt", "Hi", "--output-dir", folder, "--model", gqa_model, "--overwrite") == 2
    err = capsys.readouterr().err
    assert err.count("error: ") == 2 and "results.csv" in err and "Traceback" not in err
    assert folder_digest(folder) == before


def test_a_sample_with_extra_user_files_is_not_replaced(tmp_path: Path) -> None:
    target = write_synthetic(tmp_path / "s", 40, 2, 2, 2, 0, overwrite=False)
    (target / "notes.txt").write_text("mine")
    with pytest.raises(fmt.FormatError, match="notes.txt"):
        write_synthetic(target, 40, 2, 2, 2, 1, overwrite=True)
    assert (target / "notes.txt").read_text() == "mine"


def test_two_runs_into_one_target_keep_the_first_sample_and_fail_the_second(tmp_path: Path) -> None:
    target = tmp_path / "s"
    first, second = fmt.SampleWriter(target), fmt.SampleWriter(target)  # both start before either commits
    with first:
        source = write_synthetic(tmp_path / "a", 40, 2, 2, 2, 0, overwrite=False)
        for name in fmt.sample_files(fmt.read_meta(source)):
            shutil.copy(source / name, first.tmp / name)
        first.commit(fmt.read_meta(source))
    kept = folder_digest(target)
    with second, pytest.raises(fmt.FormatError, match="appeared while this run was writing"):
        for name in fmt.sample_files(fmt.read_meta(source)):
            shutil.copy(source / name, second.tmp / name)
        second.commit(fmt.read_meta(source))
    assert folder_digest(target) == kept
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_overwrite_swaps_in_the_new_sample_and_removes_the_old(tmp_path: Path) -> None:
    target = write_synthetic(tmp_path / "s", 40, 2, 2, 2, 0, overwrite=False)
    old = folder_digest(target)
    write_synthetic(target, 40, 2, 2, 2, 1, overwrite=True)
    assert folder_digest(target) != old
    fmt.validate_sample(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json", "s"]


def test_a_symlinked_target_is_refused_before_anything_is_written(
    tmp_path: Path, photo: Path, gqa_model: Path, capsys
) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for name in ("link", "dangling"):
        assert run("--image", photo, "--prompt", "Hi", "--output-dir", tmp_path / name, "--model", gqa_model) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "symbolic link" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "link", "real"]


def test_leftovers_of_a_killed_run_are_removed_and_foreign_ones_reported(tmp_path: Path, capsys) -> None:
    ours = tmp_path / f".s.partial-{host_label()}-999999-dead"  # pid 999999: no such process
    elsewhere = tmp_path / ".s.partial-otherhost-1-abc"
    shutil.copytree(FIXTURES / "sample_tiny", ours)
    shutil.copytree(FIXTURES / "sample_tiny", elsewhere)
    notes = fmt.prepare_target(tmp_path / "s", overwrite=False)
    assert not ours.exists() and elsewhere.exists()
    assert any("removed" in n and ours.name in n for n in notes)
    assert any("left" in n and elsewhere.name in n and "otherhost" in n for n in notes)


@pytest.mark.parametrize(
    ("signum", "ignore_sigint", "code", "word"),
    [
        (signal.SIGTERM, False, 143, "terminated"),
        (signal.SIGINT, False, 130, "interrupted"),
        (signal.SIGINT, True, 130, "interrupted"),
    ],
    ids=["sigterm", "sigint", "sigint-inherited-as-ignored"],
)
def test_a_stop_signal_mid_capture_leaves_nothing(
    tmp_path: Path, gqa_model: Path, signum: int, ignore_sigint: bool, code: int, word: str
) -> None:
    image = tmp_path / "big.png"
    striped_image(1600, 1200).save(image)
    out = tmp_path / "out"
    process = cli_process(
        "--image",
        image,
        "--prompt",
        "Hi",
        "--output-dir",
        out / "sample",
        "--model",
        gqa_model,
        "--max-pixels",
        4_000_000,
        ignore_sigint=ignore_sigint,
    )
    while not list(out.glob(".sample.partial-*")) and process.poll() is None:
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be stopped"
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == code and "Traceback" not in err and word in err
    assert not out.exists()


def test_ctrl_c_while_the_modules_import_is_one_line(tmp_path: Path, photo: Path) -> None:
    process = cli_process("--image", photo, "--prompt", "Hi", "--output-dir", tmp_path / "s")
    time.sleep(0.4)  # the interpreter is up; torch and transformers are still importing
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in err and err.strip() == "interrupted; nothing was written"


def test_both_listers_list_the_shared_cases_alike(tmp_path: Path) -> None:
    spec = json.loads((FIXTURES / "listing_cases.json").read_text())
    for case in spec["cases"]:
        folder = tmp_path / case["name"]
        if case.get("copy"):
            shutil.copytree(FIXTURES / "sample_tiny", folder)
        folder.mkdir(exist_ok=True)
        if "meta_set" in case:
            meta = json.loads((folder / "meta.json").read_text())
            (folder / "meta.json").write_text(json.dumps({**meta, **case["meta_set"]}))
        for name in case.get("remove", []):
            (folder / name).unlink()
        for name, size in case.get("truncate", {}).items():
            os.truncate(folder / name, size)
        for name, text in case.get("files", {}).items():
            (folder / name).write_text(text)
    assert {"samples": fmt.list_samples(tmp_path)} == spec["expected"]
