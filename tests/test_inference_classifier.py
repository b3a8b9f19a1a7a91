"""Runtime classifier: ROI crops, batching and post-processing with a real (tiny) ONNX model."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from inspector.inference.classifier import Classification, Classifier, RoiSpec, crop_rois, postprocess, roi_square
from inspector.inference.loaded_model import load_model
from inspector.inference.model_package import ModelContractError, ModelInfo, Normalisation, metadata_for

CLASSES = ("ok", "scratch", "dent", "burr", "stain")


def test_roi_square_uses_context_and_minimum():
    spec = RoiSpec(context=1.5, min_side_px=64)
    assert roi_square((100, 100, 110, 104), spec) == (105, 102, 64)
    assert roi_square((0, 0, 100, 40), spec) == (50, 20, 150)


def test_crop_is_centred_on_the_box():
    image = np.zeros((200, 300), np.uint8)
    image[90:110, 140:160] = 255  # a 20×20 bright square centred at (150, 100)
    crop = crop_rois(image, [(140, 90, 160, 110)], (64, 64), RoiSpec(context=1.5, min_side_px=64))[0]
    assert crop.shape == (64, 64)
    ys, xs = np.nonzero(crop > 128)
    assert xs.mean() == pytest.approx(31.5, abs=0.6) and ys.mean() == pytest.approx(31.5, abs=0.6)
    assert (crop > 128).sum() == pytest.approx(400, rel=0.1)  # 1:1 scale at the minimum side


def test_crop_downscales_large_boxes_and_replicates_edges():
    image = np.full((100, 100), 50, np.uint8)
    image[:, :50] = 200
    crops = crop_rois(image, [(0, 0, 100, 100), (-20, -20, 10, 10)], (32, 32), RoiSpec(context=1.0, min_side_px=16))
    assert crops.shape == (2, 32, 32)
    assert crops[0, 16, 4] > 150 and crops[0, 16, 28] < 100  # left half bright, right half dark, scaled ×0.32
    assert crops[1].min() > 150  # off the frame: edge pixels repeated, no black border


def test_postprocess_best_and_defect():
    items = postprocess(np.array([[0.6, 0.1, 0.25, 0.05, 0.0]], np.float32), CLASSES)
    assert isinstance(items[0], Classification)
    assert items[0].best == ("ok", pytest.approx(0.6)) and items[0].defect == ("dent", pytest.approx(0.25))


def softmax_model(path, info: ModelInfo, size=16):
    """Probabilities from the crop's mean brightness: a stand-in with the real contract and shapes."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, size, size])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 5])
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 5], [0.0, 1.0, 2.0, 3.0, 4.0])
    nodes = [helper.make_node("GlobalAveragePool", ["image"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("MatMul", ["f", "w"], ["logits"]), helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    model = helper.make_model(helper.make_graph(nodes, "cls", [x], [y], [w]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    for key, value in metadata_for(info).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


INFO = ModelInfo(path="", task="classify", class_names=CLASSES, input_size=(16, 16), input_layout="NCHW", colour="mono",
                 normalisation=Normalisation(1 / 255, (0.0,), (1.0,)), version="0.1", training_data_fingerprint="sha256:x",
                 thresholds={c: 0.5 for c in CLASSES[1:]}, grey_band={}, extra={"roi": {"context": 1.5, "min_side_px": 16}})


def test_classifier_batches_and_times(tmp_path):
    clf = Classifier(load_model(softmax_model(tmp_path / "c.onnx", INFO), prefer=["CPU"]), batch_size=4)
    image = np.zeros((100, 100), np.uint8)
    image[:, 50:] = 255
    boxes = [(10, 10, 20, 20)] * 5 + [(70, 70, 80, 80)] * 5
    result = clf.classify(image, boxes)
    assert result.batches == 3 and len(result.items) == 10
    dark, bright = result.items[0], result.items[-1]
    assert dark.scores["ok"] == pytest.approx(0.2, abs=1e-5)  # logits all 0 → uniform
    assert bright.best[0] == "stain" and sum(bright.scores.values()) == pytest.approx(1.0, abs=1e-5)
    t = result.timings
    assert t.pre_ms >= 0 and t.infer_ms >= 0 and t.post_ms >= 0 and t.total_ms == pytest.approx(t.pre_ms + t.infer_ms + t.post_ms)
    assert clf.classify(image, []).items == ()


def test_classifier_refuses_models_without_roi_or_ok(tmp_path):
    no_roi = ModelInfo(**{**INFO.__dict__, "extra": {}})
    with pytest.raises(ModelContractError, match="lacks 'roi'"):
        Classifier(load_model(softmax_model(tmp_path / "a.onnx", no_roi), prefer=["CPU"]))
    no_ok = ModelInfo(**{**INFO.__dict__, "class_names": ("good",) + CLASSES[1:]})
    with pytest.raises(ModelContractError, match="lack 'ok'"):
        Classifier(load_model(softmax_model(tmp_path / "b.onnx", no_ok), prefer=["CPU"]))
