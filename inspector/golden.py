"""The golden-sample check: before production parts are accepted, the recipe's master parts (a known-
good one, known-defective ones) must be inspected and give their expected results.

It is required at the start of a shift (the station started, or `start_shift`), after a Reset from a
fault, and whenever the recipe or its models are not those the masters last passed with (an edit, a
model promotion: the recipe's content hash and the model versions are the key). A master passes when
its verdict is the expected one and, for a defective master, every expected defect class was called.
Every check is audited (`golden_check` in the audit log) and published as `GoldenChecked`.
A recipe that names no masters is not gated. On the virtual cell a master is its fixed seed.

`GoldenCheck` is mixed into the station controller (inspector.station); `GoldenGate` is the state.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from .golden_masters import Master
from .station_events import StationState

log = logging.getLogger("inspector.station")

GOLDEN_PART_PREFIX = "golden-"  # part ids of master inspections in the result store
AUDIT_ACTION = "golden_check"


@dataclass(frozen=True)
class MasterResult:
    master: str
    serial: str
    expect: str
    verdict: str
    called: tuple[str, ...]  # defect classes the station called (decision "defect")
    ok: bool
    why: str = ""
    row: int = 0  # the record's row in the result store

    def line(self) -> str:
        got = self.verdict + (f" ({', '.join(self.called)})" if self.called else "")
        return f"{self.master}: expected {self.expect}, got {got} — {'ok' if self.ok else self.why}"


@dataclass(frozen=True)
class GoldenChecked:
    """A golden check ended (an event of the station controller)."""
    passed: bool
    results: tuple[MasterResult, ...]
    reason: str  # why it was required, or why it failed


def judge_master(master: Master, verdict: str, reason: str, called: Sequence[str], row: int = 0) -> MasterResult:
    """Does the station's result on a master match what the recipe expects of it?"""
    classes = tuple(sorted(set(called)))
    if master.expect == "PASS":
        ok = verdict == "PASS"
        why = "" if ok else f"expected PASS, got {verdict}: {reason}"
    else:
        missing = [c for c in master.defects if c not in classes]
        ok = verdict == "FAIL" and not missing
        why = "" if ok else (f"expected FAIL, got {verdict}: {reason}" if verdict != "FAIL"
                             else f"expected {', '.join(missing)} not called (called: {', '.join(classes) or 'none'})")
    return MasterResult(master.name, master.serial, master.expect, verdict, classes, ok, why, row)


def master_part(master: Master) -> Any:
    """The virtual cell's part for a master: its seed, with only its expected defect kinds (a good master:
    no defects, nuisances as any part has them)."""
    from hardware.sim.part import make_part

    if master.sim_seed is None:
        raise ValueError(f"master {master.name!r} has no sim_seed: the virtual cell cannot make it")
    if master.expect == "PASS":
        return make_part(master.sim_seed, defect_probability=0.0)
    return make_part(master.sim_seed, kinds=tuple(master.defects), defect_probability=1.0)


@dataclass
class GoldenGate:
    """Whether production is open: `required` says why the masters must be checked (None: they passed
    for `passed_key`)."""
    required: str | None = "the station started (start of shift)"
    passed_key: tuple[str, ...] | None = None
    results: tuple[MasterResult, ...] = ()
    checked_at: float | None = None
    history: list[GoldenChecked] = field(default_factory=list)

    def require(self, why: str) -> None:
        self.required = why

    def pending(self, key: tuple[str, ...] | None, masters: Sequence[Master]) -> str | None:
        if key is not None and not masters:
            return None
        if self.required is not None:
            return f"golden check required: {self.required}"
        if key is None or key != self.passed_key:
            return "golden check required: the recipe or its models changed since the masters passed"
        return None

    def settle(self, key: tuple[str, ...], masters: Sequence[Master], results: Sequence[MasterResult]) -> GoldenChecked:
        done = {r.master for r in results if r.ok}
        missing = [m.name for m in masters if m.name not in {r.master for r in results}]
        failed = [r for r in results if not r.ok]
        self.results, self.checked_at = tuple(results), time.time()
        if not failed and not missing and all(m.name in done for m in masters):
            why = self.required or "recipe or models changed"
            self.required, self.passed_key = None, key
            event = GoldenChecked(True, tuple(results), why)
        else:
            words = [r.line() for r in failed] + [f"{name}: not inspected" for name in missing]
            self.required = "masters failed: " + "; ".join(words)
            event = GoldenChecked(False, tuple(results), self.required)
        self.history.append(event)
        return event


class GoldenCheck:
    """Mixed into StationController: uses its lock, state, cycle, cell, store and events."""

    golden_enabled: bool = False

    def _golden_gate(self) -> GoldenGate:
        gate = getattr(self, "_golden", None)
        if gate is None:
            gate = self._golden = GoldenGate()
        return gate

    @property
    def golden(self) -> GoldenGate:
        return self._golden_gate()

    def _golden_key(self) -> tuple[tuple[str, ...] | None, tuple[Master, ...]]:
        """(key, masters) of the cycle of the selected recipe; (None, ()) while it is not loaded."""
        cycle = self.cycle
        if cycle is None or self._cycle_recipe != self.recipes[self.recipe_no]:
            return None, ()
        models = tuple(f"{role}={name}" for role, name in sorted(cycle.model_versions.items()))
        return (cycle.recipe.id, str(cycle.recipe.version), cycle.recipe.hash, *models), tuple(cycle.recipe.masters)

    def golden_block(self) -> str | None:
        """Why production parts are refused now (None: accepted)."""
        if not self.golden_enabled:
            return None
        key, masters = self._golden_key()
        return self._golden_gate().pending(key, masters)

    def start_shift(self) -> None:
        """A new shift: the masters must be checked again before production."""
        self._golden_gate().require("start of shift")

    def run_golden_check(self, names: Sequence[str] | None = None, *, who: tuple[str, str] = ("station", "system")) -> bool:
        """Inspect the recipe's masters (`names`: some of them; on a real station the one in the fixture)
        on a worker thread: READY/DONE only, BUSY meanwhile, then READY (or FAULT as a part would)."""
        with self._lock:
            if self._state not in (StationState.READY, StationState.DONE) or self._closed:
                return self._refuse("golden check")
            self.last_result = None
            self._set_state(StationState.BUSY, reason="golden check")
        self._spawn("golden", lambda: self._golden_run(names, who))
        return True

    def _golden_run(self, names: Sequence[str] | None, who: tuple[str, str]) -> None:
        event = None
        try:
            with self._work:
                if self.cycle is None or self._cycle_recipe != self.recipes[self.recipe_no]:
                    if not self._load_cycle(self.recipes[self.recipe_no], ready=False):
                        return
                cycle = self.cycle
                masters = [m for m in cycle.recipe.masters if names is None or m.name in names]
                # defective masters first: their fine shots show the fine camera in focus, which a good
                # part's shots may not (a cycle lets no part PASS before focus was verified)
                masters.sort(key=lambda m: m.expect == "PASS")
                key, _ = self._golden_key()
                results = []
                for master in masters:
                    if self.sim and self.cell is not None:
                        self.cell.load_part(master_part(master))
                    part_id = f"{GOLDEN_PART_PREFIX}{master.name}-{time.strftime('%Y%m%d-%H%M%S')}"
                    row, record = cycle.inspect(part_id, master.serial)
                    called = [d.defect_class for d in record.defects if d.decision == "defect"]
                    results.append(judge_master(master, record.verdict, record.reason, called, row))
                    log.info("golden check: %s", results[-1].line())
                if names is not None and len(masters) < len(cycle.recipe.masters):  # one master at a time
                    done = {r.master: r for r in self._golden_gate().results}
                    done.update({r.master: r for r in results})
                    results = [done[m.name] for m in cycle.recipe.masters if m.name in done]
                event = self._golden_gate().settle(key, cycle.recipe.masters, results)  # type: ignore[arg-type]
                self._golden_audit(event, cycle.recipe, who)
        except Exception as exc:  # noqa: BLE001 - a defect of ours: production stays closed, with the reason
            log.exception("golden check")
            self._golden_gate().require(f"the golden check did not finish: {type(exc).__name__}: {exc}")
            event = GoldenChecked(False, (), self._golden_gate().required or "")
        finally:
            if self._state == StationState.BUSY:
                self._set_state(StationState.READY)
            if event is not None:
                self._publish(event)

    def _golden_audit(self, event: GoldenChecked, recipe: Any, who: tuple[str, str]) -> None:
        """One audit row per check: who, the recipe, each master's expected and found result."""
        from .access import ACCESS_SCHEMA
        from .audit_log import append_row

        self.store.create_tables(ACCESS_SCHEMA)
        new = {"passed": event.passed, "recipe_version": recipe.version, "recipe_hash": recipe.hash,
               "masters": [{"name": r.master, "serial": r.serial, "expect": r.expect, "verdict": r.verdict,
                            "called": list(r.called), "ok": r.ok, "row": r.row} for r in event.results]}
        with self.store.transaction() as execute:
            append_row(execute, self.store, time.time, who[0], who[1], AUDIT_ACTION, f"recipe:{recipe.id}", None, new,
                       event.reason)
