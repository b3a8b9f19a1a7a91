"""The golden check in the operator workspace: whether production is open, why the masters must be
checked (start of shift, Reset after a fault, a new recipe or model), each master's last result, and
the button that inspects them. Thin: the station controller (inspector.golden) decides; this shows it.
Events come from the controller's worker threads and are queued to the GUI thread by `_event`."""
from __future__ import annotations

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtGui import QFont
from PyQt6.QtWidgets import QGroupBox, QLabel, QListWidget, QPushButton, QVBoxLayout

from inspector.access import AccessDenied
from inspector.golden import GoldenChecked
from inspector.station_events import StateChanged

COLOURS = {"open": "#2e7d32", "required": "#e08a00", "failed": "#c62828", "off": "#546e7a"}


class GoldenPanel(QGroupBox):
    _event = pyqtSignal(object)

    def __init__(self) -> None:
        super().__init__("Golden check (master parts)")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setFont(QFont("DejaVu Sans", 11, QFont.Weight.Bold))
        self.results = QListWidget()
        self.results.setFont(QFont("DejaVu Sans Mono", 9))
        self.results.setMaximumHeight(90)
        self.check_button = QPushButton("Check masters")
        self.check_button.setMinimumHeight(36)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(self.status)
        layout.addWidget(self.results)
        layout.addWidget(self.check_button)
        self.station = None
        self._unsubscribe = None
        self.state = "off"
        self._event.connect(self._on_event)
        self.check_button.clicked.connect(self.check)
        self.check_button.setEnabled(False)
        self._show("off", "golden check: not connected to a station")

    def bind(self, station) -> None:
        """Follow `station` (ui.station_adapter.Station): its controller's golden gate and state."""
        self.station = station
        self._unsubscribe = station.controller.subscribe(
            lambda event: self._event.emit(event) if isinstance(event, (GoldenChecked, StateChanged)) else None)
        self.refresh()

    def unbind(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def check(self) -> None:
        """Inspect the masters (needs a session allowed to run parts)."""
        station = self.station
        if station is None:
            return
        try:
            session = station.require("run")
        except AccessDenied as exc:
            self._show("required", str(exc))
            return
        if not station.controller.run_golden_check(who=(session.user, session.role)):
            self._show(self.state, f"the station cannot check the masters now (state {station.controller.state.value})")
            return
        self.check_button.setEnabled(False)
        self.status.setText("checking the masters…")

    def refresh(self) -> None:
        controller = self.station.controller if self.station is not None else None
        if controller is None:
            return
        busy = controller.state.value == "busy"
        self.check_button.setEnabled(controller.golden_enabled and not busy
                                     and controller.state.value in ("ready", "done"))
        if not controller.golden_enabled:
            self._show("off", "golden check not required on this station")
            return
        gate = controller.golden
        block = controller.golden_block()
        self.results.clear()
        for result in gate.results:
            self.results.addItem(("✔ " if result.ok else "✘ ") + result.line())
        if block is None:
            self._show("open", "masters passed: production open")
        elif gate.required and gate.required.startswith("masters failed"):
            self._show("failed", f"production blocked: {block}")
        else:
            self._show("required", f"production blocked: {block}")

    def _on_event(self, event: object) -> None:
        self.refresh()

    def _show(self, state: str, text: str) -> None:
        self.state = state
        self.status.setText(text)
        self.status.setStyleSheet(f"color: {COLOURS[state]};")
