"""Cycle time per part on the reference recipe, on the virtual cell's machine dynamics.

Pass 1 (`record_lot`) inspects the lot with rendering cameras at a high speed factor and keeps the
frames. Pass 2 (`time_lot`) inspects the same parts again with the real cycle engine, drivers,
serial ports, models and store, at the stated speed factor (1 = real time, so wall seconds are
machine seconds), with cameras that replay the recorded frames after the exposure time.

Per part, measured (the record's `timings_s`, wall seconds):
- motion: waiting for each move (driver round trip + status polls included);
- exposure: light commands over serial + the exposure time;
- detect: detector compute per part (it runs on a worker while the stage moves on);
  detect_wait: the part of it the cycle had to wait for — detection on the critical path;
- planning: on the cycle's thread, so on the critical path;
- classify: fine-shot classification compute (on the worker, behind the next move); classify_wait:
  the part of it the cycle had to wait for;
- other: the rest of the cycle (events, lights off, bookkeeping).

Per part, from the machine model alone (machine seconds; never from a measured time):
- bound_plan: the poses the cycle commanded (start pose, coarse views, fine shots), each move timed
  by `hardware.sim.dynamics.plan_time_s`, plus the recipe's exposure per shot × light-program steps;
- bound_coarse: the same for the coarse pass alone (start → every view, in the shortest order) — a
  detector that proposes nothing would cost this;
- bound_best: the best plan the planner finds for the same fine shots knowing them all in advance
  (`inspector.path_plan.best_plan`: each face once, face order and shot order by the machine model);
- motion_overhead (wall seconds): measured motion minus the dynamics time of the same moves.
The ratio cycle / bound_plan says what compute, serial traffic and bookkeeping cost.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hardware.lights.base import LightProgram
from hardware.pose import StagePose
from hardware.sim.dynamics import Dynamics, move_time_s, plan_time_s
from hardware.sim.part import make_part

from ..demo import truth_verdict
from ..inference.classifier import Classifier
from ..path_plan import best_plan, order_views
from ..inference.detector import Detector
from ..recipe import Recipe
from .cell import bench_cell
from .frames import FrameTape, pose_tuple, same_pose
from .machine import dynamics_figures
from .stats import summary

STAGES = ("motion", "exposure", "detect", "detect_wait", "planning", "classify", "classify_wait", "total")
MODEL = ("bound_plan", "bound_coarse", "bound_best", "plan_motion", "plan_exposure", "coarse_motion", "coarse_exposure",
         "best_motion", "fine_cost", "view_move_min")  # machine seconds, from the machine model
DERIVED = ("motion_overhead", "ratio", "critical_compute", "compute", "critical_share", "other", "fine_shots")
RECORD_SPEED_FACTOR = 50.0


def plan_bounds(recipe: Recipe, start, poses, dynamics: Dynamics) -> dict[str, float]:
    """Machine-model figures of one part (machine seconds): `start` is where the stage stood, `poses`
    the poses the cycle moved to, in order — a pose that is a view's is that view's coarse shot, any
    other a fine shot on the face of the view with the same A/B. Pure: the same poses and machine model
    give the same figures whatever the run's speed factor or load."""
    steps = {name: len(LightProgram.from_dict(name, data).steps) for name, data in recipe.light_programs.items()}
    fine_shot_s = recipe.reimaging.exposure_us * steps[recipe.reimaging.light_program] / 1e6
    views = [v.pose.as_tuple() for v in recipe.views]
    shot_s = {pose: v.exposure_us * steps[v.light_program] / 1e6 for pose, v in zip(views, recipe.views)}
    start = pose_tuple(start)
    poses = [pose_tuple(p) for p in poses]
    fine = [p for p in poses if not any(same_pose(p, v) for v in views)]
    cost = lambda a, b: move_time_s(a.as_tuple(), b.as_tuple(), dynamics)  # noqa: E731
    as_pose = lambda p: StagePose(*p)  # noqa: E731
    coarse_order = order_views(as_pose(start), [as_pose(v) for v in views], lambda p: p, cost)
    coarse_motion = plan_time_s([start, *(p.as_tuple() for p in coarse_order)], dynamics)
    coarse_exposure = sum(shot_s.values())
    plan_motion = plan_time_s([start, *poses], dynamics)
    plan_exposure = sum(s for v, s in shot_s.items() if any(same_pose(p, v) for p in poses)) + len(fine) * fine_shot_s
    by_view = [[as_pose(p) for p in fine if same_pose(p[3:], v[3:])] for v in views]
    best = best_plan(as_pose(start), [as_pose(v) for v in views], lambda p: p, by_view, lambda p: p, cost)
    best_exposure = coarse_exposure + sum(map(len, by_view)) * fine_shot_s
    view_moves = [move_time_s(a, b, dynamics) for a, b in zip(views, views[1:])]
    bound_plan, bound_coarse = plan_motion + plan_exposure, coarse_motion + coarse_exposure
    return {"bound_plan": bound_plan, "bound_coarse": bound_coarse, "bound_best": best.motion_s + best_exposure,
            "plan_motion": plan_motion, "plan_exposure": plan_exposure, "coarse_motion": coarse_motion,
            "coarse_exposure": coarse_exposure, "best_motion": best.motion_s,
            "fine_cost": bound_plan - bound_coarse, "view_move_min": min(view_moves) if view_moves else 0.0}


@dataclass
class CycleResult:
    speed_factor: float
    parts: list[dict] = field(default_factory=list)  # one row per part
    replay_misses: int = 0
    replayed: int = 0
    dynamics: dict = field(default_factory=dict)

    def figures(self) -> dict:
        rows = self.parts
        out: dict = {"parts": len(rows), "speed_factor": self.speed_factor, "replayed_frames": self.replayed,
                     "replay_misses": self.replay_misses, "dynamics": self.dynamics, "stages": {}}
        for key in STAGES + MODEL + DERIVED:
            out["stages"][key] = summary(r[key] for r in rows)
        n = len(rows)
        if n:
            compute = sum(r["compute"] for r in rows)
            critical = sum(r["critical_compute"] for r in rows)
            out["critical_share_overall"] = critical / compute if compute > 0 else 0.0
            bound_wall = sum(r["bound_plan"] for r in rows) / self.speed_factor
            out["ratio_of_means"] = sum(r["total"] for r in rows) / bound_wall if bound_wall > 0 else None
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
    """Pass 2: the timed cycle on replayed frames, each part beside its machine-model bounds."""
    result = CycleResult(speed_factor)
    keys = list(tape.parts)
    with bench_cell(recipe, detector, classifier, work / "cycle.db", speed_factor=speed_factor,
                    tape=tape, mode="replay") as bench:
        dynamics = Dynamics.of(bench.cell.motion.limits, bench.cell.motion.settle_s)
        result.dynamics = dynamics_figures(dynamics)
        start = tuple(bench.cell.motion.home_position)  # bench_cell homed the stage
        events: list[tuple[str, str, float, float]] = []
        bench.cycle.trace = lambda *event: events.append(event)  # list.append: safe from the worker thread too
        for n, key in enumerate(keys):
            part = bench.cell.load_part(make_part(tape.seeds[key]))
            assert part is not None
            bench.start_part(key)
            events.clear()
            began = time.perf_counter()
            _, record = bench.cycle.inspect(part.serial, part.serial)
            timeline = [[lane, label, round(t0 - began, 4), round(t1 - began, 4)] for lane, label, t0, t1 in events]
            t = {s: float(record.timings_s.get(s, 0.0)) for s in STAGES}
            moved = bench.poses.take()
            model = plan_bounds(recipe, start, moved, dynamics)
            # waits include handing results over: what compute the critical path holds is at most the compute
            critical = min(t["detect_wait"], t["detect"]) + t["planning"] + min(t["classify_wait"], t["classify"])
            compute = t["detect"] + t["planning"] + t["classify"]
            bound_wall = model["bound_plan"] / speed_factor
            result.parts.append(dict(t, **model, serial=part.serial, verdict=record.verdict,
                                     truth=truth_verdict(part, recipe), fine_shots=max(0, len(moved) - len(recipe.views)),
                                     critical_compute=critical, compute=compute,
                                     critical_share=critical / compute if compute > 0 else 0.0,
                                     other=max(0.0, t["total"] - t["motion"] - t["exposure"] - critical),
                                     motion_overhead=t["motion"] - model["plan_motion"] / speed_factor,
                                     ratio=t["total"] / bound_wall if bound_wall > 0 else 0.0,
                                     plan_poses=[list(start), *map(list, moved)], timeline=timeline))
            start = moved[-1] if moved else start
            if (n + 1) % max(1, len(keys) // 5) == 0 or n + 1 == len(keys):
                log(f"  cycle: timed {n + 1}/{len(keys)} parts")
        result.replayed = sum(c.replayed for c in bench.cameras.values())
        result.replay_misses = sum(c.misses for c in bench.cameras.values())
    return result
