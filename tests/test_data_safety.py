"""Nothing the user has is lost: foreign folders are never replaced, runs never clobber each other, stops leave nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.dev.synthetic import write_synthetic
from vlm_attention_viz.safe_write import host_label

from conftest import assert_refused, cli_process, extract_args, folder_digest, run, striped_image

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
    assert run(*extract_args(photo, folder, gqa_model, "--overwrite", prompt="Hi")) == 2
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
        assert run(*extract_args(photo, tmp_path / name, gqa_model, prompt="Hi")) == 2
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
    data, outside = tmp_path / "data", tmp_path / "outside"
    for case in spec["cases"]:
        folder = data / case["name"]
        if "link_to" in case:
            folder.parent.mkdir(exist_ok=True)
            folder.symlink_to(case["link_to"])
            continue
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
        for name in case.get("links_out", []):
            moved = outside / case["name"] / name
            moved.parent.mkdir(parents=True, exist_ok=True)
            (folder / name).rename(moved)
            (folder / name).symlink_to(moved)
    assert {"samples": fmt.list_samples(data)} == spec["expected"]


# Writes a synthetic sample over argv[1], counting the filesystem's namespace operations, and kills itself
# with SIGKILL just before operation number argv[2] (0: never). argv[3] == "no-renameat2" takes the
# fallback path of systems without renameat2. Prints the count.
KILLED_OVERWRITE = """
import errno, os, signal, sys
from pathlib import Path
from vlm_attention_viz import safe_write
from vlm_attention_viz.dev.synthetic import write_synthetic

kill_at, calls = int(sys.argv[2]), [0]

def counted(operation):
    def step(*args, **kwargs):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return operation(*args, **kwargs)
    return step

def no_renameat2(*args):
    raise OSError(errno.ENOSYS, "renameat2 is not available")

for name in ("rename", "replace", "unlink", "rmdir", "mkdir"):
    setattr(os, name, counted(getattr(os, name)))
safe_write._renameat2 = counted(no_renameat2 if sys.argv[3] == "no-renameat2" else safe_write._renameat2)
write_synthetic(Path(sys.argv[1]), 40, 2, 2, 2, 1, overwrite=True)
print(calls[0])
"""


def attention_digest(sample: Path) -> dict[str, str]:
    """Which capture a sample holds: its attention files, whatever meta.json says about when it was written."""
    return {name: digest for name, digest in folder_digest(sample).items() if name.endswith(".bin")}


def killed_overwrite(target: Path, kill_at: int, rename: str) -> tuple[int, str]:
    process = subprocess.run(
        [sys.executable, "-c", KILLED_OVERWRITE, str(target), str(kill_at), rename],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    return process.returncode, process.stdout


@pytest.mark.parametrize("rename", ["renameat2", "no-renameat2"])
def test_an_overwrite_killed_at_any_step_keeps_one_whole_sample_and_the_next_run_cleans_up(
    tmp_path: Path, rename: str
) -> None:
    old = attention_digest(write_synthetic(tmp_path / "old" / "s", 40, 2, 2, 2, 0, overwrite=False))
    new = attention_digest(write_synthetic(tmp_path / "new" / "s", 40, 2, 2, 2, 1, overwrite=False))
    root = tmp_path / "runs"
    code, steps = killed_overwrite(shutil.copytree(tmp_path / "old", root / "0") / "s", 0, rename)
    assert code == 0 and int(steps) > 5
    for kill_at in range(1, int(steps) + 1):
        target = shutil.copytree(tmp_path / "old", root / str(kill_at)) / "s"
        code, _ = killed_overwrite(target, kill_at, rename)
        assert code == -signal.SIGKILL
        notes = fmt.prepare_target(target, overwrite=True)
        hidden = [p.name for p in target.parent.iterdir() if p.name.startswith(".")]
        if target.exists():
            assert attention_digest(target) in (old, new), kill_at
            fmt.validate_sample(target)
            assert hidden == [], (kill_at, hidden)
        else:  # the swap without renameat2 was cut between its renames: the old sample waits, reported
            assert rename == "no-renameat2" and len(hidden) == 1 and hidden[0].endswith("_parked"), hidden
            assert attention_digest(target.parent / hidden[0]) == old
            assert any("move it back" in note for note in notes), notes


def immutable(folder: Path) -> bool:
    """chattr +i: a folder that even root cannot change; False where the filesystem has no such flag."""
    return shutil.which("chattr") is not None and subprocess.run(["chattr", "+i", folder]).returncode == 0


@pytest.mark.parametrize("frozen", ["parent", "sample"])
def test_a_read_only_place_is_refused_in_one_line_and_the_old_sample_is_kept(
    tmp_path: Path, gqa_model: Path, photo: Path, frozen: str, capsys
) -> None:
    parent = tmp_path / "out"
    sample = write_synthetic(parent / "s", 40, 2, 2, 2, 0, overwrite=False)
    before = folder_digest(parent)
    if not immutable(sample if frozen == "sample" else parent):
        pytest.skip("this filesystem has no immutable flag")
    try:
        args = ["--image", photo, "--prompt", "Hi", "--output-dir", sample, "--model", gqa_model, "--overwrite"]
        assert_refused(capsys, args, "cannot", parent)
        assert folder_digest(parent) == before
    finally:
        subprocess.run(["chattr", "-i", sample if frozen == "sample" else parent], check=True)
    assert sorted(p.name for p in parent.iterdir()) == ["index.json", "s"]


# argv[1]: "in-finalizer" sends SIGTERM from inside a __del__; "after-stop" stops the run, then lets a finalizer
# of a half-built object fail, as a stop that cuts a constructor short does.
STOP_IN_FINALIZERS = """
import os, signal, sys, time
from vlm_attention_viz.stopping import Stopped, install_stop_handlers

install_stop_handlers()

class SignalsWhileCollected:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)

class HalfBuilt:
    def __del__(self):
        raise AttributeError("'HalfBuilt' object has no attribute 'bar'")

try:
    if sys.argv[1] == "in-finalizer":
        SignalsWhileCollected()
        time.sleep(2)
    else:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(2)
except Stopped as stop:
    HalfBuilt()
    print("stopped", stop.signum)
"""


@pytest.mark.parametrize("where", ["in-finalizer", "after-stop"])
def test_a_stop_in_or_after_a_finalizer_is_one_clean_stop(where: str) -> None:
    done = subprocess.run([sys.executable, "-c", STOP_IN_FINALIZERS, where], capture_output=True, text=True, cwd=REPO)
    assert done.stdout.strip() == f"stopped {signal.SIGTERM}" and done.stderr == "", done.stderr
