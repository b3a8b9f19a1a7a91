"""PIN login, commissioning of the first integrator on a station without users, and the
integrator's list of users.

Thin: the checks (hashed PINs, who may add users) are in `inspector.access`; this widget only
collects a name and a PIN and shows what the core answered."""
from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QFont, QIntValidator
from PyQt6.QtWidgets import (QComboBox, QDialog, QFormLayout, QFrame, QLabel, QLineEdit, QListWidget, QPushButton,
                             QVBoxLayout, QWidget)

from inspector.access import MIN_PIN_DIGITS, ROLES, AccessControl, AccessDenied, Session


def _pin_field() -> QLineEdit:
    field = QLineEdit()
    field.setEchoMode(QLineEdit.EchoMode.Password)
    field.setValidator(QIntValidator(0, 999_999_999))
    field.setMaxLength(9)
    field.setPlaceholderText(f"{MIN_PIN_DIGITS}+ digits")
    return field


class LoginPanel(QWidget):
    logged_in = pyqtSignal(object)  # inspector.access.Session

    def __init__(self, access: AccessControl, *, hint: str = ""):
        super().__init__()
        self.access = access
        self.title = QLabel()
        self.title.setFont(QFont("DejaVu Sans", 22, QFont.Weight.Bold))
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.explain = QLabel()
        self.explain.setWordWrap(True)
        self.explain.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.user = QComboBox()
        self.user.setEditable(True)
        self.pin = _pin_field()
        self.pin_again = _pin_field()
        self.button = QPushButton()
        self.button.setMinimumHeight(44)
        self.button.setFont(QFont("DejaVu Sans", 13, QFont.Weight.Bold))
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #c62828;")
        self.message.setFont(QFont("DejaVu Sans", 12))
        self.hint = QLabel(hint)
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: #546e7a;")
        self.hint.setFont(QFont("DejaVu Sans", 11))

        self.form = QFormLayout()
        self.form.addRow("User", self.user)
        self.form.addRow("PIN", self.pin)
        self.form.addRow("PIN again", self.pin_again)
        box = QFrame()
        box.setFrameShape(QFrame.Shape.StyledPanel)
        box.setFont(QFont("DejaVu Sans", 13))  # read at arm's length on a shop-floor screen
        box.setMinimumWidth(440)
        box.setMaximumWidth(520)
        inner = QVBoxLayout(box)
        inner.addWidget(self.title)
        inner.addWidget(self.explain)
        inner.addLayout(self.form)
        inner.addWidget(self.button)
        inner.addWidget(self.message)
        inner.addWidget(self.hint)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(box, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(2)
        for font_target in (self.user, self.pin, self.pin_again):
            font_target.setFont(QFont("DejaVu Sans", 13))
            font_target.setMinimumHeight(36)
        self.button.clicked.connect(self.submit)
        self.pin.returnPressed.connect(self.submit)
        self.pin_again.returnPressed.connect(self.submit)
        self.refresh()

    @property
    def commissioning(self) -> bool:
        return not self.access.has_users()

    def refresh(self) -> None:
        """Show the login form, or the commissioning form when the station has no user yet."""
        self.pin.clear()
        self.pin_again.clear()
        self.message.clear()
        commissioning = self.commissioning
        self.form.setRowVisible(self.pin_again, commissioning)
        self.user.clear()
        if commissioning:
            self.title.setText("Commission this station")
            self.explain.setText("No user exists yet. Create the first integrator: they add the operators "
                                 "and QA engineers.")
            self.button.setText("Create integrator and log in")
            self.user.setEditText("")
        else:
            self.title.setText("Log in")
            self.explain.setText("Your user name and PIN.")
            self.button.setText("Log in")
            self.user.addItems([name for name, _role in self.access.users()])
            self.user.setCurrentIndex(-1)
            self.user.setEditText("")
        self.user.setFocus()

    def submit(self) -> None:
        name, pin = self.user.currentText().strip(), self.pin.text()
        try:
            if self.commissioning:
                if pin != self.pin_again.text():
                    raise ValueError("the two PINs differ")
                self.access.add_user(name, "integrator", pin,
                                     by=self.access.system_session("commissioning", "first user, login panel"))
            session = self.access.login(name, pin)
        except (AccessDenied, ValueError) as exc:
            self.pin.clear()
            self.pin_again.clear()
            self.message.setText(str(exc))
            return
        self.refresh()
        self.logged_in.emit(session)


class UsersDialog(QDialog):
    """An integrator adds operators, QA engineers and integrators (the core refuses anyone else)."""

    def __init__(self, access: AccessControl, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Users of this station")
        self.access, self.session = access, session
        self.users = QListWidget()
        self.name = QLineEdit()
        self.role = QComboBox()
        self.role.addItems(ROLES)
        self.pin = _pin_field()
        self.pin_again = _pin_field()
        self.add_button = QPushButton("Add user")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Role", self.role)
        form.addRow("PIN", self.pin)
        form.addRow("PIN again", self.pin_again)
        layout = QVBoxLayout(self)
        layout.addWidget(self.users)
        layout.addLayout(form)
        layout.addWidget(self.add_button)
        layout.addWidget(self.message)
        self.add_button.clicked.connect(self.add)
        self.resize(380, 420)
        self._list()

    def _list(self) -> None:
        self.users.clear()
        self.users.addItems([f"{name} — {role}" for name, role in self.access.users()])

    def add(self) -> None:
        name = self.name.text().strip()
        try:
            if self.pin.text() != self.pin_again.text():
                raise ValueError("the two PINs differ")
            self.access.add_user(name, self.role.currentText(), self.pin.text(), by=self.session)
        except (AccessDenied, ValueError) as exc:
            self.message.setStyleSheet("color: #c62828;")
            self.message.setText(str(exc))
            return
        self.message.setStyleSheet("color: #1b8a3a;")
        self.message.setText(f"added {name} ({self.role.currentText()})")
        for field in (self.name, self.pin, self.pin_again):
            field.clear()
        self._list()
