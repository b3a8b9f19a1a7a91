"""Ordering the stage's path (inspector.path_plan) on hand-made candidate sets: each face once, its shots
in the shortest path by the machine model, the same shots as the whole-part plan in any order."""
import itertools

import pytest

from hardware.pose import StagePose
from hardware.sim.cell import station_config_dict
from hardware.sim.dynamics import Dynamics
from inspector.cycle_path import _Taken, move_cost, pose_of, record_order
from inspector.demo import REFERENCE_RECIPE
from inspector.path_plan import best_plan, order_shots, order_views, path_cost
from inspector.planner import Candidate, plan_fine_shots
from inspector.recipe import Recipe
from inspector.station_config import StationConfig
from inspector.two_stage import IncompleteInspection

STATION = StationConfig.from_dict(station_config_dict("none", "none"))
RECIPE = Recipe.load(REFERENCE_RECIPE)
COST = move_cost(Dynamics())


def cand(face, u, v, score=0.5):
    view = next(v.name for v in RECIPE.views if v.face == face)
    return Candidate(view, face, "dent", score, (0, 0, 4, 4), u, v, 0.2)


def brute_force(start, poses, end=None):
    best = min(itertools.permutations(range(len(poses))),
               key=lambda o: path_cost([start, *(poses[i] for i in o)] + ([end] if end else []), COST))
    return path_cost([start, *(poses[i] for i in best)] + ([end] if end else []), COST)


def test_shots_on_a_face_take_the_shortest_path_to_the_next_face():
    top, north = RECIPE.views[0], RECIPE.views[1]
    shots = plan_fine_shots([cand("top", u, v) for u, v in [(15, 10), (-15, -10), (14, -11), (-16, 9), (0, 0), (5, 12)]],
                            RECIPE, STATION)
    ordered = order_shots(top.pose, shots, pose_of, COST, north.pose)
    assert sorted(map(id, ordered)) == sorted(map(id, shots))
    cost = path_cost([top.pose, *(s.pose for s in ordered), north.pose], COST)
    assert cost == pytest.approx(brute_force(top.pose, [s.pose for s in shots], north.pose))
    nearest_first = path_cost([top.pose, *(s.pose for s in shots), north.pose], COST)  # plan_fine_shots' own order
    assert cost <= nearest_first + 1e-9


def test_many_shots_fall_back_to_two_opt_and_keep_every_shot():
    top = RECIPE.views[0]
    points = [(u, v) for u in (-16, -8, 0, 8, 16) for v in (-10, 0, 10)]  # 15 shots: beyond the exact limit
    shots = plan_fine_shots([cand("top", u, v) for u, v in points], RECIPE, STATION)
    ordered = order_shots(top.pose, shots, pose_of, COST)
    assert len(ordered) == len(shots) == 15 and set(map(id, ordered)) == set(map(id, shots))
    assert path_cost([top.pose, *(s.pose for s in ordered)], COST) <= path_cost([top.pose, *(s.pose for s in shots)], COST)


def test_view_order_is_the_shortest_open_path_from_where_the_stage_stands():
    start = StagePose(0, 0, 0, 0, 0)
    views = order_views(start, RECIPE.views, lambda v: v.pose, COST)
    assert sorted(v.name for v in views) == sorted(v.name for v in RECIPE.views)
    cost = path_cost([start, *(v.pose for v in views)], COST)
    assert cost == pytest.approx(brute_force(start, [v.pose for v in RECIPE.views]))
    assert cost <= path_cost([start, *(v.pose for v in RECIPE.views)], COST) + 1e-9
    # standing at the west view, the west face comes first
    west = next(v for v in RECIPE.views if v.face == "west")
    assert order_views(west.pose, RECIPE.views, lambda v: v.pose, COST)[0] is west


def test_best_plan_visits_each_face_once_and_beats_any_fixed_face_order():
    candidates = [cand("top", 10, 5), cand("top", -12, 3), cand("north", 4, 1), cand("west", -8, 2), cand("west", 9, -2)]
    by_face = {v.face: plan_fine_shots([c for c in candidates if c.face == v.face], RECIPE, STATION) for v in RECIPE.views}
    start = StagePose(0, 0, 0, 0, 0)
    best = best_plan(start, RECIPE.views, lambda v: v.pose, [by_face[v.face] for v in RECIPE.views], pose_of, COST)
    assert sorted(best.faces) == list(range(len(RECIPE.views)))
    assert sum(len(s) for s in best.shots) == 5
    assert best.motion_s == pytest.approx(path_cost(best.poses, COST))
    for order in itertools.permutations(RECIPE.views):  # any face order with its shots in the given order
        poses = [start] + [p for v in order for p in (v.pose, *(s.pose for s in by_face[v.face]))]
        assert best.motion_s <= path_cost(poses, COST) + 1e-9
    # the coarse pass then every face again (the plan before this change) costs more
    two_visits = [start, *(v.pose for v in RECIPE.views), *(s.pose for s in plan_fine_shots(candidates, RECIPE, STATION))]
    assert best.motion_s < path_cost(two_visits, COST)


def test_per_face_plans_are_the_whole_part_plan():
    """What the cycle images face by face is exactly what the whole-part plan holds (merging never spans faces)."""
    candidates = [cand("top", 0, 0, 0.9), cand("top", 0.6, 0.2, 0.8), cand("top", 12, 3, 0.7), cand("north", 0.3, 0, 0.95),
                  cand("north", 0, 0.4, 0.6), cand("south", -5, 1, 0.5)]
    whole = plan_fine_shots(candidates, RECIPE, STATION)
    per_face = [s for v in RECIPE.views for s in plan_fine_shots([c for c in candidates if c.face == v.face], RECIPE, STATION)]
    assert sorted(whole, key=repr) == sorted(per_face, key=repr)
    taken = [_Taken(i, s, f"fine_{i:02d}", None, None) for i, s in enumerate(reversed(per_face))]
    ordered = record_order(whole, taken)
    assert [item.shot for _, item in ordered] == whole and [i for i, _ in ordered] == list(range(len(whole)))


def test_a_planned_shot_not_taken_is_an_incomplete_inspection():
    whole = plan_fine_shots([cand("top", 0, 0), cand("top", 10, 0)], RECIPE, STATION)
    with pytest.raises(IncompleteInspection, match="not taken"):
        record_order(whole, [_Taken(0, whole[0], "fine_00", None, None)])
    with pytest.raises(IncompleteInspection, match="does not hold"):
        record_order(whole[:1], [_Taken(0, s, "x", None, None) for s in whole])
