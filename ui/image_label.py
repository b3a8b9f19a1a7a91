"""A camera frame (numpy, mono or BGR) as a QPixmap, and a label that shows one scaled to fit,
keeping its aspect ratio as the label is resized, optionally with boxes drawn on it. Used by the
operator view (coarse and fine images) and the integrator's live view."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PyQt6.QtCore import Qt
from PyQt6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PyQt6.QtWidgets import QLabel, QSizePolicy, QWidget

BOX_COLOUR = "#ffb300"


def to_pixmap(image: np.ndarray) -> QPixmap:
    """A mono (H, W) uint8 frame, or a BGR (H, W, 3) one, as a pixmap (the pixels are copied)."""
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    if image.ndim == 3:
        qimage = QImage(image.data, w, h, 3 * w, QImage.Format.Format_BGR888).copy()
    else:
        qimage = QImage(image.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    return QPixmap.fromImage(qimage)


class ScaledImageLabel(QLabel):
    """Shows a frame scaled to fit (aspect ratio kept, rescaled on resize); the text shows while
    there is no frame."""

    def __init__(self, text: str, parent: QWidget | None = None, *, font_px: int | None = None) -> None:
        super().__init__(text, parent)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setStyleSheet("background: #101418; color: #cfd8dc;" + (f" font-size: {font_px}px;" if font_px else ""))
        self._pixmap: QPixmap | None = None

    @property
    def source(self) -> QPixmap | None:
        """The frame at its own size (with its boxes), before scaling."""
        return self._pixmap

    def show_image(self, image: np.ndarray, boxes: Sequence = (), colour: str = BOX_COLOUR,
                   colours: Sequence[str] = ()) -> None:
        """`boxes` (x0, y0, x1, y1) in the image's pixels are drawn with a small margin; `colours`,
        when given, one per box (else `colour` for all)."""
        pixmap = to_pixmap(image)
        if boxes:
            painter = QPainter(pixmap)
            width = max(2, image.shape[1] // 400)
            pad = 6
            for index, (x0, y0, x1, y1) in enumerate(boxes):
                painter.setPen(QPen(QColor(colours[index] if index < len(colours) else colour), width))
                painter.drawRect(int(x0) - pad, int(y0) - pad, int(x1 - x0) + 2 * pad, int(y1 - y0) + 2 * pad)
            painter.end()
        self._pixmap = pixmap
        self._rescale()

    def clear_image(self, text: str) -> None:
        self._pixmap = None
        self.clear()
        self.setText(text)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._pixmap is not None:
            self.setPixmap(self._pixmap.scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                               Qt.TransformationMode.SmoothTransformation))
