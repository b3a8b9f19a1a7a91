"""The operator's verdict history: one coloured tile per part, newest on the left, with the serial
below the verdict, so a glance from the line shows the last parts and not only the last one."""
from __future__ import annotations

from dataclasses import dataclass

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QFont
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QWidget

VERDICT_COLOURS = {"PASS": "#1b8a3a", "FAIL": "#c62828", "ERROR": "#e08a00", "": "#455a64"}


@dataclass(frozen=True)
class StripEntry:
    serial: str
    verdict: str  # PASS / FAIL / ERROR
    reason: str = ""


class VerdictStrip(QWidget):
    """The last `size` verdicts as tiles (verdict initial and the serial's last digits; the full
    serial and reason in the tooltip). Tiles shrink with the window; none has a fixed width."""

    def __init__(self, size: int = 10) -> None:
        super().__init__()
        self.size = size
        self.entries: list[StripEntry] = []  # newest first
        self._tiles: list[QLabel] = []
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(3)
        for _ in range(size):
            tile = QLabel("")
            tile.setAlignment(Qt.AlignmentFlag.AlignCenter)
            tile.setFont(QFont("DejaVu Sans", 8, QFont.Weight.Bold))
            tile.setMinimumSize(24, 34)
            tile.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            row.addWidget(tile, 1)
            self._tiles.append(tile)
        self._paint()

    def add(self, serial: str, verdict: str, reason: str = "") -> None:
        self.entries.insert(0, StripEntry(serial, verdict, reason))
        del self.entries[self.size:]
        self._paint()

    def set_entries(self, entries: list[StripEntry]) -> None:
        """Newest first (e.g. the shift's last parts from the store after a restart)."""
        self.entries = list(entries)[:self.size]
        self._paint()

    def _paint(self) -> None:
        for index, tile in enumerate(self._tiles):
            if index < len(self.entries):
                entry = self.entries[index]
                tail = entry.serial[-4:] if len(entry.serial) > 4 else entry.serial
                tile.setText(f"{entry.verdict[:1]}\n{tail}")
                tile.setToolTip(f"{entry.serial}: {entry.verdict}" + (f" — {entry.reason}" if entry.reason else ""))
                colour = VERDICT_COLOURS.get(entry.verdict, "#455a64")
                tile.setStyleSheet(f"background: {colour}; color: white; border-radius: 3px;")
            else:
                tile.setText("")
                tile.setToolTip("")
                tile.setStyleSheet("background: #eceff1; border-radius: 3px;")
