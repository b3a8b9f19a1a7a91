"""Cycle time per part on the reference recipe, on the virtual cell's machine dynamics.

Pass 1 (`record_lot`) inspects the lot with rendering cameras at a high speed factor and keeps the
frames. Pass 2 (`time_lot`) inspects the same parts again with the real cycle engine, drivers,
serial ports, models and store, at the stated speed factor (1 = real time, so wall seconds are
machine seconds), with cameras that replay the recorded frames after the exposure time.

Per part, from the record's `timings_s` (what the station itself measures):
- motion: waiting for each move (driver round trip + status polls included); beside it the motion
  the dynamics plan (trapezoids + settle) from the driver's own estimate;
- exposure: light commands over serial + the exposure time;
- detect: detector compute per part (it runs on a worker while the stage moves on);
  detect_wait: the part of it the cycle had to wait for — detection on the critical path;
- planning, classify: on the cycle's thread, so on the critical path;
- other: the rest of the cycle (events, lights off, bookkeeping).
Lower bound = motion + exposure; the ratio total / lower bound says what compute costs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hardware.sim.part import make_part

from ..demo import truth_verdict
from ..inference.classifier import Classifier
from ..inference.detector import Detector
from ..recipe import Recipe
from .cell import bench_cell
from .frames import FrameTape
from .stats import summary

STAGES = ("motion", "exposure", "detect", "detect_wait", "planning", "classify", "total")
RECORD_SPEED_FACTOR = 50.0


@dataclass
class CycleResult:
    speed_factor: float
    parts: list[dict] = field(default_factory=list)  # one row per part
    replay_misses: int = 0
    replayed: int = 0

    def figures(self) -> dict:
        rows = self.parts
        out: dict = {"parts": len(rows), "speed_factor": self.speed_factor, "replayed_frames": self.replayed,
                     "replay_misses": self.replay_misses, "stages": {}}
        for key in STAGES + ("critical_compute", "other", "lower_bound", "motion_planned", "ratio", "fine_shots",
                             "compute", "critical_share", "view_move_min"):
            out["stages"][key] = summary(r[key] for r in rows)
        n = len(rows)
        if n:
            compute = sum(r["compute"] for r in rows)
            critical = sum(r["critical_compute"] for r in rows)
            out["critical_share_overall"] = critical / compute if compute > 0 else 0.0
            out["ratio_of_means"] = (sum(r["total"] for r in rows) / sum(r["lower_bound"] for r in rows)
                                     if sum(r["lower_bound"] for r in rows) > 0 else None)
            out["verdicts"] = {v: sum(r["verdict"] == v for r in rows) for v in ("PASS", "FAIL", "ERROR")}
        return out


def record_lot(recipe: Recipe, detector: Detector, classifier: Classifier, seeds: list[int], work: Path,
               log: Callable[[str], None] = print) -> tuple[FrameTape, dict[str, str]]:
    """Pass 1: inspect with rendering cameras; returns the tape and each part's verdict."""
    tape, verdicts = FrameTape(), {}
    with bench_cell(recipe, detector, classifier, work / "record.db", speed_factor=RECORD_SPEED_FACTOR,
                    tape=tape, mode="record") as bench:
        for n, seed in enumerate(seeds):
            part = bench.cell.load_part(make_part(seed))
            assert part is not None
            tape.seeds[part.serial] = seed
            bench.start_part(part.serial)
            _, record = bench.cycle.inspect(part.serial, part.serial)
            verdicts[part.serial] = record.verdict
            if (n + 1) % max(1, len(seeds) // 5) == 0 or n + 1 == len(seeds):
                log(f"  cycle: rendered {n + 1}/{len(seeds)} parts")
    return tape, verdicts


def time_lot(recipe: Recipe, detector: Detector, classifier: Classifier, tape: FrameTape, work: Path, *,
             speed_factor: float = 1.0, log: Callable[[str], None] = print) -> CycleResult:
    """Pass 2: the timed cycle on replayed frames."""
    result = CycleResult(speed_factor)
    keys = list(tape.parts)
    with bench_cell(recipe, detector, classifier, work / "cycle.db", speed_factor=speed_factor,
                    tape=tape, mode="replay") as bench:
        for n, key in enumerate(keys):
            part = bench.cell.load_part(make_part(tape.seeds[key]))
            assert part is not None
            bench.start_part(key)
            _, record = bench.cycle.inspect(part.serial, part.serial)
            t = {s: float(record.timings_s.get(s, 0.0)) for s in STAGES}
            moves = bench.ledger.take()  # planned machine seconds per move: the views first, then the fine shots
            view_moves = moves[1:len(recipe.views)]  # view to view (the first move comes from the last part's end)
            critical = t["detect_wait"] + t["planning"] + t["classify"]
            compute = t["detect"] + t["planning"] + t["classify"]
            lower = t["motion"] + t["exposure"]
            result.parts.append(dict(t, serial=part.serial, verdict=record.verdict, truth=truth_verdict(part, recipe),
                                     fine_shots=len(tape.frames(key, "fine")),
                                     critical_compute=critical, compute=compute,
                                     critical_share=critical / compute if compute > 0 else 0.0,
                                     other=max(0.0, t["total"] - lower - critical), lower_bound=lower,
                                     ratio=t["total"] / lower if lower > 0 else 0.0,
                                     motion_planned=sum(moves) / speed_factor,
                                     view_move_min=min(view_moves) if view_moves else 0.0))
            if (n + 1) % max(1, len(keys) // 5) == 0 or n + 1 == len(keys):
                log(f"  cycle: timed {n + 1}/{len(keys)} parts")
        result.replayed = sum(c.replayed for c in bench.cameras.values())
        result.replay_misses = sum(c.misses for c in bench.cameras.values())
    return result
