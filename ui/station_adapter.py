"""`Station`: the window's adapter to the Qt-free `inspector.station.StationController`. It forwards the
window's actions to the controller (which owns the state machine, devices, models, cycle, store and
review queue, and runs all hardware work on its threads) and turns the controller's events into Qt
signals; human actions are checked here with the session's permissions, and again by the core."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from PyQt6.QtCore import QObject, pyqtSignal

from inspector.access import AccessControl, AccessDenied, Session
from inspector.demo import REFERENCE_RECIPE
from inspector.events import Alarm, CandidatesFound, Fault, FineShotTaken, PartStarted, VerdictReady, ViewCaptured
from inspector.shift import ShiftTally
from inspector.station import FAULT_MACHINE, FAULT_MODELS, Homed, LotFinished, ModelsReady, StateChanged, StationController
from inspector.station import StationState as ControllerState
from inspector.station import fault_text

from .alarm_panel import MachineMonitor, StationState, station_state
from .demo_users import DEMO_USERS, seed_demo_users  # noqa: F401 - DEMO_USERS: where callers found it

log = logging.getLogger(__name__)

def list_recipes(models_dir: Path, extra: Path | None = None) -> list[Path]:
    """The recipes an operator may pick: models/*.recipe.json, plus one given on the command line."""
    found = sorted(Path(models_dir).glob("*.recipe.json"))
    if extra is not None and Path(extra).resolve() not in {p.resolve() for p in found}:
        found.append(Path(extra))
    return found


class Station(QObject):
    """The window's adapter to the station controller (`inspector.station.StationController`).

    The controller owns the state machine, the devices, the models, the cycle, the result store and the
    review queue; this only forwards the window's actions to it and turns its events (delivered on
    worker threads) into Qt signals, which Qt queues to the GUI thread. What stays here is UI: the
    logged-in session and its permission checks, the machine monitor that shows the stage controller's
    live state, the override form's review item and audit row, and the recipe files the operator picks."""

    devices_changed = pyqtSignal(object)  # Devices | None
    state_changed = pyqtSignal(object)  # alarm_panel.StationState
    running_changed = pyqtSignal(bool, bool)  # running, paused
    models_changed = pyqtSignal(list)  # one line per model
    session_changed = pyqtSignal(object)  # Session | None
    message = pyqtSignal(str)
    safe_stopped = pyqtSignal(object)  # inspector.station_safe.SafeStopReport
    shift_restored = pyqtSignal(object)  # inspector.shift.ShiftTally of the current shift, from the store
    # relayed from the controller's cycle
    part_started = pyqtSignal(object)
    view_captured = pyqtSignal(object)
    candidates_found = pyqtSignal(object)
    fine_shot = pyqtSignal(object)
    verdict = pyqtSignal(object)
    _event = pyqtSignal(object)  # any controller event, queued to the GUI thread

    CYCLE_SIGNALS = {PartStarted: "part_started", ViewCaptured: "view_captured", CandidatesFound: "candidates_found",
                     FineShotTaken: "fine_shot", VerdictReady: "verdict"}

    def __init__(self, *, db: str, archive: str | None, parts: int = 20, speed_factor: float = 1.0,
                 first_seed: int = 500_000, recipe: str | Path | None = None, sim: bool = True,
                 config: str | Path | None = None, models_dir: str | Path | None = None, demo_users: bool = False):
        super().__init__()
        if not sim and config is None:
            raise ValueError("the station needs --sim or --config FILE")
        self.sim, self.config_path, self.parts = sim, config, parts
        self.models_dir = Path(models_dir) if models_dir else REFERENCE_RECIPE.parent
        self.recipe_path = Path(recipe) if recipe else REFERENCE_RECIPE
        self.recipes = list_recipes(self.models_dir, self.recipe_path)
        self.db = str(db)
        # a virtual stage is homed at once; a real one when the operator starts the first lot
        self.controller = StationController(db=db, archive=archive, sim=sim, config=config,
                                            recipes={n: p for n, p in enumerate(self.recipes, start=1)},
                                            speed_factor=speed_factor, first_seed=first_seed, home_at_start=sim)
        self.controller.select_recipe_path(self.recipe_path)
        self.access = AccessControl(self.controller.store)
        self.demo_users = demo_users and sim and seed_demo_users(self.access)
        self.session: Session | None = None
        self.monitor = MachineMonitor()
        self.monitor.changed.connect(lambda _state: self._refresh_state())
        # what the GUI thread has been told so far (the controller may be ahead until its events arrive)
        self._seen = self.controller.state
        self._shown_devices = None
        self._lot = False  # a lot this window started, until its LotFinished arrives
        self._stopping = False  # Stop pressed during that lot, until its LotFinished arrives
        self._part_fault: str | None = None  # the words of the last part's fault (the alarm panel's reason)
        self._recipe_problem: str | None = None  # why the picked recipe cannot load (checked off the GUI thread)
        self._closed = False
        self._event.connect(self._on_event)
        self._unsubscribe = self.controller.subscribe(self._event.emit)
        threading.Thread(target=self._read_shift, name="station-shift", daemon=True).start()

    def _read_shift(self) -> None:
        """The current shift's counters from the store (off the GUI thread: a PostgreSQL store may be slow)."""
        import time

        from inspector.shift import shift_at, shift_tally

        try:
            tally = shift_tally(self.controller.store, shift_at(time.time()))
        except Exception as exc:  # noqa: BLE001 - the counters then start at zero, and the operator is told
            self._event.emit(_Note(f"the shift's counters could not be read from the store: {exc}"))
            return
        self._event.emit(tally)

    # -- what the controller holds ---------------------------------------------------------------------
    store = property(lambda self: self.controller.store)
    review = property(lambda self: self.controller.review)
    cell = property(lambda self: self.controller.cell)
    station_config = property(lambda self: self.controller.station_config)
    cycle = property(lambda self: self.controller.cycle)
    homed = property(lambda self: self.controller.homed)
    paused = property(lambda self: self.controller.paused)
    last_row = property(lambda self: self.controller.last_row)
    last_record = property(lambda self: self.controller.last_record)
    next_seed = property(lambda self: self.controller.next_seed)
    log = property(lambda self: self.controller.lines)
    archive_dir = property(lambda self: self.controller.archive_dir)

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
    def devices(self):
        """The controller's devices as the GUI thread has been told of them: None until the controller's
        start (or Reset) has reached READY or FAULT here, so the buttons and this agree."""
        return self._shown_devices

    @property
    def running(self) -> bool:
        return self._lot

    @property
    def busy(self) -> bool:
        return self._lot or self._seen == ControllerState.BUSY

    @property
    def fault(self) -> str | None:
        """The controller's fault until Reset, in words; a machine alarm named by the stage controller."""
        controller = self.controller
        if controller.state != ControllerState.FAULT:
            return None
        reason = controller.fault_reason or fault_text(controller.fault_code)
        if controller.fault_code == FAULT_MACHINE:  # the stage controller's own words when there are some
            alarm = getattr(self.monitor.state, "alarm_text", "") if self.controller_state() == "Alarm" else ""
            reason = self._part_fault or alarm or reason
        return reason

    def current_state(self) -> StationState:
        devices = self.devices
        connected = devices is not None and getattr(devices.motion, "connected", True)
        controller = self.controller_state()
        alarm = getattr(self.monitor.state, "alarm_text", "") if controller is not None else ""
        if self._stopping and self.running and self.fault is None:
            return StationState("Stopping", "the part in progress ends, then the lot stops")
        problem = self.recipe_problem
        if problem is not None and not self.running:  # not the machine's alarm: nothing to Reset
            return StationState("Not ready", f"recipe {self.recipe_path.name} cannot load (why: under Start); "
                                             "pick another recipe, or have the integrator fix it")
        return station_state(controller, connected=connected, running=self.running,
                             paused=self.running and self.paused, fault=self.fault, homed=self.homed, alarm=alarm)

    @property
    def recipe_problem(self) -> str | None:
        """Why the selected recipe cannot run (the controller's fault 5, or the check made when it was
        picked); None when it loads."""
        controller = self.controller
        if controller.state == ControllerState.FAULT and controller.fault_code == FAULT_MODELS:
            return controller.fault_reason or fault_text(FAULT_MODELS)
        return self._recipe_problem

    def controller_state(self) -> str | None:
        """The stage controller's last reported state (None without devices or before its first report)."""
        return self.monitor.state.state if self.monitor.state is not None and self.devices is not None else None

    def _refresh_state(self) -> None:
        self.state_changed.emit(self.current_state())

    # -- the controller's events, on the GUI thread ------------------------------------------------------
    def _on_event(self, event: object) -> None:
        if self._closed:
            return
        name = self.CYCLE_SIGNALS.get(type(event))
        if name is not None:
            getattr(self, name).emit(event)
        elif isinstance(event, StateChanged):
            was = self._seen
            self._seen = self.controller.state  # the newest, whatever order the events came in
            self._sync_devices()
            if self._seen == ControllerState.FAULT and was != ControllerState.FAULT and self.fault:
                self.message.emit(self.fault)
            self._refresh_state()
        elif isinstance(event, ModelsReady):
            self.models_changed.emit(list(event.lines))
        elif isinstance(event, Homed):
            if self._shown_devices is not None and self._shown_devices is self.controller.devices:
                self.monitor.attach(self._shown_devices.motion)  # Reset may have reconnected the link
            self._refresh_state()
        elif isinstance(event, LotFinished):
            self._lot = self._stopping = False
            self.running_changed.emit(False, False)
            self._refresh_state()
        elif isinstance(event, Fault):
            kind, _, rest = event.reason.partition(": ")
            self._part_fault = f"{rest if kind.isidentifier() and rest else event.reason} (part {event.part_id})"
            self._refresh_state()
        elif isinstance(event, Alarm):
            self.message.emit(event.message)
        elif isinstance(event, ShiftTally):
            self.shift_restored.emit(event)
        elif isinstance(event, _Note):
            self.message.emit(event.text)
        elif isinstance(event, _RecipeModels):
            if event.path == self.recipe_path:
                self._recipe_problem = event.problem
                self.models_changed.emit(list(event.lines))
                self._refresh_state()

    def _sync_devices(self) -> None:
        devices = self.controller.devices
        if devices is self._shown_devices:
            return
        self._shown_devices = devices
        if devices is None:
            self.monitor.detach()
        else:
            self.monitor.attach(devices.motion)
        self.devices_changed.emit(devices)

    # -- devices ---------------------------------------------------------------------------------------
    def connect_devices(self) -> None:
        """Open the devices (a virtual cell with --sim), home a virtual stage, load the models: the
        controller does it on its worker thread."""
        if not self.controller.reset():  # OFFLINE (or FAULT) -> BUSY -> READY | FAULT
            self.message.emit(f"busy: the station is {self.controller.state.value}")

    def disconnect_devices(self) -> None:
        """Close the devices while idle (the integrator's Disconnect); Connect or Reset opens them again."""
        if self.busy:
            self.message.emit("busy: Stop the lot before disconnecting")
            return
        self.monitor.detach()
        self._shown_devices = None
        self.devices_changed.emit(None)  # the workspaces let go of the devices before they close
        if not self.controller.disconnect():
            self.message.emit("busy: Stop the lot before disconnecting")
        self._seen = self.controller.state
        self._sync_devices()  # None, or the devices again when the controller refused
        self._refresh_state()

    # -- recipes and models ------------------------------------------------------------------------------
    def select_recipe(self, path: str | Path, *, reload: bool = False) -> bool:
        """The operator's (or the integrator's saved) recipe file for the next lot; False when refused."""
        if self.running:
            self.message.emit("the recipe changes between lots, not during one")
            return False
        path = Path(path)
        controller = self.controller
        if controller.state == ControllerState.FAULT and controller.fault_code == FAULT_MODELS:
            chosen = controller.recover_with_recipe(path)  # the fault was the recipe: this one loads, READY again
        else:
            chosen = controller.select_recipe_path(path, reload=reload)
        if not chosen:
            self.message.emit(f"the recipe cannot change now (station {self.controller.state.value})")
            return False
        self.recipe_path = path
        self._recipe_problem = None
        self.models_changed.emit([f"models of {path.name}: loading…"])
        self._refresh_state()

        def load() -> None:
            problem = None
            try:
                lines = self.controller.recipe_models(path)
            except Exception as exc:  # noqa: BLE001 - shown, the recipe is the operator's choice
                problem = f"recipe {path.name} cannot load: {exc}"
                lines = (problem,)
            self._event.emit(_RecipeModels(path, tuple(lines), problem))

        threading.Thread(target=load, name="station-recipe-models", daemon=True).start()
        return True

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
        if (blocked := self.controller.golden_block()) is not None:
            raise RuntimeError(f"{blocked}: check the masters first (Golden check)")
        self._lot = True  # before the controller's BUSY arrives (at once: this is its thread)
        self._stopping = False
        self._part_fault = None
        if not self.controller.run_lot(self.parts):
            self._lot = False
            self._refresh_state()
            raise RuntimeError(f"the station refused the lot (state {self.controller.state.value})")
        self.running_changed.emit(True, False)
        self._refresh_state()

    def toggle_pause(self) -> None:
        if not self.running:
            return
        if self.paused:
            self.controller.resume()
        else:
            self.controller.pause()
        self.running_changed.emit(True, self.paused)
        self._refresh_state()

    def stop(self) -> None:
        """Stop the lot: the controller is told at once (it never blocks) and the state says
        'Stopping' in this same event-loop turn; LotFinished arrives when the part in progress ended."""
        self._stopping = self._lot
        self.controller.stop()
        self._refresh_state()

    def safe_stop_async(self) -> None:
        """Stop the lot, the stage and the lights on a worker thread (closing during a lot);
        `safe_stopped(report)` says what state the cell was left in."""
        def run() -> None:
            report = self.controller.safe_stop()
            if not self._closed:
                self.safe_stopped.emit(report)

        self._stopping = self._lot
        self._refresh_state()
        threading.Thread(target=run, name="station-safe-stop", daemon=True).start()

    def reset(self) -> None:
        """After a fault: Devices.recover (light port reopened, lights off; stage reset or reconnected,
        unlocked) and homing, by the controller; without devices it connects them again."""
        self.require("run")
        if self.busy:
            self.message.emit("busy: Stop the lot before Reset")
            return
        self._part_fault = None
        if not self.controller.reset():
            self.message.emit(f"busy: the station is {self.controller.state.value}")

    # -- override ------------------------------------------------------------------------------------------
    def override_last(self, new_verdict: str, reason: str) -> int:
        """The operator overrides the last verdict with a reason: a review item for QA and an audit row."""
        session = self.require("override")
        row = self.last_row
        if row is None:
            raise ValueError("no verdict to override yet")
        old = self.review.effective_verdict(row)
        item = self.review.add_override(row, session, new_verdict, reason)
        self.access.record(session, "override", f"part:{row}", old, new_verdict, reason.strip())
        return item

    # -- shutdown -----------------------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._unsubscribe()
        self.monitor.detach()
        self.controller.close()  # stops the lot, joins its threads, closes the devices and the store


@dataclass(frozen=True)
class _RecipeModels:
    """The models of a recipe the operator picked, loaded off the GUI thread."""
    path: Path
    lines: tuple[str, ...]
    problem: str | None = None  # why it cannot load


@dataclass(frozen=True)
class _Note:
    """A line for the status bar from one of the adapter's own threads."""
    text: str
