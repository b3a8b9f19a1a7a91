"""The archived frame of a review item, scaled to fit, with the station's calls and QA's labels drawn
over it; with drawing on, a mouse drag marks a missed box in the image's own pixels."""
from __future__ import annotations

from PyQt6.QtCore import QPointF, QRectF, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

from .qa_models import DECISION_COLOURS, Overlay


class ImageCanvas(QWidget):
    """An archived frame scaled to fit, the calls drawn over it; with drawing on, a mouse drag
    marks a box (in the image's pixels) and emits `box_drawn`."""

    box_drawn = pyqtSignal(int, int, int, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumSize(240, 180)  # a 1024x768 screen shares it with the gallery and the item
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(False)
        self.image = QImage()
        self.path = ""
        self.overlays: list[Overlay] = []
        self.selected: int | None = None
        self.drawing = False
        self.pending: tuple[int, int, int, int] | None = None
        self._drag_start: QPointF | None = None
        self._drag_now: QPointF | None = None

    def set_image(self, path: str | None, overlays: list[Overlay]) -> None:
        if (path or "") != self.path:
            self.path = path or ""
            self.image = QImage(self.path) if path else QImage()
            self.pending = None
        self.overlays = overlays
        self.update()

    def set_drawing(self, on: bool) -> None:
        self.drawing = on
        self.setCursor(Qt.CursorShape.CrossCursor if on else Qt.CursorShape.ArrowCursor)

    # geometry: widget ↔ image pixels
    def _frame(self) -> tuple[float, float, float]:
        if self.image.isNull():
            return 1.0, 0.0, 0.0
        scale = min(self.width() / self.image.width(), self.height() / self.image.height())
        return scale, (self.width() - self.image.width() * scale) / 2, (self.height() - self.image.height() * scale) / 2

    def to_image(self, point: QPointF) -> tuple[float, float]:
        scale, ox, oy = self._frame()
        x = min(max((point.x() - ox) / scale, 0.0), float(self.image.width()))
        y = min(max((point.y() - oy) / scale, 0.0), float(self.image.height()))
        return x, y

    def to_widget(self, x: float, y: float) -> QPointF:
        scale, ox, oy = self._frame()
        return QPointF(ox + x * scale, oy + y * scale)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt naming
        if self.drawing and not self.image.isNull() and event.button() == Qt.MouseButton.LeftButton:
            self._drag_start = self._drag_now = event.position()
            self.update()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._drag_start is not None:
            self._drag_now = event.position()
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._drag_start is None:
            return
        (x0, y0), (x1, y1) = self.to_image(self._drag_start), self.to_image(event.position())
        self._drag_start = self._drag_now = None
        box = (int(min(x0, x1)), int(min(y0, y1)), int(round(max(x0, x1))), int(round(max(y0, y1))))
        if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
            self.pending = box
            self.box_drawn.emit(*box)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#101418"))
        if self.image.isNull():
            painter.setPen(QColor("#cfd8dc"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "open an item from the gallery")
            return
        scale, ox, oy = self._frame()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(QRectF(ox, oy, self.image.width() * scale, self.image.height() * scale), self.image)
        font = painter.font()
        font.setPointSize(9)
        font.setBold(True)
        painter.setFont(font)
        for overlay in self.overlays:
            colour = QColor(DECISION_COLOURS.get(overlay.kind, "#ffffff"))
            width = 3 if overlay.defect_index is not None and overlay.defect_index == self.selected else 2
            painter.setPen(QPen(colour, width))
            rect = QRectF(self.to_widget(overlay.box[0], overlay.box[1]), self.to_widget(overlay.box[2], overlay.box[3]))
            painter.drawRect(rect.adjusted(-2, -2, 2, 2))
            metrics = painter.fontMetrics()
            tag = QRectF(rect.left() - 2, rect.bottom() + 3, metrics.horizontalAdvance(overlay.text) + 6,
                         metrics.height() + 2)
            painter.fillRect(tag, QColor(0, 0, 0, 170))
            painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, overlay.text)
        dashed = QPen(QColor("#2ecc71"), 2, Qt.PenStyle.DashLine)
        painter.setPen(dashed)
        if self._drag_start is not None and self._drag_now is not None:
            painter.drawRect(QRectF(self._drag_start, self._drag_now).normalized())
        elif self.pending is not None:
            x0, y0, x1, y1 = self.pending
            painter.drawRect(QRectF(self.to_widget(x0, y0), self.to_widget(x1, y1)))
