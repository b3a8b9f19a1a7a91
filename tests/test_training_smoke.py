"""Smoke run of the whole training chain on a tiny generated set: train a few iterations, resume,
export with the contract, parity check, evaluation, and every CLI command's --help."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from inspector.inference.classifier import Classifier
from inspector.inference.detector import Detector
from inspector.inference.loaded_model import load_model
from training.data.generate import generate_coarse, generate_fine, open_sets
from inspector.evaluation import EvalOptions, evaluate
from inspector.evaluation.report import stamp_card
from inspector.promotion.candidate import adopt_capture
from pathlib import Path
from training.export import export_classifier, export_detector
from training.loop import load_checkpoint
from training.models.detector import CenterNetDetector, parameter_count
from training.models.targets import detector_loss, encode, focal_loss
from training.train_classifier import ClassifierTrainConfig, train_classifier
from training.train_detector import DetectorTrainConfig, train_detector

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    torch.set_num_threads(2)
    return {"coarse": generate_coarse(root / "coarse", "smoke", 2, offset=20, faces=("top", "north")).root,
            "coarse_val": generate_coarse(root / "coarse_val", "smoke", 1, offset=30, faces=("top",)).root,
            "fine": generate_fine(root / "fine", "smoke", 2, offset=20, clean_spots=2).root,
            "root": root}


def test_targets_and_loss_on_known_boxes():
    t = encode(np.array([[10, 10, 14, 12]], np.float32), np.array([2]), num_classes=4, out_shape=(8, 8), stride=4)
    assert t["heatmap"][2, 2, 3] == 1.0 and t["mask"].sum() == 1 and t["heatmap"][:2].max() == 0
    assert t["size"][:, 2, 3] == pytest.approx(np.log([4, 2])) and t["offset"][:, 2, 3] == pytest.approx([0.0, 0.75])
    perfect = torch.from_numpy(t["heatmap"])[None].clamp(1e-4, 1 - 1e-4)
    target = torch.from_numpy(t["heatmap"])[None]
    assert float(focal_loss(perfect, target)) < 0.1 * float(focal_loss(torch.full_like(target, 0.01), target))
    model = CenterNetDetector()
    assert 10_000 < parameter_count(model) < 3_000_000
    outputs = model(torch.zeros(1, 1, 32, 32))
    assert [tuple(o.shape) for o in outputs] == [(1, 4, 8, 8), (1, 2, 8, 8), (1, 2, 8, 8)]
    loss, parts = detector_loss(outputs, {k: torch.from_numpy(v)[None] for k, v in t.items()})
    assert loss.item() > 0 and set(parts) == {"heat", "size", "offset"}


def test_detector_trains_resumes_exports_with_parity(sets, tmp_path):
    cfg = DetectorTrainConfig(train=sets["coarse"], val=sets["coarse_val"], out=tmp_path / "det", iterations=4,
                              batch_size=4, crop=128, val_every=4, checkpoint_every=2, val_images=1, progress=False)
    best = train_detector(cfg)
    assert best.is_file() and load_checkpoint(tmp_path / "det" / "last.pt")["step"] == 4
    cfg.iterations, cfg.resume = 6, True
    train_detector(cfg)
    assert load_checkpoint(tmp_path / "det" / "last.pt")["step"] == 6  # continued, not restarted
    result = export_detector(best, sets["coarse_val"], tmp_path / "models" / "detector.onnx", golden=1, command="smoke")
    assert result.parity_ok and result.parity["max_abs_diff"] < 1e-3 and result.parity["golden"] >= 0
    detector = Detector(load_model(result.path, task="detect", prefer=["CPU"]))
    assert detector.info.training_data_fingerprint.startswith("sha256:")
    assert detector.info.extra["decode"]["stride"] == 4 and set(detector.info.thresholds) == {"scratch", "dent", "burr", "stain"}
    card = json.loads((tmp_path / "models" / "detector.card.json").read_text())
    assert card["parity"]["identical_decisions"] and card["data"]["train"]["seed_range"]
    assert any(line.startswith("python -m training data coarse --split ") and str(sets["coarse"]) in line
               for line in card["reproduce"]), card["reproduce"]  # each set's command from its manifest
    assert any(line.startswith("python -m training train detector --train ") for line in card["reproduce"])
    assert detector.channels == ("bright", "dark", "curvature")  # the stack the sets hold, named in the metadata
    assert (tmp_path / "models" / "detector.card.md").read_text().startswith("# Model card")


def test_classifier_trains_exports_and_lot_evaluates(sets, tmp_path):
    cfg = ClassifierTrainConfig(train=sets["fine"], val=sets["fine"], out=tmp_path / "cls", epochs=2, batch_size=8,
                                max_steps=4, progress=False)
    best = train_classifier(cfg)
    result = export_classifier(best, sets["fine"], tmp_path / "models" / "classifier.onnx", golden=16)
    assert result.parity_ok and result.parity["max_abs_diff"] < 1e-4 and result.parity["golden"] == 16
    info = Classifier(load_model(result.path, task="classify", prefer=["CPU"])).info
    assert info.class_names[0] == "ok" and info.input_size == (64, 64)
    assert all(lo <= hi == info.thresholds[c] for c, (lo, hi) in info.grey_band.items())

    det_cfg = DetectorTrainConfig(train=sets["coarse"], val=None, out=tmp_path / "det", iterations=2, batch_size=2,
                                  crop=64, progress=False)
    det = export_detector(train_detector(det_cfg), sets["coarse_val"], tmp_path / "models" / "detector.onnx", golden=1)
    # the held-out evaluation is the station's own cycle with a recipe that names these models
    recipe = json.loads((ROOT / "models" / "housing-40x30.recipe.json").read_text())
    recipe["models"] = {"detector": str(det.path), "classifier": str(result.path)}
    adopt_capture(recipe, det.info)  # the capture this detector was trained on, as a candidate recipe takes it
    (tmp_path / "smoke.recipe.json").write_text(json.dumps(recipe))
    report = evaluate(EvalOptions(recipe=tmp_path / "smoke.recipe.json", parts=2, first_seed=900_040, workers=1,
                                  speed_factor=100.0, work=tmp_path / "eval"), log=lambda line: None)
    s = report["summary"]
    assert s["parts"] == 2 and s["truth_fail"] + s["truth_pass"] == 2 and s["escape"]["of"] == s["truth_fail"]
    assert [p["serial"] for p in report["parts"]] == ["SIM-900040", "SIM-900041"]
    assert (tmp_path / "eval" / "report.md").is_file()
    stamp_card(result.path, report)
    card = json.loads((tmp_path / "models" / "classifier.card.json").read_text())
    assert card["heldout"]["summary"]["escape"] == s["escape"]
    assert "line overkill" in (tmp_path / "models" / "classifier.card.md").read_text()


@pytest.mark.parametrize("args", [[], ["data"], ["data", "coarse"], ["data", "import-coco"], ["train", "detector"],
                                  ["train", "classifier"], ["export", "detector"], ["export", "classifier"]])
def test_cli_help(args):
    result = subprocess.run([sys.executable, "-m", "training", *args, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "usage: python -m training" in result.stdout


def test_cli_reports_missing_set_plainly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "training", "train", "detector", "--train", str(tmp_path / "none"),
                             "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "holds no annotations.coco.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_several_training_sets_train_together_and_false_candidates_are_mined(sets, tmp_path, model_paths):
    detector = Detector.open(str(model_paths[0]), prefer=["CPU"])
    mined = generate_fine(tmp_path / "mined", "smoke", 1, offset=40, clean_spots=0, detector=detector,
                          max_false_candidates=3)
    manifest = json.loads((mined.root / "manifest.json").read_text())
    false = [a for r in mined.images for a in r.annotations if a.attributes.get("false_candidate")]
    assert manifest["false_candidates"]["mined"] == len(false) <= 3
    assert all(a.category == "clean_spot" and a.attributes["target"] for a in false)

    cfg = ClassifierTrainConfig(train=(sets["fine"], mined.root), val=None, out=tmp_path / "cls", epochs=1,
                                batch_size=4, max_steps=1, progress=False)
    extra = load_checkpoint(train_classifier(cfg))["extra"]
    single = open_sets(sets["fine"])[1]
    assert extra["train_fingerprint"] not in (single["fingerprint"], manifest["fingerprint"])
    own = sum(1 for r in open_sets(sets["fine"])[0][0].images for a in r.annotations if a.attributes.get("target"))
    assert sum(extra["train_counts"].values()) == own + sum(1 for r in mined.images for a in r.annotations
                                                            if a.attributes.get("target"))


def test_cli_train_takes_several_sets_and_no_val():
    from training.__main__ import build_parser
    args = build_parser().parse_args(["train", "classifier", "--train", "a", "b", "--val", ""])
    assert [str(p) for p in args.train] == ["a", "b"] and args.val is None


@pytest.mark.parametrize("role,says", [("detector", "hold no coarse frames"), ("classifier", "hold no labelled regions")])
def test_cli_refuses_an_empty_training_set_plainly(tmp_path, role, says):
    """A set with no images (e.g. a review export without coarse frames) is refused in one line, not
    with numpy's "high <= 0" from the crop sampler."""
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"images": [], "annotations": [],
                                 "categories": [{"id": 1, "name": "scratch", "supercategory": "defect"}]}))
    data = tmp_path / "data"
    subprocess.run([sys.executable, "-m", "training", "data", "import-coco", str(empty), "--kind", "coarse",
                    "--out", str(data)], check=True, capture_output=True, timeout=120)
    count = ["--iterations", "2"] if role == "detector" else ["--epochs", "1"]
    result = subprocess.run([sys.executable, "-m", "training", "train", role, "--train", str(data), "--val", "",
                             "--out", str(tmp_path / "o"), "--threads", "1", *count],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and says in result.stderr and str(data) in result.stderr
    assert "Traceback" not in result.stderr and "high <=" not in result.stderr
