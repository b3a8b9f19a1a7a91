"""The operator's lot on the station controller (what the window's Start does): N parts on a worker
thread, pause / resume / stop, LotFinished at the end. Part of StationController (inspector.station)."""
from __future__ import annotations

import logging
from typing import Callable

from .station_events import FAULT_CELL, FAULT_MACHINE, FAULT_NONE, FAULT_PART, FAULT_STORE, Homed, LotFinished, StationState

log = logging.getLogger("inspector.station")


class OperatorLot:
    """Mixed into StationController: uses its lock, state, cycle, devices and events."""

    def run_lot(self, parts: int, *, on_line: Callable[[str], None] | None = None) -> bool:
        """The operator's lot of `parts` parts (virtual parts seeded from `next_seed` with sim), on a
        worker thread: READY (or DONE) only. pause()/resume()/stop() act on it; LotFinished ends it."""
        with self._lock:
            if self._state not in (StationState.READY, StationState.DONE) or self._closed:
                return self._refuse("run lot")
            self.last_result = None
            self.paused = False
            self._stop_lot.clear()
            self._set_state(StationState.BUSY, reason="lot")
        self._spawn("lot", lambda: self._lot(parts, on_line))
        return True

    def _lot(self, parts: int, on_line: Callable[[str], None] | None) -> None:
        from .demo import machine_fault, run_lot

        tally, fault, code = None, None, FAULT_NONE
        try:
            with self._work:
                if self.cycle is None or self._cycle_recipe != self.recipes[self.recipe_no]:
                    if not self._load_cycle(self.recipes[self.recipe_no], ready=False):
                        self._publish(LotFinished(None, self.fault_reason))
                        return
                cycle = self.cycle
                cycle.reset_cancel()
                cycle.resume()
                if self.paused:
                    cycle.pause()
                if self._stop_lot.is_set():
                    cycle.cancel()
                first = self.next_seed

                def out(line: str) -> None:
                    self.lines.append(line)
                    if on_line is not None:
                        on_line(line)

                unsubscribe = cycle.events.subscribe(self._lot_event)
                try:
                    tally = run_lot(cycle, parts, cell=self.cell if self.sim else None, first_seed=first,
                                    home=not self.homed, out=out, on_ready=lambda _c: self._lot_homed())
                finally:
                    unsubscribe()
                    cycle.reset_cancel()
                machine = machine_fault(self.devices)
                if machine is not None:
                    fault, code = machine, FAULT_MACHINE
                    self.homed = False
                elif cycle.alarm is not None:
                    fault = cycle.alarm
                    code = FAULT_STORE if ("space" in fault or "not written" in fault or "record" in fault) else FAULT_CELL
        except Exception as exc:  # noqa: BLE001
            log.exception("lot")
            fault, code = f"lot stopped: {type(exc).__name__}: {exc}", FAULT_PART
        self.paused = False
        if fault is not None:
            self._set_state(StationState.FAULT, code, fault)
        else:
            self._set_state(StationState.READY)
        self._publish(LotFinished(tally, fault))

    def _lot_homed(self) -> None:
        self.homed, self.homing_required = True, False
        self._publish(Homed())

    def _lot_event(self, event: object) -> None:
        from .events import VerdictReady

        if isinstance(event, VerdictReady):
            self.last_row, self.last_record = event.row, event.record
            if self.sim:
                self.next_seed += 1

    def pause(self) -> None:
        self.paused = True
        if self.cycle is not None and self._state == StationState.BUSY:
            self.cycle.pause()

    def resume(self) -> None:
        self.paused = False
        if self.cycle is not None:
            self.cycle.resume()

    def stop(self) -> None:
        """Stop the lot (the part in progress ends ERROR 'cancelled by operator')."""
        self._stop_lot.set()
        self.paused = False
        if self.cycle is not None and self._state == StationState.BUSY:
            self.cycle.cancel()
