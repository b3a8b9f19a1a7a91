"""The review labels' split into a train side and a gate side: decided once per part from its
serial (not from arrival order), stored in the result store so a part never changes side; the gate
comparison judges gate-side parts only, and the labels a retraining job gets hold no gate-side part.
Nothing here trains or runs a model."""
from pathlib import Path

import pytest

from inspector.demo import REFERENCE_RECIPE
from inspector.promotion import (GATE, TRAIN, GateSplit, LabelledPart, SplitRule, compare_on_review_set,
                                 keep_train_side)
from inspector.promotion import archive_replay
from inspector.recipe import Recipe
from inspector.results.sqlite_store import ResultStore

SERIALS = [f"SN-{i:05d}" for i in range(1000)]


@pytest.fixture
def store(tmp_path):
    with ResultStore(tmp_path / "results.db") as s:
        yield s


def test_rule_is_a_function_of_the_serial_with_the_stated_share():
    rule = SplitRule()
    sides = [rule.side(s) for s in SERIALS]
    assert sides == [SplitRule().side(s) for s in SERIALS]  # deterministic
    assert 0.25 < sides.count(GATE) / len(sides) < 0.35  # 30 % stated
    assert set(sides) == {GATE, TRAIN}
    assert "30 %" in rule.describe()
    with pytest.raises(ValueError, match="gate share"):
        SplitRule(gate_share=1.0)


def test_split_does_not_depend_on_arrival_order(tmp_path):
    parts = [LabelledPart(i, s, Path("/nowhere"), i % 2 == 0) for i, s in enumerate(SERIALS[:200])]
    with ResultStore(tmp_path / "a.db") as a, ResultStore(tmp_path / "b.db") as b:
        train_a, gate_a = GateSplit(a).split(parts)
        train_b, gate_b = GateSplit(b).split(list(reversed(parts)))
    assert {p.serial for p in gate_a} == {p.serial for p in gate_b} and gate_a
    assert {p.serial for p in train_a} == {p.serial for p in train_b} and train_a
    assert not {p.serial for p in gate_a} & {p.serial for p in train_a}
    assert [p.serial for p in gate_a] == sorted(p.serial for p in gate_a)  # the given order is kept


def test_a_part_never_changes_side(tmp_path):
    db = tmp_path / "results.db"
    with ResultStore(db) as store:
        first = GateSplit(store).sides(SERIALS[:100])
        assert GateSplit(store).stored() == first
    with ResultStore(db) as store:  # reopened, and a different rule: the stored sides stay
        split = GateSplit(store, SplitRule(gate_share=0.9, salt="other"))
        assert split.sides(SERIALS[:100]) == first
        assert split.side(SERIALS[0]) == first[SERIALS[0]]
        later = split.sides(SERIALS[100:300])  # new parts follow the new rule
        assert sum(side == GATE for side in later.values()) > 150
        assert len(split.stored()) == 300


def test_the_gate_comparison_never_touches_a_train_side_part(store, monkeypatch, tmp_path):
    """Whatever parts the caller passes, only gate-side parts are replayed, for both recipes."""
    split = GateSplit(store)
    parts = [LabelledPart(i, s, tmp_path / s, i % 3 == 0) for i, s in enumerate(SERIALS[:60])]
    sides = split.sides(p.serial for p in parts)
    touched = []
    monkeypatch.setattr(archive_replay, "_stages", lambda recipe, station: recipe)
    monkeypatch.setattr(archive_replay, "archived_shot_positions",
                        lambda folder, production: touched.append(("shots", Path(folder).name)) or {})
    monkeypatch.setattr(archive_replay, "judge_archive",
                        lambda folder, recipe, shots: touched.append(("judge", Path(folder).name)) or "FAIL")
    progress = []
    prod, cand = compare_on_review_set(REFERENCE_RECIPE, REFERENCE_RECIPE, parts, station=object(), split=split,
                                       progress=lambda d, t: progress.append((d, t)))
    gate_serials = {s for s, side in sides.items() if side == GATE}
    assert {name for _, name in touched} == gate_serials
    assert all(sides[name] == GATE for _, name in touched)
    gate_parts = [p for p in parts if p.serial in gate_serials]
    assert prod.parts == tuple(p.serial for p in gate_parts) and prod.skipped == 0
    assert prod.defective_parts == sum(p.defective for p in gate_parts)
    assert prod.good_parts + prod.defective_parts == len(gate_parts) == progress[-1][1]
    assert prod.overkill == prod.good_parts  # every good part FAILed here
    assert f"{60 - len(gate_parts)} train-side part(s) not used" in prod.notes[0]
    assert prod.recipe_hash == Recipe.load(REFERENCE_RECIPE).hash


def coco(serials):
    images = [{"id": i + 1, "file_name": f"images/r{i:06d}_coarse_top.png",
               "attributes": {"serial": s, "part_row": i}} for i, s in enumerate(serials)]
    images.append({"id": len(images) + 1, "file_name": "images/unknown.png", "attributes": {}})
    annotations = [{"id": i + 1, "image_id": im["id"], "category_id": 1, "bbox": [0, 0, 2, 2]}
                   for i, im in enumerate(images)]
    return {"info": {"split": "review"}, "images": images, "annotations": annotations, "categories": []}


def test_the_labels_for_retraining_hold_no_gate_side_part(store):
    split = GateSplit(store)
    doc, left_out = keep_train_side(coco(SERIALS[:50]), split)
    kept = [im["attributes"]["serial"] for im in doc["images"]]
    assert kept and all(split.side(s) == TRAIN for s in kept)
    gate_serials = {s for s in SERIALS[:50] if split.side(s) == GATE}
    assert gate_serials and not gate_serials & set(kept)
    assert left_out == len(gate_serials) + 1  # the image without a serial is left out too
    ids = {im["id"] for im in doc["images"]}
    assert doc["annotations"] and all(a["image_id"] in ids for a in doc["annotations"])
    assert "train side only" in doc["info"]["review_split"]


def test_the_review_export_can_leave_out_the_gate_side(tmp_path, model_paths):
    """`write_coco(..., keep_serial=split.is_train)`: the export a retraining hook gets holds no gate-side part."""
    import json

    from inspector.demo import run_sim_lot
    from inspector.review import ReviewQueue
    from inspector.review.coco_export import write_coco
    data = json.loads(REFERENCE_RECIPE.read_text())
    data["models"] = {"detector": str(model_paths[0]), "classifier": str(model_paths[1])}
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps(data))
    run_sim_lot(2, first_seed=900_000, speed_factor=20, recipe_path=recipe, db=tmp_path / "r.db",
                archive_dir=tmp_path / "archive", out=lambda *_: None)
    with ResultStore(tmp_path / "r.db") as store:
        from inspector.access import AccessControl
        from tests.access_helpers import staff

        anna = staff(AccessControl(store), ("ines", "integrator", "1111"), ("anna", "qa", "2222"))["anna"]
        queue = ReviewQueue(store)
        queue.enqueue_committed()
        for item in queue.items():
            queue.close(item, anna)
        serials = {store.get(row).serial: row for row in (1, 2)}
        rule = next(r for r in (SplitRule(0.5, f"pick-{i}") for i in range(100))  # one part on each side
                    if len({r.side(s) for s in serials}) == 2)
        split = GateSplit(store, rule)
        sides = split.sides(serials)
        everything = json.loads(write_coco(store, tmp_path / "all")[0].read_text())
        train_only = json.loads(write_coco(store, tmp_path / "train", keep_serial=split.is_train)[0].read_text())
        from inspector.review.queue import _train_side_export  # what the retraining hook is handed
        hooked = json.loads(_train_side_export(store, tmp_path / "hook")[0].read_text())
    assert hooked["images"] == train_only["images"]  # the stored sides decide, whatever the default rule
    assert {im["attributes"]["serial"] for im in everything["images"]} == set(serials)
    assert {im["attributes"]["serial"] for im in train_only["images"]} == {s for s, side in sides.items()
                                                                          if side == TRAIN}
