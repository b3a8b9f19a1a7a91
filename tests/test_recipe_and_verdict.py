"""Recipes validate with precise errors; verdict rules count defects by class, size (mm) and zone."""
import copy
import json
from pathlib import Path

import pytest

from inspector.recipe import Recipe, diff
from inspector.schema import ConfigError
from inspector.verdict import Finding, decide, judge_scores

ROOT = Path(__file__).resolve().parents[1]

RECIPE = {
    "recipe": {"id": "housing", "version": 1, "description": "test", "fixture": "FX-1"},
    "light_programs": {"coarse": {"steps": [{"mode": "continuous", "levels": {"coaxial": 50}}]},
                       "fine": {"steps": [{"mode": "continuous", "levels": {"low_angle": 70}}]}},
    "views": [{"name": "top", "face": "top", "pose": {"x": 0, "y": 0, "z": 10}, "light_program": "coarse"},
              {"name": "north", "face": "north", "pose": {"x": 0, "y": 5, "z": 10, "a": -90},
               "light_program": "coarse", "exposure_us": 3000}],
    "models": {"detector": "det.onnx", "classifier": "cls.onnx"},
    "classes": {"scratch": {"detect_threshold": 0.2, "accept_threshold": 0.6, "grey_band": [0.4, 0.6]},
                "stain": {"detect_threshold": 0.2, "accept_threshold": 0.5, "grey_band": [0.3, 0.5]}},
    "reimaging": {"light_program": "fine", "merge_distance_mm": 0.8},
    "zones": {"sealing": {"face": "top", "rect_mm": [-10, -5, 10, 5]}},
    "rules": [{"class": "scratch", "min_size_mm": 0.1, "max_count": 0},
              {"class": "stain", "zone": "sealing", "min_size_mm": 0.3, "max_count": 0},
              {"class": "stain", "min_size_mm": 1.0, "max_count": 2}],
}


def recipe(**top_changes):
    data = copy.deepcopy(RECIPE)
    data.update(top_changes)
    return Recipe.from_dict(data, source="housing.json")


def test_loads_saves_and_hash_is_stable(tmp_path):
    r = recipe()
    assert r.views[1].pose.a == -90 and r.views[1].exposure_us == 3000 and r.reimaging.merge_distance_mm == 0.8
    path = tmp_path / "housing.json"
    from inspector.access import AccessControl, AccessDenied, Session
    from inspector.results.sqlite_store import ResultStore
    with ResultStore(tmp_path / "results.db") as store:
        access = AccessControl(store)
        access.add_user("ina", "integrator", "4711", by=access.system_session("commissioning"))
        with pytest.raises(AccessDenied, match="edit recipe refused"):
            r.save(path, Session("ina", "integrator"), access)  # a session is issued by a login, never built
        assert not path.exists()
        r.save(path, access.login("ina", "4711"), access)
        assert access.audit(target=f"recipe:{r.id}")[0].new["hash"] == r.hash
    again = Recipe.load(path)
    assert again == r and again.hash == r.hash
    assert again.model_path("detector") == tmp_path / "det.onnx"


def test_next_version_and_diff():
    r = recipe()
    newer = r.next_version(rules=r.rules[:1])
    assert newer.version == 2 and newer.hash != r.hash
    lines = diff(r, newer)
    assert "~ recipe.version: 1 → 2" in lines
    assert any(line.startswith("- rules") or "rules" in line for line in lines)


@pytest.mark.parametrize("path,value,field,expected", [
    (("views", 0, "face"), "bottom", "views[0].face", "expected one of 'top'"),
    (("views", 0, "light_program"), "nope", "views[0].light_program", "no light program 'nope'"),
    (("views", 1, "pose", "b"), 120, "views[1].pose.b", "≤ 90"),
    (("classes", "scratch", "grey_band"), [0.7, 0.2], "classes.scratch.grey_band", "low ≤ high"),
    (("rules", 1, "zone"), "edge", "rules[1].zone", "no zone 'edge'"),
    (("rules", 0, "class"), "crack", "rules[0].class", "expected one of"),
    (("zones", "sealing", "rect_mm"), [1, 1, 0, 2], "zones.sealing.rect_mm", "u0 < u1"),
    (("reimaging", "max_shots"), 0, "reimaging.max_shots", "≥ 1"),
])
def test_errors_name_file_field_and_expectation(path, value, field, expected):
    data = copy.deepcopy(RECIPE)
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ConfigError) as info:
        Recipe.from_dict(data, source="housing.json")
    assert str(info.value).startswith(f"housing.json: {field}:") and expected in str(info.value)


def test_duplicate_view_and_unknown_field():
    data = copy.deepcopy(RECIPE)
    data["views"][1]["name"] = "top"
    with pytest.raises(ConfigError, match=r"views\[1\].name: duplicate"):
        Recipe.from_dict(data, source="r.json")
    data = copy.deepcopy(RECIPE)
    data["reimaging"]["focus"] = 1
    with pytest.raises(ConfigError, match="reimaging.focus: unknown field"):
        Recipe.from_dict(data, source="r.json")


def finding(cls, size, u=0.0, v=0.0, face="top", decision="defect", score=0.9):
    return Finding(cls, score, decision, face, u, v, size)


@pytest.mark.parametrize("findings,verdict,reason_part", [
    ([], "PASS", "no defects"),
    ([finding("scratch", 0.05)], "PASS", "1 tolerated"),
    ([finding("scratch", 0.15)], "FAIL", "1 scratch ≥ 0.10 mm"),
    ([finding("stain", 0.4, u=2)], "FAIL", "in zone sealing"),
    ([finding("stain", 0.4, u=15)], "PASS", "tolerated"),  # outside the sealing zone, small
    ([finding("stain", 1.2, u=15)] * 3, "FAIL", "3 stain ≥ 1.00 mm"),
    ([finding("dent", 0.1)], "FAIL", "no rule tolerates"),
    ([finding("scratch", 0.3, decision="review", score=0.5)], "FAIL", "grey band"),
    ([finding("ok", 0.3, decision="ok", score=0.9)], "PASS", "no defects"),
])
def test_verdict_rules(findings, verdict, reason_part):
    result = decide(findings, recipe())
    assert result.verdict == verdict and reason_part in result.reason


def test_judge_scores_uses_thresholds_and_grey_band():
    classes = recipe().classes
    assert judge_scores({"ok": 0.3, "scratch": 0.7}, classes) == ("scratch", 0.7, "defect")
    assert judge_scores({"ok": 0.5, "scratch": 0.45}, classes) == ("scratch", 0.45, "review")
    assert judge_scores({"ok": 0.8, "scratch": 0.2}, classes)[2] == "ok"
    assert judge_scores({"ok": 0.1, "dent": 0.9}, classes)[2] == "ok"  # dent has no policy in this recipe


def test_pinned_model_is_checked_by_sha256(tmp_path):
    """A recipe pins each model by sha256: a swapped or tampered file is refused by name, before loading."""
    from inspector.recipe import file_sha256_hex

    model = tmp_path / "detector.onnx"
    model.write_bytes(b"model bytes v1")
    data = json.loads(json.dumps(RECIPE))
    data["models"]["detector"] = {"file": "detector.onnx", "sha256": file_sha256_hex(model)}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    recipe = Recipe.load(path)
    assert recipe.model_path("detector") == model and recipe.model_sha256("detector") == file_sha256_hex(model)
    assert Recipe.from_dict(recipe.to_dict(), source=str(path)).model_pins == recipe.model_pins  # survives a save
    model.write_bytes(b"model bytes v1 + one tampered byte")
    with pytest.raises(ConfigError, match=r"models\.detector\.sha256: .*detector\.onnx has sha256 .*refusing"):
        recipe.model_path("detector")
    data["models"]["detector"]["sha256"] = "abc"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"models\.detector\.sha256: expected 64 lowercase hex digits"):
        Recipe.load(path)


def test_reference_recipe_pins_the_shipped_models():
    recipe = Recipe.load(ROOT / "models" / "housing-40x30.recipe.json")
    for role in ("detector", "classifier"):
        assert recipe.model_sha256(role) is not None
        assert recipe.model_path(role).is_file()  # verified against its pin
