"""The 'unknown' outcome in QA review: a real defect of a kind the models do not know. The station
calls a crop 'unknown' (decision review), QA labels calls 'unknown' and may name the new kind; the
training export never feeds such a defect to the models as one of their classes, nor its image as a
negative, and lists it for later. Real SQLite store, real archived PNGs."""
import json
import sys
from pathlib import Path

import pytest

from inspector.promotion.archive_replay import labelled_parts
from inspector.results.records import DefectRecord, PartRecord
from inspector.review import UNKNOWN, LabelHook, ReviewQueue
from tests.test_review import WHO, env, images  # noqa: F401 (env: the fixture)


def finding(cls, decision, image, box=(10, 12, 30, 20)):
    return DefectRecord(cls, 0.41, "top", box, "fine", "top", (1.0, 2.0), 0.3, decision, image)


def part_with(archive: Path, i: int, defects, verdict="FAIL"):
    pid = f"U{i:04d}"
    return PartRecord(part_id=pid, serial=f"SU{i:04d}", started_at=1_700_000_000.0 + i, finished_at=1_700_000_004.0 + i,
                      station="cell-01", recipe_id="housing", recipe_version=4, recipe_hash="sha256:x",
                      model_versions={"classifier": "1.1.0"}, provider="CPU", verdict=verdict,
                      reason="1 uncertain finding(s) (unknown): to review", defects=tuple(defects),
                      image_paths=images(archive, pid, "fine_01_top"))




def test_an_unknown_call_is_stored_enqueued_and_filtered(env):
    store, queue, archive, _ = env
    record = part_with(archive, 1, [finding(UNKNOWN, "review", "fine_00_top"), finding("dent", "defect", "fine_01_top")])
    row = store.write(record)
    assert store.get(row).defects[0].defect_class == UNKNOWN and store.get(row).defects[0].decision == "review"
    ng, grey = queue.enqueue_from_record(row, record)
    assert [(i.kind, i.defect_index) for i in queue.items()] == [("ng", None), ("grey", 0)]
    assert [i.id for i in queue.items(defect_class=UNKNOWN)] == [ng, grey]
    assert [i.id for i in queue.items(defect_class="scratch")] == []
    assert UNKNOWN in queue.defect_labels() and "dent" in queue.defect_labels()  # dent: a kind the records hold


def test_qa_labels_unknown_with_a_name_and_reads_it_back(env):
    store, queue, archive, _ = env
    record = part_with(archive, 1, [finding("scratch", "review", "fine_00_top"), finding(UNKNOWN, "review", "fine_01_top")])
    row = store.write(record)
    _, grey, _ = queue.enqueue_from_record(row, record)
    first = queue.change_class(grey, 0, UNKNOWN, WHO["qa-anna"], name="  porosity cluster ")
    named = queue.labels(grey)[-1]
    assert (named.id, named.action, named.new, named.text, named.who) == (first, "change_class", UNKNOWN,
                                                                          "porosity cluster", "qa-anna")
    assert named.old == "scratch (review)"
    # renaming the kind is a new label; the same label twice is refused
    queue.change_class(grey, 0, UNKNOWN, WHO["qa-ben"], name="gas porosity")
    with pytest.raises(ValueError, match="already labelled 'unknown' named 'gas porosity'"):
        queue.change_class(grey, 0, UNKNOWN, WHO["qa-ben"], name="gas porosity")
    # confirming keeps the name; confirming the station's own unknown call needs no name
    queue.confirm(grey, 0, WHO["qa-carl"])
    assert (queue.labels(grey)[-1].new, queue.labels(grey)[-1].text) == (UNKNOWN, "gas porosity")
    queue.confirm(grey, 1, WHO["qa-carl"])
    assert (queue.labels(grey)[-1].new, queue.labels(grey)[-1].text) == (UNKNOWN, None)
    # unknown is a defect: the promotion gate's review set counts the part as defective
    queue.close(grey, WHO["qa-carl"])
    assert [(p.part_row, p.defective) for p in labelled_parts(queue)] == [(row, True)]


def test_an_unknown_missed_defect_can_be_boxed(env):
    store, queue, archive, _ = env
    record = part_with(archive, 1, [finding("dent", "defect", "fine_00_top")])
    row = store.write(record)
    (item,) = queue.enqueue_from_record(row, record)
    queue.add_box(item, "fine_01_top", (2, 3, 12, 9), UNKNOWN, WHO["qa-anna"], name="weld spatter")
    added = queue.labels(item)[-1]
    assert (added.action, added.new, added.text, added.box_px) == ("add_box", UNKNOWN, "weld spatter", (2, 3, 12, 9))


def test_export_leaves_unknown_images_out_and_lists_them(env):
    store, queue, archive, tmp = env
    row = store.write(part_with(archive, 1, [finding(UNKNOWN, "review", "fine_00_top"),
                                             finding("dent", "defect", "fine_01_top", box=(4, 4, 14, 12))]))
    (ng, grey) = queue.enqueue_from_record(row, store.get(row))
    queue.change_class(grey, 0, UNKNOWN, WHO["qa-anna"], name="porosity")
    queue.confirm(ng, 1, WHO["qa-anna"])
    other = store.write(part_with(archive, 2, [finding("scratch", "review", "fine_00_top")]))
    (_, grey2) = queue.enqueue_from_record(other, store.get(other))
    queue.change_class(grey2, 0, UNKNOWN, WHO["qa-ben"])  # no name given
    queue.close(grey2, WHO["qa-ben"])  # a closed item vouches for all its part's images … except the unknown one

    path = queue.export_coco(tmp / "export")
    doc = json.loads(path.read_text())
    assert sorted(c["name"] for c in doc["categories"]) == ["burr", "dent", "scratch", "stain"]
    files = sorted(Path(i["file_name"]).name for i in doc["images"])
    assert files == sorted([f"r{row:06d}_fine_01_top.png", f"r{other:06d}_coarse_top.png", f"r{other:06d}_fine_01_top.png"])
    assert [(a["bbox"], a["category_id"]) for a in doc["annotations"]] == [([4, 4, 10, 8], 2)]  # the confirmed dent
    summary = doc["info"]["unknown"]
    assert summary["images_left_out"] == 2
    listed = sorted((d["part_row"], d["defect_index"], d["name"], d["source"], Path(d["archived_path"]).name)
                    for d in summary["defects"])
    assert listed == [(row, 0, "porosity", "label", "fine_00_top.png"), (other, 0, None, "label", "fine_00_top.png")]
    assert not (path.parent / "images" / f"r{row:06d}_fine_00_top.png").exists()

    # what training reads back has no 'unknown' in it, and imports as a set of the four kinds
    from training.data.coco import read_coco
    from training.data.importer import import_coco
    from training.data.records import FINE_CATEGORIES
    back = read_coco(path, categories=FINE_CATEGORIES)
    assert {a.category for i in back.images for a in i.annotations} == {"dent"}
    assert len(import_coco(path, tmp / "imported", kind="fine").images) == 3


def test_unknown_labels_do_not_start_retraining(env):
    store, _, archive, tmp = env
    hook = LabelHook(2, command=[sys.executable, "-c", "pass"])
    queue = ReviewQueue(store, hook=hook, export_root=tmp / "exports")
    row = store.write(part_with(archive, 1, [finding(UNKNOWN, "review", "fine_00_top"),
                                             finding(UNKNOWN, "review", "fine_01_top")]))
    _, a, b = queue.enqueue_from_record(row, store.get(row))
    queue.confirm(a, 0, WHO["qa"])
    queue.change_class(b, 1, UNKNOWN, WHO["qa"], name="chatter marks")
    assert queue.pending_labels() == 0 and queue.last_hook_result is None
    queue.change_class(b, 1, "scratch", WHO["qa"])  # once QA says what it is, it is training data
    assert queue.pending_labels() == 1


@pytest.mark.parametrize("call, message", [
    (lambda q, i: q.change_class(i, 0, "porosity", WHO["qa"]),
     "review item {i}: unknown class 'porosity', expected one of scratch, dent, burr, stain, unknown, ok"),
    (lambda q, i: q.change_class(i, 0, "dent", WHO["qa"], name="big dent"),
     "review item {i}: a kind name ('big dent') goes only with class 'unknown', not 'dent'"),
    (lambda q, i: q.change_class(i, 0, UNKNOWN, WHO["qa"], name="two\nlines"),
     "review item {i}: kind name 'two\\nlines' must be one line of 1–80 characters"),
    (lambda q, i: q.change_class(i, 0, UNKNOWN, WHO["qa"], name="   "),
     "review item {i}: kind name '   ' must be one line of 1–80 characters"),
    (lambda q, i: q.add_box(i, "fine_00_top", (1, 1, 5, 5), "porosity", WHO["qa"]),
     "review item {i}: unknown class 'porosity' for a missed defect, expected one of scratch, dent, burr, stain, unknown"),
])
def test_bad_classes_and_names_give_one_line_errors(env, call, message):
    store, queue, archive, _ = env
    row = store.write(part_with(archive, 1, [finding(UNKNOWN, "review", "fine_00_top")]))
    _, item = queue.enqueue_from_record(row, store.get(row))
    with pytest.raises(ValueError) as info:
        call(queue, item)
    assert str(info.value) == message.format(i=item)
    assert queue.labels(item) == []


def test_qa_view_names_an_unknown_kind(env, qtbot):
    """The QA workspace (offscreen Qt) offers 'unknown' with a name field, and the label carries it."""
    pytest.importorskip("PyQt6")
    from inspector.access import AccessControl
    from inspector.demo import REFERENCE_RECIPE
    from ui.qa_view import QAView
    from ui.station_window import qa_station_config

    store, queue, archive, tmp = env
    row = store.write(part_with(archive, 1, [finding(UNKNOWN, "review", "fine_00_top")]))
    queue.enqueue_from_record(row, store.get(row))
    access = AccessControl(store)
    access.add_user("anna", "qa", "2222", by=access.login("ines", "1111"))  # ines: added by the env fixture
    view = QAView(str(store.path), access, recipe_path=REFERENCE_RECIPE, models_dir=REFERENCE_RECIPE.parent,
                  work_dir=tmp / "qa", station_config=qa_station_config(True, None))
    qtbot.addWidget(view)
    view.show()
    try:
        view.set_session(access.login("anna", "2222"))
        panel = view.review
        panel.open_row(0)
        panel.defects.selectRow(0)
        assert not panel.kind_name.isVisible()
        panel.class_choice.setCurrentText(UNKNOWN)
        assert panel.kind_name.isVisible() and panel.kind_name.isEnabled()
        panel.kind_name.setText("porosity")
        panel.change_button.click()
        label = view.review_model.queue.labels(part_row=row)[-1]
        assert (label.action, label.new, label.text, label.who) == ("change_class", UNKNOWN, "porosity", "anna")
        panel.class_filter.setCurrentText(UNKNOWN)
        assert view.review_model.gallery.rowCount() == 2
    finally:
        view.close()
        view.review_model.close()
