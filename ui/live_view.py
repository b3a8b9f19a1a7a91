"""Live view of either camera with exposure and gain. The widget asks for frames at a few fps
(`grab_wanted`); the integrator view grabs on a worker and hands frames back with `show_frame`."""
from __future__ import annotations

from PyQt6.QtCore import QTimer, pyqtSignal
from PyQt6.QtWidgets import (QComboBox, QDoubleSpinBox, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSpinBox,
                             QVBoxLayout)

from .image_label import ScaledImageLabel


class LiveView(QGroupBox):
    grab_wanted = pyqtSignal(str, float, float)  # camera, exposure µs, gain

    def __init__(self, parent=None, *, interval_ms: int = 300) -> None:
        super().__init__("Live view", parent)
        self.frame: object | None = None  # the last hardware Frame shown
        self.image = ScaledImageLabel("not connected", font_px=14)
        self.camera = QComboBox()
        self.exposure = QSpinBox()
        self.exposure.setRange(20, 100_000)
        self.exposure.setSingleStep(250)
        self.exposure.setSuffix(" µs")
        self.exposure.setValue(3000)
        self.gain = QDoubleSpinBox()
        self.gain.setRange(0.1, 16.0)
        self.gain.setSingleStep(0.1)
        self.gain.setDecimals(2)
        self.gain.setPrefix("× ")
        self.gain.setValue(1.0)
        self.live_button = QPushButton("Live")
        self.live_button.setCheckable(True)
        self.snap_button = QPushButton("Snap")
        self.info = QLabel("")
        self.info.setStyleSheet("color: #37474f;")
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.request_frame)
        self.live_button.toggled.connect(self._live_toggled)
        self.snap_button.clicked.connect(self.request_frame)
        # two short rows rather than one long one: the column stays narrow enough for a 1024 px screen
        controls = QVBoxLayout()
        for widgets in ((("Camera", self.camera),), (("Exposure", self.exposure), ("Gain", self.gain))):
            row = QHBoxLayout()
            for label, widget in widgets:
                row.addWidget(QLabel(label))
                row.addWidget(widget)
            row.addStretch(1)
            controls.addLayout(row)
        self.image.setMinimumSize(200, 150)
        self.info.setWordWrap(True)
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        bottom = QHBoxLayout()
        bottom.addWidget(self.info, 1)
        bottom.addWidget(self.snap_button)
        bottom.addWidget(self.live_button)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.image, 1)
        layout.addLayout(bottom)

    def set_cameras(self, names: list[str]) -> None:
        current = self.camera.currentText()
        self.camera.clear()
        self.camera.addItems(names)
        if current in names:
            self.camera.setCurrentText(current)
        if not names:
            self.live_button.setChecked(False)
            self.image.clear_image("not connected")

    def set_enabled_for_use(self, enabled: bool) -> None:
        for widget in (self.camera, self.exposure, self.gain, self.live_button, self.snap_button):
            widget.setEnabled(enabled)
        if not enabled:
            self.live_button.setChecked(False)

    def request_frame(self) -> None:
        if self.camera.currentText():
            self.grab_wanted.emit(self.camera.currentText(), float(self.exposure.value()), float(self.gain.value()))

    def show_frame(self, frame) -> None:
        self.frame = frame
        self.image.show_image(frame.image)
        meta = getattr(frame, "meta", {}) or {}
        face = f", face {meta['face']}" if "face" in meta else ""
        h, w = frame.image.shape[:2]
        self.info.setText(f"{frame.camera} #{frame.sequence}: {w}×{h} px, {frame.exposure_us:g} µs, "
                          f"gain {frame.gain:g}{face}")

    def show_error(self, message: str) -> None:
        self.info.setText(f"no frame: {message}")

    def _live_toggled(self, on: bool) -> None:
        if on:
            self.request_frame()
            self._timer.start()
        else:
            self._timer.stop()
