"""A background thread that writes attention rows while the model computes the next ones.

The queue is bounded in bytes (about one layer), so the host never holds more than
that much attention waiting for the disk, however long the sequence.
"""

from __future__ import annotations

import errno
import queue
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from .errors import UserError

_STOP = None


class Sized(Protocol):
    @property
    def nbytes(self) -> int: ...


Rows = TypeVar("Rows", bound=Sized)  # AttentionRows, VisionRows: anything that knows its size


class BackgroundWriter(Generic[Rows]):
    def __init__(self, write: Callable[[Rows], None], max_pending_bytes: int) -> None:
        self._write = write
        self._max_pending = max_pending_bytes
        self._pending = 0
        self._room = threading.Condition()
        self._queue: queue.Queue[Rows | None] = queue.Queue()
        self._error: BaseException | None = None
        self.bytes_written = 0
        self._thread = threading.Thread(target=self._run, name="attention-writer", daemon=True)
        self._thread.start()

    def put(self, rows: Rows) -> None:
        """Queue rows for writing; waits while about a layer is already waiting."""
        size = rows.nbytes
        with self._room:
            self._room.wait_for(
                lambda: self._pending == 0 or self._pending + size <= self._max_pending or self._error is not None
            )
            self._raise_if_failed()
            self._pending += size
        self._queue.put(rows)

    def finish(self) -> None:
        """Wait until everything queued is on disk; re-raise a write error here, in the caller's thread."""
        self._queue.put(_STOP)
        self._thread.join()
        self._raise_if_failed()

    def abort(self) -> None:
        """Stop without writing the rest (Ctrl-C, an error elsewhere); the partial sample is removed after."""
        with self._room:
            self._error = self._error or InterruptedError("aborted")
            self._room.notify_all()
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        while (rows := self._queue.get()) is not _STOP:
            if self._error is None:
                try:
                    self._write(rows)
                    self.bytes_written += rows.nbytes
                except BaseException as err:  # handed to the main thread by put()/finish()
                    self._error = err
            with self._room:
                self._pending -= rows.nbytes
                self._room.notify_all()

    def _raise_if_failed(self) -> None:
        err = self._error
        if err is None or isinstance(err, InterruptedError):
            return
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise UserError("the disk filled up while writing the sample; nothing was kept") from None
        raise err
