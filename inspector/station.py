"""The station controller: the cell's state machine, without Qt (threads only).

It owns the devices (with `sim` a running virtual cell behind real pseudo-terminals; else the ports
of a station config), the loaded models (per recipe, loaded once), the inspection cycle, the result
store and the review queue. Its clients — the PyQt6 window, `inspector serve`, the Modbus TCP and
OPC UA servers — only call its methods and listen to its events (`subscribe`).

States (`StationState`)::

    OFFLINE --start()--> READY --inspect()--> BUSY --> DONE --acknowledge()--> READY
                           |                   |          (a PLC that never acknowledges leaves it DONE)
                           +--run_lot()--> BUSY +--> FAULT --reset()--> READY
    (start() that cannot connect, home or load the models: FAULT)

A command that does not fit the state is refused: it returns False, is counted in
`commands_refused`, and is never executed.

Fault codes (`fault_code`, also on the PLC interfaces):

| code | meaning |
|---|---|
| 0 | no fault |
| 1 | devices not connected: connect, homing or Reset (Devices.recover) failed |
| 2 | machine alarm: the stage controller is in alarm or its link is lost |
| 3 | part fault: a hardware error (camera, lights, stage, serial link) or an unexpected error during a part |
| 4 | store/disk alarm: the record could not be written, or no space for the record or the images |
| 5 | models or recipe could not load (file, schema, model contract, the station's cameras) |
| 6 | cell alarm: parts in a row with implausible frames (lights, camera or fixture are wrong) |

A part whose frames are implausible, or whose serial is empty or invalid, is an ERROR result, not a
fault: the station goes to DONE with that result.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from hardware.errors import HardwareError

from .archive import check_path_part
from .events import Alarm, EventBus
from .lamps import SignalLamps
from .review import ReviewQueue
from .station_events import (FAULT_CELL, FAULT_CODES, FAULT_DEVICES, FAULT_MACHINE, FAULT_MODELS, FAULT_NONE,  # noqa: F401
                             FAULT_PART, FAULT_STORE, Homed, InspectionDone, LotFinished, ModelsReady, PartResult,
                             StateChanged, StationState, _is_part_fault)
from .golden import GoldenCheck
from .station_lot import OperatorLot
from .station_safe import SafeStop, SafeStopReport  # noqa: F401
from .station_setup import DeviceSetup

log = logging.getLogger(__name__)

class StationController(DeviceSetup, OperatorLot, SafeStop, GoldenCheck):
    """The station's state machine and devices. Methods may be called from any thread; events reach
    subscribers on worker threads (callbacks must return quickly and must not block on the controller)."""

    def __init__(self, *, db: str, archive: str | None = None, sim: bool = False, config: str | Path | None = None,
                 recipes: Mapping[int, str | Path] | None = None, speed_factor: float = 1.0,
                 first_seed: int = 500_000, home_at_start: bool = True, golden_check: bool = False):
        from .results.sqlite_store import ResultStore

        if not sim and config is None:
            raise ValueError("the station needs sim=True (--sim) or a station config (--config FILE)")
        self.sim, self.config_path = sim, (Path(config) if config is not None else None)
        self.speed_factor, self.next_seed = speed_factor, first_seed
        # False: start() leaves the stage as it is (a real stage homes when the first lot starts); until
        # then an un-homed stage reporting Alarm is 'homing required', not a machine fault
        self.home_at_start = home_at_start
        self.golden_enabled = golden_check  # production waits for the recipe's masters (inspector.golden)
        self.homing_required = False
        self.db, self.archive_dir = str(db), archive
        self.store = ResultStore(db)
        if sim:  # serials SIM-<seed> never repeat in one store, restart after restart
            from .sim_serials import next_free_seed

            self.next_seed = next_free_seed(self.store, first_seed)
        self.review = ReviewQueue(self.store)
        self.recipes: dict[int, Path] = self._recipe_table(recipes)
        self.recipe_no: int = min(self.recipes)
        self.commands_refused = 0
        self.fault_code = FAULT_NONE
        self.fault_reason = ""
        self.last_result: PartResult | None = None
        self.last_record = None  # results.records.PartRecord of the last part
        self.last_row: int | None = None
        self.paused = False
        self.homed = False
        self.cell = None  # the virtual cell (sim, or a dry run's virtual lights/cameras)
        self.station_config = None
        self.devices = None
        self.lamps: SignalLamps | None = None  # the station config's [io] lamps and part sensor
        self.cycle = None  # the InspectionCycle of the loaded recipe
        self.model_lines: tuple[str, ...] = ()
        self.lines: list[str] = []  # the lot's log lines
        self.events = EventBus()
        self._state = StationState.OFFLINE
        self._lock = threading.RLock()  # state and refusals
        self._work = threading.Lock()  # one job on the devices at a time (start, part, lot, reset)
        self._changed = threading.Condition(self._lock)
        self._models: dict[tuple[str, str], tuple[Any, Any, tuple[str, ...]]] = {}
        self._models_lock = threading.Lock()  # a model pair loads once, whoever asks first
        self._cycle_recipe: Path | None = None
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._stop_lot = threading.Event()
        self._watch_stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    # -- events and state ------------------------------------------------------------------------------
    def subscribe(self, callback: Callable[[object], None]) -> Callable[[], None]:
        return self.events.subscribe(callback)

    def _publish(self, event: object) -> None:
        try:
            self.events.publish(event)
        except Exception:  # noqa: BLE001 - a client's bug must not stop the station
            log.exception("station event subscriber failed on %r", type(event).__name__)

    @property
    def state(self) -> StationState:
        return self._state

    def _set_state(self, state: StationState, code: int = FAULT_NONE, reason: str = "") -> None:
        with self._lock:
            self._state = state
            self.fault_code = code if state == StationState.FAULT else FAULT_NONE
            self.fault_reason = reason if state == StationState.FAULT else ""
            self._changed.notify_all()
        if state == StationState.FAULT:
            log.warning("station fault %d: %s", code, reason)
        self._publish(StateChanged(state, self.fault_code, reason))

    def _refuse(self, what: str) -> bool:
        with self._lock:
            self.commands_refused += 1
            state = self._state
        log.info("refused %s in state %s (refused so far: %d)", what, state.value, self.commands_refused)
        return False

    def wait_for(self, *states: StationState, timeout: float) -> StationState:
        """Wait until the state is one of `states` (or `timeout` s passed); returns the state then."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._state not in states:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            return self._state

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=f"station-{name}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    # -- the machine watchdog ------------------------------------------------------------------------------
    def _start_watchdog(self, interval_s: float = 0.5) -> None:
        if self._watchdog is not None:
            return

        def watch() -> None:
            from .demo import machine_fault

            while not self._watch_stop.wait(interval_s):
                if self._state not in (StationState.READY, StationState.DONE) or self.devices is None:
                    continue
                if not self._work.acquire(blocking=False):
                    continue
                try:
                    if self._state in (StationState.READY, StationState.DONE) and self.devices is not None:
                        fault = machine_fault(self.devices)
                        if fault is not None and self.homing_required and self._link_up():
                            fault = None  # an un-homed stage in Alarm: homing required, the next lot homes
                        if fault is not None:
                            self.homed = False
                            self._set_state(StationState.FAULT, FAULT_MACHINE, fault)
                except Exception as exc:  # noqa: BLE001
                    self._set_state(StationState.FAULT, FAULT_MACHINE, f"{type(exc).__name__}: {exc}")
                finally:
                    self._work.release()

        self._watchdog = threading.Thread(target=watch, name="station-watchdog", daemon=True)
        self._watchdog.start()

    def _link_up(self) -> bool:
        devices = self.devices
        return devices is not None and bool(getattr(devices.motion, "connected", True))

    # -- commands ----------------------------------------------------------------------------------------------
    def inspect(self, serial: str, *, part_id: str | None = None, recipe_no: int | None = None) -> bool:
        """READY only: BUSY at once, one part on a worker thread, then DONE with `last_result` (or FAULT)."""
        with self._lock:
            if self._state != StationState.READY or self._closed:
                return self._refuse("inspect")
            if (blocked := self.golden_block()) is not None:
                return self._refuse(f"inspect: {blocked}")
            self.last_result = None
            self._set_state(StationState.BUSY)
        self._spawn("part", lambda: self._run_part(serial, part_id, recipe_no))
        return True

    def acknowledge(self) -> bool:
        """DONE -> READY; the result is cleared."""
        with self._lock:
            if self._state != StationState.DONE:
                return self._refuse("acknowledge")
            self.last_result = None
            self._set_state(StationState.READY)
        return True

    def reset(self) -> bool:
        """After a fault (or from DONE/READY): Devices.recover, home again, reload the cycle -> READY.
        Runs on a worker thread (BUSY meanwhile); refused while BUSY."""
        with self._lock:
            if self._state == StationState.BUSY or self._closed:
                return self._refuse("reset")
            if self._state == StationState.FAULT:
                self.golden.require("Reset after a fault")
            self.last_result = None
            self._set_state(StationState.BUSY, reason="reset")
        self._spawn("reset", self._run_reset)
        return True

    def _run_reset(self) -> None:
        with self._work:
            if self.devices is None:
                if self._connect():
                    self._start_watchdog()
                return
            try:
                for note in self.devices.recover():
                    log.info("reset: %s", note)
                self.devices.motion.home(60.0).wait(65.0)
                self.homed, self.homing_required = True, False
                self._publish(Homed())
            except Exception as exc:  # noqa: BLE001
                self._set_state(StationState.FAULT, FAULT_DEVICES, f"reset failed: {type(exc).__name__}: {exc}")
                return
            self._load_cycle(self.recipes[self.recipe_no])

    # -- one part ----------------------------------------------------------------------------------------------
    def _run_part(self, serial: str, part_id: str | None, recipe_no: int | None) -> None:
        try:
            with self._work:
                self._part(serial, part_id, recipe_no)
        except Exception as exc:  # noqa: BLE001 - a defect of ours: a fault with the reason, never a hang
            log.exception("part %r", serial)
            self._set_state(StationState.FAULT, FAULT_PART, f"{type(exc).__name__}: {exc}")

    def _result(self, result: PartResult) -> None:
        self.last_result = result
        self._lamp(result.verdict)
        self._publish(InspectionDone(result))

    def _lamp(self, verdict: str | None) -> None:
        """The station config's [io] lamps: the verdict's lamp on, the others off (all off: None)."""
        if self.lamps is not None:
            try:
                self.lamps.show(verdict)
            except HardwareError as exc:  # a lamp is a courtesy; the result stands and is on every interface
                log.warning("lamps: %s", exc)

    def _part(self, serial: str, part_id: str | None, recipe_no: int | None) -> None:
        from .demo import machine_fault

        number = recipe_no if recipe_no else self.recipe_no
        recipe_id = self.cycle.recipe.id if self.cycle is not None else ""
        if number not in self.recipes:
            known = ", ".join(str(n) for n in sorted(self.recipes))
            self._result(PartResult(serial, part_id or "", "ERROR", 0, 0, 0,
                                    f"recipe {number} unknown (known: {known}); part not inspected", recipe_id))
            self._set_state(StationState.DONE)
            return
        if self.devices is None:
            self._set_state(StationState.FAULT, FAULT_DEVICES, "devices not connected")
            return
        fault = machine_fault(self.devices)
        if fault is not None:
            self.homed = False
            self._set_state(StationState.FAULT, FAULT_MACHINE, fault)
            return
        if self.cycle is None or self._cycle_recipe != self.recipes[number]:
            if not self._load_cycle(self.recipes[number], ready=False):
                return
        cycle = self.cycle
        try:
            check_path_part(serial, "serial")
            part_id = check_path_part(part_id if part_id is not None else serial, "part id")
        except ValueError as exc:
            self._result(PartResult(serial if isinstance(serial, str) else repr(serial), str(part_id or ""), "ERROR",
                                    0, 0, 0, f"{exc}; part not inspected", cycle.recipe.id))
            self._set_state(StationState.DONE)
            return
        refused = cycle.before_part(part_id, serial)
        if refused is not None:
            self._result(PartResult(serial, part_id, "ERROR", 0, 0, 0, refused, cycle.recipe.id))
            self._set_state(StationState.FAULT, FAULT_STORE, refused)
            return
        if self.sim and self.cell is not None:  # the next seeded virtual part into the fixture
            from hardware.sim.part import make_part

            self.cell.load_part(make_part(self.next_seed))
            self.next_seed += 1
        self._lamp(None)
        if self.lamps is not None and not self.lamps.part_present():
            wiring = self.lamps.wiring
            self._result(PartResult(serial, part_id, "ERROR", 0, 0, 0,
                                    f"no part present: input {wiring.part_present} not high within "
                                    f"{wiring.part_present_timeout_s:g} s; part not inspected", cycle.recipe.id))
            self._set_state(StationState.DONE)
            return
        row, record = cycle.inspect(part_id, serial)
        self.last_row, self.last_record = row, record
        called = sum(d.decision in ("defect", "review") for d in record.defects)
        cycle_ms = int(round(1000 * float(record.timings_s.get("total", 0.0))))
        result = PartResult(serial, part_id, record.verdict, called, cycle_ms, row, record.reason, cycle.recipe.id)
        code, why = FAULT_NONE, ""
        if row == 0 and record.verdict == "ERROR":
            code, why = FAULT_STORE, cycle.alarm or record.reason
        elif (fault := machine_fault(self.devices)) is not None:
            code, why = FAULT_MACHINE, fault
            self.homed = False
        elif record.verdict == "ERROR" and _is_part_fault(record.reason):
            code, why = FAULT_PART, f"{record.reason} (part {part_id})"
        elif cycle.alarm is not None:
            code, why = FAULT_CELL, cycle.alarm
        self._result(result)
        if code:
            self._set_state(StationState.FAULT, code, why)
        else:
            self._set_state(StationState.DONE)

    # -- shutdown -------------------------------------------------------------------------------------------
    def disconnect(self) -> bool:
        """Close the devices while not BUSY (the integrator's Disconnect): OFFLINE; start() or reset()
        opens them again."""
        with self._lock:
            if self._state == StationState.BUSY:
                return self._refuse("disconnect")
        with self._work:
            self._close_devices()
        self._set_state(StationState.OFFLINE)
        return True

    def _close_devices(self) -> None:
        if self.cycle is not None:
            self.cycle.close()
        self.cycle, self._cycle_recipe = None, None
        devices, cell = self.devices, self.cell
        self.devices = self.cell = None
        self.homed = False
        if devices is not None:
            devices.close()
        if cell is not None:
            cell.stop()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.stop()
        self._watch_stop.set()
        for thread in list(self._threads) + ([self._watchdog] if self._watchdog else []):
            thread.join(60.0)
        with self._work:
            self._close_devices()
        with self._lock:
            self._state = StationState.OFFLINE
            self._changed.notify_all()
        self.store.close()

    def __enter__(self) -> "StationController":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def fault_text(code: int) -> str:
    return FAULT_CODES.get(code, f"fault {code}")


__all__ = ["StationState", "PartResult", "StateChanged", "InspectionDone", "ModelsReady", "Homed", "LotFinished",
           "StationController", "FAULT_CODES", "fault_text", "Alarm"]
