"""The station: one window, three workspaces (operator, QA, integrator) behind a PIN login.

`Station` is the window's view-model. It owns what lives as long as the station: the result store
(users, audit log, review queue), the devices (with `--sim` a running virtual cell behind real
pseudo-terminals; with `--config` the ports of the station config), the loaded models and the
worker that runs a lot. Every hardware call, model load and lot runs on a worker thread; the
widgets only show what the signals bring. Permissions are checked here through the core's
`Session.require`, and again by the core calls themselves.
"""
from __future__ import annotations

import logging
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from PyQt6.QtCore import QObject, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QFont
from PyQt6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QMainWindow, QPushButton, QScrollArea, QStackedWidget,
                             QTabWidget, QVBoxLayout, QWidget)

from inspector.access import AccessControl, AccessDenied, Session
from inspector.archive import ImageArchive
from inspector.cycle import InspectionCycle
from inspector.demo import REFERENCE_RECIPE, machine_fault, open_models, run_lot, sim_station
from inspector.devices import Devices, open_devices
from inspector.recipe import Recipe
from inspector.results.sqlite_store import ResultStore
from inspector.review import ReviewQueue
from inspector.station_config import StationConfig

from .alarm_panel import MachineMonitor, StationState, station_state
from .cycle_worker import CycleWorker
from .login_panel import LoginPanel, UsersDialog
from .operator_view import OperatorView

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


@dataclass(frozen=True)
class ModelsLoaded:
    """The lot's models are ready: one line per model (name, version, execution provider)."""
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Homed:
    """The stage finished homing at the start of a lot."""


DEMO_USERS = (("integrator", "integrator", "3333"), ("operator", "operator", "1111"), ("qa", "qa", "2222"))
ROLE_COLOURS = {"operator": "#1565c0", "qa": "#6a1b9a", "integrator": "#00695c"}


def list_recipes(models_dir: Path, extra: Path | None = None) -> list[Path]:
    """The recipes an operator may pick: models/*.recipe.json, plus one given on the command line."""
    found = sorted(Path(models_dir).glob("*.recipe.json"))
    if extra is not None and Path(extra).resolve() not in {p.resolve() for p in found}:
        found.append(Path(extra))
    return found


def seed_demo_users(access: AccessControl) -> bool:
    """--sim only: operator/1111, qa/2222, integrator/3333 on a result store that has no user yet."""
    if access.has_users():
        return False
    name, role, pin = DEMO_USERS[0]
    access.add_user(name, role, pin, by=access.system_session("commissioning", "demo users (--sim)"))
    integrator = access.login(name, pin)
    for name, role, pin in DEMO_USERS[1:]:
        access.add_user(name, role, pin, by=integrator)
    access.logout(integrator)
    return True


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


class Station(QObject):
    """The station's state and actions, without widgets."""

    devices_changed = pyqtSignal(object)  # Devices | None
    state_changed = pyqtSignal(object)  # alarm_panel.StationState
    running_changed = pyqtSignal(bool, bool)  # running, paused
    models_changed = pyqtSignal(list)  # one line per model
    session_changed = pyqtSignal(object)  # Session | None
    message = pyqtSignal(str)
    # relayed from the current lot's worker
    part_started = pyqtSignal(object)
    view_captured = pyqtSignal(object)
    candidates_found = pyqtSignal(object)
    fine_shot = pyqtSignal(object)
    verdict = pyqtSignal(object)

    def __init__(self, *, db: str, archive: str | None, parts: int = 20, speed_factor: float = 1.0,
                 first_seed: int = 500_000, recipe: str | Path | None = None, sim: bool = True,
                 config: str | Path | None = None, models_dir: str | Path | None = None, demo_users: bool = False):
        super().__init__()
        if not sim and config is None:
            raise ValueError("the station needs --sim or --config FILE")
        self.sim, self.config_path = sim, config
        self.parts, self.speed_factor, self.next_seed = parts, speed_factor, first_seed
        self.archive_dir = archive
        self.models_dir = Path(models_dir) if models_dir else REFERENCE_RECIPE.parent
        self.recipe_path = Path(recipe) if recipe else REFERENCE_RECIPE
        self.recipes = list_recipes(self.models_dir, self.recipe_path)
        self.db = str(db)
        self.store = ResultStore(db)
        self.access = AccessControl(self.store)
        self.review = ReviewQueue(self.store)
        self.demo_users = demo_users and sim and seed_demo_users(self.access)
        self.session: Session | None = None
        self.cell = None
        self.station_config: StationConfig | None = None
        self.devices: Devices | None = None
        self.cycle: InspectionCycle | None = None
        self.worker: CycleWorker | None = None  # the lot
        self.log: list[str] = []
        self.last_row: int | None = None
        self.last_record = None
        self.homed = False
        self.paused = False
        self.fault: str | None = None  # station fault until Reset (connect, lot crash, machine)
        self.part_fault: str | None = None  # the last part's fault reason
        self._jobs: list[CycleWorker] = []
        self._models: dict[tuple[str, str], tuple[Any, Any, list[str]]] = {}
        self._models_lock = threading.Lock()
        self.monitor = MachineMonitor()
        self.monitor.changed.connect(lambda _state: self._refresh_state())
        self._closed = False
        self._stop_requested = threading.Event()
        self._opened: list[tuple[Any, Devices]] = []  # (cell, devices) opened by connect jobs

    # -- session -----------------------------------------------------------------------------------
    def set_session(self, session: Session | None) -> None:
        if self.session is not None and self.session is not session:
            self.access.logout(self.session)  # audited; the old session is refused from now on
        self.session = session
        self.session_changed.emit(session)

    def require(self, action: str) -> Session:
        if self.session is None:
            raise AccessDenied(f"log in to {action.replace('_', ' ')}")
        self.session.require(action)
        return self.session

    # -- state ---------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.worker is not None and self.worker.is_running()

    @property
    def busy(self) -> bool:
        return self.running or any(job.is_running() for job in self._jobs)

    def current_state(self) -> StationState:
        devices = self.devices
        connected = devices is not None and getattr(devices.motion, "connected", True)
        controller = self.monitor.state.state if (self.monitor.state is not None and devices is not None) else None
        fault = self.fault or (self.part_fault if (controller == "Alarm" or not connected) else None)
        alarm = getattr(self.monitor.state, "alarm_text", "") if controller is not None else ""
        return station_state(controller, connected=connected, running=self.running, paused=self.paused,
                             fault=fault, homed=self.homed, alarm=alarm)

    def controller_state(self) -> str | None:
        return self.monitor.state.state if self.monitor.state is not None and self.devices is not None else None

    def _refresh_state(self) -> None:
        self.state_changed.emit(self.current_state())

    # -- jobs ------------------------------------------------------------------------------------
    def _job(self, name: str, run: Callable[[Callable[[object], None]], Any],
             done: Callable[[Any], None] | None = None) -> CycleWorker:
        job = CycleWorker(run, name=name)
        if done is not None:
            job.done.connect(done)
        job.errored.connect(lambda text, name=name: self._set_fault(f"{name} failed: {text}"))
        job.finished.connect(lambda job=job: self._job_finished(job))
        self._jobs.append(job)
        job.start()
        return job

    def _job_finished(self, job: CycleWorker) -> None:
        job.thread.wait(5000)
        if job in self._jobs:
            self._jobs.remove(job)
        self._refresh_state()

    def _set_fault(self, text: str) -> None:
        self.fault = text
        self.message.emit(text)
        self._refresh_state()

    # -- devices ---------------------------------------------------------------------------------------
    def connect_devices(self) -> None:
        """Start the virtual cell (with --sim) and open the devices, off the GUI thread."""
        recipe_path = self.recipe_path

        def run(publish):
            cell = None
            if self.sim:
                from hardware.sim.cell import VirtualCell

                cell = VirtualCell(seed=self.next_seed, speed_factor=self.speed_factor).start()
                config = sim_station(cell)
            else:
                config = StationConfig.load(self.config_path)
            devices = None
            try:
                devices = open_devices(config, virtual_cell=cell)
                homed = False
                if self.sim:  # a virtual stage is homed at once; a real one when the operator starts
                    devices.motion.home(60.0).wait(65.0)
                    homed = True
            except BaseException:
                if devices is not None:
                    devices.close()
                if cell is not None:
                    cell.stop()
                raise
            self._opened.append((cell, devices))  # closed by close() even if the window goes first
            try:
                self._ensure_models(recipe_path)
            except Exception as exc:  # noqa: BLE001 - the devices are fine; Start reports the models again
                log.warning("models for %s: %s", recipe_path, exc)
            return cell, config, devices, homed

        self._job("connect", run, self._connected)

    def _connected(self, result) -> None:
        self.cell, self.station_config, self.devices, self.homed = result
        if self._closed:
            self._close_devices()
            return
        self.monitor.attach(self.devices.motion)
        self._emit_models()
        self.devices_changed.emit(self.devices)
        self._refresh_state()

    def disconnect_devices(self) -> None:
        """Close the devices while idle (the integrator's Disconnect); Connect or Reset opens them again."""
        if self.busy:
            self.message.emit("busy: Stop the lot before disconnecting")
            return
        self.monitor.detach()
        devices, self.devices = self.devices, None
        self.devices_changed.emit(None)  # the workspaces let go of the devices before they close
        self.devices = devices
        self._close_devices()
        self._refresh_state()

    def _close_devices(self) -> None:
        self.monitor.detach()
        self.devices = self.cell = None
        opened, self._opened = self._opened, []
        for cell, devices in opened:
            devices.close()
            if cell is not None:
                cell.stop()

    # -- models ------------------------------------------------------------------------------------------
    def _ensure_models(self, recipe_path: Path):
        """Load (once per model pair) the recipe's detector and classifier; worker threads only."""
        recipe = Recipe.load(recipe_path)
        key = (str(recipe.model_path("detector")), str(recipe.model_path("classifier")))
        with self._models_lock:
            if key not in self._models:
                lines: list[str] = []
                detector, classifier = open_models(recipe, out=lines.append)
                self._models[key] = (detector, classifier, lines)
            return (recipe,) + self._models[key]

    def _emit_models(self) -> None:
        try:
            recipe = Recipe.load(self.recipe_path)
            key = (str(recipe.model_path("detector")), str(recipe.model_path("classifier")))
        except Exception as exc:  # noqa: BLE001 - shown, the recipe is the operator's choice
            self.models_changed.emit([f"recipe {self.recipe_path.name}: {exc}"])
            return
        loaded = self._models.get(key)
        self.models_changed.emit(loaded[2] if loaded else [f"models of {recipe.id}: loading…"])

    def select_recipe(self, path: str | Path) -> None:
        if self.running:
            self.message.emit("the recipe changes between lots, not during one")
            return
        self.recipe_path = Path(path)
        self._emit_models()
        self._job("load models", lambda publish: self._ensure_models(self.recipe_path),
                  lambda _result: self._emit_models())

    # -- the lot ------------------------------------------------------------------------------------------
    def start_lot(self) -> None:
        self.require("run")
        if self.busy:
            self.message.emit("busy: wait for the current job to finish")
            return
        if self.devices is None:
            raise RuntimeError("the devices are not connected (Reset connects them again)")
        if self.fault is not None or (self.controller_state() == "Alarm" and self.homed):
            raise RuntimeError("the machine is in alarm: Reset first")
        devices, station, cell, recipe_path = self.devices, self.station_config, self.cell, self.recipe_path
        parts, first_seed, home = self.parts, self.next_seed, not self.homed
        archive = ImageArchive(self.archive_dir) if self.archive_dir else None
        self.fault = self.part_fault = None
        self.paused = False
        self._stop_requested.clear()

        def run(publish):
            recipe, detector, classifier, lines = self._ensure_models(recipe_path)
            publish(ModelsLoaded(tuple(lines)))
            # the cycle puts NG / grey / ERROR parts in the review queue before it publishes the verdict
            cycle = InspectionCycle(station, devices, recipe, detector, classifier, self.store, archive=archive,
                                    review=self.review)
            cycle.events.subscribe(publish)
            self.cycle = cycle
            if self.paused:  # Pause or Stop pressed while the models loaded
                cycle.pause()
            if self._stop_requested.is_set():
                cycle.cancel()
            try:
                tally = run_lot(cycle, parts, cell=cell, first_seed=first_seed, home=home, out=self.log.append,
                                on_ready=lambda _c: publish(Homed()))
            finally:
                cycle.close()
            return tally, machine_fault(devices) or cycle.alarm

        worker = CycleWorker(run, name="lot")
        worker.verdict.connect(self._on_verdict)  # the station's own state first, then the views
        worker.fault.connect(self._on_fault)
        for name in ("part_started", "view_captured", "candidates_found", "fine_shot", "verdict"):
            getattr(worker, name).connect(getattr(self, name))
        worker.other.connect(self._on_other)
        worker.done.connect(self._lot_done)
        worker.errored.connect(lambda text: self._set_fault(f"lot stopped: {text}"))
        worker.finished.connect(self._lot_finished)
        self.worker = worker
        worker.start()
        self.running_changed.emit(True, False)
        self._refresh_state()

    def _on_other(self, event) -> None:
        if isinstance(event, ModelsLoaded):
            self.models_changed.emit(list(event.lines))
        elif isinstance(event, Homed):
            self.homed = True
            self._refresh_state()

    def _on_verdict(self, event) -> None:
        self.last_row, self.last_record = event.row, event.record
        if self.sim:
            self.next_seed += 1

    def _on_fault(self, event) -> None:
        kind, _, rest = event.reason.partition(": ")
        self.part_fault = f"{rest if kind.isidentifier() and rest else event.reason} (part {event.part_id})"
        self._refresh_state()

    def _lot_done(self, result) -> None:
        _tally, fault = result
        if fault is not None:
            self.fault = self.part_fault or fault

    def _lot_finished(self) -> None:
        if self.worker is not None:
            self.worker.thread.wait(5000)
        self.paused = False
        self.cycle = None
        self.running_changed.emit(False, False)
        self._refresh_state()

    def toggle_pause(self) -> None:
        if not self.running:
            return
        self.paused = not self.paused
        cycle = self.cycle
        if cycle is not None and self.paused:
            cycle.pause()
        elif cycle is not None:
            cycle.resume()
        self.running_changed.emit(True, self.paused)
        self._refresh_state()

    def stop(self) -> None:
        self._stop_requested.set()
        if self.cycle is not None:
            self.cycle.cancel()
        self.paused = False
        self._refresh_state()

    def reset(self) -> None:
        """After a fault: Devices.recover (light port reopened, lights off; stage reset or reconnected,
        unlocked); next Start homes."""
        self.require("run")
        if self.busy:
            self.message.emit("busy: Stop the lot before Reset")
            return
        if self.devices is None:
            self.fault = None
            self.connect_devices()
            return
        devices = self.devices

        def run(publish):
            return devices.recover()

        def done(notes):
            for note in notes or ():
                self.message.emit(note)
            self.fault = self.part_fault = None
            self.homed = False
            self.monitor.attach(devices.motion)
            self._refresh_state()

        self._job("reset", run, done)

    # -- override ------------------------------------------------------------------------------------------
    def override_last(self, new_verdict: str, reason: str) -> int:
        """The operator overrides the last verdict with a reason: a review item for QA and an audit row."""
        session = self.require("override")
        if self.last_row is None:
            raise ValueError("no verdict to override yet")
        old = self.review.effective_verdict(self.last_row)
        item = self.review.add_override(self.last_row, session, new_verdict, reason)
        self.access.record(session, "override", f"part:{self.last_row}", old, new_verdict, reason.strip())
        return item

    # -- shutdown -----------------------------------------------------------------------------------------
    def close(self) -> None:
        self._closed = True
        self.stop()
        for job in [self.worker, *self._jobs]:
            if job is not None:
                job.thread.quit()
                job.thread.wait(30_000)
        self._close_devices()
        self.store.close()


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
                self.integrator.recipe_saved.connect(lambda _result: station.select_recipe(station.recipe_path))
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
        view.recipe.currentIndexChanged.connect(lambda i: station.select_recipe(view.recipe.itemData(i)))
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

    # kept for callers of the first version
    @property
    def worker(self) -> CycleWorker | None:
        return self.station.worker

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

    def _connect_requested(self) -> None:
        if self.station.devices is None and not self.station.busy:
            self.station.fault = None
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
