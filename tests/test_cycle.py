"""The inspection cycle on the virtual cell: records, faults that end in ERROR (never PASS),
cancel, events, and replay of the archive to the same decisions."""
import json
import sqlite3
import threading

import pytest

from hardware.sim.cell import VirtualCell
from hardware.sim.part import Defect, make_part
from inspector.archive import ImageArchive
from inspector.cycle import InspectionCycle
from inspector.devices import open_devices
from inspector.events import FineShotTaken, VerdictReady, ViewCaptured
from inspector.inference.classifier import Classifier
from inspector.inference.detector import Detector
from inspector.demo import REFERENCE_RECIPE, truth_verdict
from inspector.recipe import Recipe
from inspector.replay import replay_archive
from inspector.results.sqlite_store import ResultStore
from inspector.station_config import StationConfig

SCRATCH = Defect(0, "scratch", "top", -6.0, 4.0, 1.5, 0.06, 0.015, 30.0)


@pytest.fixture
def rig(tmp_path, model_paths):
    data = json.loads(REFERENCE_RECIPE.read_text())
    data["models"] = {"detector": str(model_paths[0]), "classifier": str(model_paths[1])}
    recipe = Recipe.from_dict(data, source=str(tmp_path / "recipe.json"))
    with VirtualCell(speed_factor=20.0) as cell, ResultStore(tmp_path / "results.db") as store:
        station = StationConfig.from_dict(cell.station_config_dict())
        devices = open_devices(station, virtual_cell=cell)
        cycle = InspectionCycle(station, devices, recipe, Detector.open(str(model_paths[0])),
                                Classifier.open(str(model_paths[1])), store,
                                archive=ImageArchive(tmp_path / "archive", pass_sample_every=1))
        cycle.home()
        yield cell, cycle, store, tmp_path
        cycle.close()
        devices.close()


def test_part_record_carries_every_field_and_is_committed_before_the_verdict(rig):
    cell, cycle, store, tmp_path = rig
    cell.load_part(make_part(7, defects=(SCRATCH,)))
    seen, committed_at_publish = [], []

    def watch(event):
        seen.append(type(event).__name__)
        if isinstance(event, VerdictReady):
            raw = sqlite3.connect(store.path)  # another connection: the row must already be durable
            committed_at_publish.append(raw.execute("SELECT verdict FROM parts WHERE id = ?", (event.row,)).fetchone())
            raw.close()

    cycle.events.subscribe(watch)
    row, record = cycle.inspect("P-1", "SN-1")
    assert committed_at_publish == [(record.verdict,)]
    assert seen[0] == "PartStarted" and seen.count("ViewCaptured") == 5 and seen.count("CandidatesFound") == 5
    assert seen[-1] == "VerdictReady"
    stored = store.get(row)
    assert stored == record
    assert record.verdict in ("PASS", "FAIL") and record.reason
    assert record.recipe_id == "housing-40x30" and record.recipe_hash.startswith("sha256:")
    assert set(record.model_versions) == {"detector", "classifier"} and "CPU" in record.provider
    assert {"motion", "exposure", "detect", "detect_wait", "planning", "total"} <= set(record.timings_s)
    assert len(record.image_paths) >= 5 and all(p.endswith(".png") for p in record.image_paths)
    for defect in record.defects:
        assert defect.stage == "fine" and defect.face in ("top", "north", "south", "east", "west")


def test_archive_replays_to_the_same_decisions(rig):
    """Replay has no station state: the fine camera's focus counts as verified (as after any shot that
    showed it), so live and replay judge by the frames alone."""
    cell, cycle, store, tmp_path = rig
    cycle.fine_focus_suspect = None
    for seed in (11, 12):
        cell.load_part(make_part(seed, defects=(SCRATCH,)) if seed == 11 else make_part(seed))
        _, record = cycle.inspect(f"R-{seed}")
        folder = tmp_path / "archive"
        part_dir = next(folder.glob(f"*/R-{seed}"))
        replayed = replay_archive(part_dir, cycle.stages)
        assert replayed.verdict == record.verdict and replayed.reason == record.reason
        assert replayed.defects == record.defects


def test_port_lost_mid_part_is_error_and_never_pass(rig):
    cell, cycle, store, _ = rig
    cell.load_part(make_part(3))
    cycle.events.subscribe(lambda e: cell.motion.vanish() if isinstance(e, ViewCaptured) and e.view == "north" else None)
    row, record = cycle.inspect("F-1")
    assert record.verdict == "ERROR" and "PortClosed" in record.reason
    assert store.get(row).verdict == "ERROR"
    (item,) = cycle.review.items()  # queued for QA by the cycle itself, not only on a later refresh
    assert (item.part_row, item.kind) == (row, "error")


def test_camera_fault_is_error(rig):
    cell, cycle, _, _ = rig
    cell.load_part(make_part(4))
    cycle.devices.cameras["coarse"].fail_next = "frame timeout after 2 s"
    _, record = cycle.inspect("F-2")
    assert record.verdict == "ERROR" and "frame timeout" in record.reason
    cell.load_part(make_part(4))
    _, again = cycle.inspect("F-2b")  # the station recovers for the next part
    assert again.verdict in ("PASS", "FAIL")


def test_model_fault_is_error(rig):
    cell, cycle, _, _ = rig
    cell.load_part(make_part(5))
    cycle.detector.model.input_name = "not-the-input"  # onnxruntime itself refuses the call
    _, record = cycle.inspect("F-3")
    assert record.verdict == "ERROR" and "not-the-input" in record.reason


def test_light_controller_fault_is_error(rig):
    cell, cycle, _, _ = rig
    cell.load_part(make_part(6))
    cell.lights.mute = True
    _, record = cycle.inspect("F-4")
    assert record.verdict == "ERROR" and "ReadTimeout" in record.reason


def test_cancel_mid_part_is_error_and_leaves_lights_off(rig):
    cell, cycle, _, _ = rig
    cell.load_part(make_part(8))
    cycle.events.subscribe(lambda e: cycle.cancel() if isinstance(e, ViewCaptured) and e.view == "south" else None)
    _, record = cycle.inspect("C-1")
    assert record.verdict == "ERROR" and "cancelled" in record.reason
    assert all(c.mode == "off" for c in cell.lights.channel_state().values())
    assert cell.motion.state_name == "Idle"


def test_pause_holds_between_steps(rig):
    cell, cycle, _, _ = rig
    cell.load_part(make_part(9))
    cycle.pause()
    result = {}
    worker = threading.Thread(target=lambda: result.update(record=cycle.inspect("PA-1")[1]))
    worker.start()
    worker.join(1.0)
    assert worker.is_alive() and "record" not in result  # waiting at the first step
    cycle.resume()
    worker.join(60)
    assert result["record"].verdict in ("PASS", "FAIL")


def test_too_many_candidates_is_not_fully_inspected(rig):
    cell, cycle, _, _ = rig
    cell.load_part(make_part(10))
    cycle.stages.thresholds = {name: 0.0 for name in cycle.stages.detector.class_names}
    cycle.recipe = cycle.stages.recipe = cycle.recipe.next_version(
        reimaging=type(cycle.recipe.reimaging)(**{**cycle.recipe.reimaging.__dict__, "max_shots": 1}))
    _, record = cycle.inspect("M-1")
    assert record.verdict == "ERROR" and "not fully inspected" in record.reason


def test_truth_verdict_applies_the_rules():
    recipe = Recipe.load(REFERENCE_RECIPE)
    assert truth_verdict(make_part(1, defects=(SCRATCH,)), recipe) == "FAIL"
    tiny = Defect(0, "scratch", "top", 0, 0, 0.06, 0.02, 0.01)
    assert truth_verdict(make_part(1, defects=(tiny,)), recipe) == "PASS"  # below the 0.1 mm rule
    assert truth_verdict(make_part(1, defects=()), recipe) == "PASS"


def test_fine_shot_event_carries_the_candidate_boxes_in_the_fine_image(rig):
    cell, cycle, store, tmp_path = rig
    cell.load_part(make_part(7, defects=(SCRATCH,)))
    shots = []
    cycle.events.subscribe(lambda e: shots.append(e) if isinstance(e, FineShotTaken) else None)
    row, record = cycle.inspect("P-1", "SN-1")
    if not shots:
        pytest.skip("the detector found no candidate on this part")
    fine_boxes = {d.box_px for d in record.defects}
    for shot in shots:
        height, width = shot.image.shape[:2]
        assert len(shot.boxes) == len(shot.decisions) >= 1
        for x0, y0, x1, y1 in shot.boxes:
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    # the same boxes as the record's fine-stage calls (which are not clipped), where they lie inside the frame
    inside = [b for b in fine_boxes if b[0] >= 0 and b[1] >= 0 and b[2] <= width and b[3] <= height]
    assert set(inside) <= {b for shot in shots for b in shot.boxes}
