"""The operator workspace: big verdict, the latest coarse image with candidates, the fine shots,
counters, cycle time and the shift's defect Pareto; Start / Pause / Stop, the machine's state with
Reset, the recipe, the loaded models and their execution provider, and the override of the last
verdict. Thin: the station (`station_adapter.Station`) does the work, this only shows it."""
from __future__ import annotations

import statistics
import time

import numpy as np
from PyQt6.QtCore import Qt
from PyQt6.QtGui import QFont
from PyQt6.QtWidgets import (QComboBox, QFrame, QGridLayout, QHBoxLayout, QLabel, QLineEdit, QListWidget,
                             QPushButton, QSizePolicy, QTabWidget, QVBoxLayout, QWidget)

from inspector.golden import GOLDEN_PART_PREFIX
from inspector.shift import ShiftTally, shift_at

from .alarm_panel import AlarmPanel
from .golden_panel import GoldenPanel
from .image_label import ScaledImageLabel
from .verdict_strip import VERDICT_COLOURS, StripEntry, VerdictStrip
DECISION_COLOURS = {"defect": "#c62828", "review": "#e08a00", "ok": "#546e7a"}
SEVERITY = {"defect": 2, "review": 1}


class OperatorView(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self._set_tally(ShiftTally(shift_at(time.time())))  # restore_shift() brings the store's
        self._boxes: dict[str, list] = {}

        self.last_record = None
        self._part: str | None = None
        self._frames: dict[str, np.ndarray] = {}  # coarse frames of the part being inspected, by view
        self._worst_shot: tuple | None = None  # (severity, part id, FineShotTaken) of the part's worst call

        self._fine_part: str | None = None  # the part whose fine shot the fine pane shows, and its serial
        self._fine_serial = ""
        self._serials: dict[str, str] = {}  # part id -> serial, for the parts seen starting

        # the last part's verdict stays until the next verdict; what runs now is the small line below
        self.banner = QLabel("READY")
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.banner.setFont(QFont("DejaVu Sans", 48, QFont.Weight.Bold))
        self.banner.setMinimumHeight(84)
        self.verdict_serial = QLabel("")
        self.verdict_serial.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.verdict_serial.setFont(QFont("DejaVu Sans", 15, QFont.Weight.Bold))
        self._paint_banner("")
        self.activity = QLabel("")
        self.activity.setFont(QFont("DejaVu Sans", 11))
        self.activity.setStyleSheet("color: #37474f;")
        self.history = VerdictStrip()
        self.reason = QLabel("")
        self.reason.setWordWrap(True)
        self.reason.setFont(QFont("DejaVu Sans", 12))

        self.coarse = ScaledImageLabel("coarse camera")
        self.fine = ScaledImageLabel("fine camera")
        self.counters = QLabel()
        self.counters.setFont(QFont("DejaVu Sans", 14))
        self.alarm = AlarmPanel()
        self.reset_button = self.alarm.reset_button
        self.golden = GoldenPanel()  # the masters' check before production (bound to the station by the window)
        self.provider = QLabel("models: not loaded yet")
        self.provider.setWordWrap(True)
        self.provider.setFont(QFont("DejaVu Sans", 9))
        self.pareto_list = QListWidget()
        self.pareto_list.setFont(QFont("DejaVu Sans Mono", 12))
        self.pareto_list.setMinimumHeight(48)
        self.start_button, self.pause_button, self.stop_button = (QPushButton(t) for t in ("Start", "Pause", "Stop"))
        for button in (self.start_button, self.pause_button, self.stop_button):
            button.setMinimumHeight(48)
            button.setFont(QFont("DejaVu Sans", 14, QFont.Weight.Bold))
        self.pause_button.setEnabled(False)
        self.stop_button.setEnabled(False)
        self.start_reason = QLabel("")  # why Start is off, in plain words (empty while Start is on)
        self.start_reason.setWordWrap(True)
        self.start_reason.setFont(QFont("DejaVu Sans", 10))
        self.start_reason.setStyleSheet("color: #8d4f00;")
        self.start_reason.setVisible(False)
        self.recipe = QComboBox()
        self.recipe.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.recipe.setMinimumContentsLength(14)
        self.recipe_version = QLabel("")
        self.recipe_version.setFont(QFont("DejaVu Sans", 10))
        # a newer version of the running recipe on disk: a notice and a choice, never a silent switch
        self.recipe_notice = QFrame()
        self.recipe_notice.setStyleSheet("QFrame { background: #fff3cd; border: 1px solid #e0a800; border-radius: 4px; }"
                                         " QLabel { border: none; }")
        self.recipe_notice_text = QLabel("")
        self.recipe_notice_text.setWordWrap(True)
        self.recipe_load_button = QPushButton("Load new version")
        self.recipe_keep_button = QPushButton("Keep current")
        notice = QVBoxLayout(self.recipe_notice)
        notice.setContentsMargins(6, 4, 6, 4)
        notice.addWidget(self.recipe_notice_text)
        notice_buttons = QHBoxLayout()
        notice_buttons.addWidget(self.recipe_load_button)
        notice_buttons.addWidget(self.recipe_keep_button)
        notice.addLayout(notice_buttons)
        self.recipe_notice.setVisible(False)

        self.override_verdict = QComboBox()
        self.override_verdict.addItems(["PASS", "FAIL", "ERROR"])
        self.override_reason = QLineEdit()
        self.override_reason.setPlaceholderText("reason (required)")
        self.override_button = QPushButton("Override")
        self.override_button.setEnabled(False)
        self.override_status = QLabel("")
        self.override_status.setWordWrap(True)
        self.override_status.setFont(QFont("DejaVu Sans", 9))
        override = QWidget()
        row = QHBoxLayout()
        row.addWidget(self.override_verdict)
        row.addWidget(self.override_reason, 1)
        row.addWidget(self.override_button)
        override_layout = QVBoxLayout(override)
        override_layout.setContentsMargins(6, 4, 6, 4)
        override_help = QLabel("Override the last verdict with a reason: it goes to QA review and the audit log.")
        override_help.setWordWrap(True)
        override_help.setFont(QFont("DejaVu Sans", 9))
        override_layout.addWidget(override_help)
        override_layout.addLayout(row)
        override_layout.addWidget(self.override_status)
        override_layout.addStretch(1)
        # the shift's Pareto, the golden check, the override and the models share one area, so the
        # workspace fits 1024x768; the golden check comes to the front while it blocks production
        self.details = QTabWidget()
        self.details.setDocumentMode(True)
        self.details.setUsesScrollButtons(False)  # every tab in sight, even at 1024x768
        self.details.setElideMode(Qt.TextElideMode.ElideRight)
        self.details.addTab(self.pareto_list, "Defects")
        self.details.addTab(self.golden, "Golden check")
        self.details.addTab(override, "Override")
        self.details.addTab(self.provider, "Models")
        self.provider.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.provider.setMargin(6)
        self.override_reason.textChanged.connect(self._update_override_enabled)

        side = QVBoxLayout()
        side.setSpacing(4)
        verdict = QVBoxLayout()
        verdict.setSpacing(0)
        verdict.addWidget(self.banner)
        verdict.addWidget(self.verdict_serial)
        side.addLayout(verdict)
        side.addWidget(self.activity)
        side.addWidget(self.history)
        side.addWidget(self.reason)
        side.addWidget(self.counters)
        side.addWidget(self.alarm)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.pause_button, self.stop_button):
            buttons.addWidget(button)
        side.addLayout(buttons)
        side.addWidget(self.start_reason)
        recipe_row = QHBoxLayout()
        recipe_row.addWidget(QLabel("Recipe"))
        recipe_row.addWidget(self.recipe, 1)
        recipe_row.addWidget(self.recipe_version)
        side.addLayout(recipe_row)
        side.addWidget(self.recipe_notice)
        side.addWidget(self.details, 1)
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
        # long text (file paths in a reason) wraps and never widens the side column
        for label in (self.reason, self.activity, self.start_reason, self.recipe_notice_text, self.provider):
            label.setSizePolicy(QSizePolicy.Policy.Ignored, label.sizePolicy().verticalPolicy())
        self._override_allowed = False
        self._update_counters()

    # -- slots for the worker's signals ------------------------------------------------------------
    def on_part_started(self, event) -> None:
        """The banner keeps the last verdict; the small line says which part is being inspected."""
        self._serials[event.part_id] = event.serial
        self.activity.setText(f"▶ inspecting {event.serial}")
        if self._fine_part is not None and self._fine_part != event.part_id:
            self.fine_caption.setText(f"fine shot of the previous part, {self._fine_serial}")

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
        self._fine_part, self._fine_serial = event.part_id, self._serials.get(event.part_id, event.part_id)
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
        elif self._fine_part != record.part_id:  # no fine shot of its own: never another part's under it
            self._fine_part = None
            self.fine.clear_image(f"no fine shot of {record.serial}")
            self.fine_caption.setText(f"fine camera · no fine shot of {record.serial}")
        self.banner.setText(record.verdict)
        self._paint_banner(record.verdict)
        self.verdict_serial.setText(record.serial)
        self.history.add(record.serial, record.verdict, record.reason)
        self.reason.setText(f"{record.serial}: {record.reason}")
        if self.activity.text().startswith("▶"):
            self.activity.setText("")
        self._serials.pop(record.part_id, None)
        if record.finished_at >= self.tally.shift.end:  # a new shift began: its counters start at zero
            self._set_tally(ShiftTally(shift_at(record.finished_at)))
        if not record.part_id.startswith(GOLDEN_PART_PREFIX):  # a master is shown, not counted as production
            self.tally.add(record.serial, record.verdict, record.reason, record.timings_s.get("total", 0.0),
                           [d.defect_class for d in record.defects if d.decision == "defect"])
        self._show_pareto()
        self.provider.setText(f"models: {', '.join(record.model_versions.values())}\n{record.provider}")
        self.last_record = record
        self.override_status.setText("")
        self._update_counters()
        self._update_override_enabled()

    def restore_shift(self, tally: ShiftTally) -> None:
        """The shift's counters, Pareto and last parts as the result store holds them (a restart)."""
        self._set_tally(tally)
        self.history.set_entries([StripEntry(*entry) for entry in tally.last])
        self._show_pareto()
        self._update_counters()

    def _set_tally(self, tally: ShiftTally) -> None:
        self.tally = tally
        self.verdicts, self.pareto, self.cycle_times = tally.verdicts, tally.pareto, tally.cycle_times

    def _show_pareto(self) -> None:
        self.pareto_list.clear()
        for name, count in self.pareto.most_common():
            self.pareto_list.addItem(f"{name:<10} {count}")

    def show_station_state(self, state: str) -> None:
        """Before the first verdict the banner says whether the station can start (never READY when
        it cannot); after it, the banner holds the last verdict whatever the state."""
        if self.last_record is None:
            text = {"Idle": "READY", "Not ready": "NOT READY", "Alarm": "ALARM", "Offline": "OFFLINE"}.get(state)
            if text is not None:
                self.banner.setText(text)

    def show_golden(self, blocking: bool) -> None:
        """The golden check's tab to the front when it starts blocking production."""
        if blocking and not getattr(self, "_golden_blocking", False):
            self.details.setCurrentWidget(self.golden)
        self._golden_blocking = blocking

    def show_models(self, lines: list[str]) -> None:
        """One line per loaded model: name, version, execution provider (and why not a faster one)."""
        self.provider.setText("\n".join(lines))

    def set_running(self, running: bool, paused: bool = False) -> None:
        self.start_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.pause_button.setText("Resume" if paused else "Pause")
        self.stop_button.setEnabled(running)
        self.recipe.setEnabled(not running)
        if not running and self.activity.text().startswith(("▶", "■")):
            self.activity.setText("")

    def set_stopping(self) -> None:
        """Stop pressed: said at once, before the part in progress has ended."""
        self.stop_button.setEnabled(False)
        self.pause_button.setEnabled(False)
        self.start_button.setEnabled(False)
        self.activity.setText("■ stopping… the part in progress ends (ERROR: not fully inspected), then the lot stops")

    def set_start_reason(self, reason: str) -> None:
        """Why Start is off ('' while it is on, or while a lot runs)."""
        self.start_reason.setText(reason)
        self.start_reason.setVisible(bool(reason))

    def set_override_allowed(self, allowed: bool) -> None:
        self._override_allowed = allowed
        self._update_override_enabled()

    def _update_override_enabled(self) -> None:
        self.override_button.setEnabled(self._override_allowed and self.last_record is not None
                                        and bool(self.override_reason.text().strip()))

    # -- helpers -------------------------------------------------------------------------------------
    def _paint_banner(self, verdict: str) -> None:
        colour = VERDICT_COLOURS.get(verdict, "#455a64")
        self.banner.setStyleSheet(f"background: {colour}; color: white; border-top-left-radius: 8px;"
                                  " border-top-right-radius: 8px;")
        self.verdict_serial.setStyleSheet(f"background: {colour}; color: white; border-bottom-left-radius: 8px;"
                                          " border-bottom-right-radius: 8px; padding: 2px;")

    def _update_counters(self) -> None:
        parts = sum(self.verdicts.values())
        yield_text = f"{self.verdicts['PASS'] / parts:.1%}" if parts else "–"
        last = f"{self.cycle_times[-1]:.2f} s" if self.cycle_times else "–"
        mean = f"{statistics.fmean(self.cycle_times):.2f} s" if self.cycle_times else "–"
        self.counters.setText(f"parts {parts}   PASS {self.verdicts['PASS']}   FAIL {self.verdicts['FAIL']}   "
                              f"ERROR {self.verdicts['ERROR']}\nyield {yield_text}   cycle last {last}, mean {mean}")
        self.counters.setToolTip(f"shift {self.tally.shift.name} (counters kept in the result store)")
        self.details.setTabToolTip(0, f"defects this shift ({self.tally.shift.name}), most frequent first")
