"""Dimensions with tolerances: the virtual cell draws parts at their true dimensions, the gauge measures
them on the coarse frame to a few µm, the verdict fails a part out of tolerance with the value and
never passes one it could not measure; the recipe's features validate and round-trip."""
import copy
import json
from dataclasses import replace

import numpy as np
import pytest

from hardware.sim.geometry import COARSE_CAMERA, PART_DIMS_MM
from hardware.sim.part import HOLES, make_part, true_dimensions
from hardware.sim.render import render
from inspector.demo import REFERENCE_RECIPE, true_measurements, truth_verdict
from inspector.dimensions import Measurement, measure_frame
from inspector.gauge import PixelFrame
from inspector.recipe import Recipe
from inspector.schema import ConfigError
from inspector.verdict import Verdict, judge_dimensions

RECIPE = Recipe.load(REFERENCE_RECIPE)
COARSE_LIGHT = {"coaxial": 35.0, "low_angle": 100.0, "ring": 10.0}  # the reference recipe's coarse program
FRAME = PixelFrame(COARSE_CAMERA.mm_per_px, 0.0, COARSE_CAMERA.width_px, COARSE_CAMERA.height_px)


def top_frame(part) -> np.ndarray:
    top = next(v for v in RECIPE.views if v.name == "top")
    return render(part, top.pose, COARSE_LIGHT, COARSE_CAMERA, exposure_us=top.exposure_us, seed=part.seed).image


def measured(part) -> dict[str, Measurement]:
    return {m.feature: m for m in measure_frame(top_frame(part), "top", RECIPE.dimensions, FRAME)}


def test_parts_vary_by_seed_deterministically_and_keep_their_defects():
    dims, holes = true_dimensions(11)
    assert (dims, holes) == true_dimensions(11) and dims != true_dimensions(12)[0]
    assert dims != PART_DIMS_MM and all(abs(a - b) < 0.1 for a, b in zip(dims, PART_DIMS_MM))
    assert all(abs(h[2] - n[2]) < 0.05 for h, n in zip(holes, HOLES))
    nominal = make_part(11, nominal_dimensions=True)
    assert make_part(11).defects == nominal.defects and make_part(11).fixture_error == nominal.fixture_error
    assert nominal.dims_mm == PART_DIMS_MM and nominal.holes == HOLES


@pytest.mark.parametrize("seed", [3, 8, 21])
def test_gauge_measures_the_true_dimensions(seed):
    part = make_part(seed)
    truth = {m.feature: m.value_mm for m in true_measurements(part, RECIPE)}
    found = measured(part)
    assert set(found) == set(truth)
    for name, m in found.items():
        assert m.value_mm is not None, m.reason
        limit = 0.02 if "straightness" in name else 0.009  # µm-level agreement; straightness: noise of the fit
        assert abs(m.value_mm - truth[name]) < limit, (name, m.value_mm, truth[name])


def test_out_of_tolerance_fails_with_the_value_in_rules_and_truth():
    part = replace(make_part(5, defects=()), dims_mm=(40.08, 30.0, 8.0))
    found = measured(part)
    assert found["length"].value_mm == pytest.approx(40.08, abs=0.01) and found["length"].in_tolerance is False
    verdict = judge_dimensions(Verdict("PASS", "no defects"), list(found.values()), RECIPE)
    assert verdict.verdict == "FAIL" and "length 40.08" in verdict.reason and "40.000 ± 0.050" in verdict.reason
    assert truth_verdict(part, RECIPE) == "FAIL"
    assert truth_verdict(replace(part, dims_mm=PART_DIMS_MM, holes=HOLES), RECIPE) == "PASS"


def test_a_feature_not_measured_is_error_never_pass():
    dark = np.zeros((COARSE_CAMERA.height_px, COARSE_CAMERA.width_px), np.uint8)
    found = measure_frame(dark, "top", RECIPE.dimensions, FRAME)
    assert found and all(m.value_mm is None and "edge found at 0" in m.reason for m in found)
    verdict = judge_dimensions(Verdict("PASS", "no defects"), found, RECIPE)
    assert verdict.verdict == "ERROR" and "length not measured" in verdict.reason
    assert judge_dimensions(Verdict("PASS", "no defects"), [], RECIPE).verdict == "ERROR"  # none at all
    failed = Verdict("FAIL", "1 scratch", ("1 scratch",))
    assert judge_dimensions(failed, found, RECIPE) == failed  # a defect's FAIL stands


def test_a_hole_missing_from_the_part_is_not_measured():
    holes = make_part(5).holes[1:]  # hole a (at -15, -10) not drilled
    found = measured(replace(make_part(5, defects=()), holes=holes))
    assert found["hole_a_diameter"].value_mm is None and found["hole_a_to_b"].value_mm is None
    assert found["hole_b_diameter"].value_mm is not None and found["length"].value_mm is not None


def test_features_round_trip_and_bad_ones_are_named():
    again = Recipe.from_dict(RECIPE.to_dict())
    assert again.hash == RECIPE.hash and again.dimensions == RECIPE.dimensions and RECIPE.version >= 7
    data = json.loads(REFERENCE_RECIPE.read_text())
    cases = [(("features", "length", "kind"), "diameter", "dimensions.features.length.kind"),
             (("features", "length", "view"), "north", "dimensions.features.length.view"),
             (("features", "length", "tolerance_mm"), -0.1, "dimensions.features.length.tolerance_mm"),
             (("features", "hole_a_u", "at_mm"), [1.0], "dimensions.features.hole_a_u.at_mm"),
             (("datums", "nowhere"), [1.0, 2.0], "dimensions.datums.nowhere")]
    for path, value, field in cases:
        bad = copy.deepcopy(data)
        node = bad["dimensions"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        with pytest.raises(ConfigError) as err:
            Recipe.from_dict(bad, source="r.json")
        assert f"r.json: {field}" in str(err.value)
    del data["dimensions"]["features"]["hole_a_u"]["hole_diameter_mm"]
    with pytest.raises(ConfigError, match="hole_a_u.hole_diameter_mm: missing"):
        Recipe.from_dict(data, source="r.json")


def test_the_cycle_records_every_measured_value(tmp_path, recipe):
    from inspector.demo import run_sim_lot

    tally = run_sim_lot(1, first_seed=300_001, speed_factor=200, recipe_path=recipe, db=tmp_path / "r.db",
                        archive_dir=None, out=lambda line: None)
    record, truth = tally.rows[0]
    dims = record.extra["dimensions"]
    assert set(dims) == {f.name for f in RECIPE.dimensions.features}
    true = {m.feature: m.value_mm for m in true_measurements(make_part(300_001), RECIPE)}
    for name, entry in dims.items():
        assert entry["view"] == "top" and entry["in_tolerance"] is True
        assert abs(entry["value_mm"] - true[name]) < 0.02
    assert truth == "PASS" and "dimension" not in record.reason and "tolerance" not in record.reason
