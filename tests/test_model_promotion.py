"""Candidate recipe vs production: the figures from the held-out report, the regression gate, the
candidate recipe (pins + the candidate models' own thresholds), promotion to a new recipe version
with versioned model files, its refusals, rollback, the CLI, and the review-set comparison on real
archived parts of the virtual cell. Nothing here trains a model."""
import json
import shutil
from pathlib import Path

import pytest

from inspector.access import AccessControl, AccessDenied
from inspector.promotion import (HELDOUT_LOT, REVIEW_SET, Comparison, GateRule, GateSplit, ModelPair,
                                 PromotionRefused, SetFigures, SplitRule, compare_on_review_set, eval_command,
                                 figures_from_eval_report, gate, labelled_parts, model_version, promote, rollback,
                                 write_candidate_recipe)
from inspector.recipe import Recipe, file_sha256_hex
from inspector.recipe_edit import backup_path, field_changes
from inspector.results.sqlite_store import ResultStore
from inspector.review import ReviewQueue
from inspector.schema import ConfigError
from tests.model_files import candidate_pair


def figures(name, defective=10, good=20, escapes=1, overkill=2, recipe_hash=""):
    return SetFigures(name, defective, good, escapes, overkill, recipe_hash=recipe_hash)


def comparison(cand_review=None, cand_heldout=None, *, cand_hash="", prod_hash="", **kw):
    prod = {REVIEW_SET: figures(REVIEW_SET, recipe_hash=prod_hash),
            HELDOUT_LOT: figures(HELDOUT_LOT, 150, 150, 3, 6, recipe_hash=prod_hash)}
    cand = {REVIEW_SET: cand_review or figures(REVIEW_SET, recipe_hash=cand_hash),
            HELDOUT_LOT: cand_heldout or figures(HELDOUT_LOT, 150, 150, 3, 6, recipe_hash=cand_hash)}
    return Comparison(prod, cand, candidate_recipe_hash=cand_hash, production_recipe_hash=prod_hash, **kw)


# -- the gate --------------------------------------------------------------------------------------
def test_gate_passes_equal_or_better():
    assert gate(comparison()).passed
    better = gate(comparison(figures(REVIEW_SET, escapes=0, overkill=0), figures(HELDOUT_LOT, 150, 150, 1, 2)))
    assert better.passed and better.failures == () and len(better.checks) == 4


def test_gate_fails_on_more_escapes_on_either_set():
    result = gate(comparison(cand_review=figures(REVIEW_SET, escapes=2)))
    assert not result.passed
    assert result.failures == ("review set escapes: candidate 2/10 (20.0 %) vs production 1/10 (10.0 %)",)
    result = gate(comparison(cand_heldout=figures(HELDOUT_LOT, 150, 150, 4, 6)))
    assert not result.passed and "held-out lot escapes: candidate 4/150" in result.message()


def test_gate_overkill_margin():
    # production 6/150 = 4 %; margin 2 points → at most 6 %: 9/150 passes, 10/150 fails
    assert gate(comparison(cand_heldout=figures(HELDOUT_LOT, 150, 150, 3, 9))).passed
    result = gate(comparison(cand_heldout=figures(HELDOUT_LOT, 150, 150, 3, 10)))
    assert not result.passed and "held-out lot overkill: candidate 10/150 (6.7 %)" in result.failures[0]
    assert "(limit 6.0 %)" in result.failures[0]
    assert gate(comparison(cand_heldout=figures(HELDOUT_LOT, 150, 150, 3, 10)), GateRule(overkill_margin=0.05)).passed
    assert "2.0 percentage points" in GateRule().describe()


def test_gate_needs_both_sets_on_the_same_parts():
    partial = Comparison({REVIEW_SET: figures(REVIEW_SET)}, {REVIEW_SET: figures(REVIEW_SET)})
    result = gate(partial)
    assert not result.passed and "held-out lot: not evaluated for production" in result.failures[0]
    result = gate(comparison(cand_review=figures(REVIEW_SET, defective=9, good=21)))
    assert not result.passed and "judged on different parts" in result.failures[0]


def test_gate_refuses_figures_of_another_recipe():
    """Figures scored with any recipe but the candidate recipe named in the comparison do not count."""
    ok = comparison(cand_hash="sha256:c", prod_hash="sha256:p")
    assert gate(ok).passed
    other = comparison(cand_heldout=figures(HELDOUT_LOT, 150, 150, 3, 6, recipe_hash="sha256:x"),
                       cand_hash="sha256:c", prod_hash="sha256:p")
    result = gate(other)
    assert not result.passed
    assert result.failures == ("held-out lot: candidate figures come from recipe sha256:x, not the candidate recipe "
                               "sha256:c",)


def test_figures_from_eval_report(tmp_path):
    """The held-out lot from `inspector eval`'s report.json (escape of truth-FAIL parts, line overkill
    of truth-PASS parts); a report made with another recipe is refused."""
    report = {"summary": {"escape": {"count": 1, "of": 4, "rate": 0.25}, "line_overkill": {"count": 2, "of": 6},
                          "grey_band_good": {"count": 1, "of": 6}, "error": {"count": 0, "of": 10}},
              "parts": [{"serial": f"SIM-{300000 + i}", "verdict": "PASS", "truth": "PASS"} for i in range(10)],
              "recipe": {"id": "housing", "version": 3, "hash": "sha256:abc", "path": "x.json"},
              "lot": {"first_seed": 300000, "parts": 10}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    f = figures_from_eval_report(tmp_path / "report.json")
    assert (f.set_name, f.defective_parts, f.good_parts, f.escapes, f.overkill) == (HELDOUT_LOT, 4, 6, 1, 2)
    assert f.escape_text() == "1/4 (25.0 %)" and f.overkill_text() == "2/6 (33.3 %)"
    assert f.recipe_hash == "sha256:abc" and "300000" in f.notes[0] and len(f.parts) == 10
    assert figures_from_eval_report(tmp_path / "report.json", recipe_hash="sha256:abc") == f
    with pytest.raises(ValueError, match="made with recipe sha256:abc, expected sha256:other"):
        figures_from_eval_report(tmp_path / "report.json", recipe_hash="sha256:other")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json: not a held-out evaluation report"):
        figures_from_eval_report(tmp_path / "bad.json")
    command = eval_command(tmp_path / "cand.recipe.json", parts=50, out=tmp_path / "e", python="py")
    assert command == ["py", "-m", "inspector.cli", "eval", "--recipe", str(tmp_path / "cand.recipe.json"),
                       "--parts", "50", "--out", str(tmp_path / "e")]


# -- the candidate recipe and promotion ------------------------------------------------------------------
def set_metadata(path, **props):
    """Rewrite metadata_props of an ONNX file in place (values JSON-encoded unless str)."""
    import onnx
    proto = onnx.load(str(path))
    for prop in proto.metadata_props:
        if prop.key in props:
            value = props[prop.key]
            prop.value = value if isinstance(value, str) else json.dumps(value)
    onnx.save(proto, str(path))


CANDIDATE_DETECT = {"scratch": 0.21, "dent": 0.15, "burr": 0.33, "stain": 0.2}


@pytest.fixture
def cell(tmp_path, model_paths):
    """A models folder with the production pair and its recipe (detector pinned, classifier a bare path),
    a candidate whose detector is version 9.9.9-test with thresholds of its own, users of each role."""
    pytest.importorskip("onnx")
    from inspector.demo import REFERENCE_RECIPE
    models = tmp_path / "models"
    models.mkdir()
    for path in model_paths:
        shutil.copy(path, models / Path(path).name)
        card = Path(path).with_name(Path(path).stem + ".card.json")
        if card.is_file():
            shutil.copy(card, models / card.name)
    data = json.loads(REFERENCE_RECIPE.read_text())
    data["models"] = {"detector": {"file": "detector.onnx", "sha256": file_sha256_hex(models / "detector.onnx")},
                      "classifier": "classifier.onnx"}
    recipe = models / "recipe.json"
    recipe.write_text(json.dumps(data))
    candidate = candidate_pair(models, tmp_path / "candidate", "detector", "9.9.9-test")
    set_metadata(candidate / "detector.onnx", thresholds=CANDIDATE_DETECT)
    store = ResultStore(tmp_path / "results.db")
    access = AccessControl(store)
    access.add_user("ines", "integrator", "1111", by=access.system_session("commissioning"))
    boss = access.login("ines", "1111")
    access.add_user("anna", "qa", "2222", by=boss)
    access.add_user("otto", "operator", "3333", by=boss)
    pair = ModelPair.in_folder(candidate)
    cand_recipe = write_candidate_recipe(recipe, pair)
    yield {"models": models, "recipe": recipe, "candidate": pair, "candidate_recipe": Path(cand_recipe.source),
           "access": access, "db": tmp_path / "results.db", "qa": access.login("anna", "2222"),
           "operator": access.login("otto", "3333"), "integrator": boss}
    store.close()


def scored(cell, **kw):
    """A passing comparison of exactly the cell's candidate recipe against its production recipe."""
    cand = Recipe.load(cell["candidate_recipe"])
    return comparison(cand_hash=cand.hash, prod_hash=Recipe.load(cell["recipe"]).hash,
                      candidate_models={r: cand.model_sha256(r) for r in ("detector", "classifier")}, **kw)


def test_candidate_recipe_pins_the_candidate_and_carries_its_thresholds(cell):
    production, cand = Recipe.load(cell["recipe"]), Recipe.load(cell["candidate_recipe"])
    assert cand.id == production.id and cand.version == production.version + 1
    assert cand.views == production.views and cand.rules == production.rules and cand.zones == production.zones
    pair = cell["candidate"]
    assert {r: cand.model_sha256(r) for r in ("detector", "classifier")} == pair.fingerprint()
    assert cand.model_path("detector") == pair.detector  # pinned, verified
    from inspector.inference.model_package import parse_metadata, read_metadata_props
    classifier = parse_metadata(read_metadata_props(pair.classifier), str(pair.classifier))
    for name, policy in cand.classes.items():
        assert policy.detect_threshold == CANDIDATE_DETECT[name]  # the candidate detector's, not production's
        assert policy.accept_threshold == classifier.thresholds[name]
        assert policy.grey_band == classifier.grey_band[name]
    assert cand.classes != production.classes


def test_promote_writes_a_new_recipe_version_with_what_the_gate_scored(cell):
    models, access, recipe = cell["models"], cell["access"], cell["recipe"]
    before = Recipe.load(recipe)
    old_detector = file_sha256_hex(models / "detector.onnx")
    scored_recipe = Recipe.load(cell["candidate_recipe"])
    result = promote(cell["qa"], access, cell["candidate_recipe"], scored(cell), recipe_path=recipe,
                     reason="fewer dent escapes after relabel of lot 47")
    after = Recipe.load(recipe)
    # the production recipe: next version, the thresholds the gate scored, models pinned by sha256
    assert after.version == before.version + 1 and result.recipe == after
    assert after.classes == scored_recipe.classes
    assert after.models["detector"] == "detector-9.9.9-test.onnx"
    assert after.model_sha256("detector") == scored_recipe.model_sha256("detector") == \
        file_sha256_hex(models / "detector-9.9.9-test.onnx")
    assert after.model_path("detector") == models / "detector-9.9.9-test.onnx"
    assert after.models["classifier"] == "classifier.onnx"  # unchanged model: same file, now pinned
    assert after.model_sha256("classifier") == file_sha256_hex(models / "classifier.onnx")
    assert field_changes(scored_recipe, after) and all(c.path.startswith("models.") for c in field_changes(
        scored_recipe, after))  # only where the files lie differs from the candidate recipe the gate scored
    # production files untouched, the previous version kept
    assert file_sha256_hex(models / "detector.onnx") == old_detector
    assert result.backup == backup_path(recipe, before.version) and Recipe.load(result.backup) == before
    rows = access.audit(target=f"recipe:{after.id}")
    assert len(rows) == 1
    row = rows[0]
    assert (row.who, row.role, row.action) == ("anna", "qa", "promote_model")
    assert row.old["version"] == before.version and row.new["version"] == after.version
    assert row.old["models"]["detector"]["sha256"] == old_detector
    assert row.new["models"]["detector"] == {"file": "detector-9.9.9-test.onnx", "version": "9.9.9-test",
                                             "sha256": after.model_sha256("detector")}
    assert "classes.dent.detect_threshold" in row.new["fields"]
    assert row.new["candidate_hash"] == scored_recipe.hash
    assert row.reason.startswith("fewer dent escapes after relabel of lot 47") and "held-out lot escapes" in row.reason
    assert result.models == {"detector": ("detector.onnx@" + model_version(models / "detector.onnx"),
                                          "detector-9.9.9-test.onnx@9.9.9-test")}
    assert "9.9.9-test" in result.message


def test_promoted_then_rolled_back_equals_the_previous_content(cell):
    recipe, access = cell["recipe"], cell["access"]
    before = Recipe.load(recipe)
    promote(cell["qa"], access, cell["candidate_recipe"], scored(cell), recipe_path=recipe, reason="better")
    back = rollback(cell["qa"], access, recipe, "line reports more overkill")
    restored = Recipe.load(recipe)
    assert restored.version == before.version + 2 and back.recipe == restored
    assert field_changes(before, restored, include_version=False) == []
    assert restored.model_path("detector") == cell["models"] / "detector.onnx"
    rows = access.audit(target=f"recipe:{before.id}")
    assert [r.new["action"] for r in rows] == ["rollback", "promotion"]  # newest first
    assert rows[0].new["restores_version"] == before.version and rows[0].reason == "line reports more overkill"
    with pytest.raises(AccessDenied):
        rollback(cell["operator"], access, recipe, "x")


def test_rollback_cli(cell, monkeypatch, capsys):
    from inspector.cli import main
    recipe = cell["recipe"]
    before = Recipe.load(recipe)
    promote(cell["qa"], cell["access"], cell["candidate_recipe"], scored(cell), recipe_path=recipe, reason="better")
    monkeypatch.setenv("INSPECTOR_PIN", "2222")
    assert main(["models", "rollback", "--recipe", str(recipe), "--user", "anna", "--reason", "undo",
                 "--db", str(cell["db"])]) == 0
    assert "rollback: recipe" in capsys.readouterr().out
    assert field_changes(before, Recipe.load(recipe), include_version=False) == []
    monkeypatch.setenv("INSPECTOR_PIN", "3333")
    assert main(["models", "rollback", "--recipe", str(recipe), "--user", "otto", "--reason", "undo",
                 "--db", str(cell["db"])]) == 1
    assert "may not promote model" in capsys.readouterr().err


def test_a_tampered_promoted_model_is_refused_on_load(cell):
    recipe = cell["recipe"]
    promote(cell["qa"], cell["access"], cell["candidate_recipe"], scored(cell), recipe_path=recipe, reason="better")
    promoted = cell["models"] / "detector-9.9.9-test.onnx"
    promoted.write_bytes(promoted.read_bytes() + b"\0")
    with pytest.raises(ConfigError, match="detector-9.9.9-test.onnx has sha256"):
        Recipe.load(recipe).model_path("detector")


@pytest.mark.parametrize("who", ["operator", "integrator"])
def test_only_qa_promotes(cell, who):
    with pytest.raises(AccessDenied, match="may not promote model"):
        promote(cell[who], cell["access"], cell["candidate_recipe"], scored(cell), recipe_path=cell["recipe"],
                reason="x")
    assert cell["access"].audit() == [] or all(r.action != "promote_model" for r in cell["access"].audit())


def test_promote_refusals_name_the_problem(cell):
    access, cand, recipe, models = cell["access"], cell["candidate_recipe"], cell["recipe"], cell["models"]
    before = recipe.read_bytes()

    def refused(match, comparison_, path=cand, reason="x"):
        with pytest.raises(PromotionRefused, match=match):
            promote(cell["qa"], access, path, comparison_, recipe_path=recipe, reason=reason)

    refused(r"gate failed: review set escapes: candidate 2/10 \(20.0 %\) vs production 1/10",
            scored(cell, cand_review=figures(REVIEW_SET, escapes=2, recipe_hash=Recipe.load(cand).hash)))
    refused("needs a reason", scored(cell), reason="  ")
    refused("compare this candidate recipe first", comparison())  # figures of no recipe in particular
    # the candidate recipe edited after the comparison
    data = json.loads(cand.read_text())
    data["classes"]["dent"]["accept_threshold"] = 0.99
    data["classes"]["dent"]["grey_band"] = [0.5, 0.99]
    edited = cand.with_name("edited.recipe.json")
    edited.write_text(json.dumps(data))
    refused("the gate scored recipe", scored(cell), path=edited)
    # production edited since the comparison
    stale = scored(cell)
    data = json.loads(recipe.read_text())
    data["recipe"]["description"] = "edited meanwhile"
    recipe.write_text(json.dumps(data))
    refused("production recipe changed since the comparison", stale)
    recipe.write_bytes(before)
    # a versioned name taken by other content
    (models / "detector-9.9.9-test.onnx").write_bytes(b"other")
    refused("detector-9.9.9-test.onnx exists with other content", scored(cell))
    (models / "detector-9.9.9-test.onnx").unlink()
    # a candidate model changed after the comparison
    detector = cell["candidate"].detector
    detector.write_bytes(detector.read_bytes() + b"\0")
    refused("the model file was changed or swapped", scored(cell))
    assert recipe.read_bytes() == before and not (models / "detector-9.9.9-test.onnx").exists()
    assert access.audit(target=f"recipe:{Recipe.load(recipe).id}") == []


# -- the review set on real archived parts -----------------------------------------------------------------
def test_review_set_comparison_on_archived_parts(tmp_path, model_paths):
    from inspector.demo import REFERENCE_RECIPE, run_sim_lot
    from inspector.station_config import StationConfig
    from hardware.sim.cell import station_config_dict
    data = json.loads(REFERENCE_RECIPE.read_text())
    data["models"] = {"detector": str(model_paths[0]), "classifier": str(model_paths[1])}
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps(data))
    db = tmp_path / "r.db"
    run_sim_lot(2, first_seed=900_000, speed_factor=20, recipe_path=recipe, db=db, archive_dir=tmp_path / "archive",
                out=lambda *_: None)
    store = ResultStore(db)
    queue = ReviewQueue(store)
    queue.enqueue_committed()
    access = AccessControl(store)
    access.add_user("ines", "integrator", "1111", by=access.system_session("commissioning"))
    access.add_user("anna", "qa", "2222", by=access.login("ines", "1111"))
    anna = access.login("anna", "2222")
    records = {row: store.get(row) for row in (1, 2)}
    assert all(r.image_paths for r in records.values())
    assert labelled_parts(queue) == []  # nobody looked yet
    # part 1: a real defect confirmed; part 2: every call rejected → good
    called = [i for i, d in enumerate(records[1].defects) if d.decision in ("defect", "review")]
    part1_item = next(it for it in queue.items() if it.part_row == 1)
    if called:
        queue.confirm(part1_item, called[0], anna)
    else:  # models that called nothing on it (tiny test models): a missed box makes it defective
        queue.add_box(part1_item, records[1].image_paths[0], (10, 10, 30, 30), "dent", anna)
    part2_item = next(it for it in queue.items() if it.part_row == 2)
    for i, d in enumerate(records[2].defects):
        if d.decision in ("defect", "review"):
            queue.reject(part2_item, i, anna)
    truth = {p.part_row: p.defective for p in labelled_parts(queue)}
    assert truth == {1: True, 2: False}
    station = StationConfig.from_dict(station_config_dict("none", "none"), source="virtual cell")
    split = GateSplit(store, SplitRule(gate_share=0.999))  # both parts on the gate side
    with pytest.raises(ValueError, match="needs the station config"):
        compare_on_review_set(recipe, recipe, labelled_parts(queue), station=None, split=split)
    prod, cand = compare_on_review_set(recipe, recipe, labelled_parts(queue), station=station, split=split)
    assert prod == cand  # the same recipe decides the same
    assert (prod.defective_parts, prod.good_parts, prod.skipped) == (1, 1, 0)
    assert prod.recipe_hash == Recipe.load(recipe).hash
    # the replay gives the live verdicts; line overkill counts every good part not passed
    live = {row: r.verdict for row, r in records.items()}
    assert prod.escapes == (live[1] == "PASS") and prod.overkill == (live[2] != "PASS")
    store.close()


# -- reading a model's version on the GUI thread ---------------------------------------------------
def test_model_version_reads_the_metadata_without_a_session_and_once_per_file(model_paths, tmp_path, monkeypatch):
    """The QA view asks for the production versions on every refresh: the answer comes from the
    file's metadata_props (the same map onnxruntime reports), no session is opened, and an unchanged
    file is not read a second time; a changed file is read again."""
    import onnxruntime as ort

    import inspector.promotion.candidate as mp
    from inspector.inference.model_package import read_metadata_props

    detector = tmp_path / "detector.onnx"
    shutil.copyfile(model_paths[0], detector)
    expected = dict(ort.InferenceSession(str(detector), providers=["CPUExecutionProvider"])
                    .get_modelmeta().custom_metadata_map)
    assert read_metadata_props(detector) == expected

    sessions, reads = [], []
    monkeypatch.setattr(ort, "InferenceSession", lambda *a, **k: sessions.append(a) or pytest.fail("opened a session"))
    monkeypatch.setattr(mp, "read_metadata_props", lambda path: reads.append(path) or read_metadata_props(path))
    assert model_version(detector) == expected["version"]
    assert model_version(detector) == expected["version"]
    both = ModelPair(detector, detector).versions()
    assert both == {"detector": expected["version"], "classifier": expected["version"]}
    assert sessions == [] and len(reads) == 1

    detector.write_bytes(b"\x08\x07")  # a different file at the same path: read again, no version in it
    assert model_version(detector) == "?" and len(reads) == 2
    assert model_version(tmp_path / "missing.onnx") == "?"
