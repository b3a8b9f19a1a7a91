"""The QA workspace's defect kinds: every kind the station knows (from its recipe and models, or named
by QA) with its colour and how many labelled examples the review queue holds; "New kind…" names one
(name, colour, description — audited by the core), and "Teach the classifier…" starts the few-shot
job (`python -m training teach --review`, train-side labels only) in the retrain & promote tab,
whose candidate then goes through the same compare → gate → promote as any retrained model."""
from __future__ import annotations

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import (QColorDialog, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                             QPushButton, QTableWidgetItem, QVBoxLayout, QWidget)

from inspector.access import AccessDenied
from inspector.kind_names import KindError, kind_name_problem
from inspector.review.kinds import DefectKind

from .qa_models import ReviewModel
from .tables import row_table


class NewKindDialog(QDialog):
    """Name, colour and one line of description; says what is wrong before it closes."""

    def __init__(self, parent: QWidget | None = None, known: tuple[str, ...] = ()):
        super().__init__(parent)
        self.setWindowTitle("New defect kind")
        self.known = known
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. crack (a–z, 0–9, _)")
        self.colour = QPushButton("#22aa22")
        self.colour.clicked.connect(self._pick_colour)
        self.description = QLineEdit()
        self.description.setPlaceholderText("what it looks like, in one line")
        self.problem = QLabel("")
        self.problem.setStyleSheet("color: #b71c1c;")
        self.problem.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Name", self.name)
        form.addRow("Colour", self.colour)
        form.addRow("Description", self.description)
        form.addRow(self.problem)
        form.addRow(buttons)

    def _pick_colour(self) -> None:
        chosen = QColorDialog.getColor(QColor(self.colour.text()), self, "Colour of the kind")
        if chosen.isValid():
            self.colour.setText(chosen.name())

    def check(self) -> str:
        name = self.name.text().strip()
        problem = kind_name_problem(name)
        if problem:
            return f"Name: {problem}."
        if name in self.known:
            return f"Name: {name!r} exists already."
        if not self.description.text().strip():
            return "Description: say in one line what the kind looks like."
        return ""

    def _accept(self) -> None:
        problem = self.check()
        self.problem.setText(problem)
        if not problem:
            self.accept()

    def values(self) -> tuple[str, str, str]:
        return self.name.text().strip(), self.colour.text(), self.description.text().strip()


class KindsPanel(QWidget):
    teach_requested = pyqtSignal(str)  # a kind's name: the retrain & promote tab starts the job

    def __init__(self, model: ReviewModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.table = row_table(["kind", "from", "labelled calls", "boxes", "description"], stretch_column=4)
        self.new_button = QPushButton("New kind…")
        self.teach_button = QPushButton("Teach the classifier this kind…")
        self.teach_button.setToolTip("few-shot: minutes on the station's CPU; the candidate then goes through "
                                     "compare → gate → promote in the retrain & promote tab")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        hint = QLabel("A kind nobody has named yet: label its calls <b>unknown</b> in the review queue, then name it "
                      "here, relabel its calls and missed boxes with the new name, and teach the classifier.")
        hint.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.new_button)
        buttons.addWidget(self.teach_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(hint)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        self.new_button.clicked.connect(self.ask_new_kind)
        self.teach_button.clicked.connect(self._teach)
        self.table.itemSelectionChanged.connect(self.update_permissions)
        model.session_changed.connect(self.update_permissions)
        # a label changed, so the counts did: recounted when the tab is shown, not on every change
        model.current_changed.connect(lambda: self.refresh() if self.isVisible() else None)
        self.refresh()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt naming
        self.refresh()
        super().showEvent(event)

    def kinds(self) -> list[DefectKind]:
        return self.model.queue.kinds.kinds()

    def refresh(self) -> None:
        kinds, counts = self.kinds(), self.model.queue.kinds.example_counts()
        selected = self.selected()
        self.table.setRowCount(len(kinds))
        for row, kind in enumerate(kinds):
            swatch = QTableWidgetItem(kind.name)
            swatch.setForeground(QColor(kind.colour))
            cells = [swatch, QTableWidgetItem(kind.origin), QTableWidgetItem(str(counts[kind.name]["calls"])),
                     QTableWidgetItem(str(counts[kind.name]["boxes"])), QTableWidgetItem(kind.description)]
            for col, cell in enumerate(cells):
                self.table.setItem(row, col, cell)
            if kind.name == selected:
                self.table.selectRow(row)
        self.update_permissions()

    def selected(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        item = self.table.item(rows[0].row(), 0) if rows else None
        return item.text() if item is not None else None

    def ask_new_kind(self) -> None:
        dialog = NewKindDialog(self, self.model.queue.kinds.names())
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.create_kind(*dialog.values())

    def create_kind(self, name: str, colour: str, description: str) -> DefectKind | None:
        try:
            kind = self.model.queue.kinds.create(self.model.session, name, colour, description)
        except (KindError, AccessDenied) as exc:
            self._say(f"Not created: {exc}", error=True)
            return None
        self._say(f"New kind {kind.name!r} created: label its calls and missed boxes with it in the review queue.")
        self.model.kinds_changed.emit()
        self.refresh()
        return kind

    def _teach(self) -> None:
        name = self.selected()
        if name is not None:
            self.teach_requested.emit(name)

    def update_permissions(self) -> None:
        may = self.model.allows("review")
        self.new_button.setEnabled(may)
        self.teach_button.setEnabled(may and self.model.allows("retrain") and self.selected() is not None)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet("color: #b71c1c;" if error else "")
        self.status.setText(text)
