import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# result-store journals of PostgreSQL stores go to a folder of this run, not the user's home
os.environ.setdefault("INSPECTOR_JOURNAL_DIR", __import__("tempfile").mkdtemp(prefix="inspector-journals-"))

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def model_paths(tmp_path_factory):
    """The shipped models when they are there; otherwise tiny ones trained here (a few iterations)."""
    shipped = ROOT / "models" / "detector.onnx", ROOT / "models" / "classifier.onnx"
    if all(p.is_file() for p in shipped):
        return shipped
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    from training.data.generate import generate_coarse, generate_fine
    from training.export import export_classifier, export_detector
    from training.train_classifier import ClassifierTrainConfig, train_classifier
    from training.train_detector import DetectorTrainConfig, train_detector

    root = tmp_path_factory.mktemp("tiny_models")
    coarse = generate_coarse(root / "coarse", "smoke", 2, offset=20, faces=("top",)).root
    fine = generate_fine(root / "fine", "smoke", 2, offset=20, clean_spots=2).root
    det = export_detector(train_detector(DetectorTrainConfig(train=coarse, val=None, out=root / "det", iterations=3,
                                                             batch_size=2, crop=64, progress=False)),
                          coarse, root / "models" / "detector.onnx", golden=1)
    cls = export_classifier(train_classifier(ClassifierTrainConfig(train=fine, val=fine, out=root / "cls", epochs=1,
                                                                   batch_size=8, max_steps=2, progress=False)),
                            fine, root / "models" / "classifier.onnx", golden=4)
    return det.path, cls.path


@pytest.fixture
def recipe(tmp_path, model_paths):
    """The reference recipe, its models those under test (shipped, or trained here)."""
    import json

    from inspector.demo import REFERENCE_RECIPE

    data = json.loads(REFERENCE_RECIPE.read_text())
    data["models"] = {"detector": str(model_paths[0]), "classifier": str(model_paths[1])}
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(data))
    return path
