"""Completion objects for slow actions (move, home), so callers never block a GUI thread.

A `Status` finishes exactly once, with success or with an exception; callbacks run once on
completion (on the thread that completes it). `wait()` re-raises the failure.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from .errors import StatusTimeout


class Status:
    def __init__(self, description: str, timeout_s: float | None = None):
        self.description = description
        self.started_at = time.monotonic()
        self.finished_at: float | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._exception: BaseException | None = None
        self._callbacks: list[Callable[["Status"], None]] = []
        self._timer: threading.Timer | None = None
        if timeout_s is not None:
            self._timer = threading.Timer(timeout_s, self._time_out, args=(timeout_s,))
            self._timer.daemon = True
            self._timer.start()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def success(self) -> bool:
        return self._done.is_set() and self._exception is None

    @property
    def exception(self) -> BaseException | None:
        return self._exception

    @property
    def elapsed_s(self) -> float:
        end = self.finished_at if self.finished_at is not None else time.monotonic()
        return end - self.started_at

    def set_finished(self) -> bool:
        return self._finish(None)

    def set_exception(self, exc: BaseException) -> bool:
        return self._finish(exc)

    def add_callback(self, callback: Callable[["Status"], None]) -> None:
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    def wait(self, timeout_s: float | None = None) -> None:
        """Block until finished; raise the failure, or StatusTimeout if `timeout_s` passes first."""
        if not self._done.wait(timeout_s):
            raise StatusTimeout(f"{self.description}: not finished after {timeout_s:.3g} s")
        if self._exception is not None:
            raise self._exception

    def _time_out(self, timeout_s: float) -> None:
        self._finish(StatusTimeout(f"{self.description}: timed out after {timeout_s:.3g} s"))

    def _finish(self, exc: BaseException | None) -> bool:
        with self._lock:
            if self._done.is_set():
                return False
            self._exception = exc
            self.finished_at = time.monotonic()
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        if self._timer is not None:
            self._timer.cancel()
        for callback in callbacks:
            callback(self)
        return True

    def __repr__(self) -> str:
        state = "pending" if not self.done else ("ok" if self.success else f"failed: {self._exception}")
        return f"<Status {self.description!r} {state}>"
