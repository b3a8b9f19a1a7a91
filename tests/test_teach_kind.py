"""A new defect kind end to end, through the core API: QA creates the kind, labels the station's calls
on parts that carry it, the classifier is taught from those labels (`python -m training teach
--review`), the candidate recipe is scored by the gate on real figures and promoted, and the promoted
recipe fails parts with that kind. Plus kinds as data: recipe names, the model check, the registry."""
import json
import math
import shutil
from pathlib import Path

import pytest

from hardware.sim.cell import station_config_dict
from hardware.sim.part import make_part
from inspector.access import AccessControl, AccessDenied
from inspector.demo import REFERENCE_RECIPE, run_sim_lot
from inspector.inference.classifier import Classifier
from inspector.inference.detector import Detector
from inspector.promotion import (HELDOUT_LOT, REVIEW_SET, Comparison, GateSplit, ModelPair, SetFigures,
                                 compare_on_review_set, gate, labelled_parts, promote, write_candidate_recipe)
from inspector.recipe import Recipe, file_sha256_hex
from inspector.results.sqlite_store import ResultStore
from inspector.review import KindError, KindRegistry, ReviewQueue
from inspector.schema import ConfigError
from inspector.station_config import StationConfig
from inspector.two_stage import TwoStage
from inspector.verdict import Finding, decide
from tests.access_helpers import staff

pytest.importorskip("onnx")
KIND = "crack"


def crack_part(seed):
    return make_part(seed, kinds=(KIND,), defect_probability=1.0)


@pytest.fixture
def line(tmp_path, model_paths):
    """Production models + reference recipe in a models folder; 4 crack parts inspected by the station
    with an archive; QA and integrator users."""
    models = tmp_path / "models"
    models.mkdir()
    for path in model_paths:
        shutil.copy(path, models / Path(path).name)
    data = json.loads(REFERENCE_RECIPE.read_text())
    data["models"] = {role: {"file": f"{role}.onnx", "sha256": file_sha256_hex(models / f"{role}.onnx")}
                      for role in ("detector", "classifier")}
    recipe = models / "recipe.json"
    recipe.write_text(json.dumps(data))
    db = tmp_path / "results.db"
    run_sim_lot(4, first_seed=190_500, speed_factor=50, recipe_path=recipe, db=db, archive_dir=tmp_path / "archive",
                out=lambda *_: None, part_maker=crack_part)
    store = ResultStore(db)
    access = AccessControl(store)
    users = staff(access, ("ines", "integrator", "1111"), ("anna", "qa", "2222"), ("otto", "operator", "3333"))
    queue = ReviewQueue(store, kinds=Recipe.load(recipe).kinds)
    queue.enqueue_committed()
    yield {"models": models, "recipe": recipe, "db": db, "store": store, "access": access, "queue": queue,
           "tmp": tmp_path, **users}
    store.close()


def label_cracks(queue, store, who) -> int:
    """QA's work: every station call within 0.6 mm of a true crack is labelled crack."""
    labelled = 0
    for item in queue.items():
        if item.kind != "ng":
            continue
        record = store.get(item.part_row)
        part = crack_part(int(record.serial.split("-")[1]))
        for index, d in enumerate(record.defects):
            near = any(t.kind == KIND and t.face == d.face and math.dist((t.u_mm, t.v_mm), d.position_mm) < 0.6
                       for t in part.true_defects)
            if d.stage == "fine" and d.decision in ("defect", "review") and near:
                queue.change_class(item, index, KIND, who)
                labelled += 1
    return labelled


def test_a_new_kind_is_created_labelled_taught_gated_promoted_and_then_fails_parts(line):
    from training.__main__ import main as training
    from training.data.generate import LOT_MIX, generate_fine

    store, queue, access, anna = line["store"], line["queue"], line["access"], line["anna"]
    with pytest.raises(ValueError, match="unknown class 'crack'"):  # not a kind yet
        label_cracks(queue, store, anna)
    with pytest.raises(AccessDenied):
        queue.kinds.create(line["otto"], KIND, "#22aa22", "meandering fissure")
    queue.kinds.create(anna, KIND, "#22aa22", "meandering fissure, dark in bright field")
    (row,) = access.audit(action="kind_create")
    assert (row.who, row.target, row.new["colour"]) == ("anna", f"kind:{KIND}", "#22aa22")
    examples = label_cracks(queue, store, anna)
    assert examples >= 3 and queue.kinds.example_counts()[KIND]["calls"] == examples

    # the existing classes' crops: a small fine set (what out/data/fine-train is on a full station)
    sets = line["tmp"] / "fine-small"
    generate_fine(sets, "smoke", 20, mix=LOT_MIX, clean_spots=4, detector=Detector.open(str(line["models"] / "detector.onnx")),
                  max_false_candidates=8)  # with the detector's false candidates: the hard ok crops, as in the standard set
    candidate = line["tmp"] / "candidate"
    models = line["models"]
    assert training(["teach", "--kind", KIND, "--review", str(line["db"]), "--sets", str(sets), "--out", str(candidate),
                     "--parent", str(models / "classifier.onnx"), "--detector", str(models / "detector.onnx")]) == 0
    taught = json.loads((candidate / "teach.json").read_text())
    split = GateSplit(store)  # decided by the teaching job for every labelled part: the gate side was left out
    assert split.stored() == {"SIM-190500": "train", "SIM-190501": "gate", "SIM-190502": "gate", "SIM-190503": "train"}
    assert 0 < taught["examples"] < examples and taught["kind"] == KIND
    classifier = Classifier.open(str(candidate / "classifier.onnx"), prefer=["CPU"])
    assert classifier.info.class_names[-1] == KIND and KIND in classifier.info.thresholds
    assert classifier.info.version != Classifier.open(str(models / "classifier.onnx")).info.version

    # the candidate recipe rules on the new kind; production's recipe cannot run the taught model
    cand = write_candidate_recipe(line["recipe"], ModelPair.in_folder(candidate))
    assert KIND in cand.kinds and cand.classes[KIND].accept_threshold == taught["threshold"]
    station = StationConfig.from_dict(station_config_dict("none", "none"), source="virtual cell")
    production = Recipe.load(line["recipe"])
    with pytest.raises(ConfigError, match=f"calls '{KIND}' but the recipe has no class policy"):
        TwoStage(production, station, Detector.open(str(models / "detector.onnx")), classifier)

    # the gate on real figures: the labelled review set (archive replay) and a small held-out lot
    prod_review, cand_review = compare_on_review_set(line["recipe"], cand.source, labelled_parts(queue),
                                                     station=station, split=split)
    assert prod_review.defective_parts == 2 and cand_review.escapes <= prod_review.escapes  # the gate side only
    lots = {}
    for name, path in (("production", line["recipe"]), ("candidate", Path(cand.source))):
        tally = run_sim_lot(2, first_seed=300_000, speed_factor=50, recipe_path=path, db=line["tmp"] / f"{name}.db",
                            archive_dir=None, out=lambda *_: None)
        bad = [r for r, truth in tally.rows if truth == "FAIL"]
        good = [r for r, truth in tally.rows if truth == "PASS"]
        lots[name] = SetFigures(HELDOUT_LOT, len(bad), len(good), sum(r.verdict == "PASS" for r in bad),
                                sum(r.verdict != "PASS" for r in good), recipe_hash=Recipe.load(path).hash)
    comparison = Comparison({REVIEW_SET: prod_review, HELDOUT_LOT: lots["production"]},
                            {REVIEW_SET: cand_review, HELDOUT_LOT: lots["candidate"]},
                            candidate_recipe_hash=cand.hash, production_recipe_hash=production.hash,
                            candidate_models={r: cand.model_sha256(r) for r in ("detector", "classifier")})
    assert gate(comparison).passed, gate(comparison).message()
    result = promote(anna, access, cand.source, comparison, recipe_path=line["recipe"], reason=f"taught {KIND}")
    promoted = Recipe.load(line["recipe"])
    assert KIND in promoted.kinds and result.recipe == promoted

    # the rules now fail a part with that kind (no rule tolerates it), and the station runs the recipe
    finding = Finding(KIND, 0.9, "defect", "top", 1.0, 2.0, 0.3)
    verdict = decide([finding], promoted)
    assert verdict.verdict == "FAIL" and f"1 {KIND} (no rule tolerates this class)" in verdict.reason
    tally = run_sim_lot(1, first_seed=390_001, speed_factor=50, recipe_path=line["recipe"], db=line["tmp"] / "after.db",
                        archive_dir=None, out=lambda *_: None, part_maker=crack_part)
    ((record, truth),) = tally.rows
    assert truth == "FAIL" and record.verdict == "FAIL"


def test_kinds_are_data_names_checked_and_registered(tmp_path, model_paths):
    data = json.loads(REFERENCE_RECIPE.read_text())
    data["classes"]["porosity"] = dict(data["classes"]["dent"])
    data["rules"].append({"class": "porosity", "zone": "*", "min_size_mm": 0.2, "max_count": 0})
    recipe = Recipe.from_dict(data, source="r.json")
    assert recipe.kinds[-1] == "porosity"
    station = StationConfig.from_dict(station_config_dict("none", "none"), source="virtual cell")
    with pytest.raises(ConfigError, match="the recipe rules on 'porosity' but classifier classifier@"):
        TwoStage(recipe, station, Detector.open(str(model_paths[0])), Classifier.open(str(model_paths[1])))
    for bad, message in (("Porosity", "must be 2–32 characters"), ("ok", "reserved"), ("x" * 40, "2–32")):
        broken = json.loads(REFERENCE_RECIPE.read_text())
        broken["classes"][bad] = dict(broken["classes"]["dent"])
        with pytest.raises(ConfigError, match=message):
            Recipe.from_dict(broken, source="r.json")
    broken = json.loads(REFERENCE_RECIPE.read_text())
    broken["rules"].append({"class": "porosity", "zone": "*", "min_size_mm": 0.2, "max_count": 0})
    with pytest.raises(ConfigError, match="porosity"):
        Recipe.from_dict(broken, source="r.json")

    store = ResultStore(tmp_path / "r.db")
    try:
        access = AccessControl(store)
        users = staff(access, ("ines", "integrator", "1111"), ("anna", "qa", "2222"))
        registry = KindRegistry(store)
        assert registry.register_known(recipe.kinds, "recipe") == list(recipe.kinds)
        assert registry.register_known(recipe.kinds, "recipe") == []  # idempotent
        for name, colour, text, message in (("Crack", "#112233", "x", "2–32 characters"),
                                            ("unknown", "#112233", "x", "reserved"),
                                            ("crack", "green", "x", "#rrggbb"),
                                            ("crack", "#112233", "", "one line of 1–300"),
                                            ("dent", "#112233", "x", "exists already")):
            with pytest.raises(KindError, match=message):
                registry.create(users["anna"], name, colour, text)
        assert registry.names()[:4] == ("scratch", "dent", "burr", "stain") and access.audit(action="kind_create") == []
    finally:
        store.close()
