"""Planning: coarse px → face mm → fine pose agrees with the virtual cell's geometry; merging and
ordering of fine shots."""
import pytest

from hardware.sim.cell import station_config_dict
from hardware.sim.geometry import COARSE_CAMERA, FACES, FINE_CAMERA, face_point_pose, face_to_pixel, face_view_pose
from inspector.demo import REFERENCE_RECIPE
from inspector.planner import Candidate, face_mm_to_pixel, fine_box_px, fine_pose, merge_candidates, pixel_to_face_mm, plan_fine_shots
from inspector.recipe import Recipe
from inspector.station_config import StationConfig

STATION = StationConfig.from_dict(station_config_dict("none", "none"))
RECIPE = Recipe.load(REFERENCE_RECIPE)


@pytest.mark.parametrize("face", FACES)
def test_calibration_mapping_matches_the_cell(face):
    view = next(v for v in RECIPE.views if v.face == face)
    assert view.pose.__dict__ == face_view_pose(face, COARSE_CAMERA).__dict__
    px = face_to_pixel(COARSE_CAMERA, face_view_pose(face, COARSE_CAMERA), face, 3.2, -1.7)
    assert pixel_to_face_mm(STATION.cameras["coarse"], *px) == pytest.approx((3.2, -1.7))
    assert face_mm_to_pixel(STATION.cameras["coarse"], 3.2, -1.7) == pytest.approx(px)
    assert fine_pose(view, 3.2, -1.7, STATION) == face_point_pose(face, 3.2, -1.7, FINE_CAMERA)


def cand(face, u, v, score=0.5, view="top"):
    return Candidate(view, face, "dent", score, (0, 0, 4, 4), u, v, 0.2)


def test_merge_joins_close_candidates_on_one_face_only():
    groups = merge_candidates([cand("top", 0, 0, 0.9), cand("top", 0.5, 0, 0.4), cand("north", 0.2, 0),
                               cand("top", 5, 5)], distance_mm=1.0)
    assert sorted(len(g) for g in groups) == [1, 1, 2]
    chain = merge_candidates([cand("top", 0.9 * i, 0, 1 - i / 10) for i in range(5)], distance_mm=1.0)
    assert len(chain) >= 2  # no chaining of a row of specks into one shot


def test_shots_start_at_the_last_view_and_go_nearest_neighbour():
    shots = plan_fine_shots([cand("north", 0, 0), cand("top", 10, 0), cand("top", 1, 0), cand("top", 5, 0)],
                            RECIPE, STATION)
    assert [v.face for v in RECIPE.views][-1] == "west"
    assert [s.face for s in shots] == ["north", "top", "top", "top"]  # backwards through the views
    assert [s.u_mm for s in shots[1:]] == [1, 5, 10]


def test_fine_box_is_the_coarse_box_scaled_around_the_aim_point():
    c = Candidate("top", "top", "dent", 0.9, (100, 100, 104, 106), 2.0, 1.0, 0.3)
    shot = plan_fine_shots([c], RECIPE, STATION)[0]
    x0, y0, x1, y1 = fine_box_px(c, shot, STATION)
    assert (x1 - x0, y1 - y0) == pytest.approx((20, 30))
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((400, 300))
