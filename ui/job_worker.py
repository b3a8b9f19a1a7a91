"""Long work off the GUI thread: command jobs (QProcess, e.g. `python -m training train …`) and
Python calls on a worker thread. Both report through signals, with an `errored` signal for failures,
so a view only connects slots and never blocks."""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from PyQt6.QtCore import QObject, QProcess, QProcessEnvironment, QThread, QTimer, pyqtSignal, pyqtSlot

# "12/3500", "eval: 50/300 parts", tqdm's " 12%|██  | 420/3500 [00:10<…]"
PROGRESS = re.compile(r"(?<![\d.])(\d+)\s*/\s*(\d+)(?![\d.])")
ROOT = Path(__file__).resolve().parents[1]


def parse_progress(line: str) -> tuple[int, int] | None:
    """(done, total) from a progress line of the training CLI, or None."""
    found = [(int(a), int(b)) for a, b in PROGRESS.findall(line) if 0 < int(b) and int(a) <= int(b)]
    return found[-1] if found else None


@dataclass(frozen=True)
class JobStep:
    label: str
    command: Sequence[str]
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)


def python_module(module: str, *args: str) -> list[str]:
    """A command line running `python -m module args…` with this interpreter."""
    return [sys.executable, "-m", module, *map(str, args)]


class CommandJob(QObject):
    """Runs steps one after another in a QProcess; cancellable. Progress comes from the lines the
    commands print (stdout and stderr merged; '\\r'-updated bars are split into lines)."""

    started = pyqtSignal()
    step_started = pyqtSignal(int, int, str)  # index, count, label
    progress = pyqtSignal(int, int)  # done, total within the current step
    output = pyqtSignal(str)  # one line of output
    finished = pyqtSignal(bool, str)  # ok, message
    errored = pyqtSignal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._steps: list[JobStep] = []
        self._index = -1
        self._process: QProcess | None = None
        self._buffer = ""
        self._cancelled = False
        self._tail: list[str] = []

    def is_running(self) -> bool:
        return self._process is not None

    def start(self, steps: Sequence[JobStep]) -> None:
        if self.is_running():
            raise RuntimeError("a job is already running")
        if not steps:
            raise ValueError("a job needs at least one step")
        self._steps, self._index, self._cancelled = list(steps), -1, False
        self.started.emit()
        self._next()

    def cancel(self) -> None:
        if self._process is None:
            return
        self._cancelled = True
        self.output.emit("cancelling…")
        self._process.terminate()
        QTimer.singleShot(3000, self._kill_if_still_running)

    def _kill_if_still_running(self) -> None:
        if self._process is not None and self._cancelled:
            self._process.kill()

    def _next(self) -> None:
        self._index += 1
        if self._index >= len(self._steps):
            self._finish(True, f"done: {len(self._steps)} step(s)")
            return
        step = self._steps[self._index]
        self._buffer, self._tail = "", []
        process = QProcess(self)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        path = env.value("PYTHONPATH", "")
        env.insert("PYTHONPATH", str(ROOT) + (os.pathsep + path if path else ""))
        for key, value in step.env.items():
            env.insert(key, value)
        process.setProcessEnvironment(env)
        process.setWorkingDirectory(step.cwd or str(ROOT))
        process.readyReadStandardOutput.connect(self._read)
        process.finished.connect(self._done)
        process.errorOccurred.connect(self._failed_to_start)
        self._process = process
        self.step_started.emit(self._index, len(self._steps), step.label)
        self.output.emit(f"$ {' '.join(step.command)}")
        process.start(step.command[0], list(step.command[1:]))

    @pyqtSlot()
    def _read(self) -> None:
        if self._process is None:
            return
        self._buffer += bytes(self._process.readAllStandardOutput()).decode("utf-8", "replace")
        *lines, self._buffer = re.split(r"[\r\n]", self._buffer)
        for line in lines:
            self._line(line)

    def _line(self, line: str) -> None:
        line = line.rstrip()
        if not line:
            return
        self._tail = (self._tail + [line])[-20:]
        found = parse_progress(line)
        if found is not None:
            self.progress.emit(*found)
        self.output.emit(line)

    @pyqtSlot(int, QProcess.ExitStatus)
    def _done(self, code: int, status: QProcess.ExitStatus) -> None:
        self._read()
        if self._buffer:
            self._line(self._buffer)
            self._buffer = ""
        step = self._steps[self._index]
        process, self._process = self._process, None
        if process is not None:
            process.deleteLater()
        if self._cancelled:
            self._finish(False, f"cancelled during {step.label}")
        elif status != QProcess.ExitStatus.NormalExit or code != 0:
            tail = " | ".join(self._tail[-3:])
            message = f"{step.label} failed (exit {code}){': ' + tail if tail else ''}"
            self.errored.emit(message)
            self._finish(False, message)
        else:
            self._next()

    @pyqtSlot(QProcess.ProcessError)
    def _failed_to_start(self, error: QProcess.ProcessError) -> None:
        if error != QProcess.ProcessError.FailedToStart or self._process is None:
            return
        step = self._steps[self._index]
        process, self._process = self._process, None
        process.deleteLater()
        message = f"{step.label}: cannot start {step.command[0]!r}"
        self.errored.emit(message)
        self._finish(False, message)

    def _finish(self, ok: bool, message: str) -> None:
        self._steps, self._index = [], -1
        self.finished.emit(ok, message)


class _Call(QObject):
    done = pyqtSignal(object)
    errored = pyqtSignal(str)
    progress = pyqtSignal(int, int)

    def __init__(self, fn: Callable[..., Any]):
        super().__init__()
        self.fn = fn

    @pyqtSlot()
    def run(self) -> None:
        try:
            result = self.fn(lambda done, total: self.progress.emit(done, total))
        except Exception as exc:  # noqa: BLE001 - reported to the view, never raised on the GUI thread
            self.errored.emit(f"{type(exc).__name__}: {exc}")
        else:
            self.done.emit(result)


class CallWorker(QObject):
    """Runs `fn(progress)` once on its own thread; `progress(done, total)` may be called from it.
    Emits `done(result)` or `errored(message)`, then `finished`."""

    done = pyqtSignal(object)
    errored = pyqtSignal(str)
    progress = pyqtSignal(int, int)
    finished = pyqtSignal()

    def __init__(self, fn: Callable[[Callable[[int, int], None]], Any], parent: QObject | None = None):
        super().__init__(parent)
        self.thread = QThread()
        self._call = _Call(fn)
        self._call.moveToThread(self.thread)
        self._call.done.connect(self.done)
        self._call.errored.connect(self.errored)
        self._call.progress.connect(self.progress)
        self._call.done.connect(self.thread.quit)
        self._call.errored.connect(self.thread.quit)
        self.thread.started.connect(self._call.run)
        self.thread.finished.connect(self.finished)

    def start(self) -> None:
        self.thread.start()

    def is_running(self) -> bool:
        return self.thread.isRunning()

    def wait(self, ms: int = 30_000) -> bool:
        return self.thread.wait(ms)
