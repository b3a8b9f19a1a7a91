"""The QA review tab: filters over the queue (verdict, class, status, recipe, grey band, dates), the
gallery of thumbnails, the open item (`review_item.ItemEditor`) and the export of the reviewed labels
as COCO into a folder the user picks. The splitter's three columns reflow from a 1024x768 screen up."""
from __future__ import annotations

import time
from pathlib import Path

from PyQt6.QtCore import QDate, QDateTime, QSize, Qt, QTime
from PyQt6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDateEdit, QFileDialog, QHBoxLayout, QLabel,
                             QListView, QPushButton, QSplitter, QVBoxLayout, QWidget)

from inspector.results.records import VERDICTS
from inspector.review import UNKNOWN

from .qa_models import THUMB, ReviewFilters, ReviewModel
from .review_item import WIDGETS, ItemEditor

ANY = "any"


class ReviewPanel(QWidget):
    def __init__(self, model: ReviewModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.export_dialog: QFileDialog | None = None

        # filters
        self.verdict_filter = QComboBox()
        self.verdict_filter.addItems([ANY, *VERDICTS])
        self.class_filter = QComboBox()
        self.class_filter.addItems([ANY, *model.queue.kinds.names(), UNKNOWN])
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
        self.export_button.setToolTip("Write the reviewed labels as COCO into a folder you choose")
        # a long recipe id must not widen the workspace past the screen
        self.recipe_filter.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.recipe_filter.setMinimumContentsLength(14)
        # two rows: what is filtered, then when and the actions
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

        # gallery: one column of thumbnails at least, more as the splitter gives it room
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
        self.gallery.setMinimumWidth(THUMB.width() + 14 + 24)
        self.count_label = QLabel("0 items")
        self.count_label.setWordWrap(True)
        left = QVBoxLayout()
        left.setContentsMargins(0, 0, 0, 0)
        left.addWidget(self.gallery, 1)
        left.addWidget(self.count_label)
        left_box = QWidget()
        left_box.setLayout(left)

        # the open item
        self.item = ItemEditor(model, self)
        for name in WIDGETS:
            setattr(self, name, getattr(self.item, name))

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(left_box)
        self.splitter.addWidget(self.item.image_box)
        self.splitter.addWidget(self.item.side_box)
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
        self.export_button.clicked.connect(self.ask_export)
        self.gallery.selectionModel().currentChanged.connect(self._item_chosen)
        self.item.say.connect(self._say)
        model.items_changed.connect(self._items_changed)
        model.session_changed.connect(self.update_permissions)
        model.kinds_changed.connect(self.refresh_kinds)
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
        self.refresh_kinds()

    def refresh_kinds(self) -> None:
        """The class filter from the store's kinds (new ones appear as the station or QA adds them)."""
        current = self.class_filter.currentText()
        self.class_filter.blockSignals(True)
        self.class_filter.clear()
        self.class_filter.addItems([ANY, *self.model.queue.kinds.names(), UNKNOWN])
        self.class_filter.setCurrentText(current)
        self.class_filter.blockSignals(False)
        self.item.refresh_kinds()

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

    # -- the open item (kept here for callers of the tab) ----------------------------------------
    def show_image(self, path: str | None) -> None:
        self.item.show_image(path)

    def selected_defect(self) -> int | None:
        return self.item.selected_defect()

    def chosen_kind_name(self) -> str | None:
        return self.item.chosen_kind_name()

    def add_drawn_box(self) -> None:
        self.item.add_drawn_box()

    def add_note(self) -> None:
        self.item.add_note()

    # -- export ----------------------------------------------------------------------------------
    def ask_export(self) -> QFileDialog:
        """Ask for the folder to export into (starting in the workspace's export folder, shown as a
        full path); the export runs when one is chosen. Returns the (non-modal) dialog."""
        start = self.model.queue.export_root.resolve()
        try:
            start.mkdir(parents=True, exist_ok=True)
        except OSError:
            start = Path.home()
        dialog = QFileDialog(self, "Export reviewed labels (COCO) into a folder", str(start))
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)  # the same dialog on every desktop
        dialog.setLabelText(QFileDialog.DialogLabel.Accept, "Export here")
        dialog.fileSelected.connect(lambda folder: self.export(export_folder(Path(folder))))
        self.export_dialog = dialog
        dialog.open()
        return dialog

    def export(self, out_dir: str | Path | None = None) -> Path | None:
        return self.model.export(out_dir)

    # -- permissions ---------------------------------------------------------------------------
    def update_permissions(self) -> None:
        self.item.update_permissions()
        self.export_button.setEnabled(self.model.allows("export_labels"))

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet("color: #b71c1c;" if error else "color: #1b5e20;")
        self.status.setText(text)


def export_folder(chosen: Path) -> Path:
    """The folder an export goes into: the chosen one when it is empty (or new), else a new
    `review_<time>` folder inside it, so one export never overwrites another."""
    chosen = chosen.resolve()
    if not chosen.exists() or not any(chosen.iterdir()):
        return chosen
    return chosen / time.strftime("review_%Y%m%d_%H%M%S")
