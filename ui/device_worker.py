"""Device calls off the GUI thread: a worker thread that runs jobs in order and answers by signal.

A job is a plain callable. When it returns a hardware `Status` (home, move, jog), the answer is sent
when the Status finishes, so a long move never holds the queue. Answers carry the job's tag, and
the generation the job was submitted in: after `new_generation()` (devices handed over or taken
away) late answers of the old devices can be told apart and ignored.
"""
from __future__ import annotations

import threading
import traceback
from typing import Any, Callable

from PyQt6.QtCore import QObject, QThread, pyqtSignal, pyqtSlot

from hardware.status import Status


def describe_error(exc: BaseException) -> str:
    """One plain line for the integrator: the message, with the type only where it adds something."""
    text = str(exc).strip()
    if isinstance(exc, (ValueError, PermissionError)) or type(exc).__module__.startswith(("hardware", "inspector")):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class DeviceWorker(QObject):
    done = pyqtSignal(str, object, int)  # tag, result, generation
    failed = pyqtSignal(str, str, int)  # tag, message, generation
    _submit = pyqtSignal(str, object, int)

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.generation = 0
        self._pending: dict[str, int] = {}
        self._running = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self.thread = QThread()
        self.thread.setObjectName(name)
        self.moveToThread(self.thread)
        self._submit.connect(self._run)
        self.thread.start()

    # -- GUI side --------------------------------------------------------------------------------------
    def submit(self, tag: str, job: Callable[[], Any]) -> None:
        with self._lock:
            self._pending[tag] = self._pending.get(tag, 0) + 1
        self._submit.emit(tag, job, self.generation)

    def pending(self, tag: str | None = None) -> int:
        """Jobs (of `tag`) submitted and not answered yet, Status waits included."""
        with self._lock:
            return sum(self._pending.values()) if tag is None else self._pending.get(tag, 0)

    def new_generation(self) -> int:
        self.generation += 1
        return self.generation

    def wait_idle(self, timeout_s: float = 5.0) -> bool:
        """Block until no job is queued or running (Status waits not counted as running jobs)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, timeout_s)

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        self.thread.quit()
        self.thread.wait(timeout_ms)

    # -- worker side -----------------------------------------------------------------------------------
    @pyqtSlot(str, object, int)
    def _run(self, tag: str, job: Callable[[], Any], generation: int) -> None:
        with self._lock:
            self._running += 1
        try:
            result = job()
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the GUI as text
            if not isinstance(exc, (ValueError, PermissionError)) and \
                    not type(exc).__module__.startswith(("hardware", "inspector")):
                traceback.print_exc()
            self._answer(tag, generation, error=describe_error(exc))
        else:
            if isinstance(result, Status):
                result.add_callback(lambda status: self._status_done(tag, generation, status))
            else:
                self._answer(tag, generation, result=result)
        finally:
            with self._lock:
                self._running -= 1
                self._idle.notify_all()

    def _status_done(self, tag: str, generation: int, status: Status) -> None:
        if status.success:
            self._answer(tag, generation, result=status)
        else:
            self._answer(tag, generation, error=describe_error(status.exception or RuntimeError("failed")))

    def _answer(self, tag: str, generation: int, *, result: Any = None, error: str | None = None) -> None:
        with self._lock:
            left = self._pending.get(tag, 0) - 1
            if left > 0:
                self._pending[tag] = left
            else:
                self._pending.pop(tag, None)
        if error is not None:
            self.failed.emit(tag, error, generation)
        else:
            self.done.emit(tag, result, generation)
