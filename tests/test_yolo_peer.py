"""The YOLO peer helper (training/peers): decoding, operating point, argument errors, and one real
compare run (station detector + a hand-built ONNX peer). Runs without ultralytics or torch."""
import json

import numpy as np
import pytest

from inspector.inference.detector import Detector
from training.metrics import DetectionTally, Pred, Truth
from training.peers import yolo_peer
from training.peers.compare import false_per_frame, figures, operating_threshold
from training.peers.yolo_onnx import PAD_VALUE, decode, letterbox, preprocess


def _raw(boxes_cxcywh, class_scores):
    """A YOLOv8 output (1, 4 + nc, N) from per-box (cx, cy, w, h) and per-box class scores."""
    return np.concatenate([np.asarray(boxes_cxcywh, np.float32), np.asarray(class_scores, np.float32)], axis=1).T[None]


def test_letterbox_places_a_coarse_frame_as_ultralytics_does():
    frame = np.full((768, 1024), 50, np.uint8)
    batch, placement = preprocess(frame, (320, 320))
    assert batch.shape == (1, 3, 320, 320) and batch.dtype == np.float32
    assert (placement.scale_x, placement.scale_y, placement.pad_x, placement.pad_y) == (0.3125, 0.3125, 0.0, 40.0)
    assert np.allclose(batch[0, :, :40], PAD_VALUE / 255) and np.allclose(batch[0, :, 280:], PAD_VALUE / 255)
    assert np.allclose(batch[0, :, 40:280], 50 / 255)
    bgr = np.zeros((10, 10, 3), np.uint8)
    bgr[..., 0] = 255  # blue in BGR → the last channel in RGB
    rgb, _ = preprocess(bgr, (10, 10))
    assert rgb[0, 2].min() == 1.0 and rgb[0, 0].max() == 0.0
    with pytest.raises(ValueError, match="shape"):
        preprocess(np.zeros((4, 4, 2), np.uint8), (8, 8))


def test_decode_maps_boxes_back_to_original_pixels():
    _, placement = letterbox(np.zeros((768, 1024, 3), np.uint8), (320, 320))
    s, pad = 0.3125, 40.0
    originals = [(100.0, 200.0, 110.0, 216.0), (500.0, 300.0, 540.0, 340.0), (103.0, 202.0, 111.0, 214.0),
                 (900.0, 700.0, 1100.0, 900.0), (10.0, 10.0, 20.0, 20.0)]
    cxcywh = [((x0 + x1) / 2 * s, (y0 + y1) / 2 * s + pad, (x1 - x0) * s, (y1 - y0) * s) for x0, y0, x1, y1 in originals]
    scores = [[0.9, 0.0, 0.0, 0.0],   # scratch
              [0.1, 0.0, 0.7, 0.2],   # burr
              [0.0, 0.8, 0.0, 0.0],   # a dent on top of the scratch: suppressed whatever its class
              [0.0, 0.0, 0.0, 0.6],   # a stain reaching past the frame: clipped
              [0.0, 0.04, 0.0, 0.0]]  # below the confidence
    boxes, conf, classes = decode(_raw(cxcywh, scores), placement, (768, 1024), conf=0.05, iou=0.3)
    # the dent overlaps the scratch by IoU 0.49 > 0.3: suppressed although its class differs
    assert classes.tolist() == [0, 2, 3]
    np.testing.assert_allclose(conf, [0.9, 0.7, 0.6], rtol=1e-6)
    np.testing.assert_allclose(boxes[0], originals[0], atol=1e-3)
    np.testing.assert_allclose(boxes[1], originals[1], atol=1e-3)
    np.testing.assert_allclose(boxes[2], (900.0, 700.0, 1024.0, 768.0), atol=1e-3)


def test_decode_suppresses_overlaps_across_classes():
    _, placement = letterbox(np.zeros((100, 100), np.uint8), (100, 100))
    raw = _raw([(50, 50, 20, 20), (51, 50, 20, 20), (10, 10, 6, 6)], [[0.9, 0, 0, 0], [0, 0.8, 0, 0], [0, 0, 0.3, 0]])
    boxes, conf, classes = decode(raw, placement, (100, 100), conf=0.05, iou=0.3)
    assert classes.tolist() == [0, 2] and conf.tolist() == pytest.approx([0.9, 0.3])
    np.testing.assert_allclose(boxes[1], (7, 7, 13, 13), atol=1e-4)
    with pytest.raises(ValueError, match="expected shape"):
        decode(np.zeros((1, 3, 5)), placement, (100, 100), conf=0.1)


def test_decode_with_unequal_axis_scales():
    # 333 px wide, 100 high into 64×64: width 64 (scale .1922), height round(19.22) = 19 px (scale .19)
    _, placement = letterbox(np.zeros((100, 333), np.uint8), (64, 64))
    assert placement.scale_y == 19 / 100 and placement.pad_y == 22.0
    box = np.array([[33.3 * 64 / 333, 22 + 10 * 0.19, 66.6 * 64 / 333, 22 + 30 * 0.19]])
    np.testing.assert_allclose(placement.to_original(box)[0], (33.3, 10, 66.6, 30), atol=1e-3)


def _tally(frames):
    tally = DetectionTally()
    for preds, truths in frames:
        tally.add(preds, truths)
    return tally


def _frames():
    real = Truth("scratch", (100, 100, 104, 104), 0.2)
    big = Truth("dent", (300, 300, 330, 330), 0.6)
    dust = Truth("dust", (500, 500, 506, 506), 0.3, is_nuisance=True)
    return [
        ([Pred("burr", 0.8, (99, 99, 105, 105)),        # any class finds the scratch
          Pred("dent", 0.35, (305, 305, 325, 325)),
          Pred("stain", 0.6, (500, 500, 506, 506)),     # on the dust: a false candidate
          Pred("scratch", 0.2, (700, 700, 710, 710))],  # on nothing
         [real, big, dust]),
        ([Pred("dent", 0.5, (10, 10, 20, 20)), Pred("dent", 0.1, (40, 40, 50, 50))], []),
    ]


def test_figures_count_found_and_false_candidates_with_denominators():
    tally = _tally(_frames())
    at_floor = figures(tally, 0.0)
    assert at_floor["recall_all"] == [2, 2] and at_floor["recall_small"] == [1, 1] and at_floor["recall_ge_0.25"] == [1, 1]
    assert (at_floor["false_candidates"], at_floor["candidates"], at_floor["frames"]) == (4, 6, 2)
    at_half = figures(tally, 0.4)
    assert at_half["recall_all"] == [1, 2] and at_half["false_candidates"] == 2
    assert at_half["by_class_and_size"]["dent / 0.5-1 mm"] == [0, 1]
    assert at_half["by_class_and_size"]["scratch / 0.1-0.25 mm"] == [1, 1]


@pytest.mark.parametrize("reference", [0.0, 0.4, 0.5, 0.99, 1.0, 1.5, 2.0, 5.0])
def test_operating_point_never_exceeds_the_reference_false_rate(reference):
    tally = _tally(_frames())
    t = operating_threshold(tally, reference, floor=0.05)
    assert false_per_frame(tally, t) <= reference
    lower = [s for s in tally.pred_score if 0.05 <= s < t]
    if lower:  # one step lower would exceed it: the closest from below
        assert false_per_frame(tally, max(lower)) > reference
    else:
        assert t == 0.05


def test_operating_point_at_zero_reference_calls_no_false_candidate():
    tally = _tally(_frames())
    t = operating_threshold(tally, 0.0, floor=0.05)
    assert t > 0.6 and figures(tally, t)["recall_all"] == [1, 2]  # the scratch at 0.8 is still found


@pytest.mark.parametrize("argv, needle", [
    (["train", "--data", "x.yaml", "--out", "o", "--imgsz", "100"], "--imgsz"),
    (["train", "--data", "x.yaml", "--out", "o", "--epochs", "0"], "--epochs"),
    (["train", "--data", "x.yaml", "--out", "o", "--time-hours", "soon"], "--time-hours"),
    (["compare", "--peer", "p.onnx", "--set", "s"], "--out"),
    (["fly"], "invalid choice"),
])
def test_argument_errors_name_the_argument(argv, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        yolo_peer.main(argv)
    assert exc.value.code == 2 and needle in capsys.readouterr().err


def test_missing_inputs_give_one_line_errors(tmp_path, capsys, model_paths):
    assert yolo_peer.main(["train", "--data", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--data" in err and "none.yaml" in err and "\n" not in err
    relative = tmp_path / "rel.yaml"
    relative.write_text("path: data\ntrain: a/images\nval: b/images\nnames:\n  0: scratch\n", encoding="utf-8")
    assert yolo_peer.main(["train", "--data", str(relative), "--out", str(tmp_path / "o")]) == 2
    assert "not absolute" in capsys.readouterr().err
    detector = str(model_paths[0])
    assert yolo_peer.main(["compare", "--detector", detector, "--peer", str(tmp_path / "p.onnx"), "--set", str(tmp_path),
                           "--out", str(tmp_path / "c")]) == 2
    assert "--peer" in capsys.readouterr().err
    (tmp_path / "p.onnx").write_bytes(b"not onnx")
    assert yolo_peer.main(["compare", "--detector", detector, "--peer", str(tmp_path / "p.onnx"), "--set", str(tmp_path),
                           "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--set" in err and "annotations.coco.json" in err and "\n" not in err
    _constant_peer(tmp_path / "p.onnx", [(1, 1, 1, 1)], [[0.5, 0, 0]])  # 3 classes, not the detector's 4
    from training.data.generate import generate_coarse

    generate_coarse(tmp_path / "set", "smoke", 1, faces=("top",))
    assert yolo_peer.main(["compare", "--detector", detector, "--peer", str(tmp_path / "p.onnx"), "--set",
                           str(tmp_path / "set"), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--peer" in err and "3 classes" in err and "\n" not in err
    (tmp_path / "p.onnx").write_bytes(b"not onnx")
    assert yolo_peer.main(["compare", "--detector", detector, "--peer", str(tmp_path / "p.onnx"), "--set",
                           str(tmp_path / "set"), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--peer" in err and "onnxruntime cannot load it" in err and "\n" not in err


def _constant_peer(path, boxes_cxcywh, scores, size=64):
    """A real ONNX model with a YOLOv8-shaped (1, 3, size, size) → (1, 8, N) signature whose output is fixed."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    const = _raw(boxes_cxcywh, scores)
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["images"], ["total"], keepdims=0),
         helper.make_node("Mul", ["total", "zero"], ["nothing"]),
         helper.make_node("Add", ["fixed", "nothing"], ["output0"])],
        "peer", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(const.shape))],
        [numpy_helper.from_array(const, "fixed"), numpy_helper.from_array(np.zeros((), np.float32), "zero")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))


def test_compare_runs_both_models_end_to_end(tmp_path, model_paths):
    from training.data.generate import generate_coarse

    data = generate_coarse(tmp_path / "set", "smoke", 1, offset=0, faces=("north", "west"))  # a scratch, two dents
    truth = next(a for image in data.images for a in image.annotations if a.category in ("scratch", "dent", "burr", "stain"))
    s, pad = 64 / 1024, (64 - 48) / 2
    cx, cy = truth.center
    peer = tmp_path / "yolo-peer.onnx"
    _constant_peer(peer, [(cx * s, cy * s + pad, 1, 1), (5, 20, 2, 2)], [[0.0, 0.0, 0.9, 0.0], [0.4, 0.0, 0.0, 0.0]])
    out = tmp_path / "cmp"
    assert yolo_peer.main(["compare", "--detector", str(model_paths[0]), "--peer", str(peer), "--set", str(data.root),
                           "--out", str(out), "--warmup", "1", "--runs", "2"]) == 0
    report = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    defects = sum(a.category in ("scratch", "dent", "burr", "stain") for image in data.images for a in image.annotations)
    det, got = report["detector"], report["peer"]
    assert det["recall_all"][1] == got["recall_all"][1] == defects and det["frames"] == got["frames"] == 2
    assert got["false_per_frame"] <= det["false_per_frame"]
    if det["false_per_frame"] >= 2.0:  # room for every peer candidate: the one on the defect finds it
        assert got["recall_all"][0] >= 1
    assert report["latency"]["peer"]["input"] == [1, 3, 64, 64] and report["latency"]["detector"]["input"][:2] == [1, len(Detector.open(str(model_paths[0])).channels)]
    text = (out / "compare.md").read_text(encoding="utf-8")
    assert "| recall, all defects |" in text and "yolo_peer compare" in text
