"""The QA engineer's workspace.

Review: the queue as a gallery of thumbnails with filters (verdict, class, grey band, dates, recipe,
open/done); an open item shows the coarse frame with the station's calls, the fine shots and the
record; per call: confirm, reject, change class; a missed defect is a box dragged on the image;
notes; export of the reviewed labels (COCO). Retrain & promote: a retraining job in the background
(`python -m training …` in a QProcess, with progress, cancellable; trained on the train side of the
review split only), the candidate recipe (candidate models pinned, their own thresholds) compared
with production on the gate side of the review set and on the held-out lot side by side, and
Promote — enabled only when the regression gate passes for that recipe — asking for the reason that
goes to the audit log; the promotion is a new production recipe version.

Thin: `qa_models` holds the state and calls the core, which checks the session's role itself.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from PyQt6.QtCore import QDate, QDateTime, QPointF, QRectF, QSize, Qt, QTime, pyqtSignal
from PyQt6.QtGui import QColor, QFont, QIcon, QImage, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap
from PyQt6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDateEdit, QFileDialog, QFormLayout,
                             QGridLayout, QGroupBox, QHBoxLayout, QHeaderView, QInputDialog, QLabel, QLineEdit,
                             QListView, QListWidget, QListWidgetItem, QPlainTextEdit, QProgressBar, QPushButton,
                             QSizePolicy, QSpinBox, QSplitter, QTableWidget, QTableWidgetItem, QTabWidget,
                             QVBoxLayout, QWidget)

from inspector.access import AccessControl, Session
from inspector.promotion import (HELDOUT_LOT, MODEL_ROLES, REVIEW_SET, GateSplit, ModelPair, SplitRule,
                                 compare_on_review_set, eval_command, figures_from_eval_report, labelled_parts)
from inspector.recipe import DEFECT_CLASSES, Recipe
from inspector.results.records import VERDICTS
from inspector.review import UNKNOWN
from inspector.station_config import StationConfig

from .job_worker import CallWorker, CommandJob, JobStep
from .qa_models import (DECISION_COLOURS, NO_STATION_CONFIG, THUMB, Overlay, PromotionModel, ReviewFilters, ReviewModel,
                        needs_calibration, overlays_for, retrain_steps, thumbnail_source)

ANY = "any"


# -- the image with boxes, where a missed box is dragged ------------------------------------------------
class ImageCanvas(QWidget):
    """An archived frame scaled to fit, the calls drawn over it; with drawing on, a mouse drag
    marks a box (in the image's pixels) and emits `box_drawn`."""

    box_drawn = pyqtSignal(int, int, int, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumSize(360, 270)
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


# -- the review tab ------------------------------------------------------------------------------------
class ReviewPanel(QWidget):
    def __init__(self, model: ReviewModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self._image_path: str | None = None

        # filters
        self.verdict_filter = QComboBox()
        self.verdict_filter.addItems([ANY, *VERDICTS])
        self.class_filter = QComboBox()
        self.class_filter.addItems([ANY, *DEFECT_CLASSES, UNKNOWN])
        self.grey_filter = QCheckBox("grey band only")
        self.status_filter = QComboBox()
        self.status_filter.addItems(["open", "done", ANY])
        self.dates_filter = QCheckBox("from")
        today = QDate.currentDate()
        self.since_edit = QDateEdit(today.addDays(-7))
        self.until_edit = QDateEdit(today)
        for edit in (self.since_edit, self.until_edit):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setEnabled(False)
        self.recipe_filter = QComboBox()
        self.recipe_filter.addItem(ANY)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Load the parts the station committed since the last refresh")
        self.export_button = QPushButton("Export labels (COCO)…")
        # a long recipe id must not widen the workspace past a 1280 px screen
        self.recipe_filter.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.recipe_filter.setMinimumContentsLength(14)
        # two rows, so the workspace fits a 1280x800 station screen: what is filtered, then when and the actions
        filters = QVBoxLayout()
        filters.setSpacing(4)
        for row_widgets, actions in (
                ((("Verdict", self.verdict_filter), ("Class", self.class_filter), ("Status", self.status_filter),
                  ("Recipe", self.recipe_filter), (None, self.grey_filter)), ()),
                (((None, self.dates_filter), (None, self.since_edit), ("to", self.until_edit)),
                 (self.refresh_button, self.export_button))):
            row = QHBoxLayout()
            for label, widget in row_widgets:
                if label:
                    row.addWidget(QLabel(label))
                row.addWidget(widget)
            row.addStretch(1)
            for button in actions:
                row.addWidget(button)
            filters.addLayout(row)

        # gallery
        self.gallery = QListView()
        self.gallery.setModel(model.gallery)
        self.gallery.setViewMode(QListView.ViewMode.IconMode)
        self.gallery.setIconSize(THUMB)
        self.gallery.setGridSize(QSize(THUMB.width() + 14, THUMB.height() + 46))
        self.gallery.setResizeMode(QListView.ResizeMode.Adjust)
        self.gallery.setMovement(QListView.Movement.Static)
        self.gallery.setUniformItemSizes(True)
        self.gallery.setWordWrap(True)
        self.gallery.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.gallery.setMinimumWidth(2 * (THUMB.width() + 14) + 24)
        self.count_label = QLabel("0 items")
        left = QVBoxLayout()
        left.setContentsMargins(0, 0, 0, 0)
        left.addWidget(self.gallery, 1)
        left.addWidget(self.count_label)
        left_box = QWidget()
        left_box.setLayout(left)

        # the open item: image, fine shots
        self.image_choice = QComboBox()
        self.canvas = ImageCanvas()
        self.crops = QListWidget()
        self.crops.setViewMode(QListView.ViewMode.IconMode)
        self.crops.setFlow(QListView.Flow.LeftToRight)
        self.crops.setWrapping(False)
        self.crops.setIconSize(QSize(96, 72))
        self.crops.setFixedHeight(112)
        self.crops.setMovement(QListView.Movement.Static)
        self.crops.setToolTip("fine shots of the part: click to show one above")
        image_col = QVBoxLayout()
        image_col.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Image"))
        row.addWidget(self.image_choice, 1)
        image_col.addLayout(row)
        image_col.addWidget(self.canvas, 1)
        image_col.addWidget(QLabel("Fine shots"))
        image_col.addWidget(self.crops)
        image_box = QWidget()
        image_box.setLayout(image_col)

        # the record and the actions
        self.record = QLabel("no item open")
        self.record.setWordWrap(True)
        self.record.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.record.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.record.setMinimumHeight(self.record.fontMetrics().lineSpacing() * 6 + 8)
        self.record.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.defects = QTableWidget(0, 6)
        self.defects.setHorizontalHeaderLabels(["#", "class", "score", "decision", "size mm", "label"])
        self.defects.verticalHeader().setVisible(False)
        self.defects.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.defects.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.defects.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.defects.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)
        self.confirm_button = QPushButton("Confirm")
        self.reject_button = QPushButton("Reject")
        self.class_choice = QComboBox()
        self.class_choice.addItems([*DEFECT_CLASSES, UNKNOWN])
        self.kind_name = QLineEdit()  # only for 'unknown': QA may name the new kind
        self.kind_name.setPlaceholderText("name of the new kind (optional)")
        self.kind_name.setVisible(False)
        self.change_button = QPushButton("Change class")
        self.draw_button = QPushButton("Draw missed box")
        self.draw_button.setCheckable(True)
        self.box_class = QComboBox()
        self.box_class.addItems(DEFECT_CLASSES)
        self.add_box_button = QPushButton("Add box")
        self.add_box_button.setEnabled(False)
        self.note_edit = QLineEdit()
        self.note_edit.setPlaceholderText("note on this item")
        self.note_button = QPushButton("Add note")
        self.close_button = QPushButton("Close item")
        self.history = QListWidget()
        self.history.setWordWrap(True)

        actions = QGridLayout()
        actions.addWidget(self.confirm_button, 0, 0)
        actions.addWidget(self.reject_button, 0, 1)
        choice_row = QHBoxLayout()
        choice_row.addWidget(self.class_choice)
        choice_row.addWidget(self.kind_name, 1)
        actions.addLayout(choice_row, 1, 0)
        actions.addWidget(self.change_button, 1, 1)
        actions.addWidget(self.draw_button, 2, 0)
        actions.addWidget(self.box_class, 2, 1)
        actions.addWidget(self.add_box_button, 3, 1)
        actions.addWidget(self.note_edit, 4, 0)
        actions.addWidget(self.note_button, 4, 1)
        history_row = QHBoxLayout()
        history_row.addWidget(QLabel("History"))
        history_row.addStretch(1)
        history_row.addWidget(self.close_button)
        # the table and the history take the height that is left, from a few rows: the workspace
        # then fits a 1280x800 station screen without a scroll bar and grows on a larger one
        for widget, rows in ((self.defects, 3), (self.history, 2)):
            widget.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Ignored)
            widget.setMinimumHeight(widget.fontMetrics().lineSpacing() * (rows + 1) + 24)
        side = QVBoxLayout()
        side.setContentsMargins(0, 0, 0, 0)
        side.addWidget(self.record)
        side.addWidget(self.defects, 2)
        side.addLayout(actions)
        side.addLayout(history_row)
        side.addWidget(self.history, 1)
        side_box = QWidget()
        side_box.setLayout(side)
        side_box.setMinimumWidth(330)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left_box)
        self.splitter.addWidget(image_box)
        self.splitter.addWidget(side_box)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        self.splitter.setSizes([390, 520, 350])
        self.status = QLabel("")
        self.status.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.status)

        # wiring
        for combo in (self.verdict_filter, self.class_filter, self.status_filter, self.recipe_filter):
            combo.currentIndexChanged.connect(self.apply_filters)
        self.grey_filter.toggled.connect(self.apply_filters)
        self.dates_filter.toggled.connect(self._dates_toggled)
        self.since_edit.dateChanged.connect(self.apply_filters)
        self.until_edit.dateChanged.connect(self.apply_filters)
        self.refresh_button.clicked.connect(self.refresh)
        self.export_button.clicked.connect(self.export)
        self.gallery.selectionModel().currentChanged.connect(self._item_chosen)
        self.image_choice.currentIndexChanged.connect(self._image_chosen)
        self.crops.itemClicked.connect(lambda it: self.show_image(it.data(Qt.ItemDataRole.UserRole)))
        self.defects.itemSelectionChanged.connect(self._defect_chosen)
        self.confirm_button.clicked.connect(lambda: self._with_defect(model.confirm))
        self.reject_button.clicked.connect(lambda: self._with_defect(model.reject))
        self.class_choice.currentTextChanged.connect(lambda text: self.kind_name.setVisible(text == UNKNOWN))
        self.change_button.clicked.connect(
            lambda: self._with_defect(lambda i: model.change_class(i, self.class_choice.currentText(),
                                                                   name=self.chosen_kind_name())))
        self.draw_button.toggled.connect(self.canvas.set_drawing)
        self.canvas.box_drawn.connect(lambda *box: self.add_box_button.setEnabled(self._can("review")))
        self.add_box_button.clicked.connect(self.add_drawn_box)
        self.note_button.clicked.connect(self.add_note)
        self.note_edit.returnPressed.connect(self.add_note)
        self.close_button.clicked.connect(model.close_item)
        model.items_changed.connect(self._items_changed)
        model.current_changed.connect(self._show_item)
        model.session_changed.connect(self.update_permissions)
        model.message.connect(self._say)
        model.errored.connect(lambda text: self._say(text, error=True))
        self.update_permissions()

    # -- filters and gallery ---------------------------------------------------------------------
    def _dates_toggled(self, on: bool) -> None:
        self.since_edit.setEnabled(on)
        self.until_edit.setEnabled(on)
        self.apply_filters()

    def filters(self) -> ReviewFilters:
        def pick(combo: QComboBox) -> str | None:
            return None if combo.currentText() == ANY else combo.currentText()

        since = until = None
        if self.dates_filter.isChecked():
            since = QDateTime(self.since_edit.date(), QTime(0, 0)).toSecsSinceEpoch()
            until = QDateTime(self.until_edit.date().addDays(1), QTime(0, 0)).toSecsSinceEpoch()
        return ReviewFilters(verdict=pick(self.verdict_filter), defect_class=pick(self.class_filter),
                             grey_only=self.grey_filter.isChecked(), since=since, until=until,
                             recipe_id=pick(self.recipe_filter), status=pick(self.status_filter))

    def apply_filters(self) -> None:
        self.model.set_filters(self.filters())

    def refresh(self) -> None:
        self.model.refresh()
        current = self.recipe_filter.currentText()
        self.recipe_filter.blockSignals(True)
        self.recipe_filter.clear()
        self.recipe_filter.addItems([ANY, *self.model.recipe_ids()])
        self.recipe_filter.setCurrentText(current)
        self.recipe_filter.blockSignals(False)

    def _items_changed(self) -> None:
        n = self.model.gallery.rowCount()
        self.count_label.setText(f"{n} item{'s' if n != 1 else ''} (click one to open it)")
        if self.model.current is not None:
            for row, item in enumerate(self.model.gallery.items()):
                if item.id == self.model.current.id:
                    self.gallery.selectionModel().blockSignals(True)
                    self.gallery.setCurrentIndex(self.model.gallery.index(row))
                    self.gallery.selectionModel().blockSignals(False)

    def _item_chosen(self, index) -> None:
        item = self.model.gallery.data(index, self.model.gallery.ItemRole) if index.isValid() else None
        self.model.open(item.id if item is not None else None)

    def open_row(self, row: int) -> None:
        self.gallery.setCurrentIndex(self.model.gallery.index(row))

    # -- the open item ---------------------------------------------------------------------------
    def _show_item(self) -> None:
        item = self.model.current
        selected = self.selected_defect()
        self.image_choice.blockSignals(True)
        self.image_choice.clear()
        self.crops.clear()
        self.defects.setRowCount(0)
        self.history.clear()
        if item is None:
            self.record.setText("no item open")
            self.canvas.set_image(None, [])
            self.image_choice.blockSignals(False)
            self.update_permissions()
            return
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(item.finished_at))
        colour = {"PASS": "#1f8a3b", "FAIL": "#c0392b", "ERROR": "#d68910"}.get(item.verdict, "#444")
        what = item.kind.replace("_", " ") + ("" if item.defect_index is None else f" (call #{item.defect_index})")
        self.record.setText(
            f"<b style='font-size:13pt'>{item.serial}</b> &nbsp;<b style='color:{colour}'>{item.verdict}</b>"
            f" &nbsp;item {item.id} · {what} · {item.status}<br>{_html(item.reason) or '—'}<br>"
            f"<span style='color:#555'>part {item.part_id} · {when} · recipe {item.recipe_id} v{item.recipe_version}"
            f"{' · override → ' + item.override_verdict if item.override_verdict else ''}</span>")
        for path in item.image_paths:
            self.image_choice.addItem(Path(path).stem, path)
            if Path(path).stem.startswith("fine_"):
                crop = QListWidgetItem(Path(path).stem.replace("fine_", ""))
                image = QImage(path)
                if not image.isNull():
                    crop.setIcon(QIcon(QPixmap.fromImage(image.scaled(96, 72, Qt.AspectRatioMode.KeepAspectRatio))))
                crop.setData(Qt.ItemDataRole.UserRole, path)
                self.crops.addItem(crop)
        self.image_choice.blockSignals(False)
        for index, d in enumerate(item.defects):
            label = self.model.defect_label(index) or ""
            row = self.defects.rowCount()
            self.defects.insertRow(row)
            values = (str(index), d.defect_class, f"{d.score:.2f}", d.decision, f"{d.size_mm:.2f}", label)
            for column, text in enumerate(values):
                cell = QTableWidgetItem(text)
                if column == 3:
                    cell.setForeground(QColor(DECISION_COLOURS.get(d.decision, "#000")).darker(130))
                self.defects.setItem(row, column, cell)
        for lb in reversed(self.model.labels):
            at = time.strftime("%H:%M:%S", time.localtime(lb.at))
            what = {"add_box": f"added {lb.new} box {lb.box_px}", "note": f"note: {lb.text}",
                    "close": "closed", "override": f"override {lb.old} → {lb.new}: {lb.text}"}.get(
                lb.action, f"{lb.action} #{lb.defect_index}: {lb.old} → {lb.new}")
            self.history.addItem(f"{at} {lb.who}: {what}")
        wanted = self._image_path if self._image_path in item.image_paths else self._default_image(item)
        self.show_image(wanted)
        if selected is not None and selected < self.defects.rowCount():
            self.defects.selectRow(selected)
        elif item.defect_index is not None and item.defect_index < self.defects.rowCount():
            self.defects.selectRow(item.defect_index)
        self.update_permissions()

    @staticmethod
    def _default_image(item) -> str | None:
        return thumbnail_source(item)

    def show_image(self, path: str | None) -> None:
        item = self.model.current
        self._image_path = path
        if path:
            index = self.image_choice.findData(path)
            if index >= 0 and index != self.image_choice.currentIndex():
                self.image_choice.blockSignals(True)
                self.image_choice.setCurrentIndex(index)
                self.image_choice.blockSignals(False)
        self.canvas.set_image(path, overlays_for(item, path, self.model.labels, self.model.coarse_camera)
                              if item and path else [])
        if item and path and self.model.station_config is None and needs_calibration(item, path):
            self._say(f"calls not drawn on the coarse frame: {NO_STATION_CONFIG}", error=True)
        self.add_box_button.setEnabled(self.canvas.pending is not None and self._can("review"))

    def _image_chosen(self, index: int) -> None:
        if index >= 0:
            self.show_image(self.image_choice.itemData(index))

    def selected_defect(self) -> int | None:
        rows = self.defects.selectionModel().selectedRows() if self.defects.selectionModel() else []
        return rows[0].row() if rows else None

    def _defect_chosen(self) -> None:
        index = self.selected_defect()
        self.canvas.selected = index
        item = self.model.current
        if item is not None and index is not None and index < len(item.defects):
            d = item.defects[index]
            target = next((p for p in item.image_paths if Path(p).stem == d.image_path), None)
            if target and target != self._image_path and not self.canvas.drawing:
                self.show_image(target)
        self.canvas.update()
        self.update_permissions()

    def chosen_kind_name(self) -> str | None:
        """The name typed for a new kind when the chosen class is 'unknown'; None otherwise or empty."""
        text = self.kind_name.text().strip()
        return text if self.class_choice.currentText() == UNKNOWN and text else None

    def _with_defect(self, action) -> None:
        index = self.selected_defect()
        if index is None:
            self._say("select a call in the table first", error=True)
            return
        action(index)

    def add_drawn_box(self) -> None:
        if self.canvas.pending is None or not self._image_path:
            self._say("drag a box on the image first (Draw missed box)", error=True)
            return
        if self.model.add_box(self._image_path, self.canvas.pending, self.box_class.currentText()) is not None:
            self.canvas.pending = None
            self.draw_button.setChecked(False)
            self.show_image(self._image_path)

    def add_note(self) -> None:
        text = self.note_edit.text().strip()
        if text and self.model.note(text) is not None:
            self.note_edit.clear()

    def export(self, out_dir: str | None = None) -> Path | None:
        return self.model.export(out_dir)

    # -- permissions ---------------------------------------------------------------------------
    def _can(self, action: str) -> bool:
        return self.model.allows(action)

    def update_permissions(self) -> None:
        review = self._can("review")
        item = self.model.current
        open_item = item is not None and item.status == "open"
        has_defect = open_item and self.selected_defect() is not None
        for button in (self.confirm_button, self.reject_button, self.change_button):
            button.setEnabled(review and has_defect)
        self.class_choice.setEnabled(review and has_defect)
        self.kind_name.setEnabled(review and has_defect)
        for widget in (self.draw_button, self.box_class, self.close_button):
            widget.setEnabled(review and open_item)
        self.add_box_button.setEnabled(review and open_item and self.canvas.pending is not None)
        self.note_edit.setEnabled(review and item is not None)
        self.note_button.setEnabled(review and item is not None)
        self.export_button.setEnabled(self._can("export_labels"))
        if not review and self.draw_button.isChecked():
            self.draw_button.setChecked(False)
        tip = "" if review else "your role may not relabel (needs QA)"
        for widget in (self.confirm_button, self.reject_button, self.change_button, self.draw_button,
                       self.add_box_button, self.note_button, self.close_button):
            widget.setToolTip(tip)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet("color: #b71c1c;" if error else "color: #1b5e20;")
        self.status.setText(text)


# -- the retrain / compare / promote tab --------------------------------------------------------------------
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
        self.export_label = QLabel("training data: the latest export of reviewed labels")
        self.export_label.setWordWrap(True)
        self.start_button = QPushButton("Start retraining")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.step_label = QLabel("no job running")
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
        self.models_label.setWordWrap(True)
        self.rule_label = QLabel("<b>Regression gate.</b> " + model.rule.describe())
        self.rule_label.setWordWrap(True)
        self.gate_label = QLabel("not compared yet")
        self.gate_label.setWordWrap(True)
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
        c.addWidget(self.models_label)
        c.addWidget(self.table)
        c.addWidget(self.rule_label)
        c.addWidget(self.gate_label)
        c.addStretch(1)
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
            self._log("error: export reviewed labels first (Review → Export labels)")
            return
        role = self.retrain_model.currentText()
        self._job_dir = self.work_dir / "jobs" / time.strftime(f"{role}_%Y%m%d_%H%M%S")
        self.log.clear()
        try:
            steps = retrain_steps(role, coco, self._job_dir, self.retrain_count.value(), split=self.gate_split())
        except (OSError, ValueError, KeyError) as exc:
            self._log(f"error: cannot read the export {coco}: {exc}")
            return
        self.start_job(steps, "retrain")

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
        if purpose == "retrain" and ok and self._job_dir is not None:
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
                                  "Training data: export reviewed labels first (Review → Export labels)")
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


# -- the workspace ------------------------------------------------------------------------------------------
class QAView(QWidget):
    """The QA engineer's workspace. `set_session` (called by the shell after login) enables what the
    role may do; the core refuses the rest anyway."""

    session_changed = pyqtSignal(object)

    def __init__(self, db: str, access: AccessControl, *, recipe_path: str | Path, models_dir: str | Path,
                 parent: QWidget | None = None, work_dir: str | Path | None = None,
                 station_config: StationConfig | None = None):
        super().__init__(parent)
        db = str(db)
        self.work_dir = Path(work_dir) if work_dir is not None else (
            Path(db).parent / "qa" if "://" not in db else Path("out") / "qa")
        self.access = access
        # the station's calibration (mm <-> px) for overlays and the review-set comparison; None: those
        # actions say so instead of guessing (the station window passes the --sim or --config one)
        self.review_model = ReviewModel(db, self, export_root=self.work_dir / "exports", station_config=station_config)
        self.promotion_model = PromotionModel(access, recipe_path, models_dir, parent=self)
        self.review = ReviewPanel(self.review_model)
        self.promotion = PromotionPanel(self.review_model, self.promotion_model, self.work_dir)
        self.session_label = QLabel()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.review, "Review queue")
        self.tabs.addTab(self.promotion, "Retrain && promote")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.session_label)
        layout.addWidget(self.tabs, 1)
        self.review_model.message.connect(lambda _text: self.promotion.update_view())
        self.set_session(None)
        self.refresh()

    @property
    def session(self) -> Session | None:
        return self.review_model.session

    def set_station_config(self, config: StationConfig | None) -> None:
        self.review_model.set_station_config(config)

    def set_session(self, session: Session | None) -> None:
        self.review_model.set_session(session)
        self.promotion_model.set_session(session)
        if session is None:
            self.session_label.setText("Not logged in: the queue is read-only.")
        else:
            may = "review, relabel, export, retrain and promote" if session.allows("review") else "view only"
            self.session_label.setText(f"Logged in as <b>{_html(session.user)}</b> ({session.role}): {may}.")
        self.promotion.update_view()
        self.session_changed.emit(session)

    def refresh(self) -> None:
        """Reload from the database (the station keeps writing parts)."""
        self.review.refresh()
        self.promotion.update_view()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        self.promotion.shutdown()
        super().closeEvent(event)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
