"""Calibrate px → mm with a dot-grid target: measure from a live frame or an image file, look at
the result (with its uncertainty) and at the measured frame with the dots found drawn on it — or,
when the frame was no usable target, at the reason with hints (lights, contrast, view) — then write
it into the station config."""
from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QPointF, pyqtSignal
from PyQt6.QtGui import QColor, QPainter, QPen
from PyQt6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                             QPushButton, QSizePolicy, QVBoxLayout, QWidget)

from .image_label import ScaledImageLabel, to_pixmap

ON_GRID, NOT_A_GRID = "#2ecc71", "#ff7043"


class DotFrame(ScaledImageLabel):
    """The measured frame, scaled to fit, with a circle on each dot found."""

    def show_dots(self, image: np.ndarray, dots_px: np.ndarray, colour: str) -> None:
        pixmap = to_pixmap(image)
        if len(dots_px):
            painter = QPainter(pixmap)
            radius = max(3.0, image.shape[1] / 200)
            painter.setPen(QPen(QColor(colour), max(1.5, image.shape[1] / 600)))
            for x, y in dots_px:
                painter.drawEllipse(QPointF(float(x), float(y)), radius, radius)
            painter.end()
        self._pixmap = pixmap
        self._rescale()


class CalibrationPanel(QWidget):
    measure_live_requested = pyqtSignal(str, float)  # camera, target pitch mm
    measure_file_requested = pyqtSignal(str, str, float)  # image path, camera, pitch mm
    write_requested = pyqtSignal(bool)  # also write the grid's rotation
    plate_requested = pyqtSignal(bool)  # virtual cell: put the calibration plate in the fixture (True) or take it out

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.result = None  # inspector.calibration.Calibration, once measured
        self.camera = QComboBox()
        self.camera.addItems(["coarse", "fine"])
        self.pitch = QDoubleSpinBox()
        self.pitch.setRange(0.01, 50.0)
        self.pitch.setDecimals(3)
        self.pitch.setValue(1.0)
        self.pitch.setSuffix(" mm")
        self.current = QLabel("–")
        self.current.setWordWrap(True)
        self.live_button = QPushButton("Measure live frame")
        self.file_button = QPushButton("Measure image file…")
        self.rotation = QCheckBox("also write the rotation")
        self.write_button = QPushButton("Write to station config")
        self.write_button.setEnabled(False)
        self.plate_button = QPushButton("Put the calibration plate in the fixture")
        self.plate_button.setCheckable(True)
        self.plate_button.setVisible(False)  # only on the virtual cell; on a machine the integrator places the target
        self.plate_button.toggled.connect(self._plate_toggled)
        self.plate_pitch_mm: dict[str, float] = {}
        self.camera.currentTextChanged.connect(self._plate_pitch)
        self.output = QLabel("Put a dot-grid target of known pitch under the camera, in focus and evenly lit.")
        self.output.setWordWrap(True)
        self.hints = QLabel("")
        self.hints.setWordWrap(True)
        self.hints.setVisible(False)
        self.hints.setStyleSheet("background: #fff8e1; color: #4e342e; padding: 4px; border-radius: 3px;")
        for label in (self.output, self.hints, self.current):
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.frame = DotFrame("the measured frame shows here, with the dots found")
        self.frame.setMinimumSize(160, 120)
        self.frame_dots = np.zeros((0, 2))
        self.live_button.clicked.connect(
            lambda: self.measure_live_requested.emit(self.camera.currentText(), self.pitch.value()))
        self.file_button.clicked.connect(self._choose_file)
        self.write_button.clicked.connect(lambda: self.write_requested.emit(self.rotation.isChecked()))
        form = QFormLayout()
        form.addRow("Camera", self.camera)
        form.addRow("Target pitch", self.pitch)
        form.addRow("Now", self.current)
        buttons = QHBoxLayout()
        buttons.addWidget(self.live_button)
        buttons.addWidget(self.file_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.plate_button)
        layout.addLayout(buttons)
        layout.addWidget(self.output)
        layout.addWidget(self.hints)
        layout.addWidget(self.frame, 1)
        layout.addWidget(self.rotation)
        layout.addWidget(self.write_button)
        self._can_write = False

    def offer_plate(self, available: bool) -> None:
        """Show the plate toggle (only a virtual cell can put its plate in the fixture)."""
        self.plate_button.setVisible(available)
        if not available:
            self.plate_button.setChecked(False)

    def set_plate_pitch(self, pitch_mm: dict[str, float]) -> None:
        """The loaded plate's grid pitch per camera; the pitch box follows the chosen camera."""
        self.plate_pitch_mm = dict(pitch_mm)
        self._plate_pitch(self.camera.currentText())

    def _plate_toggled(self, inside: bool) -> None:
        self.plate_button.setText("Take the calibration plate out" if inside else "Put the calibration plate in the fixture")
        self.plate_requested.emit(inside)

    def _plate_pitch(self, camera: str) -> None:
        if self.plate_button.isChecked() and camera in self.plate_pitch_mm:
            self.pitch.setValue(self.plate_pitch_mm[camera])

    def show_current(self, text: str) -> None:
        self.current.setText(text)

    def measure_file(self, path: str) -> None:
        self.measure_file_requested.emit(str(path), self.camera.currentText(), self.pitch.value())

    def show_result(self, calibration) -> None:
        self.result = calibration
        self.output.setStyleSheet("")
        self.output.setText(calibration.summary())
        self.hints.setVisible(False)
        self.write_button.setEnabled(self._can_write)

    def show_error(self, message: str, hints: tuple[str, ...] = ()) -> None:
        self.result = None
        self.output.setStyleSheet("color: #b71c1c;")
        self.output.setText(message)
        self.hints.setText("<br>".join(f"• {hint}" for hint in hints))
        self.hints.setVisible(bool(hints))
        self.write_button.setEnabled(False)

    def show_attempt(self, attempt) -> None:
        """An `inspector.calibration.CalibrationAttempt`: the result or the reason with hints, and the
        frame with the dots found (green on the grid; orange when they were not taken for one)."""
        if attempt.ok:
            self.show_result(attempt.calibration)
        else:
            self.show_error(f"No calibration: {attempt.error}", attempt.hints)
        self.show_frame(attempt.image, attempt.dots_px, ON_GRID if attempt.ok else NOT_A_GRID)

    def show_frame(self, image: np.ndarray, dots_px: np.ndarray, colour: str) -> None:
        self.frame_dots = np.asarray(dots_px, dtype=np.float64).reshape(-1, 2)
        self.frame.show_dots(image, self.frame_dots, colour)
        self.frame.setToolTip(f"{len(self.frame_dots)} dot(s) found")

    def set_permissions(self, *, measure_live: bool, measure: bool, write: bool) -> None:
        self._can_write = write
        self.live_button.setEnabled(measure_live)
        self.file_button.setEnabled(measure)
        self.write_button.setEnabled(write and self.result is not None)

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Target image", "", "Images (*.png *.tif *.tiff *.bmp *.jpg)")
        if path:
            self.measure_file(path)
