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
import statistics
import time
from pathlib import Path
from typing import Callable

from PyQt6.QtCore import QObject, Qt, QTimer
from PyQt6.QtGui import QFont
from PyQt6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QMainWindow, QPushButton, QScrollArea, QStackedWidget,
                             QTabWidget, QVBoxLayout, QWidget)

from inspector.access import AccessDenied, Session
from inspector.station_config import StationConfig

from .alarm_panel import StationState
from .login_panel import LoginPanel, UsersDialog
from .operator_view import OperatorView
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


class LoopLatencyProbe(QObject):
    """How late the GUI event loop serves a timer: a responsive window serves it within a few ms.
    Samples are kept for a report; they are measurements, never pass/fail criteria."""

    def __init__(self, interval_ms: int = 20):
        super().__init__()
        self.interval_ms = interval_ms
        self.samples_ms: list[float] = []
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._last: float | None = None

    def start(self) -> None:
        self._last = None
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.samples_ms.append(max(0.0, (now - self._last) * 1000.0 - self.interval_ms))
        self._last = now

    def summary(self) -> str:
        s = sorted(self.samples_ms)
        if not s:
            return "GUI event-loop latency: no samples"
        p95 = s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))]
        return (f"GUI event-loop latency ({self.interval_ms} ms timer, {len(s)} samples): median "
                f"{statistics.median(s):.1f} ms, p95 {p95:.1f} ms, max {s[-1]:.1f} ms late")


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
                self.integrator.recipe_saved.connect(
                    lambda _result: station.select_recipe(station.recipe_path, reload=True))
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
        view.start_button.clicked.connect(lambda: self._act(station.start_lot))
        view.pause_button.clicked.connect(station.toggle_pause)
        view.stop_button.clicked.connect(station.stop)
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
        self.operator.start_button.setEnabled(self._may_start())
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
        station, session = self.station, self.station.session
        return (session is not None and session.allows("run") and not station.running and station.fault is None
                and station.devices is not None)

    def _running_changed(self, running: bool, paused: bool) -> None:
        self.operator.set_running(running, paused)
        self.operator.start_button.setEnabled(self._may_start())
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
        self.operator.reset_button.setEnabled(state.state in ("Alarm", "Offline") and not self.station.busy)
        self.operator.start_button.setEnabled(self._may_start())

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        self.latency.stop()
        self.station.stop()
        if self.integrator is not None:
            try:
                self.integrator.shutdown()  # its workers stop touching the devices before they close
            except Exception:  # noqa: BLE001
                log.exception("integrator workspace shutdown")
        self.station.close()
        super().closeEvent(event)
