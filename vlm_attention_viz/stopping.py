"""Ctrl-C and SIGTERM stop a run the same way: as a KeyboardInterrupt, so every cleanup path runs.

SIGTERM is what `timeout`, Slurm, systemd and `docker stop` send. A process started in the
background by a non-interactive shell inherits SIGINT as ignored; the handler is installed
whatever was inherited, so Ctrl-C (or `kill -INT`) always stops the run.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """A stop signal arrived; `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(signum)


def install_stop_handlers() -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_stopped)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise Stopped; the previous handlers come back after."""
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    install_stop_handlers()
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def exit_code(stop: KeyboardInterrupt) -> int:
    """The shell's convention: 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + getattr(stop, "signum", signal.SIGINT)


def stop_message(stop: KeyboardInterrupt) -> str:
    name = "terminated" if getattr(stop, "signum", signal.SIGINT) == signal.SIGTERM else "interrupted"
    kept = getattr(stop, "kept", "nothing was written")  # a batch sets what it keeps: the samples it finished
    return f"{name}; {kept}"
