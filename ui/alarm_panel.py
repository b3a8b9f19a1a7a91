"""The machine's state for the operator: Idle / Run / Hold / Alarm with the reason, and Reset.

`MachineMonitor` follows the motion controller's status reports, which its driver delivers on the
driver's reader thread, and re-emits only changes as a Qt signal: the GUI thread never talks to
the serial port. `station_state` is the pure rule that combines the controller's state with the
station's (lot running, paused, last fault)."""
from __future__ import annotations

from dataclasses import dataclass

from PyQt6.QtCore import QObject, Qt, pyqtSignal
from PyQt6.QtGui import QFont
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

STATE_COLOURS = {"Idle": "#455a64", "Run": "#1b8a3a", "Hold": "#e08a00", "Alarm": "#c62828",
                 "Offline": "#6d4c41", "Stopping": "#8d6e00", "Not ready": "#8d4f00"}


@dataclass(frozen=True)
class StationState:
    state: str  # Idle | Run | Hold | Stopping | Alarm | Offline | Not ready (the recipe cannot load)
    reason: str = ""


def station_state(controller: str | None, *, connected: bool, running: bool, paused: bool,
                  fault: str | None, homed: bool, alarm: str = "") -> StationState:
    """What the alarm panel shows. `controller` is the stage controller's last reported state
    (None before the first report); `fault` the last station fault not yet reset; `alarm` the
    controller's last alarm ('ALARM N: meaning', '' when none), which names the reason when the
    alarm came while no lot was running."""
    if controller is None and not connected:
        return StationState("Offline", fault or "devices not connected")
    if not connected:
        return StationState("Alarm", fault or "motion controller disconnected")
    if controller == "Alarm":
        if fault:
            return StationState("Alarm", fault)
        if alarm:
            return StationState("Alarm", alarm)
        if not homed:
            return StationState("Alarm", "homing required: Start homes the stage first")
        return StationState("Alarm", "the stage controller reports an alarm (limit, e-stop or lost position)")
    if fault and not running:
        return StationState("Alarm", fault)
    if paused:
        return StationState("Hold", "paused by the operator: the stage holds at the next step")
    if controller == "Hold":
        return StationState("Hold", "feed hold")
    if running or controller in ("Run", "Jog", "Home"):
        return StationState("Run", "homing" if controller == "Home" else "")
    return StationState("Idle", "")


class MachineMonitor(QObject):
    """Adapts a MotionController's status reports (any thread) to `changed(MachineState)`."""

    changed = pyqtSignal(object)

    def __init__(self) -> None:
        super().__init__()
        self._unsubscribe = None
        self._last: tuple | None = None
        self.state = None  # the last MachineState re-emitted

    def attach(self, motion) -> None:
        self.detach()
        self._last = None
        self._unsubscribe = motion.subscribe(self._on_report)
        self._on_report(motion.status())

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_report(self, state) -> None:  # driver thread
        key = (state.state, state.substate, getattr(state, "alarm", None))
        if key != self._last:
            self._last = key
            self.state = state
            self.changed.emit(state)


class AlarmPanel(QWidget):
    """Thin view: a coloured state, the reason and the Reset button."""

    def __init__(self) -> None:
        super().__init__()
        self.state_label = QLabel("Offline")
        self.state_label.setFont(QFont("DejaVu Sans", 16, QFont.Weight.Bold))
        self.state_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.state_label.setMinimumWidth(136)  # "Not ready" in full
        self.state_label.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        self.reason = QLabel("")
        self.reason.setWordWrap(True)
        # a long reason (a file path) wraps and never widens the window
        self.reason.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.reason.setFont(QFont("DejaVu Sans", 11))
        self.controller = QLabel("")
        self.controller.setFont(QFont("DejaVu Sans", 9))
        self.controller.setStyleSheet("color: #546e7a;")
        self.reset_button = QPushButton("Reset")
        self.reset_button.setMinimumHeight(40)
        self.reset_button.setFont(QFont("DejaVu Sans", 12, QFont.Weight.Bold))
        self.reset_button.setToolTip("Clear the alarm: lights off, controller reset and unlocked "
                                     "(or reconnected); the next Start homes the stage")
        self.reset_button.setEnabled(False)
        text = QVBoxLayout()
        text.setSpacing(2)
        text.addWidget(self.reason)
        text.addWidget(self.controller)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.state_label)
        layout.addLayout(text, 1)
        layout.addWidget(self.reset_button)
        self.show_state(StationState("Offline", "connecting…"), None)

    def show_state(self, state: StationState, controller: str | None) -> None:
        self.state_label.setText(state.state)
        self.state_label.setStyleSheet(f"background: {STATE_COLOURS.get(state.state, '#455a64')}; color: white;"
                                       " border-radius: 6px; padding: 6px 10px;")
        self.reason.setText(state.reason or {"Idle": "ready", "Run": "inspecting"}.get(state.state, ""))
        self.controller.setText(f"stage controller: {controller}" if controller else "stage controller: no report")
