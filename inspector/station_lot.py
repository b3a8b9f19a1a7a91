"""The operator's lot on the station controller (what the window's Start does): N parts on a worker
thread, pause / resume / stop, LotFinished at the end; and the recipes it runs (the numbered table,
the selection, the recipe loaded now). Part of StationController (inspector.station)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Mapping

from .station_events import (FAULT_CELL, FAULT_MACHINE, FAULT_MODELS, FAULT_NONE, FAULT_PART, FAULT_STORE, Homed,
                             LotFinished, StationState)

log = logging.getLogger("inspector.station")


class OperatorLot:
    """Mixed into StationController: uses its lock, state, cycle, devices and events."""

    def run_lot(self, parts: int, *, on_line: Callable[[str], None] | None = None) -> bool:
        """The operator's lot of `parts` parts (virtual parts seeded from `next_seed` with sim), on a
        worker thread: READY (or DONE) only. pause()/resume()/stop() act on it; LotFinished ends it."""
        with self._lock:
            if self._state not in (StationState.READY, StationState.DONE) or self._closed:
                return self._refuse("run lot")
            if (blocked := self.golden_block()) is not None:
                return self._refuse(f"run lot: {blocked}")
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

    # -- recipes: the table, the selection, the recipe the lot runs -----------------------------------
    def _recipe_table(self, recipes: Mapping[int, str | Path] | None) -> dict[int, Path]:
        from .demo import REFERENCE_RECIPE

        if recipes:
            table = {int(n): Path(p) for n, p in recipes.items()}
        else:
            table = {}
            if not self.sim and self.config_path is not None:  # a station config may number its recipes
                try:
                    from .station_config import StationConfig

                    mapped = getattr(StationConfig.load(self.config_path), "recipes", None) or {}
                    table = {int(n): Path(p) for n, p in dict(mapped).items()}
                except (ValueError, OSError, TypeError) as exc:
                    log.warning("station config recipes: %s", exc)
            table = table or {1: REFERENCE_RECIPE}
        bad = [n for n in table if not 1 <= n <= 65535]
        if bad:
            raise ValueError(f"recipe numbers must be 1..65535, got {bad}")
        return table

    def select_recipe_path(self, path: str | Path, *, reload: bool = False) -> bool:
        """Select the recipe file `path` (a client that lists recipe files rather than numbers): it is
        registered under a new number when the table does not have it yet. `reload`: the next part or
        lot loads the file again (it was edited). Refused like select_recipe."""
        path = Path(path)
        with self._lock:
            if not self._may_select_recipe():
                return self._refuse(f"select recipe {path.name}")
            number = self._recipe_number(path)
            if number is None:
                return self._refuse(f"select recipe {path.name}: the recipe table is full")
            if reload and self._cycle_recipe == path:
                self._cycle_recipe = None  # the next part or lot builds its cycle from the file again
            return self.select_recipe(number)

    def _recipe_number(self, path: Path) -> int | None:
        """(lock held) `path`'s number in the table, registered when new; None when the table is full."""
        number = next((n for n, p in sorted(self.recipes.items()) if p == path), None)
        if number is None:
            number = max(self.recipes) + 1
            if number > 65535:
                return None
            self.recipes[number] = path
        return number

    def recover_with_recipe(self, path: str | Path) -> bool:
        """FAULT 5 (the recipe could not load) only, with devices: select the recipe file `path` and load
        it on a worker thread (BUSY) -> READY, or FAULT 5 again. The operator's way out of a recipe
        fault without a Reset (no re-homing); a PLC's SelectRecipe stays refused in Fault."""
        path = Path(path)
        with self._lock:
            if self._closed or self.devices is None or not (
                    self._state == StationState.FAULT and self.fault_code == FAULT_MODELS):
                return self._refuse(f"recover with recipe {path.name}")
            number = self._recipe_number(path)
            if number is None:
                return self._refuse(f"recover with recipe {path.name}: the recipe table is full")
            self.recipe_no = number
            self._set_state(StationState.BUSY, reason="recipe")

        def run() -> None:
            with self._work:
                self._load_cycle(self.recipes[number])

        self._spawn("recipe", run)
        return True

    def select_recipe(self, number: int) -> bool:
        """Select recipe `number` for the next parts: only in READY/DONE/OFFLINE and a known number."""
        with self._lock:
            if not self._may_select_recipe():
                return self._refuse(f"select recipe {number}")
            if number not in self.recipes:
                return self._refuse(f"select unknown recipe {number}")
            self.recipe_no = number
        return True

    def _may_select_recipe(self) -> bool:
        """(lock held) Between parts and lots (in FAULT 5: recover_with_recipe, or Reset)."""
        return self._state in (StationState.READY, StationState.DONE, StationState.OFFLINE)

    @property
    def loaded_recipe(self) -> tuple[Path, int] | None:
        """(file, version) of the recipe the cycle was built from; None before one loaded."""
        cycle, path = self.cycle, self._cycle_recipe
        return (path, int(cycle.recipe.version)) if cycle is not None and path is not None else None

    def load_recipe(self) -> bool:
        """Build the cycle from the selected recipe's file now (it was edited): READY/DONE with devices,
        on a worker thread (BUSY meanwhile) -> READY, or FAULT 5 with the reason."""
        with self._lock:
            if self._closed or self.devices is None or self._state not in (StationState.READY, StationState.DONE):
                return self._refuse("load recipe")
            self._set_state(StationState.BUSY, reason="recipe")

        def run() -> None:
            with self._work:
                self._load_cycle(self.recipes[self.recipe_no])

        self._spawn("recipe", run)
        return True

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
