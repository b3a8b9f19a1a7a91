"""Ordering the stage's path: faces, then each face's fine shots, by machine time.

The cycle visits each face once: its coarse view, then that face's fine shots, then the next face.
What to image is decided elsewhere (`planner.plan_fine_shots`: the same shots whatever the order);
these pure functions only choose the order, timed by a move-cost function (machine seconds from one
pose to another, e.g. `hardware.sim.dynamics.move_time_s` with the controller's limits).

- `order_views`: the face order, before anything is detected: the open path from where the stage
  stands through every coarse view, exact over the permutations (5 views: 120 orders).
- `order_shots`: a face's shots from its coarse view to the next face's view (or a free end), exact
  (Held–Karp) up to `EXACT_SHOTS` shots, nearest neighbour + 2-opt beyond.
- `best_plan`: with every face's shots known in hindsight, the best face order and shot order the
  planner can find — the figure the live per-face plan is compared with (it cannot know the later
  faces' shots when it chooses the face order).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Hashable, Sequence, TypeVar

from hardware.pose import StagePose

MoveCost = Callable[[StagePose, StagePose], float]
T = TypeVar("T")
EXACT_SHOTS = 9  # Held–Karp up to here (9 shots: 9·2⁹·9 ≈ 41k steps); nearest neighbour + 2-opt beyond
EXACT_VIEWS = 7  # permutations of the views up to here (7! = 5040)


def path_cost(poses: Sequence[StagePose], cost: MoveCost) -> float:
    """Machine seconds through `poses` in order (poses[0] is where the stage stands)."""
    return sum(cost(a, b) for a, b in zip(poses, poses[1:]))


def order_views(start: StagePose, views: Sequence[T], pose_of: Callable[[T], StagePose], cost: MoveCost) -> list[T]:
    """The views in the order of the shortest open path from `start` (ties: the given order)."""
    views = list(views)
    if len(views) <= 1:
        return views
    poses = [pose_of(v) for v in views]
    if len(views) > EXACT_VIEWS:
        order = _order_points(start, poses, None, cost)
        return [views[i] for i in order]
    first = [cost(start, p) for p in poses]
    pair = [[cost(a, b) for b in poses] for a in poses]
    best, best_order = math.inf, tuple(range(len(views)))
    for order in itertools.permutations(range(len(views))):
        total = first[order[0]] + sum(pair[a][b] for a, b in zip(order, order[1:]))
        if total < best - 1e-12:
            best, best_order = total, order
    return [views[i] for i in best_order]


def order_shots(start: StagePose, shots: Sequence[T], pose_of: Callable[[T], StagePose], cost: MoveCost,
                end: StagePose | None = None) -> list[T]:
    """`shots` in the order of the shortest path from `start` through all of them to `end` (None:
    ends at the last shot). Exact up to EXACT_SHOTS shots."""
    shots = list(shots)
    if len(shots) <= 1:
        return shots
    return [shots[i] for i in _order_points(start, [pose_of(s) for s in shots], end, cost)]


def _order_points(start: StagePose, poses: list[StagePose], end: StagePose | None, cost: MoveCost) -> list[int]:
    n = len(poses)
    first = [cost(start, p) for p in poses]
    pair = [[cost(a, b) if i != j else 0.0 for j, b in enumerate(poses)] for i, a in enumerate(poses)]
    last = [cost(p, end) if end is not None else 0.0 for p in poses]
    if n <= EXACT_SHOTS:
        return _held_karp(first, pair, last)
    return _two_opt(_nearest_neighbour(first, pair), first, pair, last)


def _held_karp(first: list[float], pair: list[list[float]], last: list[float]) -> list[int]:
    n = len(first)
    full = (1 << n) - 1
    best: dict[tuple[int, int], tuple[float, int]] = {(1 << i, i): (first[i], -1) for i in range(n)}
    for size in range(2, n + 1):
        for subset in itertools.combinations(range(n), size):
            mask = sum(1 << i for i in subset)
            for j in subset:
                prev_mask = mask & ~(1 << j)
                best[(mask, j)] = min(((best[(prev_mask, i)][0] + pair[i][j], i) for i in subset if i != j),
                                      key=lambda t: t[0])
    end = min(range(n), key=lambda j: best[(full, j)][0] + last[j])
    order, mask, j = [], full, end
    while j != -1:
        order.append(j)
        _, i = best[(mask, j)]
        mask &= ~(1 << j)
        j = i
    return order[::-1]


def _nearest_neighbour(first: list[float], pair: list[list[float]]) -> list[int]:
    left = set(range(len(first)))
    here = min(left, key=lambda j: first[j])
    order = [here]
    left.remove(here)
    while left:
        here = min(left, key=lambda j: pair[here][j])
        order.append(here)
        left.remove(here)
    return order


def _two_opt(order: list[int], first: list[float], pair: list[list[float]], last: list[float]) -> list[int]:
    def total(o: list[int]) -> float:
        return first[o[0]] + sum(pair[a][b] for a, b in zip(o, o[1:])) + last[o[-1]]

    best, improved = total(order), True
    while improved:
        improved = False
        for i in range(len(order) - 1):
            for k in range(i + 1, len(order)):
                candidate = order[:i] + order[i:k + 1][::-1] + order[k + 1:]
                value = total(candidate)
                if value < best - 1e-12:
                    order, best, improved = candidate, value, True
    return order


@dataclass(frozen=True)
class PlannedPath:
    """An ordered visit: per face its view, then its shots; `poses` from the start, and its machine time."""
    faces: tuple[Hashable, ...]
    shots: tuple[tuple, ...]  # per face, its shots in order
    poses: tuple[StagePose, ...]  # start, then every pose moved to
    motion_s: float


def best_plan(start: StagePose, views: Sequence[T], view_pose: Callable[[T], StagePose], shots_by_view: Sequence[Sequence],
              shot_pose: Callable[[object], StagePose], cost: MoveCost) -> PlannedPath:
    """The shortest path the planner can find through every view and, after each, that view's shots
    (`shots_by_view[i]` belongs to `views[i]`): exact over the view orders (each face's shots ordered
    exactly for each possible next view, then the best order of views), knowing every shot in advance."""
    views = list(views)
    n = len(views)
    vposes = [view_pose(v) for v in views]
    memo: dict[tuple[int, int], tuple[list, float]] = {}

    def leg(i: int, nxt: int) -> tuple[list, float]:  # view i's shots then on to view nxt (-1: stop there)
        key = (i, nxt)
        if key not in memo:
            end = vposes[nxt] if nxt >= 0 else None
            ordered = order_shots(vposes[i], shots_by_view[i], shot_pose, cost, end)
            poses = [vposes[i], *map(shot_pose, ordered)] + ([end] if end is not None else [])
            memo[key] = (ordered, path_cost(poses, cost))
        return memo[key]

    orders = itertools.permutations(range(n)) if n <= EXACT_VIEWS else [tuple(range(n))]
    best, best_order = math.inf, tuple(range(n))
    for order in orders:
        total = cost(start, vposes[order[0]]) + sum(leg(a, b)[1] for a, b in zip(order, order[1:])) + leg(order[-1], -1)[1]
        if total < best - 1e-12:
            best, best_order = total, order
    shots, poses = [], [start]
    for k, i in enumerate(best_order):
        ordered = leg(i, best_order[k + 1] if k + 1 < n else -1)[0]
        shots.append(tuple(ordered))
        poses.extend([vposes[i], *map(shot_pose, ordered)])
    return PlannedPath(tuple(best_order), tuple(shots), tuple(poses), path_cost(poses, cost))
