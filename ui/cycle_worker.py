"""Runs the inspection lot off the GUI thread and turns the core's events into Qt signals."""
from __future__ import annotations

import traceback
from typing import Callable

from PyQt6.QtCore import QObject, QThread, pyqtSignal

from inspector.events import CandidatesFound, FineShotTaken, PartStarted, VerdictReady, ViewCaptured


class CycleWorker(QObject):
    part_started = pyqtSignal(object)
    view_captured = pyqtSignal(object)
    candidates_found = pyqtSignal(object)
    fine_shot = pyqtSignal(object)
    verdict = pyqtSignal(object)
    errored = pyqtSignal(str)
    finished = pyqtSignal()

    SIGNALS = {PartStarted: "part_started", ViewCaptured: "view_captured", CandidatesFound: "candidates_found",
               FineShotTaken: "fine_shot", VerdictReady: "verdict"}

    def __init__(self, run: Callable[[Callable[[object], None]], None]):
        """`run(publish)` does the work on the worker thread and calls `publish(event)` for each event."""
        super().__init__()
        self._run = run
        self.thread = QThread()
        self.moveToThread(self.thread)
        self.thread.started.connect(self._work)
        self.finished.connect(self.thread.quit)

    def start(self) -> None:
        self.thread.start()

    def publish(self, event: object) -> None:
        name = self.SIGNALS.get(type(event))
        if name is not None:
            getattr(self, name).emit(event)

    def _work(self) -> None:
        try:
            self._run(self.publish)
        except Exception as exc:  # noqa: BLE001 - shown to the operator, never swallowed
            self.errored.emit(f"{type(exc).__name__}: {exc}")
            traceback.print_exc()
        finally:
            self.finished.emit()
