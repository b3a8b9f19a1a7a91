"""Candidate vs production: figures from the held-out report, the regression gate, promotion with its
role check, refusals, the archived old models and the audit rows; the review-set comparison on
real archived parts of the virtual cell."""
import json
import shutil
from pathlib import Path

import pytest

from inspector.access import AccessControl, AccessDenied
from inspector.model_promotion import (HELDOUT_LOT, REVIEW_SET, Comparison, GateRule, ModelPair, PromotionRefused,
                                       SetFigures, compare_on_review_set, eval_command, figures_from_eval_report,
                                       file_sha256, gate, labelled_parts, model_version, promote)
from inspector.results.sqlite_store import ResultStore
from inspector.review import ReviewQueue
from tests.model_files import candidate_pair


def figures(name, defective=10, good=20, escapes=1, overkill=2):
    return SetFigures(name, defective, good, escapes, overkill)


def comparison(cand_review=None, cand_heldout=None, **kw):
    prod = {REVIEW_SET: figures(REVIEW_SET), HELDOUT_LOT: figures(HELDOUT_LOT, 150, 150, 3, 6)}
    cand = {REVIEW_SET: cand_review or figures(REVIEW_SET), HELDOUT_LOT: cand_heldout or figures(HELDOUT_LOT, 150, 150, 3, 6)}
    return Comparison(prod, cand, **kw)


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


def test_figures_from_eval_report(tmp_path):
    report = {"lot": {"split": "heldout", "seed_range": [300000, 300009], "fingerprint": "sha256:ab"},
              "part_level": {"parts": 10, "defective_parts": 4, "good_parts": 6, "escapes": 1, "overkill": 2},
              "parts": [{"seed": 300000 + i, "serial": f"SIM-{300000 + i}"} for i in range(10)]}
    (tmp_path / "report.json").write_text(json.dumps(report))
    f = figures_from_eval_report(tmp_path / "report.json")
    assert (f.set_name, f.defective_parts, f.good_parts, f.escapes, f.overkill) == (HELDOUT_LOT, 4, 6, 1, 2)
    assert f.escape_text() == "1/4 (25.0 %)" and f.overkill_text() == "2/6 (33.3 %)"
    assert "300000" in f.notes[0] and len(f.parts) == 10
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json: not a held-out evaluation report"):
        figures_from_eval_report(tmp_path / "bad.json")
    command = eval_command(ModelPair(Path("d.onnx"), Path("c.onnx")), parts=50, out=tmp_path / "e", python="py")
    assert command == ["py", "-m", "training", "eval", "--detector", "d.onnx", "--classifier", "c.onnx", "--parts",
                       "50", "--out", str(tmp_path / "e"), "--threads", "1"]


# -- promotion ---------------------------------------------------------------------------------------
@pytest.fixture
def cell(tmp_path, model_paths):
    """A models folder with the production pair and its recipe, a candidate whose detector is a new
    version, users of each role."""
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
    data["models"] = {"detector": "detector.onnx", "classifier": "classifier.onnx"}
    recipe = models / "recipe.json"
    recipe.write_text(json.dumps(data))
    candidate = candidate_pair(models, tmp_path / "candidate", "detector", "9.9.9-test")
    store = ResultStore(tmp_path / "results.db")
    access = AccessControl(store)
    access.add_user("ines", "integrator", "1111")
    boss = access.login("ines", "1111")
    access.add_user("anna", "qa", "2222", by=boss)
    access.add_user("otto", "operator", "3333", by=boss)
    yield {"models": models, "recipe": recipe, "candidate": ModelPair.in_folder(candidate), "access": access,
           "qa": access.login("anna", "2222"), "operator": access.login("otto", "3333"), "integrator": boss}
    store.close()


def test_promote_archives_the_old_model_and_audits(cell):
    models, access, cand = cell["models"], cell["access"], cell["candidate"]
    production = ModelPair.from_recipe(cell["recipe"])
    old_detector = file_sha256(production.detector)
    old_version = model_version(production.detector)
    result = promote(cell["qa"], access, cand, comparison(production_models=production.fingerprint(),
                                                          candidate_models=cand.fingerprint()),
                     recipe_path=cell["recipe"], reason="fewer dent escapes after relabel of lot 47")
    assert result.replaced == {"detector": (old_version, "9.9.9-test")}  # the classifier is the same file
    assert file_sha256(production.detector) == file_sha256(cand.detector)
    kept = models / "archive" / f"detector-{old_version}.onnx"
    assert result.archived["detector"] == kept and file_sha256(kept) == old_detector
    assert (models / "archive" / f"detector-{old_version}.card.json").is_file() or \
        not (models / "detector.card.json").is_file()
    rows = access.audit(target="model:detector")
    assert len(rows) == 1
    row = rows[0]
    assert (row.who, row.role, row.action) == ("anna", "qa", "promote_model")
    assert row.old["version"] == old_version and row.old["sha256"] == old_detector and row.old["archived_as"] == str(kept)
    assert row.new["version"] == "9.9.9-test"
    assert row.reason.startswith("fewer dent escapes after relabel of lot 47") and "held-out lot escapes" in row.reason
    assert access.audit(target="model:classifier") == []
    assert "detector" in result.message and "9.9.9-test" in result.message


@pytest.mark.parametrize("who", ["operator", "integrator"])
def test_only_qa_promotes(cell, who):
    with pytest.raises(AccessDenied, match="may not promote model"):
        promote(cell[who], cell["access"], cell["candidate"], comparison(), recipe_path=cell["recipe"], reason="x")
    assert cell["access"].audit(target="model:detector") == []


def test_promote_refusals_name_the_problem(cell):
    access, cand, recipe = cell["access"], cell["candidate"], cell["recipe"]
    before = file_sha256(ModelPair.from_recipe(recipe).detector)
    with pytest.raises(PromotionRefused, match=r"gate failed: review set escapes: candidate 2/10 \(20.0 %\) vs "
                                               r"production 1/10"):
        promote(cell["qa"], access, cand, comparison(cand_review=figures(REVIEW_SET, escapes=2)), recipe_path=recipe,
                reason="try")
    with pytest.raises(PromotionRefused, match="needs a reason"):
        promote(cell["qa"], access, cand, comparison(), recipe_path=recipe, reason="  ")
    stale = comparison(candidate_models={"detector": "sha256:0", "classifier": "sha256:0"})
    with pytest.raises(PromotionRefused, match="candidate files changed since the comparison"):
        promote(cell["qa"], access, cand, stale, recipe_path=recipe, reason="x")
    with pytest.raises(PromotionRefused, match="candidate file missing"):
        promote(cell["qa"], access, ModelPair.in_folder(cell["models"] / "nowhere"), comparison(), recipe_path=recipe,
                reason="x")
    assert file_sha256(ModelPair.from_recipe(recipe).detector) == before
    assert access.audit(target="model:detector") == [] and not (cell["models"] / "archive").exists()


# -- the review set on real archived parts -----------------------------------------------------------------
def test_review_set_comparison_on_archived_parts(tmp_path, model_paths):
    from inspector.demo import REFERENCE_RECIPE, run_sim_lot
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
    records = {row: store.get(row) for row in (1, 2)}
    assert all(r.image_paths for r in records.values())
    assert labelled_parts(queue) == []  # nobody looked yet
    # part 1: a real defect confirmed; part 2: every call rejected → good
    called = [i for i, d in enumerate(records[1].defects) if d.decision in ("defect", "review")]
    part1_item = next(it for it in queue.items() if it.part_row == 1)
    if called:
        queue.confirm(part1_item, called[0], "anna")
    else:  # models that called nothing on it (tiny test models): a missed box makes it defective
        queue.add_box(part1_item, records[1].image_paths[0], (10, 10, 30, 30), "dent", "anna")
    part2_item = next(it for it in queue.items() if it.part_row == 2)
    for i, d in enumerate(records[2].defects):
        if d.decision in ("defect", "review"):
            queue.reject(part2_item, i, "anna")
    truth = {p.part_row: p.defective for p in labelled_parts(queue)}
    assert truth == {1: True, 2: False}
    pair = ModelPair.from_recipe(recipe)
    prod, cand = compare_on_review_set(pair, pair, recipe, labelled_parts(queue))
    assert prod == cand  # the same models decide the same
    assert (prod.defective_parts, prod.good_parts, prod.skipped) == (1, 1, 0)
    # the replay gives the live verdicts: both parts FAILed on the line
    live = {row: r.verdict for row, r in records.items()}
    assert prod.escapes == (live[1] == "PASS") and prod.overkill == (live[2] == "FAIL")
    store.close()


# -- reading a model's version on the GUI thread ---------------------------------------------------
def test_model_version_reads_the_metadata_without_a_session_and_once_per_file(model_paths, tmp_path, monkeypatch):
    """The QA view asks for the production versions on every refresh: the answer comes from the
    file's metadata_props (the same map onnxruntime reports), no session is opened, and an unchanged
    file is not read a second time; a changed file is read again."""
    import onnxruntime as ort

    import inspector.model_promotion as mp
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
    assert ModelPair(detector, detector).versions() == {"detector": expected["version"], "classifier": expected["version"]}
    assert sessions == [] and len(reads) == 1

    detector.write_bytes(b"\x08\x07")  # a different file at the same path: read again, no version in it
    assert model_version(detector) == "?" and len(reads) == 2
    assert model_version(tmp_path / "missing.onnx") == "?"
