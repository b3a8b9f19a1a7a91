"""The cycle visits each face once (its coarse view, then its fine shots), judges fine shots on the
worker behind the next move, and a fault there still ends the part as ERROR, never lost."""
import json

import pytest

from hardware.sim.cell import VirtualCell
from hardware.sim.part import Defect, make_part
from inspector.cycle import InspectionCycle
from inspector.demo import REFERENCE_RECIPE
from inspector.devices import open_devices
from inspector.events import FineShotTaken
from inspector.inference.classifier import Classifier
from inspector.inference.detector import Detector
from inspector.recipe import Recipe
from inspector.results.sqlite_store import ResultStore
from inspector.station_config import StationConfig

SCRATCH = Defect(0, "scratch", "top", -6.0, 4.0, 1.5, 0.06, 0.015, 30.0)
DENT = Defect(1, "dent", "north", 3.0, 1.0, 0.6, 0.05, 0.02, 0.0)


@pytest.fixture
def rig(tmp_path, model_paths):
    data = json.loads(REFERENCE_RECIPE.read_text())
    data["models"] = {"detector": str(model_paths[0]), "classifier": str(model_paths[1])}
    recipe = Recipe.from_dict(data, source=str(tmp_path / "recipe.json"))
    with VirtualCell(speed_factor=20.0) as cell, ResultStore(tmp_path / "results.db") as store:
        station = StationConfig.from_dict(cell.station_config_dict())
        devices = open_devices(station, virtual_cell=cell)
        cycle = InspectionCycle(station, devices, recipe, Detector.open(str(model_paths[0])),
                                Classifier.open(str(model_paths[1])), store)
        cycle.home()
        moves = []
        move_to = devices.motion.move_to
        devices.motion.move_to = lambda pose, *a, **k: (moves.append(pose), move_to(pose, *a, **k))[1]
        yield cell, cycle, moves
        cycle.close()
        devices.close()


def faces_visited(cycle, moves) -> list[str]:
    """The face of every move: a view's pose is that face's coarse shot, any other pose a fine shot on
    the face whose view has the same A/B."""
    by_ab = {(v.pose.a, v.pose.b): v.face for v in cycle.recipe.views}
    return [by_ab[(round(p.a, 6), round(p.b, 6))] for p in moves]


def test_each_face_is_visited_once_with_its_fine_shots_right_after_its_view(rig):
    cell, cycle, moves = rig
    cell.load_part(make_part(21, defects=(SCRATCH, DENT)))
    _, record = cycle.inspect("V-1")
    assert record.verdict in ("PASS", "FAIL")
    faces = faces_visited(cycle, moves)
    runs = [f for i, f in enumerate(faces) if i == 0 or faces[i - 1] != f]
    assert sorted(runs) == sorted(v.face for v in cycle.recipe.views)  # one run of moves per face: never back
    views = {v.pose.as_tuple() for v in cycle.recipe.views}
    starts = [i for i, f in enumerate(faces) if i == 0 or faces[i - 1] != f]
    assert all(moves[i].as_tuple() in views for i in starts)  # each face's run starts at its coarse view
    fine = [p for p in moves if p.as_tuple() not in views]
    assert len(fine) == len(record.extra["fine_shots"])  # every planned shot taken once
    names = [s["image"] for s in record.extra["fine_shots"]]
    assert names == [f"fine_{i:02d}_{n.split('_', 2)[2]}" for i, n in enumerate(names)]  # the whole-part plan's order


def test_a_classification_fault_behind_the_next_move_ends_the_part_as_error(rig):
    cell, cycle, _ = rig
    cell.load_part(make_part(22, defects=(SCRATCH, DENT)))
    calls = []

    def broken(frame, boxes):
        calls.append(len(boxes))
        raise RuntimeError("classifier session died")

    cycle.classifier.classify = broken
    shots = []
    cycle.events.subscribe(lambda e: shots.append(e) if isinstance(e, FineShotTaken) else None)
    _, record = cycle.inspect("V-2")
    if not calls:
        pytest.skip("the detector found no candidate on this part")
    assert record.verdict == "ERROR" and "classifier session died" in record.reason
    assert shots == []  # no shot was reported as judged


def test_a_fine_frame_check_fault_on_the_worker_is_error_and_keeps_focus_unverified(rig):
    cell, cycle, _ = rig
    cell.load_part(make_part(23, defects=(SCRATCH,)))
    checked = []

    def failing_check(name, frame, shot):
        checked.append(name)
        from inspector.plausibility import IMPLAUSIBLE, OutOfFocus
        raise OutOfFocus(f"{IMPLAUSIBLE}fine shot {name}: out of focus (injected)")

    cycle.stages.check_fine = failing_check
    cycle.fine_focus_suspect = None
    _, record = cycle.inspect("V-3")
    if not checked:
        pytest.skip("the detector found no candidate on this part")
    assert record.verdict == "ERROR" and "out of focus (injected)" in record.reason
    assert cycle.fine_focus_suspect is not None  # the next part cannot PASS until a shot shows focus again
