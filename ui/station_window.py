"""The station: one window, three workspaces (operator, QA, integrator) behind a PIN login.

`Station` (ui/station_adapter.py) is the window's adapter to the Qt-free `inspector.station.StationController`, which owns the
station's state machine, the devices (with `--sim` a running virtual cell behind real pseudo-terminals;
with `--config` the ports of the station config), the loaded models, the cycle, the result store and
the review queue, and runs every hardware call, model load and lot on its worker threads. The adapter
forwards the window's actions to it and turns its events into Qt signals; the widgets only show what
the signals bring. Permissions for human actions are checked here through the core's
`Session.require`, and again by the core calls themselves.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QFont
from PyQt6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QMainWindow, QMessageBox, QPushButton, QScrollArea,
                             QStackedWidget, QTabWidget, QVBoxLayout, QWidget)

from inspector.access import AccessDenied, Session
from inspector.station_config import StationConfig

from .alarm_panel import StationState
from .login_panel import LoginPanel, UsersDialog
from .operator_view import OperatorView
from .latency_probe import LoopLatencyProbe
from .recipe_notice import RecipeNotice
from .station_adapter import Station

log = logging.getLogger(__name__)

try:  # the QA and integrator workspaces are separate modules; the station runs without them
    from .qa_view import QAView
except Exception as exc:  # noqa: BLE001 - a missing or broken workspace must not take the station down
    QAView = None  # type: ignore[assignment,misc]
    log.info("QA workspace not available: %s", exc)
try:
    from .integrator_view import IntegratorView
except Exception as exc:  # noqa: BLE001
    IntegratorView = None  # type: ignore[assignment,misc]
    log.info("integrator workspace not available: %s", exc)


def qa_station_config(sim: bool, config: str | None) -> StationConfig | None:
    """The calibration the QA workspace maps mm <-> px with: the virtual cell's with --sim, the
    --config file's otherwise; None (QA then says what is missing) when that file does not load."""
    if sim:
        from hardware.sim.cell import station_config_dict

        return StationConfig.from_dict(station_config_dict("none", "none"), source="virtual cell")
    try:
        return StationConfig.load(config) if config else None
    except (ValueError, OSError) as exc:
        log.warning("QA workspace: no station calibration: %s", exc)
        return None


ROLE_COLOURS = {"operator": "#1565c0", "qa": "#6a1b9a", "integrator": "#00695c"}


class StationWindow(QMainWindow):
    def __init__(self, *, parts: int = 20, speed_factor: float = 1.0, db: str, archive: str | None,
                 first_seed: int = 500_000, recipe: str | None = None, sim: bool = True, config: str | None = None,
                 models_dir: str | None = None, demo_users: bool = False, connect: bool = True):
        super().__init__()
        self.station = Station(db=db, archive=archive, parts=parts, speed_factor=speed_factor, first_seed=first_seed,
                               recipe=recipe, sim=sim, config=config, models_dir=models_dir, demo_users=demo_users)
        station = self.station
        self.setWindowTitle("Inspection station — " + ("virtual cell" if sim else str(config)))
        self.latency = LoopLatencyProbe()
        # closing during a lot asks first, then leaves the cell safe and says so (see closeEvent)
        self.confirm_close = True
        self.close_dialog: QMessageBox | None = None
        self.safe_report = None  # inspector.station_safe.SafeStopReport once the cell was made safe
        self._closing = self._close_ready = False

        # header: where am I, who am I
        self.title = QLabel("Inspection station" + (" — virtual cell" if sim else ""))
        self.title.setFont(QFont("DejaVu Sans", 12, QFont.Weight.Bold))
        self.role_label = QLabel("not logged in")
        self.role_label.setFont(QFont("DejaVu Sans", 11, QFont.Weight.Bold))
        self.logout_button = QPushButton("Log out")
        self.logout_button.setVisible(False)
        self.users_button = QPushButton("Users…")
        self.users_button.setVisible(False)
        self.users_dialog: UsersDialog | None = None
        header = QHBoxLayout()
        header.setContentsMargins(8, 4, 8, 0)
        header.addWidget(self.title)
        header.addStretch(1)
        header.addWidget(self.role_label)
        header.addWidget(self.users_button)
        header.addWidget(self.logout_button)

        hint = ("Virtual-cell demo users: operator / 1111, qa / 2222, integrator / 3333."
                if station.demo_users or (sim and {"operator", "qa", "integrator"} <= {n for n, _ in station.access.users()})
                else "")
        self.login = LoginPanel(station.access, hint=hint)
        self.operator = OperatorView()
        self.operator.golden.bind(station)
        self.tabs = QTabWidget()
        self.tabs.setFont(QFont("DejaVu Sans", 11))
        self.tabs.addTab(self.operator, "Operator")
        self.qa = self.integrator = None
        if QAView is not None:
            try:
                self.qa = QAView(station.db, station.access, recipe_path=station.recipe_path,
                                 models_dir=station.models_dir, station_config=qa_station_config(sim, config))
                self.tabs.addTab(self._page(self.qa), "QA review")
            except Exception:  # noqa: BLE001
                log.exception("QA workspace failed to open")
        if IntegratorView is not None:
            try:
                self.integrator = IntegratorView(station.access, recipe_path=station.recipe_path,
                                                 station_name="virtual cell" if sim else Path(config).stem)
                self.tabs.addTab(self._page(self.integrator), "Integrator")
                if config is not None:
                    self.integrator.set_station_config(config)
                self.integrator.connect_requested.connect(self._connect_requested)
                if self.qa is not None:
                    self.integrator.calibration_written.connect(self.qa.set_station_config)
                self.integrator.disconnect_requested.connect(station.disconnect_devices)
                # the operator is told and chooses (recipe_notice); the station never switches silently
                self.integrator.recipe_saved.connect(lambda _result: self.recipe_notice.watch.check_now())
            except Exception:  # noqa: BLE001
                log.exception("integrator workspace failed to open")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.login)
        self.stack.addWidget(self.tabs)
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(header)
        column.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self.statusBar().setFont(QFont("DejaVu Sans", 10))

        view = self.operator
        for path in station.recipes:
            view.recipe.addItem(path.name, str(path))
        view.recipe.setCurrentIndex(max(0, view.recipe.findData(str(station.recipe_path))))
        view.recipe.currentIndexChanged.connect(self._recipe_chosen)
        self.recipe_notice = RecipeNotice(station, view, lambda text: self.statusBar().showMessage(text, 15_000))
        view.start_button.clicked.connect(lambda: self._act(station.start_lot))
        view.pause_button.clicked.connect(station.toggle_pause)
        view.stop_button.clicked.connect(self.stop)
        view.reset_button.clicked.connect(lambda: self._act(station.reset))
        view.override_button.clicked.connect(self._override)
        station.part_started.connect(view.on_part_started)
        station.view_captured.connect(view.on_view_captured)
        station.candidates_found.connect(view.on_candidates)
        station.fine_shot.connect(view.on_fine_shot)
        station.verdict.connect(view.on_verdict)
        station.models_changed.connect(view.show_models)
        station.running_changed.connect(self._running_changed)
        station.state_changed.connect(self._state_changed)
        station.devices_changed.connect(self._devices_changed)
        station.message.connect(lambda text: self.statusBar().showMessage(text, 15_000))
        station.safe_stopped.connect(self._safe_stopped)
        station.shift_restored.connect(view.restore_shift)
        self.tabs.currentChanged.connect(self._tab_changed)
        self.login.logged_in.connect(self.set_session)
        self.logout_button.clicked.connect(lambda: self.set_session(None))
        self.users_button.clicked.connect(self.show_users)
        self.set_session(None)
        if connect:
            station.connect_devices()

    @staticmethod
    def _page(workspace: QWidget) -> QScrollArea:
        """A workspace scrolls rather than forcing the window wider or taller than the screen."""
        page = QScrollArea()
        page.setWidget(workspace)
        page.setWidgetResizable(True)
        page.setFrameShape(QFrame.Shape.NoFrame)
        return page

    def page_of(self, workspace: QWidget | None) -> int:
        """The tab index that shows `workspace` (-1 when it is not there)."""
        for index in range(self.tabs.count()):
            page = self.tabs.widget(index)
            if page is workspace or (isinstance(page, QScrollArea) and page.widget() is workspace):
                return index
        return -1

    def start(self) -> None:
        self._act(self.station.start_lot)

    def stop(self) -> None:
        """Stop the lot; the operator sees 'stopping…' in this same event-loop turn."""
        running = self.station.running
        self.station.stop()
        if running:
            self.operator.set_stopping()

    # -- session and roles ----------------------------------------------------------------------------
    def set_session(self, session: Session | None) -> None:
        self.station.set_session(session)
        for workspace in (self.qa, self.integrator):
            if workspace is not None:
                try:
                    workspace.set_session(session)
                except Exception:  # noqa: BLE001
                    log.exception("%s.set_session", type(workspace).__name__)
        self.operator.set_override_allowed(session is not None and session.allows("override"))
        self._update_start()
        self.users_button.setVisible(session is not None and session.role == "integrator")
        if self.users_dialog is not None:
            self.users_dialog.close()
            self.users_dialog = None
        if session is None:
            self.role_label.setText("not logged in")
            self.role_label.setStyleSheet("")
            self.logout_button.setVisible(False)
            self.login.refresh()
            self.stack.setCurrentWidget(self.login)
            return
        self.role_label.setText(f"{session.user} — {session.role}")
        self.role_label.setStyleSheet(f"background: {ROLE_COLOURS.get(session.role, '#455a64')}; color: white;"
                                      " border-radius: 4px; padding: 3px 10px;")
        self.logout_button.setVisible(True)
        home = self.page_of(self.operator)
        for workspace, visible in ((self.qa, session.allows("review")),
                                   (self.integrator, session.allows("edit_recipe"))):
            index = self.page_of(workspace)
            if index >= 0:
                self.tabs.setTabVisible(index, visible)
                home = index if visible else home
        self.tabs.setCurrentIndex(home)
        self.stack.setCurrentWidget(self.tabs)

    def show_users(self) -> None:
        if self.station.session is not None:
            self.users_dialog = UsersDialog(self.station.access, self.station.session, self)
            self.users_dialog.show()

    def visible_workspaces(self) -> list[str]:
        return [self.tabs.tabText(i) for i in range(self.tabs.count()) if self.tabs.isTabVisible(i)]

    # -- actions ---------------------------------------------------------------------------------------
    def _act(self, action: Callable[[], None]) -> None:
        try:
            action()
        except (AccessDenied, RuntimeError, ValueError) as exc:
            self.statusBar().showMessage(str(exc), 15_000)
            self.operator.reason.setText(str(exc))

    def _override(self) -> None:
        view = self.operator
        verdict, reason = view.override_verdict.currentText(), view.override_reason.text()
        try:
            item = self.station.override_last(verdict, reason)
        except (AccessDenied, ValueError) as exc:
            view.override_status.setText(f"not recorded: {exc}")
            return
        record = self.station.last_record
        view.override_status.setText(f"{record.serial}: {record.verdict} → {verdict} by {self.station.session.user}; "
                                     f"review item {item}")
        view.override_reason.clear()

    def _recipe_chosen(self, index: int) -> None:
        combo = self.operator.recipe
        if not self.station.select_recipe(combo.itemData(index)):  # refused: show the recipe still in use
            combo.blockSignals(True)
            combo.setCurrentIndex(max(0, combo.findData(str(self.station.recipe_path))))
            combo.blockSignals(False)
        else:
            self.recipe_notice.follow(self.station.recipe_path)

    def _connect_requested(self) -> None:
        if self.station.devices is None and not self.station.busy:
            self.station.connect_devices()

    def _tab_changed(self, _index: int) -> None:
        if self.qa is not None and self.tabs.currentIndex() == self.page_of(self.qa):
            try:
                self.qa.refresh()  # the station keeps writing parts and review items
            except Exception:  # noqa: BLE001
                log.exception("QA workspace refresh")

    def _may_start(self) -> bool:
        return self.station.session is not None and not self.station.running and not self._start_blocker()

    def _start_blocker(self) -> str:
        """Why Start is off, in plain words ('' when nothing stands in the way)."""
        station, session = self.station, self.station.session
        if session is not None and not session.allows("run"):
            return f"Start: the {session.role} role does not run lots"
        if self._closing:
            return "Start: the station is closing"
        if station.recipe_problem is not None:
            return f"Start is off: {station.recipe_problem}"
        if station.busy and not station.running:
            return "Start: wait, the station is busy (connecting, homing or loading the recipe)"
        if station.devices is None:
            return "Start is off: the devices are not connected (Reset connects them)"
        if station.fault is not None:
            return f"Start is off until Reset: {station.fault}"
        golden = station.controller.golden_block()
        if golden is not None:
            return f"Start is off: {golden} (Golden check)"
        return ""

    def _update_start(self) -> None:
        self.operator.show_golden(self.station.controller.golden_block() is not None)
        allowed = self._may_start()
        self.operator.start_button.setEnabled(allowed)
        self.operator.set_start_reason("" if allowed or self.station.running else self._start_blocker())

    def _running_changed(self, running: bool, paused: bool) -> None:
        self.operator.set_running(running, paused)
        self._update_start()
        if self.integrator is not None:
            try:
                self.integrator.set_busy(running)
                if not running and self.station.devices is not None:
                    self.integrator.set_devices(self.station.devices)
            except Exception:  # noqa: BLE001
                log.exception("integrator workspace")

    def _devices_changed(self, devices) -> None:
        if self.integrator is not None and not self.station.running:
            try:
                self.integrator.set_devices(devices)
            except Exception:  # noqa: BLE001
                log.exception("integrator workspace")
        self._state_changed(self.station.current_state())

    def _state_changed(self, state: StationState) -> None:
        self.operator.alarm.show_state(state, self.station.controller_state())
        self.operator.show_station_state(state.state)
        self.operator.reset_button.setEnabled(state.state in ("Alarm", "Offline") and not self.station.busy)
        self._update_start()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        """During a lot: ask; Yes stops the lot, the stage and the lights (on a worker thread, the
        window stays responsive), says what state the cell was left in, then closes; No changes nothing."""
        if self.station.running and self.confirm_close and not self._close_ready:
            event.ignore()
            if self.close_dialog is None and not self._closing:
                self._ask_close()
            return
        self._shutdown()
        super().closeEvent(event)

    def _ask_close(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Question, "Close the station?",
                          "A lot is running. Close the station?\n\nYes: the lot stops (the part in progress ends "
                          "ERROR, not fully inspected), the stage stops and the lights go off, then the window "
                          "closes.\nNo: the lot goes on.",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.finished.connect(lambda _r: self._close_answered(
            box.standardButton(box.clickedButton()) == QMessageBox.StandardButton.Yes))
        self.close_dialog = box
        box.open()

    def _close_answered(self, yes: bool) -> None:
        self.close_dialog = None
        if not yes:
            return
        self._closing = True
        self.operator.set_stopping()
        self.operator.activity.setText("■ closing: stopping the lot, the stage and the lights…")
        self.statusBar().showMessage("closing: stopping the lot, the stage and the lights…")
        self.station.safe_stop_async()

    def _safe_stopped(self, report) -> None:
        self.safe_report = report
        text = ("The cell is safe: " if report.safe else "The cell is NOT confirmed safe: ") + report.text() + "."
        self.operator.activity.setText(text)
        self.statusBar().showMessage(text)
        log.info("closing the station: %s", text)
        box = QMessageBox(QMessageBox.Icon.Information if report.safe else QMessageBox.Icon.Warning,
                          "Station closing", text + "\n\nThe window closes now.",
                          QMessageBox.StandardButton.Ok, self)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.finished.connect(lambda _r: self._close_now())
        self.close_dialog = box
        box.open()

    def _close_now(self) -> None:
        self.close_dialog = None
        self._close_ready = True
        self.close()

    def _shutdown(self) -> None:
        if self.close_dialog is not None:
            self.close_dialog.close()
            self.close_dialog = None
        self.latency.stop()
        self.station.stop()
        if self.integrator is not None:
            try:
                self.integrator.shutdown()  # its workers stop touching the devices before they close
            except Exception:  # noqa: BLE001
                log.exception("integrator workspace shutdown")
        self.station.close()
