"""`python -m vlm_attention_viz batch`: one sample per manifest line, the model loaded once.

Resumable: a line whose sample folder already validates is skipped and left as it is;
the partial folder of a killed run is removed and its sample made again (prepare_target).
A bad line is listed with its reason and the others go on. Under `accelerate launch`
the lines are split between the processes (PartialState.split_between_processes); each
writes only its own samples, and only the main process writes index.json, once every
process is done.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from tqdm import tqdm

from . import sample_format as fmt
from .errors import UserError
from .extract import LoadedModel, Request, capture_loaded, check_inputs, check_options, load_model

# Keys of a manifest line and the type each must have; the first three are required.
MANIFEST_FIELDS: dict[str, type] = {"image": str, "prompt": str, "id": str, "mode": str, "max_new_tokens": int}
REQUIRED_FIELDS = ("image", "prompt", "id")
# How long a process that finished its share waits at the end for the slowest one.
FINISH_TIMEOUT = timedelta(days=7)


@dataclass
class Item:
    line: int
    id: str
    image: Path
    prompt: str
    options: dict[str, Any]  # Request fields this line sets (mode, max_new_tokens)


@dataclass
class Failure:
    line: int
    id: str | None
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}" + (f" ({self.id})" if self.id else "") + f": {self.reason}"


@dataclass
class ProcessReport:
    """What one process did with its share of the manifest."""

    process: int
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)


@dataclass
class BatchResult:
    output_dir: Path
    reports: list[ProcessReport]  # every process's, on the main process; empty on the others
    manifest_failures: list[Failure]
    seconds: float

    @property
    def failures(self) -> list[Failure]:
        return sorted(self.manifest_failures + [f for r in self.reports for f in r.failed], key=lambda f: f.line)

    @property
    def exit_code(self) -> int:
        """1 when a line failed, from the main process only: the others leave the verdict to it."""
        return 1 if self.reports and self.failures else 0

    def summary(self) -> str:
        if not self.reports:
            return ""
        written = sum(len(r.written) for r in self.reports)
        skipped = sum(len(r.skipped) for r in self.reports)
        lines = [
            f"batch {self.output_dir}: {written} written, {skipped} skipped (already there), "
            f"{len(self.failures)} failed, in {self.seconds:.1f} s; index.json lists {len(fmt.list_samples(self.output_dir))} samples"
        ]
        lines += [f"  failed {failure}" for failure in self.failures]
        return "\n".join(lines)


def read_manifest(path: Path, base: Path | None = None) -> tuple[list[Item], list[Failure]]:
    """The good lines as items, the bad ones with their reasons. Image paths are relative to the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"manifest not found: {path}")
    base = path.parent if base is None else base
    items: list[Item] = []
    failures: list[Failure] = []
    seen: set[str] = set()
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            item = parse_line(number, text, base)
        except ValueError as err:
            failures.append(Failure(number, line_id(text), str(err)))
            continue
        if item.id in seen:
            failures.append(Failure(number, item.id, f"the id {item.id!r} is used by an earlier line"))
            continue
        seen.add(item.id)
        items.append(item)
    return items, failures


def parse_line(number: int, text: str, base: Path) -> Item:
    try:
        entry = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not a JSON object ({err.msg})") from None
    if not isinstance(entry, dict):
        raise ValueError('not a JSON object; each line is {"image": path, "prompt": text, "id": name}')
    unknown = sorted(set(entry) - set(MANIFEST_FIELDS))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; a line holds {', '.join(MANIFEST_FIELDS)}")
    for key in REQUIRED_FIELDS:
        if key not in entry:
            raise ValueError(f"lacks {key!r}")
    for key, kind in MANIFEST_FIELDS.items():
        if key in entry and (not isinstance(entry[key], kind) or isinstance(entry[key], bool)):
            raise ValueError(f"{key!r} must be a {kind.__name__}")
    name = entry["id"]
    if not name or name.startswith(".") or Path(name).name != name:
        raise ValueError(f"the id {name!r} must be a plain folder name, not hidden")
    if not entry["prompt"].strip():
        raise ValueError("the prompt is empty")
    options = {key: entry[key] for key in MANIFEST_FIELDS if key not in REQUIRED_FIELDS and key in entry}
    return Item(number, name, base / entry["image"], entry["prompt"], options)


def line_id(text: str) -> str | None:
    """The id of a line that failed to parse, when it has a readable one."""
    try:
        entry = json.loads(text)
    except json.JSONDecodeError:
        return None
    return entry.get("id") if isinstance(entry, dict) and isinstance(entry.get("id"), str) else None


def run_batch(manifest: Path, output_dir: Path, template: Request) -> BatchResult:
    """Every line of the manifest into output_dir/ID, with template's model, device and mode options."""
    started = time.perf_counter()
    check_options(template)
    items, manifest_failures = read_manifest(manifest)
    state = process_state(template.device)
    check_output_dir(output_dir)
    if state.num_processes > 1 and template.device == "auto":
        raise UserError("--device auto spreads one model over every GPU; with several processes leave --device out")
    with state.split_between_processes(items) as share:
        report = run_share(share, output_dir, process_template(template, state), state)
    reports = gather_reports(report)
    if state.is_main_process:
        fmt.write_index(output_dir)
    return BatchResult(
        output_dir, reports if state.is_main_process else [], manifest_failures, time.perf_counter() - started
    )


def check_output_dir(output_dir: Path) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"--output-dir {output_dir} exists and is not a folder")
    output_dir.mkdir(parents=True, exist_ok=True)


def process_state(device: str | None) -> Any:
    """accelerate's view of the processes; on the CPU it must be told so, or every process takes the whole manifest."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    cpu = device == "cpu" or parse_flag_from_env("ACCELERATE_USE_CPU")
    state = PartialState(cpu=cpu, timeout=FINISH_TIMEOUT)
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if state.num_processes != launched:  # each process would take every line, and they would collide
        raise UserError(
            f"{launched} processes were launched but accelerate sees {state.num_processes}; on the CPU pass --device cpu "
            "or set ACCELERATE_USE_CPU=1"
        )
    return state


def process_template(template: Request, state: Any) -> Request:
    """Several processes: each on its own GPU (accelerate's device for it), unless all run on the CPU."""
    if state.num_processes > 1 and template.device in (None, "cuda"):
        return replace(template, device=str(state.device))
    return template


def run_share(items: list[Item], output_dir: Path, template: Request, state: Any) -> ProcessReport:
    report = ProcessReport(state.process_index)
    label = f"batch {state.process_index + 1}/{state.num_processes}" if state.num_processes > 1 else "batch"
    todo = []
    for item in items:
        if is_finished(output_dir / item.id):
            report.skipped.append(item.id)
        else:
            todo.append(item)
    if not todo:
        return report
    loaded = load_model(template)
    bar = tqdm(total=len(todo), unit="sample", desc=label, position=state.process_index)
    try:
        for item in todo:
            capture_item(item, output_dir, template, loaded, report, label)
            bar.update()
    except KeyboardInterrupt as stop:
        stop.kept = f"{len(report.written)} samples written by this process are kept, the one in progress was not; run the batch again to resume"  # type: ignore[attr-defined]
        raise
    finally:
        bar.close()
    return report


def is_finished(target: Path) -> bool:
    try:
        fmt.validate_sample(target)
    except fmt.FormatError:
        return False
    return True


def capture_item(
    item: Item, output_dir: Path, template: Request, loaded: LoadedModel, report: ProcessReport, label: str
) -> None:
    request = replace(
        template,
        image=item.image,
        prompt=item.prompt,
        output_dir=output_dir / item.id,
        progress=False,
        update_index=False,
        **item.options,
    )
    try:
        result = capture_loaded(loaded, request, check_inputs(request), time.perf_counter())
    except (UserError, fmt.FormatError) as err:
        report.failed.append(Failure(item.line, item.id, str(err)))
        tqdm.write(f"{label}: failed {item.id}: {err}")
        return
    report.written.append(item.id)
    tqdm.write(f"{label}: {result.summary()}")


def gather_reports(report: ProcessReport) -> list[ProcessReport]:
    """Every process's report, in process order (a no-op in a single process)."""
    from accelerate.utils import gather_object

    return sorted(gather_object([report]), key=lambda r: r.process)
