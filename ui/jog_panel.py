"""Jog, home and go-to-view for the five axes, with the position readout. A thin widget: it only
says what the integrator asked for (signals); the integrator view sends it to the stage."""
from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (QComboBox, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy,
                             QVBoxLayout)

AXES = ("x", "y", "z", "a", "b")
LINEAR_STEPS_MM = (0.01, 0.1, 1.0, 5.0, 10.0)
ROTARY_STEPS_DEG = (0.1, 1.0, 5.0, 15.0, 90.0)
UNITS = {"x": "mm", "y": "mm", "z": "mm", "a": "°", "b": "°"}


class JogPanel(QGroupBox):
    jog_requested = pyqtSignal(str, float)  # axis, signed step (mm or °)
    home_requested = pyqtSignal()
    unlock_requested = pyqtSignal()
    stop_requested = pyqtSignal()
    goto_view_requested = pyqtSignal(str)

    def __init__(self, parent=None) -> None:
        super().__init__("Stage", parent)
        self.minus: dict[str, QPushButton] = {}
        self.plus: dict[str, QPushButton] = {}
        self.readout: dict[str, QLabel] = {}
        grid = QGridLayout()
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(4)
        for row, axis in enumerate(AXES):
            name = QLabel(axis.upper())
            name.setStyleSheet("font-weight: bold;")
            minus, plus = QPushButton("−"), QPushButton("+")
            for button, sign in ((minus, -1.0), (plus, 1.0)):
                button.setFixedWidth(44)
                button.setMinimumHeight(30)
                button.setAutoRepeat(False)
                button.clicked.connect(lambda _=False, a=axis, s=sign: self.jog_requested.emit(a, s * self.step(a)))
            value = QLabel("–")
            value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            value.setMinimumWidth(110)
            value.setStyleSheet("font-family: 'DejaVu Sans Mono'; font-size: 15px; background: #eceff1;"
                                " padding: 2px 6px; border-radius: 3px;")
            unit = QLabel(UNITS[axis])
            self.minus[axis], self.plus[axis], self.readout[axis] = minus, plus, value
            grid.addWidget(name, row, 0)
            grid.addWidget(minus, row, 1)
            grid.addWidget(value, row, 2)
            grid.addWidget(unit, row, 3)
            grid.addWidget(plus, row, 4)
        self.linear_step = QComboBox()
        self.linear_step.addItems([f"{s:g} mm" for s in LINEAR_STEPS_MM])
        self.linear_step.setCurrentIndex(2)
        self.rotary_step = QComboBox()
        self.rotary_step.addItems([f"{s:g}°" for s in ROTARY_STEPS_DEG])
        self.rotary_step.setCurrentIndex(2)
        steps = QHBoxLayout()
        steps.addWidget(QLabel("Step"))
        steps.addWidget(self.linear_step)
        steps.addWidget(self.rotary_step)
        self.home_button, self.unlock_button, self.stop_button = QPushButton("Home"), QPushButton("Unlock"), \
            QPushButton("Stop")
        self.stop_button.setStyleSheet("QPushButton:enabled { color: #b71c1c; font-weight: bold; }")
        self.home_button.clicked.connect(self.home_requested)
        self.unlock_button.clicked.connect(self.unlock_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        actions = QHBoxLayout()
        for button in (self.home_button, self.unlock_button, self.stop_button):
            button.setMinimumHeight(30)
            actions.addWidget(button)
        self.view_choice = QComboBox()
        self.view_choice.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.goto_button = QPushButton("Go to view")
        self.goto_button.clicked.connect(lambda: self.goto_view_requested.emit(self.view_choice.currentText())
                                         if self.view_choice.currentText() else None)
        goto = QHBoxLayout()
        goto.addWidget(self.view_choice, 1)
        goto.addWidget(self.goto_button)
        hint = QLabel("Keys: ←→ X, ↑↓ Y, PgUp/PgDn Z, Shift+←→ A, Shift+↑↓ B")
        hint.setStyleSheet("color: #546e7a;")
        hint.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addLayout(steps)
        layout.addLayout(actions)
        layout.addLayout(goto)
        layout.addWidget(hint)

    def step(self, axis: str) -> float:
        if axis in ("a", "b"):
            return ROTARY_STEPS_DEG[self.rotary_step.currentIndex()]
        return LINEAR_STEPS_MM[self.linear_step.currentIndex()]

    def set_views(self, names: list[str]) -> None:
        current = self.view_choice.currentText()
        self.view_choice.clear()
        self.view_choice.addItems(names)
        if current in names:
            self.view_choice.setCurrentText(current)

    def show_position(self, position: tuple[float, ...] | None, machine: tuple[float, ...] | None = None) -> None:
        """The stage-frame pose (what recipes use); the controller's MPos in the tooltip (for the
        station config's motion.origin)."""
        for index, axis in enumerate(AXES):
            self.readout[axis].setText("–" if position is None else f"{position[index]:+.3f}")
            self.readout[axis].setToolTip("" if machine is None else f"MPos {machine[index]:+.3f}")

    def set_motion_enabled(self, enabled: bool) -> None:
        """Jog, home, unlock and go-to; Stop stays available whenever a stage is connected."""
        for widget in (*self.minus.values(), *self.plus.values(), self.home_button, self.unlock_button,
                       self.goto_button, self.view_choice, self.linear_step, self.rotary_step):
            widget.setEnabled(enabled)
