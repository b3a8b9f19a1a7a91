"""The open review item: its archived images (the coarse frame with the station's calls, the fine
shots), its record, the calls table and what QA does with a call (confirm, reject, change class, a
missed box dragged on the image, a note, close the item) and the item's history. Two widgets —
`image_box` and `side_box` — that the review tab lays out in its splitter; every change goes
through `ReviewModel`, which the core checks."""
from __future__ import annotations

import time
from pathlib import Path

from PyQt6.QtCore import QObject, QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QIcon, QImage, QPixmap
from PyQt6.QtWidgets import (QComboBox, QGridLayout, QHBoxLayout, QLabel, QLineEdit, QListView, QListWidget,
                             QListWidgetItem, QPushButton, QSizePolicy, QTableWidgetItem, QVBoxLayout, QWidget)

from inspector.review import UNKNOWN

from .qa_models import DECISION_COLOURS, NO_STATION_CONFIG, ReviewModel, needs_calibration, overlays_for, thumbnail_source
from .review_canvas import ImageCanvas
from .tables import row_table

# the widgets the review tab exposes as its own (tests and the station window reach them there)
WIDGETS = ("image_choice", "canvas", "crops", "record", "defects", "confirm_button", "reject_button", "class_choice",
           "kind_name", "change_button", "draw_button", "box_class", "add_box_button", "note_edit", "note_button",
           "close_button", "history")


class ItemEditor(QObject):
    say = pyqtSignal(str, bool)  # a status line (text, is an error)

    def __init__(self, model: ReviewModel, parent: QObject | None = None):
        super().__init__(parent)
        self.model = model
        self.image_path: str | None = None

        # the image column: which image, the canvas, the fine shots
        self.image_choice = QComboBox()
        self.image_choice.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.image_choice.setMinimumContentsLength(12)
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
        self.image_box = QWidget()
        self.image_box.setLayout(image_col)

        # the record, the calls and the actions
        self.record = QLabel("no item open")
        self.record.setWordWrap(True)
        self.record.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.record.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.record.setMinimumHeight(self.record.fontMetrics().lineSpacing() * 6 + 8)
        # a long reason wraps instead of widening the column past a 1024 px screen
        self.record.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.defects = row_table(["#", "class", "score", "decision", "size mm", "label"], stretch_column=5)
        self.confirm_button = QPushButton("Confirm")
        self.reject_button = QPushButton("Reject")
        self.class_choice = QComboBox()
        self.class_choice.addItems([*model.queue.kinds.names(), UNKNOWN])
        self.kind_name = QLineEdit()  # only for 'unknown': QA may name the new kind
        self.kind_name.setPlaceholderText("name of the new kind (optional)")
        self.kind_name.setVisible(False)
        self.change_button = QPushButton("Change class")
        self.draw_button = QPushButton("Draw missed box")
        self.draw_button.setCheckable(True)
        self.box_class = QComboBox()
        self.box_class.addItems(model.queue.kinds.names())
        self.add_box_button = QPushButton("Add box")
        self.add_box_button.setEnabled(False)
        self.note_edit = QLineEdit()
        self.note_edit.setPlaceholderText("note on this item")
        self.note_button = QPushButton("Add note")
        self.close_button = QPushButton("Close item")
        self.history = QListWidget()
        self.history.setWordWrap(True)
        for combo in (self.class_choice, self.box_class):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)

        # two equal columns: left what is chosen or typed, right the button that acts on it
        actions = QGridLayout()
        actions.setColumnStretch(0, 1)
        actions.setColumnStretch(1, 1)
        actions.addWidget(self.confirm_button, 0, 0)
        actions.addWidget(self.reject_button, 0, 1)
        choice = QVBoxLayout()
        choice.setContentsMargins(0, 0, 0, 0)
        choice.addWidget(self.class_choice)
        choice.addWidget(self.kind_name)
        actions.addLayout(choice, 1, 0)
        actions.addWidget(self.change_button, 1, 1, Qt.AlignmentFlag.AlignTop)
        actions.addWidget(self.draw_button, 2, 0)
        actions.addWidget(self.box_class, 2, 1)
        actions.addWidget(self.add_box_button, 3, 1)
        actions.addWidget(self.note_edit, 4, 0)
        actions.addWidget(self.note_button, 4, 1)
        history_row = QHBoxLayout()
        history_row.addWidget(QLabel("History"))
        history_row.addStretch(1)
        history_row.addWidget(self.close_button)
        # the table and the history take the height that is left, from a few rows: the column fits a
        # 1024x768 screen and grows on a larger one
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
        self.side_box = QWidget()
        self.side_box.setLayout(side)
        self.side_box.setMinimumWidth(270)

        # wiring
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
        self.canvas.box_drawn.connect(lambda *box: self.add_box_button.setEnabled(model.allows("review")))
        self.add_box_button.clicked.connect(self.add_drawn_box)
        self.note_button.clicked.connect(self.add_note)
        self.note_edit.returnPressed.connect(self.add_note)
        self.close_button.clicked.connect(model.close_item)
        model.current_changed.connect(self.show_item)
        model.session_changed.connect(self.update_permissions)

    def refresh_kinds(self) -> None:
        """The class choices from the store's kinds (a kind QA just named included)."""
        names = self.model.queue.kinds.names()
        for combo, items in ((self.class_choice, [*names, UNKNOWN]), (self.box_class, list(names))):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(items)
            combo.setCurrentText(current)
            combo.blockSignals(False)

    # -- showing the item ------------------------------------------------------------------------
    def show_item(self) -> None:
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
            f" &nbsp;item {item.id} · {what} · {item.status}<br>{html(item.reason) or '—'}<br>"
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
        wanted = self.image_path if self.image_path in item.image_paths else thumbnail_source(item)
        self.show_image(wanted)
        if selected is not None and selected < self.defects.rowCount():
            self.defects.selectRow(selected)
        elif item.defect_index is not None and item.defect_index < self.defects.rowCount():
            self.defects.selectRow(item.defect_index)
        self.update_permissions()

    def show_image(self, path: str | None) -> None:
        item = self.model.current
        self.image_path = path
        if path:
            index = self.image_choice.findData(path)
            if index >= 0 and index != self.image_choice.currentIndex():
                self.image_choice.blockSignals(True)
                self.image_choice.setCurrentIndex(index)
                self.image_choice.blockSignals(False)
        self.canvas.set_image(path, overlays_for(item, path, self.model.labels, self.model.coarse_camera)
                              if item and path else [])
        if item and path and self.model.station_config is None and needs_calibration(item, path):
            self.say.emit(f"calls not drawn on the coarse frame: {NO_STATION_CONFIG}", True)
        self.add_box_button.setEnabled(self.canvas.pending is not None and self.model.allows("review"))

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
            if target and target != self.image_path and not self.canvas.drawing:
                self.show_image(target)
        self.canvas.update()
        self.update_permissions()

    # -- acting on it ----------------------------------------------------------------------------
    def chosen_kind_name(self) -> str | None:
        """The name typed for a new kind when the chosen class is 'unknown'; None otherwise or empty."""
        text = self.kind_name.text().strip()
        return text if self.class_choice.currentText() == UNKNOWN and text else None

    def _with_defect(self, action) -> None:
        index = self.selected_defect()
        if index is None:
            self.say.emit("select a call in the table first", True)
            return
        action(index)

    def add_drawn_box(self) -> None:
        if self.canvas.pending is None or not self.image_path:
            self.say.emit("drag a box on the image first (Draw missed box)", True)
            return
        if self.model.add_box(self.image_path, self.canvas.pending, self.box_class.currentText()) is not None:
            self.canvas.pending = None
            self.draw_button.setChecked(False)
            self.show_image(self.image_path)

    def add_note(self) -> None:
        text = self.note_edit.text().strip()
        if text and self.model.note(text) is not None:
            self.note_edit.clear()

    def update_permissions(self) -> None:
        review = self.model.allows("review")
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
        if not review and self.draw_button.isChecked():
            self.draw_button.setChecked(False)
        tip = "" if review else "your role may not relabel (needs QA)"
        for widget in (self.confirm_button, self.reject_button, self.change_button, self.draw_button,
                       self.add_box_button, self.note_button, self.close_button):
            widget.setToolTip(tip)


def html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
