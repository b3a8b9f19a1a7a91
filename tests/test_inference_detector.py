"""Runtime detector: pre-process, decode and NMS as pure functions on known inputs."""
import numpy as np
import pytest

from inspector.inference.detector import (DecodeSpec, Detection, box_iou, decode, grow_to_min_side, local_peaks, nms,
                                          postprocess, preprocess)
from inspector.inference.model_package import ModelContractError, ModelInfo, Normalisation

CLASSES = ("scratch", "dent", "burr", "stain")


def outputs(h=16, w=16, classes=4):
    heat = np.zeros((classes, h, w), np.float32)
    size = np.full((2, h, w), np.log(6.0), np.float32)
    offset = np.full((2, h, w), 0.5, np.float32)
    return heat, size, offset


def test_preprocess_normalises_and_pads_to_multiple():
    image = np.full((30, 50), 255, np.uint8)
    image[0, 0] = 0
    batch = preprocess(image, Normalisation(1 / 255, (0.25,), (0.25,)), 32)
    assert batch.shape == (1, 1, 32, 64) and batch.dtype == np.float32
    assert batch[0, 0, 0, 0] == pytest.approx(-1.0) and batch[0, 0, 5, 5] == pytest.approx(3.0)
    assert batch[0, 0, 31, 63] == pytest.approx(3.0)  # edge-replicated padding, not zeros


def test_preprocess_accepts_bgr():
    image = np.full((32, 32, 3), 128, np.uint8)
    assert preprocess(image, Normalisation(), 32).shape == (1, 1, 32, 32)


def test_local_peaks_keep_only_maxima():
    heat, _, _ = outputs()
    heat[0, 5, 5], heat[0, 5, 6], heat[0, 10, 10] = 0.9, 0.5, 0.4
    mask = local_peaks(heat)
    assert mask[0, 5, 5] and not mask[0, 5, 6] and mask[0, 10, 10]


def test_decode_places_boxes_from_cell_offset_and_log_size():
    heat, size, offset = outputs()
    heat[1, 3, 7] = 0.8  # dent at cell (x=7, y=3)
    offset[:, 3, 7] = (0.25, 0.75)
    size[:, 3, 7] = (np.log(10.0), np.log(4.0))
    heat[2, 12, 2] = 0.2  # burr below its threshold
    boxes, scores, classes = decode(heat, size, offset, np.array([0.3, 0.3, 0.3, 0.3], np.float32), stride=4,
                                    max_detections=10)
    assert classes.tolist() == [1] and scores[0] == pytest.approx(0.8)
    cx, cy = (7 + 0.25) * 4, (3 + 0.75) * 4
    assert boxes[0] == pytest.approx([cx - 5, cy - 2, cx + 5, cy + 2])


def test_decode_per_class_thresholds_and_limit():
    heat, size, offset = outputs()
    for i in range(5):
        heat[0, 2, 2 + 3 * i] = 0.5 + 0.05 * i
    heat[3, 12, 12] = 0.35
    thresholds = np.array([0.6, 0.9, 0.9, 0.3], np.float32)
    boxes, scores, classes = decode(heat, size, offset, thresholds, stride=4, max_detections=2)
    assert len(scores) == 2 and scores.tolist() == sorted(scores.tolist(), reverse=True)
    assert scores[0] == pytest.approx(0.7)
    _, _, classes = decode(heat, size, offset, thresholds, stride=4, max_detections=10)
    assert sorted(classes.tolist()) == [0, 0, 0, 3]


def test_iou_and_nms():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    assert box_iou(boxes[0], boxes[1:]) == pytest.approx([81 / 119, 0.0, 1.0])
    keep = nms(boxes, np.array([0.9, 0.8, 0.7, 0.95]), 0.5)
    assert keep.tolist() == [3, 2]


def test_nms_merges_tiny_neighbours_through_min_side():
    boxes = np.array([[10, 10, 12, 12], [12, 11, 14, 13]], np.float32)  # 2 px apart: IoU 0
    assert nms(boxes, np.array([0.9, 0.8]), 0.3).tolist() == [0, 1]
    assert nms(boxes, np.array([0.9, 0.8]), 0.3, min_box_px=8).tolist() == [0]
    assert grow_to_min_side(boxes[:1], 8)[0] == pytest.approx([7, 7, 15, 15])


def test_postprocess_suppresses_across_classes_and_drops_padding_peaks():
    heat, size, offset = outputs(h=8, w=8)
    heat[0, 2, 2], heat[3, 2, 3] = 0.9, 0.6  # same defect fired as scratch and as stain
    heat[1, 7, 7] = 0.9  # a peak in the padding (image is only 24 px tall)
    spec = DecodeSpec(stride=4, pad_multiple=32, nms_iou=0.3, nms_min_box_px=8)
    dets = postprocess(heat, size, offset, class_names=CLASSES, thresholds={c: 0.5 for c in CLASSES}, spec=spec,
                       image_size=(24, 32))
    assert [d.class_name for d in dets] == ["scratch"]
    assert isinstance(dets[0], Detection) and dets[0].center_px == pytest.approx((10.0, 10.0))
    assert dets[0].size_px == pytest.approx((6.0, 6.0))


def test_decode_spec_from_metadata():
    info = ModelInfo(path="d.onnx", task="detect", class_names=CLASSES, input_size=(0, 0), input_layout="NCHW",
                     colour="mono", normalisation=Normalisation(), version="1", training_data_fingerprint="x",
                     thresholds={}, grey_band={}, extra={"decode": {"stride": 4, "pad_multiple": 32, "nms_iou": 0.4}})
    assert DecodeSpec.from_info(info).nms_iou == 0.4
    with pytest.raises(ModelContractError, match="lacks 'decode'"):
        DecodeSpec.from_info(ModelInfo(**{**info.__dict__, "extra": {}}))
    with pytest.raises(ModelContractError, match="must divide"):
        DecodeSpec.from_info(ModelInfo(**{**info.__dict__, "extra": {"decode": {"stride": 3, "pad_multiple": 32}}}))
