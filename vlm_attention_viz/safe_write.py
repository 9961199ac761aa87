"""Filesystem steps that never lose data: atomic renames that cannot replace, swaps, and leftovers of killed runs.

A run writes into a hidden sibling named `.NAME.partial-HOST-PID-RANDOM`, so a later run
can tell whose it was: a leftover of a dead process on this host whose files are all a
sample's is removed; any other is reported with its size and left alone.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_PARTIAL = re.compile(r"\.(?P<name>.+)\.partial-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[A-Za-z0-9_]+")
PARKED_SUFFIX = "_parked"


def _renameat2(source: Path, destination: Path, flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "renameat2"):
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    if libc.renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(destination), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(destination))


def rename_noreplace(source: Path, destination: Path) -> None:
    """Move source to destination, failing with FileExistsError if anything is there, with no window between check and move."""
    try:
        _renameat2(source, destination, _RENAME_NOREPLACE)
    except OSError as err:
        if err.errno == errno.EEXIST:
            raise FileExistsError(errno.EEXIST, "exists", str(destination)) from None
        if err.errno not in (errno.ENOSYS, errno.EINVAL):
            raise
        # No renameat2 here (not Linux, or a filesystem without it): a hard link claims a file's name atomically,
        # and mkdir a folder's, which rename() may then replace.
        if source.is_file():
            os.link(source, destination)
            os.unlink(source)
            return
        os.mkdir(destination)
        os.rename(source, destination)


def rename_exchange(first: Path, second: Path) -> None:
    """Swap two folders in one step, so each name always shows one complete folder."""
    try:
        _renameat2(first, second, _RENAME_EXCHANGE)
    except OSError as err:
        if err.errno not in (errno.ENOSYS, errno.EINVAL):
            raise
        # Without an atomic swap: three renames, with a moment in which `second` is absent. The parked name
        # marks the old folder, so a run killed in that moment leaves it reported, never removed.
        parked = first.with_name(first.name + PARKED_SUFFIX)
        os.rename(second, parked)
        os.rename(first, second)
        os.rename(parked, first)


def write_json_atomic(path: Path, value: Any) -> None:
    """Write JSON to a private temporary sibling and rename it over `path`: readers see the old file or the new one."""
    fd, tmp = tempfile.mkstemp(prefix=partial_prefix(path), dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(value, f, ensure_ascii=False, indent=1)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def host_label() -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname()) or "host"


def partial_prefix(target: Path) -> str:
    """Hidden, and named after the target, this host and this process, so a later run can tell whether the
    writer is still alive."""
    return f".{target.name}.partial-{host_label()}-{os.getpid()}-"


def make_partial_folder(target: Path) -> Path:
    """A fresh hidden sibling of target."""
    folder = Path(tempfile.mkdtemp(prefix=partial_prefix(target), dir=target.parent))
    folder.chmod(0o755)  # mkdtemp makes it private; a sample is meant to be served
    return folder


def make_partial_file(target: Path) -> Path:
    """A fresh, empty hidden sibling file of target, named after this host and process."""
    fd, name = tempfile.mkstemp(prefix=partial_prefix(target), dir=target.parent)
    os.close(fd)
    os.chmod(name, 0o644)
    return Path(name)


@dataclass
class Leftover:
    """A partial folder that an earlier run of the same target left behind."""

    path: Path
    bytes: int
    removable: bool  # its process is gone and everything in it is a sample's own file
    why_kept: str = ""


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def find_leftovers(target: Path, is_sample_file: Callable[[str], bool]) -> list[Leftover]:
    """The partial folders and files of target's name in its parent, and whether each can be removed safely."""
    parent = target.parent
    if not parent.is_dir():
        return []
    leftovers = []
    for child in sorted(parent.iterdir()):
        match = _PARTIAL.fullmatch(child.name)
        if not match or match["name"] != target.name or child.is_symlink():
            continue
        why = _why_kept(child, match, target, is_sample_file)
        size = folder_bytes(child) if child.is_dir() else child.stat().st_size
        leftovers.append(Leftover(child, size, removable=not why, why_kept=why))
    return leftovers


def find_partial_files(folder: Path, owns: Callable[[str], bool]) -> list[Leftover]:
    """Partial files in folder whose target name `owns` accepts, and whether each can be removed safely."""
    leftovers = []
    for child in sorted(folder.iterdir()):
        match = _PARTIAL.fullmatch(child.name)
        if not match or not owns(match["name"]) or not child.is_file() or child.is_symlink():
            continue
        why = _why_owner_kept(match)
        leftovers.append(Leftover(child, child.stat().st_size, removable=not why, why_kept=why))
    return leftovers


def _why_owner_kept(match: re.Match[str]) -> str:
    """Why a partial file or folder may still be wanted by the run that named it: '' when that run is surely gone."""
    pid = int(match["pid"])
    if match["host"] != host_label():
        return f"written on host {match['host']}"
    if pid == os.getpid() or _process_alive(pid):
        return f"its run (pid {pid}) is still going"
    return ""


def _why_kept(leftover: Path, match: re.Match[str], target: Path, is_sample_file: Callable[[str], bool]) -> str:
    owner = _why_owner_kept(match)
    if owner:
        return owner
    if leftover.name.endswith(PARKED_SUFFIX) and not target.exists():
        return f"it holds the folder an interrupted --overwrite was replacing; move it back to {target.name}"
    if leftover.is_dir():
        foreign = [p.name for p in leftover.iterdir() if not _own_file(p, is_sample_file)]
        if foreign:
            return f"it holds files a sample does not ({', '.join(sorted(foreign)[:3])})"
    return ""


def _own_file(path: Path, is_sample_file: Callable[[str], bool]) -> bool:
    """A sample's file, or the temporary file of one that was being written."""
    if path.is_dir() or path.is_symlink():
        return False
    partial = _PARTIAL.fullmatch(path.name)
    return is_sample_file(partial["name"] if partial else path.name)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True


def remove_tree(path: Path) -> None:
    """Remove a folder or file this tool wrote."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
