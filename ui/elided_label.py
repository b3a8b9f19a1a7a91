"""A one-line label that never widens its layout: a long text (a trainer's error, a path) is elided
to the width it gets, and the whole text is its tooltip."""
from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QResizeEvent
from PyQt6.QtWidgets import QLabel, QSizePolicy, QWidget


class ElidedLabel(QLabel):
    def __init__(self, text: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(40)
        self.setText(text)

    def full_text(self) -> str:
        return self._full

    def setText(self, text: str) -> None:  # noqa: N802 - Qt naming
        self._full = text
        self.setToolTip(text if self.fontMetrics().horizontalAdvance(text) > self.width() else "")
        super().setText(self.fontMetrics().elidedText(text, Qt.TextElideMode.ElideMiddle, max(self.width(), 40)))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.setText(self._full)
