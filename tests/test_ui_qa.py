"""The QA workspace in real Qt (offscreen) on parts the virtual cell inspected: open an item, relabel
a call, drag a missed box, note, export COCO and read it back; roles (QA relabels, an operator sees
disabled buttons and the core refuses); refresh picks up new parts; the background job runner with
real commands; compare → gate → promote with the reason in the audit log."""
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import pytest

pytest.importorskip("PyQt6")

from PyQt6.QtCore import QPoint, Qt  # noqa: E402

from inspector.access import AccessControl, AccessDenied  # noqa: E402
from inspector.demo import REFERENCE_RECIPE, run_sim_lot  # noqa: E402
from inspector.inference.detector import Detector  # noqa: E402
from inspector.promotion import HELDOUT_LOT, GateSplit, ModelPair, SplitRule  # noqa: E402
from inspector.recipe import Recipe  # noqa: E402
from inspector.results.sqlite_store import ResultStore  # noqa: E402
from ui.job_worker import CommandJob, JobStep, parse_progress  # noqa: E402
from ui.qa_view import QAView  # noqa: E402
from ui.station_window import qa_station_config  # noqa: E402
from tests.model_files import candidate_pair  # noqa: E402


@pytest.fixture(scope="module")
def lot(tmp_path_factory, model_paths):
    """Two parts inspected on the virtual cell, images archived (built once, copied per test)."""
    root = tmp_path_factory.mktemp("qa_lot")
    data = json.loads(REFERENCE_RECIPE.read_text())
    data["models"] = {"detector": str(model_paths[0]), "classifier": str(model_paths[1])}
    recipe = root / "recipe.json"
    recipe.write_text(json.dumps(data))
    run_sim_lot(2, first_seed=900_000, speed_factor=20, recipe_path=recipe, db=root / "results.db",
                archive_dir=root / "archive", out=lambda *_: None)
    return root, recipe


@pytest.fixture
def station(lot, tmp_path, qtbot):
    root, recipe = lot
    db = tmp_path / "results.db"
    shutil.copy(root / "results.db", db)
    store = ResultStore(db)
    access = AccessControl(store)
    access.add_user("ines", "integrator", "1111", by=access.system_session("commissioning"))
    boss = access.login("ines", "1111")
    access.add_user("anna", "qa", "2222", by=boss)
    access.add_user("otto", "operator", "3333", by=boss)
    view = QAView(str(db), access, recipe_path=recipe, models_dir=Path(recipe).parent, work_dir=tmp_path / "qa",
                  station_config=qa_station_config(True, None))
    qtbot.addWidget(view)
    view.resize(1280, 800)
    view.show()
    yield view, access, store, recipe
    view.close()
    view.review_model.close()
    store.close()


def open_item_with_calls(view):
    """Open the first gallery item whose part has station calls; returns (item, call index)."""
    panel = view.review
    for row, item in enumerate(view.review_model.gallery.items()):
        called = [i for i, d in enumerate(item.defects) if d.decision in ("defect", "review")]
        if called:
            panel.open_row(row)
            return view.review_model.current, called[0]
    pytest.skip("the models called nothing on these parts")


def drag(qtbot, canvas, start, end):
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(canvas, end)
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=end)


def test_qa_relabels_draws_a_missed_box_and_exports(station, qtbot, tmp_path):
    view, access, store, _ = station
    view.set_session(access.login("anna", "2222"))
    panel = view.review
    assert view.review_model.gallery.rowCount() >= 2
    item, index = open_item_with_calls(view)
    assert item is not None and item.serial in panel.record.text() and item.verdict in panel.record.text()
    assert panel.canvas.path and not panel.canvas.image.isNull()  # the coarse frame of the call's view
    assert Path(panel.canvas.path).stem.startswith("coarse_") and panel.canvas.overlays
    assert panel.crops.count() == sum(Path(p).stem.startswith("fine_") for p in item.image_paths)
    assert panel.defects.rowCount() == len(item.defects)

    # relabel one call
    panel.defects.selectRow(index)
    assert panel.change_button.isEnabled()
    new_class = "stain" if item.defects[index].defect_class != "stain" else "burr"
    panel.class_choice.setCurrentText(new_class)
    panel.change_button.click()
    labels = view.review_model.queue.labels(part_row=item.part_row)
    assert [(lb.action, lb.defect_index, lb.new, lb.who) for lb in labels] == [("change_class", index, new_class, "anna")]
    assert panel.defects.item(index, 5).text() == new_class

    # draw a missed box on the coarse frame
    coarse = next(p for p in item.image_paths if Path(p).stem.startswith("coarse_"))
    panel.show_image(coarse)
    panel.draw_button.click()
    assert panel.canvas.drawing
    canvas = panel.canvas
    start, end = canvas.to_widget(100, 100), canvas.to_widget(160, 140)
    drag(qtbot, canvas, QPoint(int(start.x()), int(start.y())), QPoint(int(end.x()), int(end.y())))
    assert canvas.pending is not None
    x0, y0, x1, y1 = canvas.pending
    assert abs(x0 - 100) <= 3 and abs(y0 - 100) <= 3 and abs(x1 - 160) <= 3 and abs(y1 - 140) <= 3
    assert panel.add_box_button.isEnabled()
    panel.box_class.setCurrentText("scratch")
    panel.add_box_button.click()
    added = [lb for lb in view.review_model.queue.labels(part_row=item.part_row) if lb.action == "add_box"]
    assert len(added) == 1 and added[0].new == "scratch" and added[0].who == "anna"
    assert added[0].image_path == coarse and added[0].box_px == canvas_box(x0, y0, x1, y1)
    assert any(o.kind == "added" for o in panel.canvas.overlays)

    # a note, then export
    panel.note_edit.setText("boxed a scratch the detector missed")
    panel.note_button.click()
    assert panel.history.count() == 3 and "note: boxed a scratch" in panel.history.item(0).text()
    path = panel.export(str(tmp_path / "export"))
    assert path is not None and path.is_file()
    coco = json.loads(path.read_text())
    categories = {c["id"]: c["name"] for c in coco["categories"]}
    boxes = [(categories[a["category_id"]], a["bbox"], a["attributes"]["action"]) for a in coco["annotations"]]
    assert ("scratch", [x0, y0, x1 - x0, y1 - y0], "add_box") in boxes
    assert any(name == new_class and action == "change_class" for name, _, action in boxes)
    assert all((path.parent / im["file_name"]).is_file() for im in coco["images"])
    assert str(path) in [p for _, p, _, _, _ in view.review_model.queue.exports()]
    assert view.grab().save(str(tmp_path / "qa_review.png"))


def test_without_station_config_qa_says_so(station):
    """No calibration (a real station whose --config did not load): QA maps nothing from mm with the
    virtual cell's values; the coarse-frame overlays and the review-set comparison say what is missing."""
    view, access, _, _ = station
    view.set_session(access.login("anna", "2222"))
    panel = view.review
    item, _ = open_item_with_calls(view)
    coarse = next((p for p in item.image_paths if Path(p).stem.startswith("coarse_")
                   and any(d.image_path != Path(p).stem and Path(p).stem == f"coarse_{d.view}" for d in item.defects)),
                  None)
    if coarse is None:
        pytest.skip("no call of these parts is drawn on a coarse frame")
    panel.show_image(coarse)
    with_calibration = len(panel.canvas.overlays)
    view.set_station_config(None)
    panel.show_image(coarse)
    assert len(panel.canvas.overlays) < with_calibration
    assert "no station config" in panel.status.text() and "--config" in panel.status.text()
    view.promotion.compare_button.click()
    assert "error: review set: no station config" in view.promotion.log.toPlainText()
    view.set_station_config(qa_station_config(True, None))
    panel.show_image(coarse)
    assert len(panel.canvas.overlays) == with_calibration


def canvas_box(*box):
    return tuple(int(v) for v in box)


def test_operator_cannot_relabel(station):
    view, access, store, _ = station
    operator = access.login("otto", "3333")
    view.set_session(operator)
    panel = view.review
    item, index = open_item_with_calls(view)
    panel.defects.selectRow(index)
    for button in (panel.confirm_button, panel.reject_button, panel.change_button, panel.draw_button,
                   panel.add_box_button, panel.note_button, panel.close_button, panel.export_button):
        assert not button.isEnabled(), button.text()
    assert not view.promotion.start_button.isEnabled() and not view.promotion.promote_button.isEnabled()
    # the core refuses too, whatever the widgets do
    with pytest.raises(AccessDenied, match="otto \\(operator\\) may not review"):
        view.review_model.queue.for_session(operator).confirm(item.id, index)
    with pytest.raises(AccessDenied):
        view.review_model.queue.for_session(operator).export_coco(view.work_dir / "x")
    errors = []
    view.review_model.errored.connect(errors.append)
    assert view.review_model.confirm(index) is None and "may not review" in errors[-1]
    assert view.review_model.queue.labels() == []
    # a QA login enables them
    view.set_session(access.login("anna", "2222"))
    panel.defects.selectRow(index)
    assert panel.confirm_button.isEnabled() and panel.export_button.isEnabled()
    view.set_session(None)
    assert not panel.confirm_button.isEnabled()


def test_filters_and_refresh_pick_up_new_parts(station):
    view, access, store, _ = station
    panel = view.review
    panel.status_filter.setCurrentText("any")
    total = view.review_model.gallery.rowCount()
    panel.verdict_filter.setCurrentText("FAIL")
    fails = view.review_model.gallery.rowCount()
    assert all(it.verdict == "FAIL" for it in view.review_model.gallery.items())
    panel.grey_filter.setChecked(True)
    assert all(it.kind == "grey" for it in view.review_model.gallery.items())
    panel.grey_filter.setChecked(False)
    panel.verdict_filter.setCurrentText("any")
    assert view.review_model.gallery.rowCount() == total >= fails
    panel.dates_filter.setChecked(True)  # the last 7 days include now
    assert view.review_model.gallery.rowCount() == total
    panel.since_edit.setDate(panel.since_edit.date().addYears(-10))
    panel.until_edit.setDate(panel.until_edit.date().addYears(-9))
    assert view.review_model.gallery.rowCount() == 0
    panel.dates_filter.setChecked(False)
    # the station writes another part while QA works
    record = store.get(1)
    store.write(replace(record, part_id="SIM-NEW", serial="SIM-NEW", verdict="ERROR", reason="camera timeout"))
    view.refresh()
    assert view.review_model.gallery.rowCount() >= total + 1
    assert sum(it.serial == "SIM-NEW" for it in view.review_model.gallery.items()) >= 1  # an item per reason to review
    assert any(it.serial == "SIM-NEW" and it.kind == "error" for it in view.review_model.gallery.items())
    assert panel.recipe_filter.findText(record.recipe_id) >= 0


def test_job_runner_progress_cancel_and_failure(qtbot):
    assert parse_progress("detector:  12%|██   | 420/3500 [00:10<01:00]") == (420, 3500)
    assert parse_progress("  eval: 50/300 parts") == (50, 300)
    assert parse_progress("step 500: val AP 0.812") is None
    job = CommandJob()
    seen, lines = [], []
    job.progress.connect(lambda d, t: seen.append((d, t)))
    job.output.connect(lines.append)
    code = "import sys, time\nfor i in range(1, 4):\n    print(f'bar {i}/3', end='\\r', file=sys.stderr, flush=True)\n"
    with qtbot.waitSignal(job.finished, timeout=30_000) as done:
        job.start([JobStep("first", [sys.executable, "-c", code]), JobStep("second", [sys.executable, "-c", "print('ok')"])])
    assert done.args == [True, "done: 2 step(s)"]
    assert seen == [(1, 3), (2, 3), (3, 3)] and "ok" in lines
    errors = []
    job.errored.connect(errors.append)
    with qtbot.waitSignal(job.finished, timeout=30_000) as done:
        job.start([JobStep("broken", [sys.executable, "-c", "import sys; print('no data'); sys.exit(3)"])])
    assert done.args[0] is False and errors == ["broken failed (exit 3): no data"]
    with qtbot.waitSignal(job.finished, timeout=30_000) as done:
        job.start([JobStep("long", [sys.executable, "-c", "import time; print('1/100', flush=True); time.sleep(60)"])])
        qtbot.waitUntil(lambda: (1, 100) in seen, timeout=10_000)
        job.cancel()
    assert done.args == [False, "cancelled during long"] and not job.is_running()


def test_compare_gate_and_promote(station, qtbot, tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    view, access, store, recipe = station
    panel, model = view.promotion, view.promotion_model
    # production models in a folder of their own (promotion replaces them), the recipe pointing at them
    models = tmp_path / "models"
    models.mkdir()
    data = json.loads(Path(recipe).read_text())
    for role in ("detector", "classifier"):
        shutil.copy(data["models"][role], models / f"{role}.onnx")
    data["models"] = {"detector": "detector.onnx", "classifier": "classifier.onnx"}
    (models / "recipe.json").write_text(json.dumps(data))
    model.recipe_path, model.models_dir = models / "recipe.json", models
    candidate = candidate_pair(models, tmp_path / "candidate", "classifier", "2.0.0-qa")
    # a labelled review set
    qa = access.login("anna", "2222")
    view.set_session(qa)
    item, index = open_item_with_calls(view)
    view.review_model.confirm(index)
    panel.split_rule = SplitRule(gate_share=0.999)  # the labelled part lands on the gate side
    # held-out reports already there for both recipes (the eval subprocess is another test's business)
    panel.heldout_parts.setValue(10)
    panel.candidate_edit.setText(str(candidate))
    panel._candidate_edited()
    candidate_recipe = model.prepare_candidate()
    assert candidate_recipe == candidate / "candidate.recipe.json"
    for which, path in (("production", model.recipe_path), ("candidate", candidate_recipe)):
        out = panel._eval_dir(path, which)
        out.mkdir(parents=True)
        (out / "report.json").write_text(json.dumps({
            "summary": {"escape": {"count": 0, "of": 5}, "line_overkill": {"count": 1, "of": 5}},
            "parts": [], "recipe": {"hash": Recipe.load(path).hash}, "lot": {"parts": 10}}))
    assert not panel.promote_button.isEnabled()
    panel.compare_button.click()
    qtbot.waitUntil(lambda: model.gate_result is not None, timeout=60_000)
    assert model.gate_result.passed, model.gate_result.failures
    assert panel.table.item(2, 0).text() == "0/5 (0.0 %)" and panel.table.item(3, 1).text() == "1/5 (20.0 %)"
    assert "Gate PASSED" in panel.gate_label.text() and "percentage points" in panel.rule_label.text()
    qtbot.waitUntil(panel.promote_button.isEnabled, timeout=10_000)
    # an operator sees it disabled
    view.set_session(access.login("otto", "3333"))
    assert not panel.promote_button.isEnabled()
    view.set_session(qa)
    assert panel.promote_button.isEnabled()
    view.tabs.setCurrentWidget(panel)
    assert view.grab().save(str(tmp_path / "qa_promote.png"))
    monkeypatch.setattr("ui.promotion_panel.QInputDialog.getText", lambda *a, **k: ("relabelled dents, review set clean", True))
    scored = Recipe.load(candidate_recipe)
    assert model.comparison.candidate_recipe_hash == scored.hash
    assert model.production_figures["review set"].parts  # judged on the gate side
    panel.promote_button.click()
    promoted = Recipe.load(models / "recipe.json")
    rows = access.audit(target=f"recipe:{promoted.id}")
    assert len(rows) == 1 and rows[0].who == "anna"
    assert rows[0].new["models"]["classifier"]["version"] == "2.0.0-qa"
    assert rows[0].reason.startswith("relabelled dents, review set clean")
    assert promoted.models["classifier"] == "classifier-2.0.0-qa.onnx" and promoted.classes == scored.classes
    assert promoted.model_sha256("classifier") == scored.model_sha256("classifier")
    assert not panel.promote_button.isEnabled()  # production changed: compare again first
    assert model.gate_result is None and HELDOUT_LOT  # figures cleared with the comparison


def test_retraining_job_from_the_panel(station, qtbot, tmp_path, monkeypatch):
    """The panel's job: the review export's coarse frames feed the detector, fine shots (with rejected
    calls as 'ok' ROIs) the classifier; the finished job leaves a candidate pair ready to compare."""
    from ui import promotion_panel
    from ui.retrain_job import retrain_steps, review_subset
    view, access, store, recipe = station
    view.set_session(access.login("anna", "2222"))
    item, index = open_item_with_calls(view)
    view.review_model.reject(index)
    coarse = next(p for p in item.image_paths if Path(p).stem.startswith("coarse_"))
    view.review_model.add_box(coarse, (10, 10, 40, 30), "burr")
    coco = view.review_model.export(tmp_path / "export")
    train_side = GateSplit(store, SplitRule(gate_share=0.001))  # this test's parts land on the train side
    fine = json.loads(review_subset(coco, "fine", train_side).read_text())
    assert fine["images"] and all("_fine_" in im["file_name"] for im in fine["images"])
    ok_id = next(c["id"] for c in fine["categories"] if c["name"] == "clean_spot")
    assert any(a["category_id"] == ok_id for a in fine["annotations"])
    assert all(a["attributes"]["target"] for a in fine["annotations"])
    coarse_set = json.loads(review_subset(coco, "coarse", train_side).read_text())
    assert all("_coarse_" in im["file_name"] for im in coarse_set["images"]) and coarse_set["annotations"]
    with ResultStore(tmp_path / "other.db") as other:  # a split that put these parts on the gate side
        gate_side = GateSplit(other, SplitRule(gate_share=0.999))
        assert json.loads(review_subset(coco, "fine", gate_side).read_text())["images"] == []
    steps = retrain_steps("detector", coco, tmp_path / "job", 20, split=train_side, data_root=tmp_path / "none",
                          version="t1")
    assert [s.label for s in steps] == ["import labels", "train detector", "export detector"]
    assert steps[1].command[1:] == ["-m", "training", "train", "detector", "--train", str(tmp_path / "job" / "data"),
                                    "--val", str(tmp_path / "job" / "data"), "--out", str(tmp_path / "job" / "train"),
                                    "--threads", "1", "--iterations", "20"]
    assert "--epochs" in retrain_steps("classifier", coco, tmp_path / "job2", 3, split=train_side)[1].command
    # the panel runs the steps in the background (here a short stand-in for training) and picks up the candidate
    panel = view.promotion
    assert panel.latest_export() == coco and panel.start_button.isEnabled()

    panel.split_rule = SplitRule(gate_share=0.001)

    def fake_steps(role, coco_path, job_dir, count, split, channels):
        assert split.stored() == train_side.stored() and channels == Detector.open(str(panel.model.production().detector)).channels  # the production detector's input
        code = (f"import shutil, pathlib; p = pathlib.Path({str(job_dir)!r}) / 'candidate'; p.mkdir(parents=True); "
                f"[print(f'{{i}}/{count}', flush=True) for i in range(1, {count} + 1)]; "
                f"shutil.copy({str(panel.model.production().detector)!r}, p / 'detector.onnx')")
        return [JobStep(f"train {role}", [sys.executable, "-c", code])]

    monkeypatch.setattr(promotion_panel, "retrain_steps", fake_steps)
    panel.retrain_count.setValue(4)
    with qtbot.waitSignal(panel.job.finished, timeout=30_000) as done:
        panel.start_button.click()
        assert not panel.start_button.isEnabled() and panel.cancel_button.isEnabled()
    assert done.args[0] is True
    assert panel.progress.value() == 1 and "4/4" in panel.log.toPlainText()
    candidate = ModelPair.in_folder(panel.candidate_edit.text())
    assert candidate.missing() == [] and panel.model.candidate == candidate
    assert panel.start_button.isEnabled() and not panel.cancel_button.isEnabled()


def test_retraining_refuses_an_export_without_the_models_images(station, qtbot, tmp_path):
    """An export whose labels are all on fine shots cannot retrain the detector: the panel says so in
    plain words before any job starts (not numpy's "high <= 0" minutes later); the classifier can."""
    view, access, store, _ = station
    view.set_session(access.login("anna", "2222"))
    item, _ = open_item_with_calls(view)
    fine = next((p for p in item.image_paths if Path(p).stem.startswith("fine_")), None)
    if fine is None:
        pytest.skip("no fine shot on this part")
    view.review_model.add_box(fine, (2, 2, 20, 20), "burr")  # a label on a fine shot only
    coco = view.review_model.export(tmp_path / "export")
    assert coco is not None and all("_fine_" in im["file_name"] for im in json.loads(coco.read_text())["images"])
    panel = view.promotion
    panel.split_rule = SplitRule(gate_share=0.001)  # these parts on the train side
    panel.retrain_model.setCurrentText("detector")
    panel.start_button.click()
    assert not panel.job.is_running()
    text = panel.refusal_label.text()
    assert panel.refusal_label.isVisibleTo(panel)
    assert "holds no coarse-frame labels" in text and "the detector cannot be retrained from it" in text, text
    assert "export the labels again" in text and "high <=" not in text
    assert text in panel.log.toPlainText()
    with pytest.raises(ValueError, match="holds no coarse-frame labels"):
        from ui.retrain_job import check_training_data
        check_training_data(coco, "detector", GateSplit(store, SplitRule(gate_share=0.001)))
    # the gate side is never trained on: an export whose parts all sit there is refused too
    with ResultStore(tmp_path / "other.db") as other:
        with pytest.raises(ValueError, match="all belong to parts on the gate side"):
            check_training_data(coco, "classifier", GateSplit(other, SplitRule(gate_share=0.999)))
    check_training_data(coco, "classifier", GateSplit(store, SplitRule(gate_share=0.001)))  # fine shots: accepted


def test_a_stacking_production_recipe_exports_stacks_and_refuses_a_mono_export(station, qtbot, tmp_path):
    """When the production recipe's views stack channels (bright, dark, curvature), the QA export builds
    those stacks from each part's archived capture (these parts were captured in one step: their coarse
    frames are skipped, never exported mono), needs the station config to build them, and the panel
    refuses to retrain the detector on an export of mono first frames."""
    from training.lights import DETECTOR_CHANNELS, coarse_program_dict
    view, access, store, recipe = station
    view.set_session(access.login("anna", "2222"))
    item, _ = open_item_with_calls(view)
    coarse = next(p for p in item.image_paths if Path(p).stem.startswith("coarse_"))
    view.review_model.add_box(coarse, (10, 10, 40, 30), "burr")
    data = json.loads(Path(recipe).read_text())
    for v in data["views"]:
        v.pop("channels", None)  # a production recipe whose detector takes the first frame: frames as archived
    legacy = tmp_path / "legacy.recipe.json"
    legacy.write_text(json.dumps(data))
    view.review_model.recipe_path = legacy
    mono = view.review_model.export(tmp_path / "mono")
    assert "channels" not in json.loads(mono.read_text())["info"]
    data["light_programs"]["coarse"] = coarse_program_dict()
    for v in data["views"]:
        v["channels"] = list(DETECTOR_CHANNELS)
    stacking = tmp_path / "stacking.recipe.json"
    stacking.write_text(json.dumps(data))
    view.review_model.recipe_path = view.promotion_model.recipe_path = stacking
    panel = view.promotion
    panel.split_rule = SplitRule(gate_share=0.001)
    panel.retrain_model.setCurrentText("detector")
    panel.start_button.click()
    assert not panel.job.is_running()
    text = panel.refusal_label.text()
    assert "holds its coarse frames as mono first frames" in text and "export the labels again" in text, text
    stacked = view.review_model.export(tmp_path / "stacked")
    doc = json.loads(stacked.read_text())
    assert doc["info"]["channels"] == list(DETECTOR_CHANNELS)
    assert not [im for im in doc["images"] if "@" in im["file_name"]]
    for im in doc["images"]:  # the lot was captured in every step: its coarse frames are exported as stacks
        if "_coarse_" in im["file_name"]:
            assert cv2.imread(str(stacked.parent / im["file_name"]), cv2.IMREAD_UNCHANGED).shape[2:] == (3,)
    view.review_model.set_station_config(None)
    errors = []
    view.review_model.errored.connect(errors.append)
    assert view.review_model.export(tmp_path / "no-config") is None
    assert "stacks of ['bright', 'dark', 'curvature']" in errors[-1] and "no station config" in errors[-1]


def test_export_asks_for_a_folder_and_label_changes_are_audited(station, qtbot, tmp_path, monkeypatch):
    """Export labels (COCO)… opens a folder dialog (never writes relative to the working directory);
    a non-empty folder gets a new review_<time> folder inside; the relabel is in the audit log."""
    view, access, store, _ = station
    view.set_session(access.login("anna", "2222"))
    panel = view.review
    item, index = open_item_with_calls(view)
    panel.defects.selectRow(index)
    panel.reject_button.click()
    entry = access.audit(action="review_reject")[0]
    assert entry.who == "anna" and entry.target == f"part:{item.part_row}"
    assert entry.new == {"defect": index, "label": "ok"}
    monkeypatch.chdir(tmp_path)  # a relative default would land here
    panel.export_button.click()
    dialog = panel.export_dialog
    assert dialog is not None and dialog.isVisible()
    assert Path(dialog.directory().absolutePath()) == view.review_model.queue.export_root.resolve()
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    (chosen / "something.txt").write_text("not ours")
    with qtbot.waitSignal(view.review_model.message, timeout=10_000):
        dialog.selectFile(str(chosen))
        dialog.accept()
    exported = [Path(p) for _, p, _, _, _ in view.review_model.queue.exports()]
    assert len(exported) == 1 and exported[0].is_absolute()
    assert exported[0].parent.parent == chosen and exported[0].parent.name.startswith("review_")
    assert (chosen / "something.txt").read_text() == "not ours"
    assert str(exported[0]) in panel.status.text()
    assert not list(tmp_path.glob("*.coco.json")) and not (tmp_path / "images").exists()


def test_an_open_item_fits_the_space_of_a_1024x768_screen(station, qtbot):
    """With an item open (record, calls, fine shots, the 'unknown' name field shown) in the space the
    station window gives a workspace at 1024x768 (1020x666), every button is fully on screen."""
    import os

    from PyQt6.QtWidgets import QAbstractButton

    from tests.test_ui_fit import clipped_by, tab_states
    view, access, _, _ = station
    view.set_session(access.login("anna", "2222"))
    _, index = open_item_with_calls(view)
    view.review.defects.selectRow(index)
    view.review.class_choice.setCurrentText("unknown")
    view.resize(1020, 666)
    qtbot.wait(20)
    assert (view.width(), view.height()) == (1020, 666), view.minimumSizeHint()
    clipped = []
    for state in tab_states(view):
        qtbot.wait(20)
        if os.environ.get("SHOTS_DIR"):
            view.grab().save(os.path.join(os.environ["SHOTS_DIR"], f"qa-item-1020x666-{len(clipped)}-{state[:6]}.png"))
        for button in (b for b in view.findChildren(QAbstractButton) if b.isVisible() and b.text()):
            if why := clipped_by(button, view):
                clipped.append(f"[{state}] {button.text()}: {why}")
    assert view.review.kind_name.isVisible() and clipped == []

