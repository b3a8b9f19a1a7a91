"""The recipe editor: views, per-class thresholds with the grey band, and verdict rules, edited on a
draft through `inspector.recipe_edit` (which validates and names the field); saving is the
integrator view's job (role, reason, new version)."""
from __future__ import annotations

import html
from pathlib import Path

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout,
                             QHeaderView, QLabel, QLineEdit, QListWidget, QListWidgetItem, QPushButton, QTableWidget, QTableWidgetItem,
                             QTabWidget, QVBoxLayout, QWidget)

from hardware.pose import StagePose
from inspector.recipe import Recipe
from inspector.recipe_edit import (FieldChange, RecipeEditError, add_view, backup_path, field_changes, remove_view,
                                   set_class_policy, set_rules)

THRESHOLD_COLUMNS = ("Class", "Detect ≥", "Accept ≥", "Grey low", "Grey high")
RULE_COLUMNS = ("Class", "Zone", "Min size mm", "Max count")
VIEW_COLUMNS = ("Name", "Face", "Camera", "Light", "Pose X Y Z (mm) A B (°)")


def _item(text: str, editable: bool = True) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    if not editable:
        item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
        item.setForeground(QColor("#37474f"))
    return item


def _table(columns: tuple[str, ...]) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.verticalHeader().setVisible(False)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
                          | QAbstractItemView.EditTrigger.AnyKeyPressed)
    return table


def _number(text: str):
    text = text.strip().replace(",", ".")
    try:
        return float(text)
    except ValueError:
        return text  # the core names the field and says a number was expected


class RecipeEditor(QWidget):
    changed = pyqtSignal()  # the draft changed (or was reloaded / saved)
    message = pyqtSignal(str, bool)  # text, is_error
    add_view_requested = pyqtSignal(str, str, str)  # name, light program, camera
    save_requested = pyqtSignal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.loaded: Recipe | None = None  # as on disk
        self.draft: Recipe | None = None  # with the unsaved edits
        self._filling = False
        self._editable = True

        self.views_table = _table(VIEW_COLUMNS)
        self.views_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.views_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(VIEW_COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.new_view_name = QLineEdit()
        self.new_view_name.setPlaceholderText("name of the new view")
        self.new_view_light = QComboBox()
        self.new_view_camera = QComboBox()
        self.new_view_camera.addItems(["coarse", "fine"])
        self.add_view_button = QPushButton("Add view at current pose")
        self.remove_view_button = QPushButton("Remove selected view")
        self.add_view_button.clicked.connect(self._ask_add_view)
        self.remove_view_button.clicked.connect(self._remove_view)
        form = QFormLayout()
        form.addRow("Name", self.new_view_name)
        row = QHBoxLayout()
        row.addWidget(self.new_view_light, 1)
        row.addWidget(QLabel("camera"))
        row.addWidget(self.new_view_camera)
        form.addRow("Light", row)
        view_buttons = QHBoxLayout()
        view_buttons.addWidget(self.add_view_button)
        view_buttons.addWidget(self.remove_view_button)
        views_tab = QWidget()
        views_layout = QVBoxLayout(views_tab)
        views_layout.addWidget(self.views_table, 1)
        views_layout.addLayout(form)
        views_layout.addLayout(view_buttons)

        self.thresholds = _table(THRESHOLD_COLUMNS)
        self.thresholds.cellChanged.connect(self._threshold_edited)
        thresholds_tab = QWidget()
        thresholds_layout = QVBoxLayout(thresholds_tab)
        thresholds_layout.addWidget(self.thresholds, 1)
        note = QLabel("Fine scores in [grey low, grey high) go to review, never PASS. "
                      "Accept must not lie below the grey band.")
        note.setWordWrap(True)
        note.setStyleSheet("color: #546e7a;")
        thresholds_layout.addWidget(note)

        self.rules = _table(RULE_COLUMNS)
        self.rules.cellChanged.connect(self._rule_edited)
        self.add_rule_button = QPushButton("Add rule")
        self.remove_rule_button = QPushButton("Remove selected rule")
        self.add_rule_button.clicked.connect(self._add_rule)
        self.remove_rule_button.clicked.connect(self._remove_rule)
        rules_tab = QWidget()
        rules_layout = QVBoxLayout(rules_tab)
        rules_layout.addWidget(self.rules, 1)
        self.zones_note = QLabel("")
        self.zones_note.setWordWrap(True)
        self.zones_note.setStyleSheet("color: #546e7a;")
        rules_layout.addWidget(self.zones_note)
        rule_buttons = QHBoxLayout()
        rule_buttons.addWidget(self.add_rule_button)
        rule_buttons.addWidget(self.remove_rule_button)
        rules_layout.addLayout(rule_buttons)

        self.tabs = QTabWidget()
        self.tabs.addTab(views_tab, "Views")
        self.tabs.addTab(thresholds_tab, "Thresholds")
        self.tabs.addTab(rules_tab, "Rules")

        self.title = QLabel("no recipe")
        self.title.setStyleSheet("font-weight: bold;")
        self.title.setWordWrap(True)
        self.changes_label = QLabel("")
        self.save_button = QPushButton("Save new version…")
        self.revert_button = QPushButton("Revert")
        self.save_button.clicked.connect(self.save_requested)
        self.revert_button.clicked.connect(self.revert)
        bottom = QHBoxLayout()
        bottom.addWidget(self.changes_label, 1)
        bottom.addWidget(self.revert_button)
        bottom.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(bottom)

    # -- the model -------------------------------------------------------------------------------------
    def set_recipe(self, recipe: Recipe) -> None:
        """A freshly loaded (or just saved) recipe: the draft starts from it."""
        self.loaded = recipe
        self.draft = recipe
        self._refresh()

    def revert(self) -> None:
        """Drop the edits and read the file again (it may have been saved elsewhere meanwhile)."""
        if self.loaded is None:
            return
        source = self.loaded.source
        try:
            recipe = Recipe.load(source) if source not in ("", "<memory>") else self.loaded
        except (ValueError, OSError) as exc:
            self.message.emit(f"edits kept: {source} could not be read again: {exc}", True)
            return
        self.set_recipe(recipe)
        self.message.emit(f"edits dropped; {recipe.id} version {recipe.version} reloaded", False)

    def changes(self) -> list[FieldChange]:
        if self.loaded is None or self.draft is None:
            return []
        return field_changes(self.loaded, self.draft, include_version=False)

    def apply(self, edit, *args, **kwargs) -> bool:
        """Run one recipe_edit function on the draft; a refusal is shown and the draft kept."""
        if self.draft is None:
            return False
        try:
            self.draft = edit(self.draft, *args, **kwargs)
        except (RecipeEditError, ValueError) as exc:
            self.message.emit(str(exc), True)
            self._refresh()
            return False
        self._refresh()
        return True

    def add_view_at(self, pose: StagePose, name: str, light_program: str, camera: str, exposure_us: float,
                    gain: float) -> bool:
        if self.apply(add_view, name, pose, light_program=light_program, camera=camera, exposure_us=exposure_us,
                      gain=gain):
            view = self.draft.views[-1]
            self.message.emit(f"view {view.name!r} added ({view.face}) at X{pose.x:.3f} Y{pose.y:.3f} Z{pose.z:.3f} "
                              f"A{pose.a:.3f} B{pose.b:.3f}", False)
            self.new_view_name.clear()
            return True
        return False

    def set_editable(self, editable: bool) -> None:
        self._editable = editable
        triggers = (QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
                    | QAbstractItemView.EditTrigger.AnyKeyPressed) if editable \
            else QAbstractItemView.EditTrigger.NoEditTriggers
        self.thresholds.setEditTriggers(triggers)
        self.rules.setEditTriggers(triggers)
        for widget in (self.new_view_name, self.new_view_light, self.new_view_camera, self.remove_view_button,
                       self.add_rule_button, self.remove_rule_button, self.revert_button):
            widget.setEnabled(editable)
        self._update_save_state()

    def set_can_add_view(self, possible: bool) -> None:
        """Adding a view needs the stage (its current pose) as well as the right to edit."""
        self.add_view_button.setEnabled(possible and self._editable)

    # -- tables ----------------------------------------------------------------------------------------
    def _refresh(self) -> None:
        recipe = self.draft
        self._filling = True
        try:
            if recipe is None:
                self.title.setText("no recipe")
                for table in (self.views_table, self.thresholds, self.rules):
                    table.setRowCount(0)
                return
            self.title.setText(f"{recipe.id} v{self.loaded.version if self.loaded else recipe.version}"
                               f" — {recipe.fixture or 'no fixture'}")
            self.views_table.setRowCount(len(recipe.views))
            for row, view in enumerate(recipe.views):
                values = (view.name, view.face, view.camera, view.light_program,
                          "  ".join(f"{v:g}" for v in view.pose.as_tuple()))
                for column, text in enumerate(values):
                    self.views_table.setItem(row, column, _item(text, editable=False))
            light = self.new_view_light.currentText()
            self.new_view_light.clear()
            self.new_view_light.addItems(list(recipe.light_programs))
            if light in recipe.light_programs:
                self.new_view_light.setCurrentText(light)
            self.thresholds.setRowCount(len(recipe.classes))
            for row, (name, policy) in enumerate(recipe.classes.items()):
                values = (f"{policy.detect_threshold:g}", f"{policy.accept_threshold:g}",
                          f"{policy.grey_band[0]:g}", f"{policy.grey_band[1]:g}")
                self.thresholds.setItem(row, 0, _item(name, editable=False))
                for column, text in enumerate(values, start=1):
                    self.thresholds.setItem(row, column, _item(text))
            self.rules.setRowCount(len(recipe.rules))
            for row, rule in enumerate(recipe.rules):
                for column, text in enumerate((rule.defect_class, rule.zone, f"{rule.min_size_mm:g}",
                                               str(rule.max_count))):
                    self.rules.setItem(row, column, _item(text))
            zones = ", ".join(f"{z.name} ({z.face})" for z in recipe.zones.values()) or "none"
            self.zones_note.setText(f"Zones: {zones}; '*' = anywhere. A part fails when more than "
                                    f"'max count' defects of the class, at least 'min size' long, lie in the zone.")
        finally:
            self._filling = False
        self._update_save_state()
        self.changed.emit()

    def _update_save_state(self) -> None:
        count = len(self.changes())
        self.changes_label.setText("no unsaved changes" if not count else
                                   f"{count} unsaved change{'s' if count != 1 else ''}")
        self.changes_label.setStyleSheet("" if not count else "color: #e65100; font-weight: bold;")
        self.save_button.setEnabled(self._editable and count > 0)
        self.revert_button.setEnabled(self._editable and count > 0)

    def _threshold_edited(self, row: int, column: int) -> None:
        if self._filling or self.draft is None or column == 0:
            return
        name = self.thresholds.item(row, 0).text()
        value = _number(self.thresholds.item(row, column).text())
        if column == 1:
            self.apply(set_class_policy, name, detect_threshold=value)
        elif column == 2:
            self.apply(set_class_policy, name, accept_threshold=value)
        else:
            band = list(self.draft.classes[name].grey_band)
            band[column - 3] = value
            self.apply(set_class_policy, name, grey_band=band)

    def set_threshold(self, defect_class: str, column: str, value: float | str) -> None:
        """Type `value` into a cell of the thresholds table, as the integrator would."""
        row = list(self.draft.classes).index(defect_class)
        self.thresholds.item(row, THRESHOLD_COLUMNS.index(column)).setText(str(value))

    def _rows(self) -> list[dict]:
        rows = []
        for row in range(self.rules.rowCount()):
            cells = [self.rules.item(row, c).text().strip() if self.rules.item(row, c) else ""
                     for c in range(len(RULE_COLUMNS))]
            count = _number(cells[3])
            rows.append({"class": cells[0], "zone": cells[1] or "*", "min_size_mm": _number(cells[2] or "0"),
                         "max_count": count})
        return rows

    def _rule_edited(self, row: int, column: int) -> None:
        if not self._filling and self.draft is not None:
            self.apply(set_rules, self._rows())

    def _add_rule(self) -> None:
        if self.draft is not None:
            self.apply(set_rules, self._rows() + [{"class": "dent", "zone": "*", "min_size_mm": 0.0,
                                                   "max_count": 0}])

    def _remove_rule(self) -> None:
        row = self.rules.currentRow()
        if self.draft is not None and row >= 0:
            rows = self._rows()
            del rows[row]
            self.apply(set_rules, rows)

    def _ask_add_view(self) -> None:
        self.add_view_requested.emit(self.new_view_name.text().strip(), self.new_view_light.currentText(),
                                     self.new_view_camera.currentText())

    def _remove_view(self) -> None:
        row = self.views_table.currentRow()
        if self.draft is not None and 0 <= row < len(self.draft.views):
            name = self.draft.views[row].name
            if self.apply(remove_view, name):
                self.message.emit(f"view {name!r} removed", False)


class SaveRecipeDialog(QDialog):
    """Names the file the save overwrites (and where the previous version is kept), shows what changed
    one field a line (`field: old → new`; `+`/`-` lines for each field of an added or removed view or
    rule) and asks for the reason that goes into the audit log."""

    def __init__(self, recipe: Recipe, version: int, changes: list[FieldChange], parent=None, *,
                 path: str | Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Save {recipe.id} as version {version}")
        self.setMinimumWidth(560)
        target = Path(path).resolve() if path is not None else None
        if target is not None:
            where = (f"Writes <b>version {version}</b> of {html.escape(recipe.id)} to<br><code>{html.escape(str(target))}"
                     f"</code><br>replacing version {version - 1} in that file; version {version - 1} is kept "
                     f"beside it as <code>{html.escape(backup_path(target, version - 1).name)}</code>.")
        else:
            where = f"Writes version {version} of {html.escape(recipe.id)}."
        self.target_label = QLabel(where)
        self.target_label.setWordWrap(True)
        self.target_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.diff = QListWidget()
        self.diff.setWordWrap(True)
        self.diff.setStyleSheet("font-family: 'DejaVu Sans Mono'; font-size: 12px;")
        for change in changes:
            for line in change.lines():
                item = QListWidgetItem(line)
                if line.startswith(("+ ", "- ")):
                    item.setForeground(QColor("#1b5e20" if line.startswith("+") else "#b71c1c"))
                self.diff.addItem(item)
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("why (goes into the audit log with your name)")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.save_button.setEnabled(False)
        self.reason.textChanged.connect(lambda text: self.save_button.setEnabled(bool(text.strip())))
        layout = QVBoxLayout(self)
        layout.addWidget(self.target_label)
        layout.addWidget(QLabel(f"{len(changes)} change{'s' if len(changes) != 1 else ''} "
                                f"from version {version - 1}:"))
        layout.addWidget(self.diff, 1)
        layout.addWidget(QLabel("Reason"))
        layout.addWidget(self.reason)
        layout.addWidget(self.buttons)
