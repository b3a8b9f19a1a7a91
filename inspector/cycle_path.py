"""What the per-face cycle needs beside the cycle itself: the machine-time cost of a move, fine shots
judged behind the next move (results taken in shot order, failures re-raised on the cycle's thread),
and the record order of the shots taken.

The record names and orders fine shots as `TwoStage.plan` does for the whole part (so an archive
replays to the same decisions and the same image names, whatever order the stage visited them in):
`record_order` maps the shots as taken to that order, and a shot the whole-part plan asks for that
was not taken ends the part (IncompleteInspection), as one more fail-closed check.
"""
from __future__ import annotations

import time
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

from hardware.motion.base import AXES
from hardware.pose import StagePose
from hardware.sim.dynamics import DEFAULT_LIMITS, AxisLimits, Dynamics, move_time_s

from .path_plan import MoveCost
from .planner import FineShot
from .two_stage import IncompleteInspection, ShotDecisions


def machine_dynamics(motion: object) -> Dynamics:
    """The trapezoid model with the controller's own rates and accelerations where it reports them
    (grblHAL `$110`… `$124`), the model's defaults elsewhere. The settle time adds the same to every
    move, so it does not change an order."""
    settings = getattr(motion, "axis_settings", None) or {}
    limits = []
    for axis in AXES:
        default = DEFAULT_LIMITS[axis]
        got = settings.get(axis)
        if got is None or got.max_rate_per_min <= 0 or got.acceleration_per_s2 <= 0:
            limits.append(default)
        else:
            limits.append(AxisLimits(got.max_rate_per_min / 60.0, got.acceleration_per_s2, default.minimum, default.maximum))
    return Dynamics(tuple(limits))


def move_cost(dynamics: Dynamics) -> MoveCost:
    """Machine seconds of a rapid move between two poses under `dynamics` (memoised per pose pair)."""
    @lru_cache(maxsize=4096)
    def timed(a: tuple[float, ...], b: tuple[float, ...]) -> float:
        return move_time_s(a, b, dynamics)

    return lambda a, b: timed(a.as_tuple(), b.as_tuple())


@dataclass
class _Taken:
    visit: int
    shot: FineShot
    name: str  # the frame's name in visit order (until `record_order` renames it)
    frame: np.ndarray
    future: Future
    decisions: ShotDecisions | None = None
    worker_s: float = 0.0  # the worker's time on it (checks + classifier)


class ShotQueue:
    """Fine shots judged on a worker while the stage moves on. `judge(name, frame, shot)` runs on the
    worker and returns (focus verified, decisions, exception or None, seconds); `taken(...)` runs on the cycle's
    thread for each shot in the order taken, and a failure is re-raised there, at the latest by `finish`."""

    def __init__(self, pool: Executor, judge: Callable, taken: Callable[[_Taken, bool, Exception | None], None]):
        self.pool, self.judge, self.taken = pool, judge, taken
        self.shots: list[_Taken] = []
        self._next = 0  # first shot whose result has not been taken

    def submit(self, shot: FineShot, name: str, frame: np.ndarray) -> None:
        future = self.pool.submit(self.judge, name, frame, shot)
        self.shots.append(_Taken(len(self.shots), shot, name, frame, future))

    def collect(self, wait: bool = False) -> float:
        """Take the results that are ready (all of them with `wait`), in shot order; returns the
        seconds spent waiting for them."""
        waited = 0.0
        while self._next < len(self.shots):
            item = self.shots[self._next]
            if not wait and not item.future.done():
                break
            t = time.perf_counter()
            try:
                focused, decisions, error, item.worker_s = item.future.result()
            except Exception as exc:  # noqa: BLE001 - the frame's checks failed: re-raised below, in shot order
                focused, decisions, error = False, None, exc
            waited += time.perf_counter() - t
            self._next += 1
            item.decisions = decisions
            self.taken(item, focused, error)
            if error is not None:
                raise error
        return waited

    def abandon(self) -> None:
        """After a fault: let the worker finish this part's shots (their results are not used)."""
        for item in self.shots[self._next:]:
            try:
                item.future.result()
            except Exception:  # noqa: BLE001 - the part already ends in ERROR with the first fault
                pass


def record_order(planned: Sequence[FineShot], taken: Sequence[_Taken]) -> list[tuple[int, _Taken]]:
    """(index in the whole-part plan, shot taken) for every planned shot. Raises IncompleteInspection
    when a planned shot was not taken (or one was taken that the plan does not hold)."""
    left = list(taken)
    out = []
    for index, shot in enumerate(planned):
        match = next((t for t in left if t.shot == shot), None)
        if match is None:
            raise IncompleteInspection(f"fine shot {index} on {shot.face} at ({shot.u_mm:.2f}, {shot.v_mm:.2f}) mm "
                                       "was planned for the part but not taken: part not fully inspected")
        left.remove(match)
        out.append((index, match))
    if left:
        extra = left[0].shot
        raise IncompleteInspection(f"a fine shot on {extra.face} at ({extra.u_mm:.2f}, {extra.v_mm:.2f}) mm was taken "
                                   "that the part's plan does not hold: part not inspected as planned")
    return out


def pose_of(item: object) -> StagePose:
    return item.pose  # type: ignore[attr-defined]
