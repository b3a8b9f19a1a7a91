"""One slider per wired light role. Slider moves are coalesced: the newest level of each role is
asked for once the hand rests (a serial line is slow next to a mouse)."""
from __future__ import annotations

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtWidgets import QGridLayout, QGroupBox, QLabel, QPushButton, QSlider, QVBoxLayout

from hardware.lights.base import CHANNEL_ROLES

ROLE_LABELS = {"coaxial": "Coaxial", "ring": "Ring", "low_angle": "Low angle", "backlight": "Backlight",
               "seg_n": "Segment N", "seg_e": "Segment E", "seg_s": "Segment S", "seg_w": "Segment W"}


class LightPanel(QGroupBox):
    levels_requested = pyqtSignal(dict)  # role → percent, only the roles that changed
    all_off_requested = pyqtSignal()

    def __init__(self, parent=None, *, settle_ms: int = 120) -> None:
        super().__init__("Lights", parent)
        self.sliders: dict[str, QSlider] = {}
        self.values: dict[str, QLabel] = {}
        self._wanted: dict[str, int] = {}
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(settle_ms)
        self._timer.timeout.connect(self._flush)
        self._grid = QGridLayout()
        self._grid.setVerticalSpacing(2)
        self.off_button = QPushButton("All off")
        self.off_button.clicked.connect(self.all_off_requested)
        layout = QVBoxLayout(self)
        layout.addLayout(self._grid)
        layout.addWidget(self.off_button, alignment=Qt.AlignmentFlag.AlignRight)
        self.set_roles(())

    def set_roles(self, roles) -> None:
        """Show a slider for each wired role (in the usual role order)."""
        while self._grid.count():
            item = self._grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.sliders.clear()
        self.values.clear()
        ordered = [r for r in CHANNEL_ROLES if r in set(roles)]
        if not ordered:
            self._grid.addWidget(QLabel("no light controller connected"), 0, 0)
        for row, role in enumerate(ordered):
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(0, 100)
            slider.setPageStep(10)
            slider.setMinimumWidth(120)
            slider.valueChanged.connect(lambda value, r=role: self._moved(r, value))
            value = QLabel("–")
            value.setMinimumWidth(64)
            value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self._grid.addWidget(QLabel(ROLE_LABELS.get(role, role)), row, 0)
            self._grid.addWidget(slider, row, 1)
            self._grid.addWidget(value, row, 2)
            self.sliders[role], self.values[role] = slider, value

    def set_level(self, role: str, percent: int) -> None:
        """As if the integrator moved the slider (used by tests and keyboard shortcuts)."""
        self.sliders[role].setValue(int(percent))

    def _moved(self, role: str, value: int) -> None:
        self._wanted[role] = value
        self.values[role].setText(f"{value} % …")
        self._timer.start()

    def _flush(self) -> None:
        wanted, self._wanted = self._wanted, {}
        if wanted:
            self.levels_requested.emit({role: float(value) for role, value in wanted.items()})

    def show_levels(self, settings: dict) -> None:
        """What the controller confirmed: role → ChannelSetting (mode, percent)."""
        for role, setting in settings.items():
            if role not in self.sliders or role in self._wanted:
                continue
            slider = self.sliders[role]
            mode = getattr(setting, "mode", "unknown")
            percent = float(getattr(setting, "percent", 0.0))
            slider.blockSignals(True)
            slider.setValue(round(percent) if mode in ("continuous", "strobe") else 0)
            slider.blockSignals(False)
            text = {"off": "off", "unknown": "–"}.get(mode, f"{percent:g} %")
            self.values[role].setText(text + (" str." if mode == "strobe" else ""))
