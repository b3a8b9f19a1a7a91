"""The operator workspace: big verdict, the latest coarse image with candidates, the fine shots,
counters, cycle time and the shift's defect Pareto; Start / Pause / Stop, the machine's state with
Reset, the recipe, the loaded models and their execution provider, and the override of the last
verdict. Thin: the station (`station_adapter.Station`) does the work, this only shows it."""
from __future__ import annotations

import statistics
from collections import Counter

import numpy as np
from PyQt6.QtCore import Qt
from PyQt6.QtGui import QFont
from PyQt6.QtWidgets import (QComboBox, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QListWidget,
                             QPushButton, QVBoxLayout, QWidget)

from .alarm_panel import AlarmPanel
from .image_label import ScaledImageLabel

VERDICT_COLOURS = {"PASS": "#1b8a3a", "FAIL": "#c62828", "ERROR": "#e08a00", "": "#455a64"}
DECISION_COLOURS = {"defect": "#c62828", "review": "#e08a00", "ok": "#546e7a"}
SEVERITY = {"defect": 2, "review": 1}


class OperatorView(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.cycle_times: list[float] = []
        self.verdicts: Counter[str] = Counter()
        self.pareto: Counter[str] = Counter()
        self._boxes: dict[str, list] = {}

        self.last_record = None
        self._part: str | None = None
        self._frames: dict[str, np.ndarray] = {}  # coarse frames of the part being inspected, by view
        self._worst_shot: tuple | None = None  # (severity, part id, FineShotTaken) of the part's worst call

        self.banner = QLabel("READY")
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.banner.setFont(QFont("DejaVu Sans", 54, QFont.Weight.Bold))
        self.banner.setMinimumHeight(110)
        self._paint_banner("")
        self.reason = QLabel("")
        self.reason.setWordWrap(True)
        self.reason.setFont(QFont("DejaVu Sans", 12))

        self.coarse = ScaledImageLabel("coarse camera")
        self.fine = ScaledImageLabel("fine camera")
        self.counters = QLabel()
        self.counters.setFont(QFont("DejaVu Sans", 14))
        self.alarm = AlarmPanel()
        self.reset_button = self.alarm.reset_button
        self.provider = QLabel("models: not loaded yet")
        self.provider.setWordWrap(True)
        self.provider.setFont(QFont("DejaVu Sans", 9))
        self.pareto_list = QListWidget()
        self.pareto_list.setFont(QFont("DejaVu Sans Mono", 12))
        self.pareto_list.setMinimumHeight(60)
        self.start_button, self.pause_button, self.stop_button = (QPushButton(t) for t in ("Start", "Pause", "Stop"))
        for button in (self.start_button, self.pause_button, self.stop_button):
            button.setMinimumHeight(48)
            button.setFont(QFont("DejaVu Sans", 14, QFont.Weight.Bold))
        self.pause_button.setEnabled(False)
        self.stop_button.setEnabled(False)
        self.recipe = QComboBox()
        self.recipe.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.recipe.setMinimumContentsLength(18)

        self.override_verdict = QComboBox()
        self.override_verdict.addItems(["PASS", "FAIL", "ERROR"])
        self.override_reason = QLineEdit()
        self.override_reason.setPlaceholderText("reason (required)")
        self.override_button = QPushButton("Override")
        self.override_button.setEnabled(False)
        self.override_status = QLabel("")
        self.override_status.setWordWrap(True)
        self.override_status.setFont(QFont("DejaVu Sans", 9))
        override = QGroupBox("Override the last verdict (goes to QA review)")
        row = QHBoxLayout()
        row.addWidget(self.override_verdict)
        row.addWidget(self.override_reason, 1)
        row.addWidget(self.override_button)
        override_layout = QVBoxLayout(override)
        override_layout.setContentsMargins(6, 4, 6, 4)
        override_layout.addLayout(row)
        override_layout.addWidget(self.override_status)
        self.override_reason.textChanged.connect(self._update_override_enabled)

        side = QVBoxLayout()
        side.addWidget(self.banner)
        side.addWidget(self.reason)
        side.addWidget(self.counters)
        side.addWidget(self.alarm)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.pause_button, self.stop_button):
            buttons.addWidget(button)
        side.addLayout(buttons)
        recipe_row = QHBoxLayout()
        recipe_row.addWidget(QLabel("Recipe"))
        recipe_row.addWidget(self.recipe, 1)
        side.addLayout(recipe_row)
        side.addWidget(QLabel("Defects this shift"))
        side.addWidget(self.pareto_list, 1)
        side.addWidget(override)
        side.addWidget(self.provider)
        self.coarse_caption, self.fine_caption = QLabel("coarse camera"), QLabel("fine camera")
        for caption in (self.coarse_caption, self.fine_caption):
            caption.setFont(QFont("DejaVu Sans", 11))
            caption.setTextFormat(Qt.TextFormat.RichText)
        images = QGridLayout()
        images.addWidget(self.coarse, 0, 0)
        images.addWidget(self.coarse_caption, 1, 0)
        images.addWidget(self.fine, 2, 0)
        images.addWidget(self.fine_caption, 3, 0)
        images.setRowStretch(0, 1)
        images.setRowStretch(2, 1)
        layout = QHBoxLayout(self)
        layout.addLayout(images, 3)
        layout.addLayout(side, 2)
        self._override_allowed = False
        self._update_counters()

    # -- slots for the worker's signals ------------------------------------------------------------
    def on_part_started(self, event) -> None:
        self.banner.setText("…")
        self._paint_banner("")
        self.reason.setText(f"inspecting {event.serial}")

    def on_view_captured(self, event) -> None:
        if event.part_id != self._part:
            self._part, self._frames = event.part_id, {}
        self._frames[event.view] = event.image
        self.coarse.show_image(event.image)
        self.coarse_caption.setText(f"coarse · view <b>{event.view}</b>")

    def on_candidates(self, event) -> None:
        """Detection of a view ends after the stage has moved on: show the views that have candidates."""
        frame = self._frames.get(event.view) if event.part_id == self._part else None
        if frame is not None and event.candidates:
            self.coarse.show_image(frame, [c.box_px for c in event.candidates])
            n = len(event.candidates)
            self.coarse_caption.setText(f"coarse · view <b>{event.view}</b> · {n} candidate{'s' * (n != 1)}")

    def on_fine_shot(self, event) -> None:
        self._show_fine(event)
        severity = max((SEVERITY.get(decision, 0) for _n, _s, decision in event.decisions), default=0)
        if self._worst_shot is None or self._worst_shot[1] != event.part_id or severity > self._worst_shot[0]:
            self._worst_shot = (severity, event.part_id, event)

    def _show_fine(self, event) -> None:
        boxes = getattr(event, "boxes", ())  # the candidates of the shot, coloured by the classifier's decision
        self.fine.show_image(event.image, boxes,
                             colours=[DECISION_COLOURS.get(d, "#ffb300") for _n, _s, d in event.decisions])
        calls = ", ".join(f"<span style='color:{DECISION_COLOURS.get(decision, '#37474f')}'><b>{name}</b> "
                          f"{score:.2f} {decision}</span>" for name, score, decision in event.decisions)
        self.fine_caption.setText(f"fine shot {event.index + 1}/{event.total}" + (f" · {calls}" if calls else ""))

    def on_verdict(self, event) -> None:
        record = event.record
        worst = self._worst_shot
        if worst is not None and worst[1] == record.part_id and worst[0] > 0:
            self._show_fine(worst[2])  # the shot that decided stays on screen
        self.banner.setText(record.verdict)
        self._paint_banner(record.verdict)
        self.reason.setText(f"{record.serial}: {record.reason}")
        self.verdicts[record.verdict] += 1
        self.cycle_times.append(record.timings_s.get("total", 0.0))
        for defect in record.defects:
            if defect.decision == "defect":
                self.pareto[defect.defect_class] += 1
        self.pareto_list.clear()
        for name, count in self.pareto.most_common():
            self.pareto_list.addItem(f"{name:<10} {count}")
        self.provider.setText(f"models: {', '.join(record.model_versions.values())}\n{record.provider}")
        self.last_record = record
        self.override_status.setText("")
        self._update_counters()
        self._update_override_enabled()

    def show_models(self, lines: list[str]) -> None:
        """One line per loaded model: name, version, execution provider (and why not a faster one)."""
        self.provider.setText("\n".join(lines))

    def set_running(self, running: bool, paused: bool = False) -> None:
        self.start_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.pause_button.setText("Resume" if paused else "Pause")
        self.stop_button.setEnabled(running)
        self.recipe.setEnabled(not running)

    def set_override_allowed(self, allowed: bool) -> None:
        self._override_allowed = allowed
        self._update_override_enabled()

    def _update_override_enabled(self) -> None:
        self.override_button.setEnabled(self._override_allowed and self.last_record is not None
                                        and bool(self.override_reason.text().strip()))

    # -- helpers -------------------------------------------------------------------------------------
    def _paint_banner(self, verdict: str) -> None:
        self.banner.setStyleSheet(f"background: {VERDICT_COLOURS.get(verdict, '#455a64')}; color: white;"
                                  " border-radius: 8px;")

    def _update_counters(self) -> None:
        parts = sum(self.verdicts.values())
        yield_text = f"{self.verdicts['PASS'] / parts:.1%}" if parts else "–"
        last = f"{self.cycle_times[-1]:.2f} s" if self.cycle_times else "–"
        mean = f"{statistics.fmean(self.cycle_times):.2f} s" if self.cycle_times else "–"
        self.counters.setText(f"parts {parts}   PASS {self.verdicts['PASS']}   FAIL {self.verdicts['FAIL']}   "
                              f"ERROR {self.verdicts['ERROR']}\nyield {yield_text}   cycle last {last}, mean {mean}")
