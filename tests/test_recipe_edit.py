"""Recipe edits (validated, never mutating) and save_recipe (role, version, atomic write, backup, audit)."""
import json
from pathlib import Path

import pytest

from hardware.pose import StagePose
from inspector.access import AccessControl, AccessDenied, Session
from inspector.recipe import Recipe, diff
from inspector.recipe_edit import (NoChanges, RecipeConflict, RecipeEditError, add_rule, add_view, backup_path,
                                   face_for_pose, field_changes, remove_rule, remove_view, save_recipe,
                                   set_class_policy, set_rule, set_rules)
from inspector.results.sqlite_store import ResultStore
from tests.access_helpers import staff

REFERENCE = Path(__file__).resolve().parents[1] / "models" / "housing-40x30.recipe.json"
INTEGRATOR: Session = None  # logged in by the `access` fixture: sessions come only from a login
OPERATOR: Session = None


@pytest.fixture
def recipe_file(tmp_path):
    """The reference recipe as version 1 with a known stain policy (the tests follow it from there)."""
    data = json.loads(REFERENCE.read_text(encoding="utf-8"))
    data["recipe"]["version"] = 1
    data["classes"]["stain"].update(accept_threshold=0.861, grey_band=[0.603, 0.861])
    path = tmp_path / "housing.recipe.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


@pytest.fixture
def access(tmp_path):
    global INTEGRATOR, OPERATOR
    with ResultStore(tmp_path / "results.db") as store:
        control = AccessControl(store)
        users = staff(control, ("ina", "integrator", "4711"), ("otto", "operator", "1234"))
        INTEGRATOR, OPERATOR = users["ina"], users["otto"]
        yield control


def test_add_view_from_pose_infers_face_and_validates(recipe_file):
    recipe = Recipe.load(recipe_file)
    edited = add_view(recipe, "top-detail", StagePose(5.0, -3.0, 55.5, 0.0, 0.0), light_program="coarse",
                      exposure_us=2500, gain=1.5)
    assert recipe.views == Recipe.load(recipe_file).views  # the original is untouched
    view = edited.views[-1]
    assert (view.name, view.face, view.pose, view.exposure_us, view.gain) == \
        ("top-detail", "top", StagePose(5.0, -3.0, 55.5, 0.0, 0.0), 2500.0, 1.5)
    assert edited.version == recipe.version  # a draft: the version is bumped on save
    assert face_for_pose(StagePose(a=88.0)) == "north" and face_for_pose(StagePose(b=-91.0 + 2)) == "east"
    with pytest.raises(RecipeEditError, match=r"views\[5\]\.name: expected a name not used yet .* got 'top'"):
        add_view(recipe, "top", StagePose(), light_program="coarse")
    with pytest.raises(RecipeEditError, match=r"views\[5\]\.light_program: expected one of coarse, fine, "
                                              r"photometric_stereo, got 'uv'"):
        add_view(recipe, "x", StagePose(), light_program="uv")
    with pytest.raises(RecipeEditError, match=r"views\[5\]\.exposure_us: expected a positive number, got -1"):
        add_view(recipe, "x", StagePose(), light_program="coarse", exposure_us=-1)
    with pytest.raises(RecipeEditError, match=r"views\[5\]\.pose\.b: expected a number in \[-90, 90\], got 120"):
        add_view(recipe, "x", StagePose(b=120.0), light_program="coarse")
    assert [v.name for v in remove_view(edited, "top").views][-1] == "top-detail"


def test_thresholds_and_grey_band_are_checked_with_the_field_named(recipe_file):
    recipe = Recipe.load(recipe_file)
    edited = set_class_policy(recipe, "dent", detect_threshold=0.25, grey_band=(0.1, 0.3), accept_threshold=0.3)
    assert edited.classes["dent"].detect_threshold == 0.25 and edited.classes["dent"].grey_band == (0.1, 0.3)
    assert edited.classes["scratch"] == recipe.classes["scratch"]
    with pytest.raises(RecipeEditError, match=r"classes\.dent\.detect_threshold: expected a number in \[0, 1\], "
                                              r"got 1\.5"):
        set_class_policy(recipe, "dent", detect_threshold=1.5)
    with pytest.raises(RecipeEditError, match=r"classes\.dent\.grey_band: expected \[low, high\] with low ≤ high"):
        set_class_policy(recipe, "dent", grey_band=(0.4, 0.2))
    with pytest.raises(RecipeEditError, match=r"classes\.dent\.accept_threshold: expected a score ≥ the grey "
                                              r"band's low end 0\.14, got 0\.01"):
        set_class_policy(recipe, "dent", accept_threshold=0.01)
    with pytest.raises(RecipeEditError, match=r"classes: expected a class of this recipe \(scratch, dent, burr, stain\), got 'crack'"):
        set_class_policy(recipe, "crack", detect_threshold=0.2)
    with pytest.raises(RecipeEditError, match=r"detect_threshold: expected a number, got 'high'"):
        set_class_policy(recipe, "dent", detect_threshold="high")


def test_rules_edit_add_remove_and_replace(recipe_file):
    recipe = Recipe.load(recipe_file)
    edited = set_rule(recipe, 0, min_size_mm=0.3, max_count=1)
    assert (edited.rules[0].min_size_mm, edited.rules[0].max_count) == (0.3, 1)
    longer = add_rule(edited, "stain", zone="sealing_face", min_size_mm=0.5)
    assert longer.rules[-1].zone == "sealing_face" and len(longer.rules) == len(recipe.rules) + 1
    assert remove_rule(longer, len(longer.rules) - 1).rules == edited.rules
    with pytest.raises(RecipeEditError, match=r"rules\[0\]\.zone: expected '\*' \(anywhere\) or a zone of this "
                                              r"recipe \(sealing_face, serial_mark\), got 'lid'"):
        set_rule(recipe, 0, zone="lid")
    with pytest.raises(RecipeEditError, match=r"rules\[0\]\.max_count: expected a whole number ≥ 0, got -2"):
        set_rule(recipe, 0, max_count=-2)
    with pytest.raises(RecipeEditError, match=r"rules\[1\]\.min_size_mm: expected a number ≥ 0, got -0\.1"):
        set_rules(recipe, [{"class": "dent"}, {"class": "burr", "min_size_mm": -0.1}])
    replaced = set_rules(recipe, [{"class": "dent", "zone": "*", "min_size_mm": 0.2, "max_count": 0}])
    assert len(replaced.rules) == 1


def test_save_bumps_version_keeps_old_file_and_audits_the_diff(recipe_file, access):
    old = Recipe.load(recipe_file)
    old_bytes = recipe_file.read_bytes()
    new = set_class_policy(old, "dent", detect_threshold=0.22)
    new = add_view(new, "top-2", StagePose(1.0, 2.0, 56.0), light_program="coarse")
    result = save_recipe(INTEGRATOR, old, new, recipe_file, access, "fewer missed dents")
    assert result.recipe.version == old.version + 1
    on_disk = Recipe.load(recipe_file)
    assert on_disk.version == old.version + 1 and on_disk.classes["dent"].detect_threshold == 0.22
    assert result.backup == backup_path(recipe_file, old.version) == recipe_file.with_name("housing.recipe.v1.json")
    assert result.backup.read_bytes() == old_bytes
    paths = [c.path for c in result.changes]
    assert "recipe.version" in paths and "classes.dent.detect_threshold" in paths and "views[5]" in paths
    entry = access.audit(target=f"recipe:{old.id}")[0]
    assert (entry.who, entry.action, entry.reason) == ("ina", "edit_recipe", "fewer missed dents")
    assert entry.old["fields"]["classes.dent.detect_threshold"] == 0.11
    assert entry.new["fields"]["classes.dent.detect_threshold"] == 0.22
    assert entry.old["version"] == 1 and entry.new["version"] == 2
    assert entry.new["fields"]["views[5]"]["name"] == "top-2" and entry.old["fields"]["views[5]"] is None
    assert any("classes.dent.detect_threshold" in line for line in diff(old, on_disk))
    assert not list(recipe_file.parent.glob("*.tmp"))

    third = save_recipe(INTEGRATOR, on_disk, set_rule(on_disk, 0, max_count=2), recipe_file, access, "two allowed")
    assert third.recipe.version == 3 and backup_path(recipe_file, 2).is_file()


def test_save_refuses_operator_noop_stale_and_missing_reason(recipe_file, access):
    old = Recipe.load(recipe_file)
    before = recipe_file.read_bytes()
    new = set_class_policy(old, "dent", detect_threshold=0.5)
    with pytest.raises(AccessDenied, match="otto \\(operator\\) may not edit recipe"):
        save_recipe(OPERATOR, old, new, recipe_file, access, "why not")
    with pytest.raises(NoChanges, match="nothing changed since version 1"):
        save_recipe(INTEGRATOR, old, old, recipe_file, access, "nothing")
    with pytest.raises(ValueError, match="needs a reason"):
        save_recipe(INTEGRATOR, old, new, recipe_file, access, "  ")
    save_recipe(INTEGRATOR, old, new, recipe_file, access, "first")
    with pytest.raises(RecipeConflict, match="holds 'housing-40x30' version 2, but the edit started from version 1"):
        save_recipe(INTEGRATOR, old, set_class_policy(old, "burr", detect_threshold=0.4), recipe_file, access, "late")
    assert Recipe.load(recipe_file).classes["burr"] == old.classes["burr"]
    assert backup_path(recipe_file, 1).read_bytes() == before
    assert [e.reason for e in access.audit(target=f"recipe:{old.id}")] == ["first"]


def test_a_failed_audit_puts_the_previous_file_back(recipe_file, access, monkeypatch):
    old = Recipe.load(recipe_file)
    before = recipe_file.read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(access, "record", broken)
    with pytest.raises(RuntimeError, match="database is locked"):
        save_recipe(INTEGRATOR, old, set_class_policy(old, "dent", detect_threshold=0.3), recipe_file, access, "x")
    assert recipe_file.read_bytes() == before


def test_a_failed_write_leaves_the_old_file(recipe_file, access, monkeypatch):
    import inspector.recipe_edit as recipe_edit

    old = Recipe.load(recipe_file)
    before = recipe_file.read_bytes()
    real_replace = recipe_edit.os.replace

    def failing_replace(src, dst):
        if Path(dst) == recipe_file:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(recipe_edit.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        save_recipe(INTEGRATOR, old, set_class_policy(old, "dent", detect_threshold=0.3), recipe_file, access, "x")
    assert recipe_file.read_bytes() == before
    assert not list(recipe_file.parent.glob("*.tmp"))
    assert access.audit(target=f"recipe:{old.id}") == []


def test_field_changes_lists_each_leaf(recipe_file):
    old = Recipe.load(recipe_file)
    new = set_class_policy(old, "stain", grey_band=(0.5, 0.8), accept_threshold=0.8)
    changes = {c.path: (c.old, c.new) for c in field_changes(old, new)}
    assert changes == {"classes.stain.accept_threshold": (0.861, 0.8),
                       "classes.stain.grey_band": ([0.603, 0.861], [0.5, 0.8])}
    assert json.loads(json.dumps([str(c) for c in field_changes(old, new)]))
