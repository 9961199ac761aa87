"""`batch`: one model load for a manifest; bad lines listed, the rest written; resumable; split over accelerate processes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.safe_write import host_label

from conftest import run

REPO = Path(__file__).resolve().parents[1]
GOOD = ("cat", "dog", "answer")


def write_manifest(folder: Path, photo: Path, bad: bool = True) -> Path:
    (folder / "photo.png").write_bytes(photo.read_bytes())
    lines = [
        {"image": "photo.png", "prompt": "Describe this image.", "id": "cat"},
        {"image": "photo.png", "prompt": "What is on the left?", "id": "dog"},
        {"image": "photo.png", "prompt": "Answer briefly.", "id": "answer", "mode": "generate", "max_new_tokens": 3},
    ]
    if bad:
        lines[1:1] = [
            {"image": "missing.png", "prompt": "Describe this image.", "id": "lost"},
            {"image": "photo.png", "prompt": " ", "id": "blank"},
        ]
    manifest = folder / "items.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest


def batch(manifest: Path, out: Path, model: Path) -> int:
    return run("batch", "--manifest", manifest, "--output-dir", out, "--model", model, "--device", "cpu")


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def test_bad_lines_are_listed_with_their_reason_and_the_good_ones_written(
    tmp_path: Path, gqa_model: Path, photo: Path, capsys
) -> None:
    out = tmp_path / "out"
    assert batch(write_manifest(tmp_path, photo), out, gqa_model) == 1
    stdout = capsys.readouterr().out
    assert "3 written, 0 skipped (already there), 2 failed" in stdout
    assert f"failed line 2 (lost): image not found: {tmp_path / 'missing.png'}" in stdout
    assert "failed line 3 (blank): the prompt is empty" in stdout
    assert sorted(p.name for p in out.iterdir()) == sorted([*GOOD, "index.json"])
    for name in GOOD:
        fmt.validate_sample(out / name)
    assert fmt.read_meta(out / "answer")["mode"] == "generate"
    index = json.loads((out / "index.json").read_text())
    assert sorted(entry["name"] for entry in index["samples"]) == sorted(GOOD)


def test_manifest_lines_that_do_not_parse_are_listed(tmp_path: Path, gqa_model: Path, capsys) -> None:
    manifest = tmp_path / "items.jsonl"
    manifest.write_text(
        'not json\n[1]\n{"image": "a.png", "prompt": "p"}\n{"image": "a.png", "prompt": "p", "id": "../x"}\n'
        '{"image": "a.png", "prompt": "p", "id": "a", "promt": 1}\n'
    )
    assert batch(manifest, tmp_path / "out", gqa_model) == 1
    stdout = capsys.readouterr().out
    for reason in ("line 1: not a JSON object", "line 2: not a JSON object", "line 3: lacks 'id'"):
        assert reason in stdout
    assert "line 4 (../x): the id '../x' must be a plain folder name" in stdout
    assert "line 5 (a): unknown key 'promt'" in stdout


def test_a_missing_manifest_or_a_bad_flag_is_one_error_line(
    tmp_path: Path, gqa_model: Path, photo: Path, capsys
) -> None:
    assert batch(tmp_path / "none.jsonl", tmp_path / "out", gqa_model) == 2
    assert capsys.readouterr().err == f"error: manifest not found: {tmp_path / 'none.jsonl'}\n"
    manifest = write_manifest(tmp_path, photo, bad=False)
    assert run("batch", "--manifest", manifest, "--output-dir", tmp_path / "out", "--vision-layers", "lastx") == 2
    assert capsys.readouterr().err.startswith("error: ") and not (tmp_path / "out").exists()


def test_a_second_run_skips_finished_samples_and_redoes_the_one_a_killed_run_left(
    tmp_path: Path, gqa_model: Path, photo: Path, capsys
) -> None:
    manifest, out = write_manifest(tmp_path, photo, bad=False), tmp_path / "out"
    assert batch(manifest, out, gqa_model) == 0
    # What a SIGKILL in the middle of "dog" leaves: its partial folder, no sample.
    partial = out / f".dog.partial-{host_label()}-999999-dead"  # pid 999999: no such process
    (out / "dog").rename(partial)
    (partial / "meta.json").unlink()
    kept = {name: mtimes(out / name) for name in ("cat", "answer")}
    capsys.readouterr()
    assert batch(manifest, out, gqa_model) == 0
    stdout = capsys.readouterr().out
    assert "1 written, 2 skipped (already there), 0 failed" in stdout and "wrote " + str(out / "dog") in stdout
    assert {name: mtimes(out / name) for name in kept} == kept
    assert not partial.exists()
    fmt.validate_sample(out / "dog")
    assert len(json.loads((out / "index.json").read_text())["samples"]) == 3


def accelerate_batch(
    manifest: Path, out: Path, model: Path, *flags: str, env: dict[str, str]
) -> subprocess.CompletedProcess:
    """Two gloo processes on the CPU, as README says to start them."""
    command = [
        *(sys.executable, "-m", "accelerate.commands.launch"),
        *("--multi_gpu", "--num_processes", "2", "--num_machines", "1"),
        *("--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"),
        *("-m", "vlm_attention_viz", "batch", "--manifest", str(manifest), "--output-dir", str(out)),
        *("--model", str(model), *flags),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=manifest.parent, timeout=600)


def test_two_accelerate_processes_on_the_cpu_write_every_item_once(
    tmp_path: Path, gqa_model: Path, photo: Path
) -> None:
    manifest, out = write_manifest(tmp_path, photo, bad=False), tmp_path / "out"
    with manifest.open("a") as f:
        f.write(json.dumps({"image": "photo.png", "prompt": "Count the stripes.", "id": "stripes"}) + "\n")
    done = accelerate_batch(manifest, out, gqa_model, "--device", "cpu", env={"ACCELERATE_USE_CPU": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    wrote = re.findall(r"^batch ([12])/2: wrote \S+/(\w+):", done.stdout, re.M)
    assert sorted(name for _, name in wrote) == sorted([*GOOD, "stripes"])  # each item once
    assert {process for process, _ in wrote} == {"1", "2"}  # both processes worked
    assert done.stdout.count("4 written, 0 skipped") == 1  # one summary, from the main process
    index = json.loads((out / "index.json").read_text())
    assert sorted(entry["name"] for entry in index["samples"]) == sorted([*GOOD, "stripes"])
    assert sorted(p.name for p in out.iterdir()) == sorted([*GOOD, "stripes", "index.json"])  # no leftovers


@pytest.mark.skipif(torch.cuda.is_available(), reason="with GPUs, PartialState() does split the processes")
def test_processes_that_accelerate_does_not_split_are_refused(tmp_path: Path, gqa_model: Path, photo: Path) -> None:
    """Without cpu=True, PartialState sees one process in each, and both would take the whole manifest."""
    manifest, out = write_manifest(tmp_path, photo, bad=False), tmp_path / "out"
    env = {key: value for key, value in os.environ.items() if key != "ACCELERATE_USE_CPU"}
    done = accelerate_batch(manifest, out, gqa_model, env={**env, "ACCELERATE_USE_CPU": "0"})
    assert done.returncode != 0
    assert "error: 2 processes were launched but accelerate sees 1" in done.stderr
    assert not out.exists()


@pytest.mark.parametrize("flag", ["--manifest", "--output-dir"])
def test_batch_needs_its_two_paths(flag: str, tmp_path: Path, capsys) -> None:
    args = {"--manifest": str(tmp_path / "m.jsonl"), "--output-dir": str(tmp_path / "o")}
    del args[flag]
    with pytest.raises(SystemExit):
        run("batch", *[x for pair in args.items() for x in pair])
    assert flag in capsys.readouterr().err
