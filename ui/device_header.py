"""The integrator workspace's header: which devices are connected (a coloured pill each), the stage
controller's state, who is logged in, and Connect / Disconnect. Two rows, so it fits a 1024 px
screen: the station, its state and the actions on top, the devices below."""
from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from hardware.motion.base import MachineState

STATE_COLOURS = {"Idle": "#1b8a3a", "Run": "#1565c0", "Jog": "#1565c0", "Home": "#1565c0", "Hold": "#e08a00",
                 "Alarm": "#c62828", "Door": "#c62828"}
GREY, GREEN, RED = "#78909c", "#1b8a3a", "#c62828"
DEVICES = (("motion", "Motion"), ("lights", "Lights"), ("coarse", "Coarse cam"), ("fine", "Fine cam"))


def is_connected(device) -> bool:
    flag = getattr(device, "connected", None)
    if flag is not None:
        return bool(flag)
    transport = getattr(device, "transport", None)
    return bool(getattr(transport, "is_open", True))


class Pill(QLabel):
    """A device name with a coloured state."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.state = ""
        self.set_state("not connected", GREY)

    def set_state(self, text: str, colour: str) -> None:
        self.state = text
        self.setText(f"{self.name}: {text}")
        self.setStyleSheet(f"background: {colour}; color: white; border-radius: 4px; padding: 3px 8px;")


class DeviceHeader(QWidget):
    def __init__(self, station_name: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pills = {name: Pill(label) for name, label in DEVICES}
        self.state_label = QLabel("–")
        self.state_label.setMinimumWidth(90)
        self.state_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.session_label = QLabel("not logged in")
        self.connect_button = QPushButton("Connect")
        self.disconnect_button = QPushButton("Disconnect")
        top = QHBoxLayout()
        if station_name:
            title = QLabel(station_name)
            title.setStyleSheet("font-size: 14px; font-weight: bold;")
            top.addWidget(title)
            top.addSpacing(8)
        top.addWidget(QLabel("State"))
        top.addWidget(self.state_label)
        top.addStretch(1)
        top.addWidget(self.session_label)
        top.addWidget(self.connect_button)
        top.addWidget(self.disconnect_button)
        devices = QHBoxLayout()
        for pill in self.pills.values():
            devices.addWidget(pill)
        devices.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addLayout(devices)

    def show_state(self, state: MachineState, motion_ok: bool, lights_ok: bool) -> None:
        self.pills["motion"].set_state("connected" if motion_ok else "lost", GREEN if motion_ok else RED)
        self.pills["lights"].set_state("connected" if lights_ok else "lost", GREEN if lights_ok else RED)
        text = state.state + ("" if state.substate is None else f":{state.substate}")
        self.state_label.setText(text)
        self.state_label.setStyleSheet(f"background: {STATE_COLOURS.get(state.state, '#455a64')}; color: white;"
                                       " border-radius: 4px; padding: 3px 8px; font-weight: bold;")

    def show_disconnected(self) -> None:
        for pill in self.pills.values():
            pill.set_state("not connected", GREY)
        self.state_label.setText("–")
        self.state_label.setStyleSheet(f"background: {GREY}; color: white; border-radius: 4px; padding: 3px 8px;")
