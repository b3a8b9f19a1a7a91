"""Long work off the GUI thread: a lot, a model load, a reset. The core's events (plain
dataclasses, no Qt) become Qt signals here; a failure becomes `errored`, never a frozen window."""
from __future__ import annotations

import logging
import traceback
from typing import Any, Callable

from PyQt6.QtCore import QObject, QThread, pyqtSignal

from inspector.events import CandidatesFound, Fault, FineShotTaken, PartStarted, VerdictReady, ViewCaptured

log = logging.getLogger(__name__)


class CycleWorker(QObject):
    """Runs `run(publish)` once on its own thread; `publish(event)` may be called from any thread."""

    part_started = pyqtSignal(object)
    view_captured = pyqtSignal(object)
    candidates_found = pyqtSignal(object)
    fine_shot = pyqtSignal(object)
    verdict = pyqtSignal(object)
    fault = pyqtSignal(object)
    other = pyqtSignal(object)  # any other event the work publishes
    done = pyqtSignal(object)  # what `run` returned
    errored = pyqtSignal(str)
    finished = pyqtSignal()

    SIGNALS = {PartStarted: "part_started", ViewCaptured: "view_captured", CandidatesFound: "candidates_found",
               FineShotTaken: "fine_shot", VerdictReady: "verdict", Fault: "fault"}

    def __init__(self, run: Callable[[Callable[[object], None]], Any], *, name: str = "work"):
        super().__init__()
        self._run = run
        self.name = name
        self.thread = QThread()
        self.thread.setObjectName(name)
        self.moveToThread(self.thread)
        self.thread.started.connect(self._work)
        self.finished.connect(self.thread.quit)

    def start(self) -> None:
        self.thread.start()

    def is_running(self) -> bool:
        return self.thread.isRunning()

    def publish(self, event: object) -> None:
        getattr(self, self.SIGNALS.get(type(event), "other")).emit(event)

    def _work(self) -> None:
        try:
            self.done.emit(self._run(self.publish))
        except Exception as exc:  # noqa: BLE001 - shown to the operator, never swallowed
            log.error("%s failed:\n%s", self.name, traceback.format_exc())
            self.errored.emit(f"{type(exc).__name__}: {exc}")
        finally:
            self.finished.emit()
