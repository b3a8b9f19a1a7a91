"""Fail closed on what the cameras saw: frames unlike the commissioned ones (dark, blown out,
defocused, part missing or shifted) and candidates not fully inside their fine frame end the part
as ERROR with the reason — learned limits from real renders of the virtual cell, real recipes."""
import dataclasses
import json

import numpy as np
import pytest

from hardware.sim.cell import station_config_dict
from hardware.sim.geometry import CAMERAS, StagePose
from hardware.sim.part import make_part
from hardware.sim.render import render
from inspector.commissioning import FrameSample, learn
from inspector.demo import REFERENCE_RECIPE
from inspector.planner import Candidate, FineShot, plan_fine_shots, uncovered_px
from inspector.plausibility import GENERIC, ImplausibleFrame, check_frame, frame_stats, learn_limits
from inspector.recipe import Recipe
from inspector.schema import ConfigError
from inspector.station_config import StationConfig

STATION = StationConfig.from_dict(station_config_dict("none", "none"))
RECIPE = Recipe.load(REFERENCE_RECIPE)
TOP = next(v for v in RECIPE.views if v.name == "top")
NORTH = next(v for v in RECIPE.views if v.name == "north")
MM_PER_PX = CAMERAS["coarse"].mm_per_px


def coarse(part, view=TOP, *, dz=0.0, gain=None, lights=None):
    levels = RECIPE.light_programs[view.light_program]["steps"][0]["levels"] if lights is None else lights
    pose = StagePose(view.pose.x, view.pose.y, view.pose.z + dz, view.pose.a, view.pose.b)
    return render(part, pose, levels, CAMERAS["coarse"], exposure_us=view.exposure_us,
                  gain=gain or view.gain, seed=part.seed).image


@pytest.fixture(scope="module")
def limits():
    stats = {view.name: [frame_stats(coarse(make_part(s), view), outline=True) for s in range(40, 48)]
             for view in (TOP, NORTH)}
    return {name: learn_limits(s, centre_tolerance_px=0.5 / MM_PER_PX) for name, s in stats.items()}


def reasons(image, limits):
    with pytest.raises(ImplausibleFrame) as exc:
        check_frame(image, limits, "coarse frame of view 'top'", mm_per_px=MM_PER_PX)
    return str(exc.value)


def test_good_frames_of_other_parts_pass(limits):
    for seed in (1, 2, 3, 300_000):
        for view in (TOP, NORTH):
            stats = check_frame(coarse(make_part(seed), view), limits[view.name], "x", mm_per_px=MM_PER_PX)
            assert stats.centre_px is not None


@pytest.mark.parametrize("case,expected", [
    ("dark", "too dark"), ("saturated", "saturated"), ("defocus", "out of focus"),
    ("shifted", "part shifted in the fixture (2.0"), ("missing", "too dark")])
def test_each_fault_is_named(limits, case, expected):
    part = make_part(5)
    image = {"dark": lambda: coarse(part, lights={}),
             "saturated": lambda: coarse(part, gain=8.0),
             "defocus": lambda: coarse(part, dz=2.0),
             "shifted": lambda: coarse(dataclasses.replace(part, fixture_error=(2.0, 0.0, 0.0))),
             "missing": lambda: coarse(dataclasses.replace(part, fixture_error=(300.0, 0.0, 0.0)))}[case]()
    message = reasons(image, limits["top"])
    assert message.startswith("implausible coarse frame of view 'top': ") and expected in message


def test_side_view_without_the_part_is_missing_or_dark(limits):
    part = dataclasses.replace(make_part(5), fixture_error=(300.0, 0.0, 0.0))
    message = reasons(coarse(part, NORTH), limits["north"])
    assert "part missing" in message or "too dark" in message


def test_generic_limits_apply_without_commissioning():
    for image, expected in ((np.zeros((600, 800), np.uint8), "too dark"), (np.full((600, 800), 255, np.uint8), "saturated"),
                            (np.full((600, 800), 120, np.uint8), "out of focus")):
        with pytest.raises(ImplausibleFrame, match=expected):
            check_frame(image, None, "image x.png")
    assert check_frame(coarse(make_part(3)), None, "image").p50 > GENERIC.p95[0]


def test_learning_needs_frames_of_every_view():
    sample = FrameSample(views={"top": [frame_stats(coarse(make_part(1)), outline=True)] * 6}, parts=6)
    with pytest.raises(ValueError, match="fewer than 5 good frames of view\\(s\\) north"):
        learn(RECIPE, sample, STATION, source="test")


def test_learned_limits_round_trip_through_the_recipe(limits):
    frames = [frame_stats(coarse(make_part(s), view), outline=True) for s in (40, 41, 42, 43, 44) for view in (TOP,)]
    sample = FrameSample(views={v.name: frames for v in RECIPE.views}, fine=[frame_stats(coarse(make_part(1)))] * 5, parts=5)
    new = learn(RECIPE, sample, STATION, source="test")
    assert new.version == RECIPE.version + 1 and new.plausibility.views["top"].frames == 5
    again = Recipe.from_dict(json.loads(json.dumps(new.to_dict())))
    assert again.plausibility == new.plausibility and again.hash == new.hash != RECIPE.hash


@pytest.mark.parametrize("change,field,problem", [
    ({"views": {"bottom": {}}}, "plausibility.views.bottom", "no view 'bottom'"),
    ({"views": {"top": {"p50": [150, 90]}}}, "plausibility.views.top.p50", "low ≤ high"),
    ({"fine": {"sharpnes_min": 1}}, "plausibility.fine.sharpnes_min", "unknown field"),
    ({"alarm_after": 0}, "plausibility.alarm_after", "expected ≥ 1"),
])
def test_bad_plausibility_section_is_named(change, field, problem):
    data = RECIPE.to_dict()
    data["plausibility"] = {**data["plausibility"], **change}
    with pytest.raises(ConfigError) as exc:
        Recipe.from_dict(data, source="r.json")
    assert exc.value.field == field and problem in exc.value.problem


# -- coverage -----------------------------------------------------------------------------------
def cand(u, v, box_px=4.0, score=0.5):
    return Candidate("top", "top", "scratch", score, (0.0, 0.0, box_px, box_px), u, v, box_px * MM_PER_PX)


def test_merge_distance_beyond_the_fine_field_is_refused(model_paths):
    from inspector.inference.classifier import Classifier
    from inspector.inference.detector import Detector
    from inspector.two_stage import TwoStage

    data = RECIPE.to_dict()
    data["reimaging"]["merge_distance_mm"] = 4.0  # the fine camera sees 8 x 6 mm: ≤ 2.8 mm with the margin
    recipe = Recipe.from_dict(data, source="r.json")
    with pytest.raises(ConfigError, match="reimaging.merge_distance_mm: 4.0 mm is more than .*≤ 2.80 mm"):
        TwoStage(recipe, STATION, Detector.open(str(model_paths[0])), Classifier.open(str(model_paths[1])))
    data["reimaging"]["merge_distance_mm"] = 6.0
    with pytest.raises(ConfigError, match="merge_distance_mm: expected ≤ 5.0"):
        Recipe.from_dict(data, source="r.json")


def test_a_member_whose_crop_leaves_the_frame_gets_its_own_shot():
    data = RECIPE.to_dict()
    data["reimaging"]["merge_distance_mm"] = 2.8
    recipe = Recipe.from_dict(data)
    side = lambda box: 1.5 * max(box[2] - box[0], box[3] - box[1])  # noqa: E731
    big = [cand(0.0, 0.0, 40.0, 0.9), cand(0.0, 2.7, 40.0, 0.8)]  # 2 mm long, 2.7 mm apart: 3 mm crops
    shots = plan_fine_shots(big, recipe, STATION, side)
    assert [len(s.candidates) for s in shots] == [1, 1]
    for shot in shots:
        assert all(uncovered_px(c, shot, STATION, 0.2, side) <= 0 for c in shot.candidates)
    small = plan_fine_shots([cand(0.0, 0.0), cand(0.0, 0.9)], recipe, STATION, side)
    assert [len(s.candidates) for s in small] == [2]


def test_a_candidate_outside_its_fine_frame_makes_the_part_incomplete(model_paths):
    from inspector.inference.classifier import Classifier
    from inspector.inference.detector import Detector
    from inspector.two_stage import IncompleteInspection, TwoStage

    stages = TwoStage(RECIPE, STATION, Detector.open(str(model_paths[0])), Classifier.open(str(model_paths[1])))
    shot = FineShot("top", 0.0, 0.0, TOP.pose, (cand(3.9, 0.0),))  # 3.9 mm off-axis: the frame ends at 4 mm
    with pytest.raises(IncompleteInspection, match=r"scratch at \(3.90, 0.00\) mm on top reaches \d+ px beyond"):
        stages.classify(shot, np.full((600, 800), 120, np.uint8))
