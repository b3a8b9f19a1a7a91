"""How late the GUI event loop serves a timer (the window's responsiveness, measured during a lot
and written by `inspector station --screenshot`)."""
from __future__ import annotations

import statistics
import time

from PyQt6.QtCore import QObject, Qt, QTimer


class LoopLatencyProbe(QObject):
    """How late the GUI event loop serves a timer: a responsive window serves it within a few ms.
    Samples are kept for a report; they are measurements, never pass/fail criteria."""

    def __init__(self, interval_ms: int = 20):
        super().__init__()
        self.interval_ms = interval_ms
        self.samples_ms: list[float] = []
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._last: float | None = None

    def start(self) -> None:
        self._last = None
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.samples_ms.append(max(0.0, (now - self._last) * 1000.0 - self.interval_ms))
        self._last = now

    def summary(self) -> str:
        s = sorted(self.samples_ms)
        if not s:
            return "GUI event-loop latency: no samples"
        p95 = s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))]
        return (f"GUI event-loop latency ({self.interval_ms} ms timer, {len(s)} samples): median "
                f"{statistics.median(s):.1f} ms, p95 {p95:.1f} ms, max {s[-1]:.1f} ms late")
