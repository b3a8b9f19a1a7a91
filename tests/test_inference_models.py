"""The shipped models: they load through the station's loader, carry a complete contract and a
card that matches them, and find a plainly visible defect in a frame the virtual cell renders."""
import hashlib
import json
from pathlib import Path

import pytest

from training.data.generate import coarse_input

from hardware.sim.geometry import COARSE_CAMERA, FINE_CAMERA, face_point_pose, face_view_pose, pixel_to_face
from hardware.sim.part import Defect, make_part
from hardware.sim.render import render
from inspector.inference.classifier import Classifier
from inspector.inference.detector import Detector
from inspector.inference.loaded_model import load_model
from training.lights import COARSE_PROGRAM, FINE_PROGRAM

MODELS = Path(__file__).resolve().parents[1] / "models"
DETECTOR, CLASSIFIER = MODELS / "detector.onnx", MODELS / "classifier.onnx"


@pytest.mark.parametrize("path,task", [(DETECTOR, "detect"), (CLASSIFIER, "classify")])
def test_shipped_model_contract_and_card(path, task):
    model = load_model(path, task=task, class_names=["scratch", "dent", "burr", "stain"], prefer=["CPU"])
    info = model.info
    assert info.training_data_fingerprint.startswith("sha256:") and info.version
    assert set(info.thresholds) == {"scratch", "dent", "burr", "stain"}
    assert info.extra["train_seed_range"] and info.extra["val_seed_range"]
    assert path.stat().st_size < 8_000_000
    card = json.loads(path.with_name(path.stem + ".card.json").read_text())
    assert card["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), "card does not describe this file"
    assert card["parity"]["identical_decisions"] and card["parity"]["max_abs_diff"] < 1e-3
    assert card["heldout"] and card["heldout"]["lot"]["parts"] >= 300 and card["heldout"]["summary"]["escape"]["of"] > 0
    assert path.with_name(path.stem + ".card.md").is_file()


def test_shipped_models_find_a_plain_dent_on_a_rendered_frame():
    dent = Defect(0, "dent", "top", 6.0, 4.0, 0.8, 0.8, 0.12)
    part = make_part(424242, defects=(dent,), fixture_error=(0.05, -0.05, 0.3))
    pose = face_view_pose("top", COARSE_CAMERA)
    detector = Detector.open(str(DETECTOR), prefer=["CPU"])
    image, frame = coarse_input(part, "top", detector.channels)  # the detector's input as the station builds it
    result = detector.detect(image)
    assert result.image_size == (768, 1024) and result.timings.total_ms > 0
    (truth,) = frame.truth
    tx, ty = (truth.box_px[0] + truth.box_px[2]) / 2, (truth.box_px[1] + truth.box_px[3]) / 2
    near = [d for d in result.detections if abs(d.center_px[0] - tx) < 8 and abs(d.center_px[1] - ty) < 8]
    assert near, f"no candidate at the dent ({tx:.0f}, {ty:.0f}); got {result.detections}"

    face, u, v = pixel_to_face(COARSE_CAMERA, pose, *near[0].center_px)
    fine_pose = face_point_pose(face, u, v, FINE_CAMERA)
    fine = render(part, fine_pose, FINE_PROGRAM.levels, FINE_CAMERA, exposure_us=FINE_PROGRAM.exposure_us, seed=2)
    w, h = near[0].size_px
    cx, cy = FINE_CAMERA.width_px / 2, FINE_CAMERA.height_px / 2
    box = (cx - 2.5 * w, cy - 2.5 * h, cx + 2.5 * w, cy + 2.5 * h)
    classifier = Classifier.open(str(CLASSIFIER), prefer=["CPU"])
    out = classifier.classify(fine.image, [box, box])
    assert out.batches == 1 and len(out.items) == 2
    assert out.items[0].best[0] == "dent", out.items[0].scores
