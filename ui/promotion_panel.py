"""The QA retrain / compare / promote tab: a retraining job in the background (`python -m training …`
in a QProcess, with progress, cancellable; trained on the train side of the review split only, and
refused up front when the export gives the chosen model nothing to learn from), the candidate recipe
compared with production on the gate side of the review set and on the held-out lot, and Promote —
enabled only when the regression gate passes — asking for the reason that goes to the audit log.
Long lines (a trainer's error, paths) wrap or elide: they never push Promote off the screen."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QFont
from PyQt6.QtWidgets import (QAbstractItemView, QComboBox, QFileDialog, QFormLayout, QFrame, QGroupBox, QHBoxLayout,
                             QHeaderView, QInputDialog, QLabel, QLineEdit, QPlainTextEdit, QProgressBar, QPushButton,
                             QScrollArea, QSizePolicy, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from inspector.promotion import (HELDOUT_LOT, MODEL_ROLES, REVIEW_SET, GateSplit, ModelPair, SplitRule,
                                 compare_on_review_set, eval_command, figures_from_eval_report, labelled_parts)
from inspector.inference.model_package import parse_metadata, read_metadata_props
from inspector.recipe import Recipe
from inspector.review import stacked_channels

from .elided_label import ElidedLabel
from .job_worker import CallWorker, CommandJob, JobStep, python_module
from .qa_models import NO_STATION_CONFIG, PromotionModel, ReviewModel
from .retrain_job import RetrainRefused, retrain_steps
from .review_item import html as _html


class PromotionPanel(QWidget):
    def __init__(self, review: ReviewModel, model: PromotionModel, work_dir: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.review, self.model, self.work_dir = review, model, work_dir
        self.job = CommandJob(self)
        self._job_purpose = ""
        self._job_dir: Path | None = None
        self._call: CallWorker | None = None
        self.split_rule = SplitRule()  # how a reviewed part's side (train / gate) is decided the first time

        # retraining
        self.retrain_model = QComboBox()
        self.retrain_model.addItems(MODEL_ROLES)
        self.retrain_count = QSpinBox()
        self.retrain_count.setRange(1, 100_000)
        self.retrain_count.setValue(500)
        self.retrain_count.setToolTip("detector: iterations; classifier: epochs")
        self.export_label = ElidedLabel("training data: the latest export of reviewed labels")
        # why a retraining job was not started, in plain words (wraps: it is read, not scanned)
        self.refusal_label = QLabel("")
        self.refusal_label.setWordWrap(True)
        self.refusal_label.setStyleSheet("color: #b71c1c;")
        self.refusal_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.refusal_label.setVisible(False)
        self.start_button = QPushButton("Start retraining")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.step_label = ElidedLabel("no job running")  # a trainer's long error line must not widen the tab
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(500)
        self.log.setFont(QFont("monospace", 9))
        job_box = QGroupBox("Retraining job (background)")
        form = QFormLayout()
        form.addRow("Model", self.retrain_model)
        form.addRow("Iterations / epochs", self.retrain_count)
        job_layout = QVBoxLayout(job_box)
        job_layout.addWidget(self.export_label)
        job_layout.addLayout(form)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        job_layout.addLayout(buttons)
        job_layout.addWidget(self.refusal_label)
        job_layout.addWidget(self.step_label)
        job_layout.addWidget(self.progress)
        job_layout.addWidget(self.log, 1)

        # comparison
        self.candidate_edit = QLineEdit()
        self.candidate_edit.setPlaceholderText("folder with detector.onnx + classifier.onnx")
        self.browse_button = QPushButton("Browse…")
        self.heldout_parts = QSpinBox()
        self.heldout_parts.setRange(2, 2000)
        self.heldout_parts.setValue(100)
        self.compare_button = QPushButton("Compare")
        self.table = QTableWidget(4, 2)
        self.table.setHorizontalHeaderLabels(["Production", "Candidate"])
        self.table.setVerticalHeaderLabels([f"{REVIEW_SET}: escapes", f"{REVIEW_SET}: overkill",
                                            f"{HELDOUT_LOT}: escapes", f"{HELDOUT_LOT}: overkill"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.models_label = QLabel("")
        self.rule_label = QLabel("<b>Regression gate.</b> " + model.rule.describe())
        self.gate_label = QLabel("not compared yet")
        for label in (self.models_label, self.rule_label, self.gate_label):
            label.setWordWrap(True)  # and never wider than the column: a long path wraps or is cut, not the tab
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.promote_button = QPushButton("Promote candidate…")
        self.promote_button.setEnabled(False)
        compare_box = QGroupBox("Candidate vs production")
        c = QVBoxLayout(compare_box)
        row = QHBoxLayout()
        row.addWidget(QLabel("Candidate"))
        row.addWidget(self.candidate_edit, 1)
        row.addWidget(self.browse_button)
        c.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(QLabel("Held-out parts"))
        row.addWidget(self.heldout_parts)
        row.addWidget(self.compare_button)
        row.addStretch(1)
        c.addLayout(row)
        # the figures and the gate's checks scroll inside the box; Promote stays below them, on screen
        details = QWidget()
        d = QVBoxLayout(details)
        d.setContentsMargins(0, 0, 0, 0)
        d.addWidget(self.models_label)
        d.addWidget(self.table)
        d.addWidget(self.rule_label)
        d.addWidget(self.gate_label)
        d.addStretch(1)
        self.details = QScrollArea()
        self.details.setWidget(details)
        self.details.setWidgetResizable(True)
        self.details.setFrameShape(QFrame.Shape.NoFrame)
        self.details.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.details.viewport().setAutoFillBackground(False)  # the box's own background, not a grey well
        details.setAutoFillBackground(False)
        c.addWidget(self.details, 1)
        c.addWidget(self.promote_button, 0, Qt.AlignmentFlag.AlignRight)

        layout = QHBoxLayout(self)
        layout.addWidget(job_box, 1)
        layout.addWidget(compare_box, 1)

        self.start_button.clicked.connect(self.start_retraining)
        self.cancel_button.clicked.connect(self.cancel)
        self.browse_button.clicked.connect(self._browse)
        self.candidate_edit.editingFinished.connect(self._candidate_edited)
        self.compare_button.clicked.connect(self.compare)
        self.promote_button.clicked.connect(self.ask_and_promote)
        self.job.step_started.connect(self._step_started)
        self.job.progress.connect(self._progress)
        self.job.output.connect(self.log.appendPlainText)
        self.job.finished.connect(self._job_finished)
        self.job.errored.connect(lambda text: self._log(f"error: {text}"))
        model.changed.connect(self.update_view)
        model.message.connect(lambda text: self._log(text))
        model.errored.connect(lambda text: self._log(f"error: {text}"))
        self.update_view()

    # -- retraining --------------------------------------------------------------------------------
    def latest_export(self) -> Path | None:
        exports = [Path(p) for _, p, _, _, _ in self.review.queue.exports() if Path(p).is_file()]
        return exports[-1] if exports else None

    def start_retraining(self) -> None:
        coco = self.latest_export()
        if coco is None:
            self.refuse("Not started: there is no export of reviewed labels yet (Review queue → Export labels).")
            return
        role = self.retrain_model.currentText()
        self._job_dir = self.work_dir / "jobs" / time.strftime(f"{role}_%Y%m%d_%H%M%S")
        self.log.clear()
        self.refuse("")
        try:
            channels = stacked_channels(Recipe.load(self.model.recipe_path))  # what the production detector takes
        except (OSError, ValueError) as exc:
            self.refuse(f"Not started: the production recipe {self.model.recipe_path} cannot be read ({exc}).")
            return
        try:
            steps = retrain_steps(role, coco, self._job_dir, self.retrain_count.value(), split=self.gate_split(),
                                  channels=channels)
        except RetrainRefused as exc:
            self.refuse(f"Not started: {exc}.")
            return
        except (OSError, ValueError, KeyError) as exc:
            self.refuse(f"Not started: the review export {coco} cannot be read ({exc}).")
            return
        self.start_job(steps, "retrain")

    def start_teaching(self, kind: str) -> None:
        """The few-shot job for a kind QA named: train-side review labels → a candidate folder (taught
        classifier, production's detector), then compare → gate → promote as for a retrained model."""
        self.refuse("")
        production = self.model.production()
        counts = self.review.queue.kinds.example_counts().get(kind, {"calls": 0, "boxes": 0})
        if kind in parse_metadata(read_metadata_props(production.classifier), str(production.classifier)).class_names:
            self.refuse(f"Not started: the production classifier already knows {kind!r}; retrain it instead.")
            return
        if counts["calls"] + counts["boxes"] == 0:
            self.refuse(f"Not started: no review label names {kind!r} yet: relabel its calls (change class) or draw "
                        f"its missed boxes on fine shots with that name first.")
            return
        self._job_dir = self.work_dir / "jobs" / time.strftime(f"teach_{kind}_%Y%m%d_%H%M%S")
        self.log.clear()
        self._log(f"teaching {kind!r} from {counts['calls']} labelled call(s) and {counts['boxes']} box(es) "
                  "(train-side parts only)")
        self.start_job([JobStep(f"teach {kind}", python_module(
            "training", "teach", "--kind", kind, "--review", str(self.review.store.path),
            "--out", str(self._job_dir / "candidate"), "--parent", str(production.classifier),
            "--detector", str(production.detector)))], "teach")

    def refuse(self, text: str) -> None:
        """Say why a retraining job was not started (empty: clear it); also in the log."""
        self.refusal_label.setText(text)
        self.refusal_label.setVisible(bool(text))
        if text:
            self._log(text)

    def start_job(self, steps: list[JobStep], purpose: str) -> None:
        """Run command steps in the background (the panel's one job at a time)."""
        if self.job.is_running():
            self._log("error: a job is already running")
            return
        self._job_purpose = purpose
        self.progress.setRange(0, 0)
        self.job.start(steps)
        self.update_view()

    def cancel(self) -> None:
        self.job.cancel()

    def _step_started(self, index: int, count: int, label: str) -> None:
        self.step_label.setText(f"step {index + 1}/{count}: {label}")
        self.progress.setRange(0, 0)

    def _progress(self, done: int, total: int) -> None:
        self.progress.setFormat("%v / %m")
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _job_finished(self, ok: bool, message: str) -> None:
        self.step_label.setText(message)
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if ok else 0)
        self.progress.setFormat("done" if ok else "stopped")
        purpose, self._job_purpose = self._job_purpose, ""
        if purpose in ("retrain", "teach") and ok and self._job_dir is not None:
            candidate = self._job_dir / "candidate"
            production = self.model.production()
            for role in MODEL_ROLES:  # the model not retrained stays production's
                if not (candidate / f"{role}.onnx").is_file():
                    shutil.copyfile(production.path(role), candidate / f"{role}.onnx")
            self.candidate_edit.setText(str(candidate))
            self._candidate_edited()
            self._log(f"candidate ready: {candidate}; compare it with production")
        elif purpose == "eval":
            self._eval_finished(ok)
        self.update_view()

    # -- comparison ------------------------------------------------------------------------------
    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Candidate models folder", str(self.work_dir))
        if folder:
            self.candidate_edit.setText(folder)
            self._candidate_edited()

    def _candidate_edited(self) -> None:
        text = self.candidate_edit.text().strip()
        self.model.set_candidate(ModelPair.in_folder(text) if text else None)

    def compare(self) -> None:
        """The candidate recipe is written first; then the gate side of the review set in a worker
        thread (ONNX, in process), then the held-out lot for the production and the candidate recipe
        as `inspector eval` subprocesses (cached per recipe hash and lot size)."""
        station = self.review.station_config
        if station is None:
            self._log(f"error: review set: {NO_STATION_CONFIG}")
            return
        self._candidate_edited()
        candidate = self.model.candidate
        if candidate is None or candidate.missing():
            self._log(f"error: candidate incomplete: {', '.join(candidate.missing()) if candidate else 'no folder'}")
            return
        try:
            candidate_recipe = self.model.prepare_candidate()
        except (OSError, ValueError) as exc:
            self._log(f"error: candidate recipe: {exc}")
            return
        recipe, split = self.model.recipe_path, self.gate_split()
        parts = labelled_parts(self.review.queue)
        self._log(f"candidate recipe {candidate_recipe}; comparing on the gate side of the review set "
                  f"({len(parts)} labelled part(s) before the split)…")
        self.step_label.setText("review set: starting")
        call = CallWorker(lambda progress: compare_on_review_set(recipe, candidate_recipe, parts, station=station,
                                                                 split=split, progress=progress), self)
        call.progress.connect(self._progress)
        call.progress.connect(lambda d, t: self.step_label.setText(f"review set: {d}/{t} parts"))
        call.done.connect(self._review_compared)
        call.errored.connect(lambda text: self._log(f"error: review set: {text}"))
        call.finished.connect(self.update_view)
        self._call = call
        call.start()
        self.update_view()

    def _review_compared(self, result) -> None:
        production, candidate = result
        self.model.set_figures("production", production)
        self.model.set_figures("candidate", candidate)
        self._log(f"review set: {production.notes[0]}")
        if production.skipped:
            self._log(f"review set: {production.skipped} part(s) skipped: " + "; ".join(production.notes[1:4]))
        self.run_heldout()

    def gate_split(self) -> GateSplit:
        """The stored train / gate split of reviewed parts (in the review queue's result store)."""
        return GateSplit(self.review.queue.store, self.split_rule)

    def _eval_dir(self, recipe_path: Path, which: str) -> Path:
        tag = Recipe.load(recipe_path).hash.split(":")[1][:12]
        return self.work_dir / "eval" / f"{which}-{tag}-{self.heldout_parts.value()}"

    def _recipes(self) -> list[tuple[str, Path]]:
        if self.model.candidate_recipe is None:
            return []
        return [("production", self.model.recipe_path), ("candidate", self.model.candidate_recipe)]

    def run_heldout(self) -> None:
        steps = []
        for which, recipe in self._recipes():
            out = self._eval_dir(recipe, which)
            if not self._read_report(which, recipe):
                steps.append(JobStep(f"held-out lot, {which}",
                                     eval_command(recipe, parts=self.heldout_parts.value(), out=out)))
        if steps:
            self.start_job(steps, "eval")

    def _eval_finished(self, ok: bool) -> None:
        for which, recipe in self._recipes():
            self._read_report(which, recipe)

    def _read_report(self, which: str, recipe: Path) -> bool:
        """Figures from the held-out report of exactly this recipe (a report of another is refused)."""
        report = self._eval_dir(recipe, which) / "report.json"
        if not report.is_file():
            return False
        try:
            self.model.set_figures(which, figures_from_eval_report(report, recipe_hash=Recipe.load(recipe).hash))
        except ValueError as exc:
            self._log(f"error: held-out lot, {which}: {exc}")
        return True

    def shutdown(self) -> None:
        """Stop the background job and let a running comparison finish (closing the window)."""
        self.job.cancel()
        if self._call is not None and self._call.is_running():
            self._call.wait(60_000)

    # -- promotion -------------------------------------------------------------------------------
    def ask_and_promote(self) -> None:
        reason, ok = QInputDialog.getText(self, "Promote candidate", "Reason (goes to the audit log):")
        if ok and reason.strip():
            self.model.promote(reason.strip())

    # -- view ------------------------------------------------------------------------------------
    def update_view(self) -> None:
        m = self.model
        busy = self.job.is_running() or (self._call is not None and self._call.is_running())
        retrain = m.session is not None and m.session.allows("retrain")
        self.start_button.setEnabled(retrain and not busy)
        self.cancel_button.setEnabled(self.job.is_running())
        self.compare_button.setEnabled(retrain and not busy)
        latest = self.latest_export()
        self.export_label.setText(f"Training data: {latest}" if latest else
                                  "Training data: none yet — export labels first")
        for column, figures in enumerate((m.production_figures, m.candidate_figures)):
            for row, (name, what) in enumerate(((REVIEW_SET, "escape"), (REVIEW_SET, "overkill"),
                                                (HELDOUT_LOT, "escape"), (HELDOUT_LOT, "overkill"))):
                f = figures.get(name)
                text = "—" if f is None else (f.escape_text() if what == "escape" else f.overkill_text())
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeRowsToContents()
        self.table.setFixedHeight(self.table.horizontalHeader().sizeHint().height()
                                  + sum(self.table.rowHeight(r) for r in range(self.table.rowCount())) + 4)
        try:
            production = m.production()
            versions = ", ".join(f"{r} {v}" for r, v in production.versions().items())
            self.models_label.setText(f"Production ({m.recipe_path.name}): {versions}"
                                      + (f"<br>Candidate: {m.candidate.detector.parent}" if m.candidate else ""))
        except (OSError, ValueError) as exc:
            self.models_label.setText(f"production models: {exc}")
        if m.gate_result is None:
            self.gate_label.setText("Gate: not evaluated (compare both sets first)")
            self.gate_label.setStyleSheet("color: #455a64;")
        else:
            extra = tuple("✗ " + f for f in m.gate_result.failures if not any(f in c for c in m.gate_result.checks))
            lines = "<br>".join(f"<span style='color:{'#b71c1c' if line.startswith('✗') else '#1b5e20'}'>"
                                f"{_html(line)}</span>" for line in m.gate_result.checks + extra)
            verdict = "PASSED" if m.gate_result.passed else "FAILED"
            colour = "#1b5e20" if m.gate_result.passed else "#b71c1c"
            self.gate_label.setText(f"<b style='color:{colour}'>Gate {verdict}</b><br>{lines}")
            self.gate_label.setStyleSheet("")
        self.promote_button.setEnabled(m.can_promote() and not busy)
        self.promote_button.setToolTip("" if m.can_promote() else
                                       "needs a QA session, a candidate and a passed gate")

    def _log(self, text: str) -> None:
        self.log.appendPlainText(text)
