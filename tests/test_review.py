"""QA review queue: enqueue rules, filters, relabelling with its audit trail, COCO export that the
training importer reads back, and the retraining hook (command, entry point, failure)."""
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.access import AccessControl, AccessDenied, Session
from inspector.results.records import DefectRecord, PartRecord
from inspector.results.sqlite_store import ResultStore
from inspector.review import LabelHook, ReviewItem, ReviewQueue
from tests.access_helpers import staff

HOOK_CALLS: list[Path] = []


def record_hook(path):
    """Entry point for the hook test (called as tests.test_review:record_hook)."""
    HOOK_CALLS.append(Path(path))
    return "queued"


def failing_hook(path):
    raise RuntimeError("trainer is offline")


def images(folder: Path, part_id: str, fine_01: str = "fine_01_side") -> tuple[str, ...]:
    """A part's archived PNGs (flat grey): coarse_top, fine_00_top and the second fine shot `fine_01`."""
    folder = folder / part_id
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (h, w) in (("coarse_top", (90, 120)), ("fine_00_top", (48, 64)), (fine_01, (40, 50))):
        path = folder / f"{name}.png"
        assert cv2.imwrite(str(path), np.full((h, w), 128, np.uint8))
        paths.append(str(path))
    return tuple(paths)


def defect(cls="scratch", decision="defect", image="fine_00_top", box=(10, 12, 30, 20), stage="fine", view="top"):
    return DefectRecord(cls, 0.8, view, box, stage, "top", (1.0, 2.0), 0.5, decision, image)


def part(archive: Path, i: int, verdict="FAIL", defects=(), recipe="housing", finished=None, reason=None):
    pid = f"P{i:04d}"
    return PartRecord(part_id=pid, serial=f"SN{i:04d}", started_at=1_700_000_000 + 10 * i,
                      finished_at=finished if finished is not None else 1_700_000_004 + 10 * i, station="cell-01",
                      recipe_id=recipe, recipe_version=1, recipe_hash="sha256:x", model_versions={"detector": "1"},
                      provider="CPU", verdict=verdict,
                      reason=reason if reason is not None else ("" if verdict == "PASS" else f"{verdict} reason"),
                      defects=tuple(defects), image_paths=images(archive, pid))


REVIEWERS = (("ines", "integrator", "1111"), ("qa", "qa", "2222"), ("qa-anna", "qa", "2223"),
             ("qa-ben", "qa", "2224"), ("qa-carl", "qa", "2225"), ("line-lead", "operator", "3333"))
WHO: dict = {}  # name → a logged-in session, filled by `env`: labels are made by sessions, never by names


@pytest.fixture
def env(tmp_path, monkeypatch):
    import hashlib

    import inspector.access as access_module
    # the PIN hash's cost is not what these tests are about (tests/test_access_hardening.py times it)
    monkeypatch.setattr(access_module, "hash_pin", lambda pin, salt: hashlib.sha256(salt + pin.encode()).hexdigest())
    store = ResultStore(tmp_path / "results.db")
    queue = ReviewQueue(store, export_root=tmp_path / "exports", kinds=("scratch", "dent", "burr", "stain"))
    WHO.clear()
    WHO.update(staff(AccessControl(store), *REVIEWERS))
    yield store, queue, tmp_path / "archive", tmp_path
    store.close()


def add(store, queue, rec, **kw):
    row = store.write(rec)
    return row, queue.enqueue_from_record(row, rec, **kw)


# -- enqueue ---------------------------------------------------------------------------------------
def test_enqueue_rules(env):
    store, queue, archive, _ = env
    _, ng = add(store, queue, part(archive, 1, "FAIL", [defect(), defect("dent", "review"), defect("burr", "review")]))
    _, passed = add(store, queue, part(archive, 2, "PASS", [defect("stain", "ok")]))
    _, sampled = add(store, queue, part(archive, 3, "PASS"), sample_pass=True)
    _, error = add(store, queue, part(archive, 4, "ERROR"))
    _, grey_pass = add(store, queue, part(archive, 5, "PASS", [defect("dent", "review")]))
    assert len(ng) == 3 and passed == [] and len(sampled) == 1 and len(error) == 1 and len(grey_pass) == 1
    kinds = [(q.kind, q.defect_index) for q in queue.items()]
    assert kinds == [("ng", None), ("grey", 1), ("grey", 2), ("pass_sample", None), ("error", None), ("grey", 0)]
    # idempotent: enqueueing the same record again gives the same items
    row1 = queue.get(ng[0]).part_row
    assert queue.enqueue_from_record(row1, store.get(row1)) == ng
    assert len(queue.items()) == 6


def test_enqueue_checks_the_row(env):
    store, queue, archive, _ = env
    rec = part(archive, 1)
    with pytest.raises(ValueError, match="part row 42: no such part"):
        queue.enqueue_from_record(42, rec)
    row = store.write(rec)
    with pytest.raises(ValueError, match=f"part row {row}: holds part P0001"):
        queue.enqueue_from_record(row, part(archive, 2))


# -- listing ---------------------------------------------------------------------------------------
def test_filters_and_item_fields(env):
    store, queue, archive, _ = env
    row1, (a, grey) = add(store, queue, part(archive, 1, "FAIL", [defect(), defect("dent", "review")]))
    _, (b,) = add(store, queue, part(archive, 2, "ERROR", recipe="cover", finished=1_800_000_000.0))
    _, (c,) = add(store, queue, part(archive, 3, "PASS", [defect("burr", "ok")]), sample_pass=True)
    item = queue.get(a)
    assert isinstance(item, ReviewItem)
    assert (item.part_row, item.serial, item.verdict, item.reason, item.recipe_id, item.kind, item.status) == \
        (row1, "SN0001", "FAIL", "FAIL reason", "housing", "ng", "open")
    assert item.created_at > 0 and len(item.image_paths) == 3 and all(Path(p).is_file() for p in item.image_paths)
    assert len(item.defects) == 2

    def ids(**kw):
        return [q.id for q in queue.items(**kw)]

    assert ids(verdict="FAIL") == [a, grey]
    assert ids(verdict="ERROR") == [b]
    assert ids(defect_class="dent") == [a, grey]
    assert ids(defect_class="burr") == [c]
    assert ids(grey_only=True) == [grey]
    assert ids(recipe_id="cover") == [b]
    assert ids(since=1_750_000_000) == [b]
    assert ids(until=1_750_000_000) == [a, grey, c]
    assert ids(status="open") == [a, grey, b, c]
    queue.close(b, WHO["qa-anna"])
    assert ids(status="done") == [b] and ids(status="open") == [a, grey, c]
    assert ids(verdict="PASS", status="open") == [c]
    with pytest.raises(ValueError, match="status 'closed'"):
        queue.items(status="closed")
    with pytest.raises(ValueError, match="verdict 'NG'"):
        queue.items(verdict="NG")


# -- relabelling -----------------------------------------------------------------------------------
def test_every_relabel_action_leaves_an_audit_row(env):
    store, queue, archive, _ = env
    _, (item, grey) = add(store, queue, part(archive, 1, "FAIL", [defect(), defect("dent", "review"),
                                                                 defect("stain", "defect", box=(1, 1, 5, 5))]))
    l1 = queue.confirm(item, 0, WHO["qa-anna"])
    l2 = queue.reject(item, 1, WHO["qa-anna"])
    l3 = queue.change_class(item, 2, "burr", WHO["qa-ben"])
    l4 = queue.add_box(item, "fine_01_side", (3, 4, 13, 10), "dent", WHO["qa-ben"])
    l5 = queue.note(item, "second scratch hard to see", WHO["qa-ben"])
    l6 = queue.change_class(item, 1, "dent", WHO["qa-anna"])  # changes her mind on the false call
    l7 = queue.confirm(grey, 2, WHO["qa-carl"])  # another item of the same part sees the latest class
    l8 = queue.close(item, WHO["qa-anna"])
    trail = queue.labels(item)
    assert [lb.id for lb in trail] == [l1, l2, l3, l4, l5, l6, l8]
    assert [(lb.action, lb.defect_index, lb.who, lb.old, lb.new) for lb in trail] == [
        ("confirm", 0, "qa-anna", "scratch (defect)", "scratch"),
        ("reject", 1, "qa-anna", "dent (review)", "ok"),
        ("change_class", 2, "qa-ben", "stain (defect)", "burr"),
        ("add_box", None, "qa-ben", None, "dent"),
        ("note", None, "qa-ben", None, None),
        ("change_class", 1, "qa-anna", "ok", "dent"),
        ("close", None, "qa-anna", "open", "done"),
    ]
    assert trail[3].box_px == (3, 4, 13, 10) and trail[3].image_path.endswith("fine_01_side.png")
    assert trail[4].text == "second scratch hard to see"
    assert all(lb.at > 0 for lb in trail)
    (confirm_grey,) = queue.labels(grey)
    assert confirm_grey.id == l7 and (confirm_grey.old, confirm_grey.new) == ("burr", "burr")
    closed = queue.get(item)
    assert closed.status == "done" and closed.closed_by == "qa-anna" and closed.closed_at is not None
    with pytest.raises(ValueError, match=f"review item {item}: is closed"):
        queue.confirm(item, 0, WHO["qa-anna"])
    assert len(queue.labels(part_row=closed.part_row)) == 8



def test_label_changes_are_in_the_audit_log(env):
    """README: label changes are written to the audit log (who, when, old → new), in the label's own
    transaction, and the chain stays intact."""
    store, queue, archive, _ = env
    row, (item,) = add(store, queue, part(archive, 1, "FAIL", [defect(), defect("dent", "defect")]))
    queue.reject(item, 1, WHO["qa-anna"])
    queue.change_class(item, 0, "burr", WHO["qa-ben"])
    queue.add_box(item, "fine_01_side", (3, 4, 13, 10), "dent", WHO["qa-ben"])
    queue.note(item, "burr at the edge", WHO["qa-ben"])
    queue.close(item, WHO["qa-anna"])
    access = AccessControl(store)
    rows = [e for e in reversed(access.audit(target=f"part:{row}")) if e.action.startswith("review_")]
    assert [(e.action, e.who, e.role) for e in rows] == [
        ("review_reject", "qa-anna", "qa"), ("review_change_class", "qa-ben", "qa"), ("review_add_box", "qa-ben", "qa"),
        ("review_note", "qa-ben", "qa"), ("review_close", "qa-anna", "qa")]
    assert (rows[0].old, rows[0].new) == ({"defect": 1, "label": "dent (defect)"}, {"defect": 1, "label": "ok"})
    assert rows[1].new == {"defect": 0, "label": "burr"}
    assert rows[2].new == {"label": "dent", "image": "fine_01_side", "box_px": [3, 4, 13, 10]}
    assert rows[3].reason == "burr at the edge" and (rows[4].old, rows[4].new) == ("open", "done")
    labels = queue.labels(item)
    assert [e.at for e in rows] == [lb.at for lb in labels]  # one time for the label and its audit row
    assert access.verify().ok
    with pytest.raises(AccessDenied):  # a refused relabel writes neither a label nor an audit row
        queue.confirm(item, 0, WHO["line-lead"])
    assert len([e for e in access.audit(target=f"part:{row}") if e.action.startswith("review_")]) == 5

def test_override(env):
    store, queue, archive, _ = env
    row, _ = add(store, queue, part(archive, 1, "FAIL", [defect()]))
    item = queue.add_override(row, WHO["line-lead"], "PASS", "scratch is on the datum face, polished out")
    got = queue.get(item)
    assert got.kind == "override" and got.override_verdict == "PASS" and got.verdict == "FAIL"
    assert queue.effective_verdict(row) == "PASS"
    (lb,) = queue.labels(item)
    assert (lb.action, lb.who, lb.old, lb.new, lb.text) == \
        ("override", "line-lead", "FAIL", "PASS", "scratch is on the datum face, polished out")
    assert store.get(row).verdict == "FAIL"  # the committed record is never rewritten
    with pytest.raises(ValueError, match="needs a reason"):
        queue.add_override(row, WHO["line-lead"], "FAIL", "  ")
    with pytest.raises(ValueError, match="already PASS"):
        queue.add_override(row, WHO["line-lead"], "PASS", "again")
    with pytest.raises(ValueError, match="verdict 'OK'"):
        queue.add_override(row, WHO["line-lead"], "OK", "x")
    with pytest.raises(AccessDenied, match="override refused: needs a logged-in session"):
        queue.add_override(row, "line-lead", "ERROR", "x")  # a name is not a session
    with pytest.raises(AccessDenied, match="override refused: the session of 'line-lead' was not issued by a login"):
        queue.add_override(row, Session("line-lead", "operator"), "ERROR", "x")
    with pytest.raises(ValueError, match="part row 999: no such part"):
        queue.add_override(999, WHO["line-lead"], "PASS", "x")


def test_bad_input_names_the_item_and_the_problem(env):
    store, queue, archive, _ = env
    _, (item,) = add(store, queue, part(archive, 1, "FAIL", [defect(), defect("dust", "nuisance")]))
    cases = [
        (lambda: queue.confirm(77, 0, WHO["qa"]), "review item 77: no such item"),
        (lambda: queue.confirm(item, 2, WHO["qa"]), f"review item {item}: defect index 2 out of range"),
        (lambda: queue.reject(item, -1, WHO["qa"]), f"review item {item}: defect index -1 out of range"),
        (lambda: queue.change_class(item, 0, "crack", WHO["qa"]), f"review item {item}: unknown class 'crack'"),
        (lambda: queue.confirm(item, 1, WHO["qa"]), f"review item {item}: defect 1 is 'dust', not a defect class"),
        (lambda: queue.add_box(item, "fine_00_top", (0, 0, 5, 5), "ok", WHO["qa"]), "unknown class 'ok'"),
        (lambda: queue.add_box(item, "nope", (0, 0, 5, 5), "dent", WHO["qa"]), "image 'nope' is not one of"),
        (lambda: queue.add_box(item, "fine_00_top", (0, 0, 65, 5), "dent", WHO["qa"]), "outside the 64×48 image"),
        (lambda: queue.add_box(item, "fine_00_top", (5, 5, 5, 9), "dent", WHO["qa"]), "0 <= x0 < x1"),
        (lambda: queue.add_box(item, "fine_00_top", (1, 2, 3), "dent", WHO["qa"]), "0 <= x0 < x1"),
        (lambda: queue.note(item, "", WHO["qa"]), f"review item {item}: a note needs text"),
        (lambda: queue.close(12345, WHO["qa"]), "review item 12345: no such item"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    for call, message in [
        (lambda: queue.confirm(item, 0, ""), "review refused: needs a logged-in session"),
        (lambda: queue.reject(item, 0, None), "review refused: needs a logged-in session"),
        (lambda: queue.confirm(item, 0, Session("qa", "qa")), "review refused: the session of 'qa' was not issued"),
        (lambda: queue.confirm(item, 0, WHO["line-lead"]), "line-lead \\(operator\\) may not review"),
    ]:
        with pytest.raises(AccessDenied, match=message):
            call()
    assert queue.labels() == []  # nothing half-written
    queue.change_class(item, 0, "dent", WHO["qa"])
    with pytest.raises(ValueError, match="already labelled 'dent'"):
        queue.change_class(item, 0, "dent", WHO["qa"])


# -- export ----------------------------------------------------------------------------------------
def labelled_queue(store, queue, archive):
    row1, (item1, grey1) = add(store, queue, part(archive, 1, "FAIL", [
        defect("scratch", "defect", "fine_00_top", (10, 12, 30, 20)),
        defect("dent", "review", "fine_01_side", (5, 5, 15, 15)),
        defect("stain", "defect", "", (40, 30, 60, 50), stage="coarse"),  # coarse box: in coarse_top
    ]))
    queue.confirm(item1, 0, WHO["qa-anna"])
    queue.reject(grey1, 1, WHO["qa-anna"])
    queue.add_box(item1, "fine_00_top", (40, 30, 64, 48), "burr", WHO["qa-ben"])
    row2, (item2,) = add(store, queue, part(archive, 2, "FAIL", [defect("dent", "defect", "fine_00_top", (2, 2, 12, 9))]))
    queue.close(item2, WHO["qa-carl"])  # closed without relabel: the station's calls stand
    add(store, queue, part(archive, 3, "FAIL", [defect()]))  # never looked at: not exported
    return row1, row2


def test_export_coco_content_and_reimport(env):
    store, queue, archive, tmp = env
    row1, row2 = labelled_queue(store, queue, archive)
    path = queue.export_coco(tmp / "export")
    assert path.parent == tmp / "export" and path.is_file()
    doc = json.loads(path.read_text())
    cats = {c["id"]: c["name"] for c in doc["categories"]}
    assert sorted(cats.values()) == ["burr", "dent", "scratch", "stain"]
    by_file = {img["file_name"]: img for img in doc["images"]}
    assert sorted(by_file) == [f"images/r{row1:06d}_fine_00_top.png", f"images/r{row1:06d}_fine_01_side.png",
                               f"images/r{row2:06d}_coarse_top.png", f"images/r{row2:06d}_fine_00_top.png",
                               f"images/r{row2:06d}_fine_01_side.png"]
    for name, img in by_file.items():
        assert (path.parent / name).is_file()
        assert (img["width"], img["height"]) == cv2.imread(str(path.parent / name)).shape[1::-1]
    anns = {}
    for ann in doc["annotations"]:
        image = next(i for i in doc["images"] if i["id"] == ann["image_id"])
        anns.setdefault(Path(image["file_name"]).name, []).append((cats[ann["category_id"]], ann["bbox"], ann["attributes"]))
    assert sorted((c, b) for c, b, _ in anns[f"r{row1:06d}_fine_00_top.png"]) == [
        ("burr", [40, 30, 24, 18]), ("scratch", [10, 12, 20, 8])]
    assert f"r{row1:06d}_fine_01_side.png" not in anns  # the rejected call: a negative image, no box
    side = by_file[f"images/r{row1:06d}_fine_01_side.png"]["attributes"]
    assert side["rejected"][0]["box_px"] == [5, 5, 15, 15] and side["serial"] == "SN0001"
    ((cls, box, attrs),) = anns[f"r{row2:06d}_fine_00_top.png"]
    assert (cls, box) == ("dent", [2, 2, 10, 7])
    for items in anns.values():
        for _, _, attrs in items:
            assert attrs["source"] == "review" and attrs["who"].startswith("qa-") and attrs["serial"].startswith("SN")

    from training.data.coco import read_coco
    from training.data.importer import import_coco
    from training.data.records import COARSE_CATEGORIES, FINE_CATEGORIES
    back = read_coco(path, categories=FINE_CATEGORIES)
    assert len(back.images) == 5 and sum(len(i.annotations) for i in back.images) == 3
    scratch = next(a for i in back.images for a in i.annotations if a.category == "scratch")
    assert scratch.box_px == (10, 12, 30, 20) and scratch.attributes["who"] == "qa-anna"
    imported = import_coco(path, tmp / "imported", kind="coarse")
    assert imported.categories == COARSE_CATEGORIES and len(imported.images) == 5
    assert (tmp / "imported" / "manifest.json").is_file()


def test_export_counts_as_the_last_export(env):
    store, queue, archive, tmp = env
    labelled_queue(store, queue, archive)
    assert queue.pending_labels() == 3
    queue.export_coco(tmp / "e1")
    assert queue.pending_labels() == 0
    assert len(queue.exports()) == 1


# -- retraining hook -------------------------------------------------------------------------------
def test_hook_command_fires_at_threshold(env):
    store, _, archive, tmp = env
    hook = LabelHook(3, command=[sys.executable, "-c", "import sys; open(sys.argv[1] + '.seen', 'w')"])
    queue = ReviewQueue(store, hook=hook, export_root=tmp / "exports")
    _, (item,) = add(store, queue, part(archive, 1, "FAIL", [defect(), defect("dent"), defect("burr")]))
    queue.confirm(item, 0, WHO["qa"])
    queue.note(item, "notes do not count", WHO["qa"])
    queue.reject(item, 1, WHO["qa"])
    assert queue.last_hook_result is None and not list((tmp / "exports").glob("*/*.seen"))
    queue.change_class(item, 2, "stain", WHO["qa"])
    result = queue.last_hook_result
    assert result is not None and result.ok and result.labels == 3, result
    assert Path(str(result.export_path) + ".seen").is_file()
    assert queue.pending_labels() == 0
    queue.confirm(item, 0, WHO["qa"])
    assert queue.pending_labels() == 1 and queue.last_hook_result is result  # not due again yet


def test_hook_entry_point(env):
    store, _, archive, tmp = env
    HOOK_CALLS.clear()
    queue = ReviewQueue(store, hook=LabelHook(2, entry_point="tests.test_review:record_hook"),
                        export_root=tmp / "exports")
    _, (item,) = add(store, queue, part(archive, 1, "FAIL", [defect(), defect("dent")]))
    queue.confirm(item, 0, WHO["qa"])
    assert HOOK_CALLS == []
    queue.add_box(item, "coarse_top", (0, 0, 10, 10), "stain", WHO["qa"])
    assert len(HOOK_CALLS) == 1 and HOOK_CALLS[0].is_file()
    assert queue.last_hook_result.ok and "queued" in queue.last_hook_result.message
    doc = json.loads(HOOK_CALLS[0].read_text())
    assert len(doc["annotations"]) == 2
    assert queue.exports()[-1][3] is True


def test_failing_hook_keeps_the_labels_and_fires_again(env, caplog):
    store, _, archive, tmp = env
    for hook in (LabelHook(2, entry_point="tests.test_review:failing_hook"),
                 LabelHook(2, command=[sys.executable, "-c", "raise SystemExit(3)"]),
                 LabelHook(2, entry_point="tests.no_such_module:run"),
                 LabelHook(2, command=[str(tmp / "no_such_trainer")])):
        queue = ReviewQueue(store, hook=hook, export_root=tmp / "exports")
        _, (item,) = add(store, queue, part(archive, len(store.query()) + 1, "FAIL", [defect(), defect("dent")]))
        before = queue.pending_labels()
        queue.confirm(item, 0, WHO["qa"])  # never raises, whatever the hook does
        queue.reject(item, 1, WHO["qa"])
        result = queue.last_hook_result
        assert result is not None and not result.ok and "hook failed" in result.message
        assert result.export_path.is_file()  # the export itself is kept
        assert [lb.action for lb in queue.labels(item)] == ["confirm", "reject"]
        assert queue.pending_labels() == before + 2  # not counted as delivered: the next label fires again
        queue.close(item, WHO["qa"])
    assert "hook failed" in caplog.text
    assert [e[3] for e in queue.exports()] == [False] * 7  # 1 + 2 + 2 + 2: each label re-fires while undelivered


def test_label_hook_validation():
    with pytest.raises(ValueError, match="exactly one"):
        LabelHook(5)
    with pytest.raises(ValueError, match="exactly one"):
        LabelHook(5, command=["x"], entry_point="a:b")
    with pytest.raises(ValueError, match="'module:function'"):
        LabelHook(5, entry_point="os.system")
    with pytest.raises(ValueError, match="positive"):
        LabelHook(0, command=["true"])


def test_tables_live_in_the_store_file(tmp_path):
    with ResultStore(tmp_path / "results.db") as store:
        queue = ReviewQueue(store)
        _, (item,) = add(store, queue, part(tmp_path / "archive", 1, "FAIL", [defect()]))
        queue.confirm(item, 0, staff(AccessControl(store), ("ines", "integrator", "1111"), ("qa", "qa", "2222"))["qa"])
    with ResultStore(tmp_path / "results.db") as again:
        queue2 = ReviewQueue(again)
        assert [lb.action for lb in queue2.labels(item)] == ["confirm"]
        assert queue2.get(item).serial == "SN0001"
        tables = {r[0] for r in again._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"parts", "review_items", "review_labels", "review_exports"} <= tables
