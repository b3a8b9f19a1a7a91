"""`yolo_peer compare`: the station's coarse detector and a YOLO peer on one labelled coarse set.

Matching is the project's own (`training.metrics.DetectionTally`, as the detector's threshold
choice uses it): a candidate finds a defect when either centre lies inside the other's box grown by
3 px, greedy by score, of any class (the coarse stage decides where, the fine stage decides what).
A false candidate is one on no real defect (nuisances included). The detector runs at its shipped
thresholds through `Detector.detect`; the peer's confidence is swept and the operating point is the
lowest threshold whose false candidates per frame do not exceed the detector's.
"""
from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from inspector.inference.detector import Detector
from training.data.generate import load_image, open_set
from training.data.records import DEFECT_CLASSES
from training.metrics import DetectionTally, Pred, Truth, size_bin, size_bin_names

from .yolo_onnx import PeerModel, preprocess, decode, session_options

SMALL_MM = 0.25


def truths_of(record) -> list[Truth]:
    return [Truth(a.category, a.box_px, float(a.attributes.get("size_mm", 0.0)),
                  a.category not in DEFECT_CLASSES or bool(a.attributes.get("is_nuisance", False)))
            for a in record.annotations]


def false_per_frame(tally: DetectionTally, threshold: float) -> float:
    hits, calls = tally.precision(threshold)
    return (calls - hits) / max(tally.images, 1)


def recall_where(tally: DetectionTally, threshold: float, small: bool | None = None) -> tuple[int, int]:
    """(found, total) real defects; `small` True: size < 0.25 mm, False: ≥ 0.25 mm, None: all."""
    found = total = 0
    for size, score in zip(tally.truth_size_mm, tally.truth_score):
        if small is None or (size < SMALL_MM) == small:
            total += 1
            found += score >= threshold and score > 0
    return found, total


def operating_threshold(tally: DetectionTally, reference_fpf: float, floor: float) -> float:
    """The lowest confidence (≥ floor) whose false candidates per frame are ≤ `reference_fpf`.
    False candidates only fall as the threshold rises, so this is the closest from below; above the
    best false candidate's score there are none, so a threshold always exists."""
    false_scores = sorted({s for s, hit in zip(tally.pred_score, tally.pred_hit) if not hit and s >= floor})
    for t in [floor, *(np.nextafter(np.float32(s), np.float32(2)) for s in false_scores)]:
        if false_per_frame(tally, float(t)) <= reference_fpf:
            return float(t)
    return float(np.nextafter(np.float32(max(false_scores)), np.float32(2)))  # unreachable: the last step has none


def figures(tally: DetectionTally, threshold: float) -> dict:
    hits, calls = tally.precision(threshold)
    small, large, all_ = (recall_where(tally, threshold, s) for s in (True, False, None))
    bins = {}
    for c in [*DEFECT_CLASSES, None]:
        for b in [*size_bin_names(), None]:
            found, total = tally.recall(threshold, c, b)
            if total:
                bins[f"{c or 'all'} / {b or 'all sizes'}"] = [found, total]
    return {"threshold": threshold, "recall_small": list(small), "recall_ge_0.25": list(large), "recall_all": list(all_),
            "false_candidates": calls - hits, "candidates": calls, "frames": tally.images,
            "false_per_frame": (calls - hits) / max(tally.images, 1), "by_class_and_size": bins}


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, np.float64), q))


def latency(detector: Detector, peer: PeerModel, images: Sequence[np.ndarray], peer_conf: float, *,
            warmup: int, runs: int) -> dict:
    """Both models in this one process, alternating; session.run only, and pre + run + post."""
    det_run, det_full, peer_run, peer_full = [], [], [], []
    for i in range(warmup + runs):
        image = images[i % len(images)]
        result = detector.detect(image)
        t0 = time.perf_counter()
        batch, placement = preprocess(image, peer.input_size)
        t1 = time.perf_counter()
        out = peer.forward(batch)
        t2 = time.perf_counter()
        decode(out, placement, image.shape[:2], conf=peer_conf)
        t3 = time.perf_counter()
        if i >= warmup:
            det_run.append(result.timings.infer_ms)
            det_full.append(result.timings.total_ms)
            peer_run.append((t2 - t1) * 1000)
            peer_full.append((t3 - t0) * 1000)
    summary = lambda v: {"median_ms": round(statistics.median(v), 2), "p95_ms": round(_percentile(v, 95), 2)}  # noqa: E731
    h, w = images[0].shape[:2]
    pad = detector.spec.pad_multiple
    return {"frame": [h, w], "runs": runs, "warmup": warmup,
            "detector": {"input": [1, len(detector.channels), h + (-h % pad), w + (-w % pad)], "session_run": summary(det_run),
                         "pre_run_post": summary(det_full)},
            "peer": {"input": [1, 3, *peer.input_size], "frame_scale": round(min(peer.input_size[0] / h, peer.input_size[1] / w), 4),
                     "session_run": summary(peer_run), "pre_run_post": summary(peer_full)}}


def _spin_free(detector: Detector, path: Path, threads: int) -> Detector:
    """The same Detector (station pre/post) on a session with the peer's exact CPU settings."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    return Detector(replace(detector.model, session=session))


def run_compare(args: argparse.Namespace) -> int:
    from .yolo_peer import PeerError, _short

    for name, path in (("--detector", args.detector), ("--peer", args.peer)):
        if not path.is_file():
            raise PeerError(f"{name} {path}: no such file")
    if not (args.set_dir / "annotations.coco.json").is_file():
        raise PeerError(f"--set {args.set_dir}: no annotations.coco.json (a coarse set from `python -m training data coarse`)")
    data, manifest = open_set(args.set_dir)
    if manifest.get("kind", "coarse") != "coarse":
        raise PeerError(f"--set {args.set_dir}: a {manifest['kind']} set, not a coarse set")
    if not data.images:
        raise PeerError(f"--set {args.set_dir}: no images")
    detector = Detector.open(str(args.detector), prefer=["CPU"], intra_op_threads=args.threads)
    if tuple(detector.class_names) != tuple(DEFECT_CLASSES):
        raise PeerError(f"--detector {args.detector}: classes {detector.class_names} are not {DEFECT_CLASSES}")
    peer = PeerModel(str(args.peer), DEFECT_CLASSES, args.threads)
    shipped = dict(detector.info.thresholds)
    det_tally, peer_tally, images = DetectionTally(), DetectionTally(), []
    started = time.time()
    for record in data.images:
        image = load_image(data.root, record)
        truths = truths_of(record)
        found = detector.detect(image, thresholds=shipped).detections
        det_tally.add([Pred(d.class_name, d.score, d.box_px) for d in found], truths)
        boxes, scores, classes = peer.detect(image, conf=args.floor)
        peer_tally.add([Pred(DEFECT_CLASSES[int(c)], float(s), tuple(float(v) for v in b))
                        for b, s, c in zip(boxes, scores, classes)], truths)
        if len(images) < 8:
            images.append(image)
    accuracy_s = time.time() - started
    det = figures(det_tally, 0.0)
    chosen = operating_threshold(peer_tally, det["false_per_frame"], args.floor)
    sweep = [{"threshold": float(t), "false_per_frame": round(false_per_frame(peer_tally, float(t)), 4),
              "recall_all": list(recall_where(peer_tally, float(t)))} for t in np.round(np.arange(args.floor, 1.0, 0.05), 3)]
    timed = latency(_spin_free(detector, args.detector, args.threads), peer, images, max(chosen, args.floor),
                    warmup=args.warmup, runs=args.runs)
    peer_meta = args.peer.with_suffix(".json")
    report = {"command": shlex.join([_short(sys.executable), "-m", "training.peers.yolo_peer", *args.argv]),
              "set": {"path": str(args.set_dir), "fingerprint": manifest.get("fingerprint"),
                      "seed_range": manifest.get("seed_range"), "frames": len(data.images)},
              "matching": "training.metrics.DetectionTally (centre inside the other box grown by 3 px, greedy by score, "
                          "any class); false candidate = on no real defect (nuisance hits count as false)",
              "detector": {"path": str(args.detector), "version": detector.info.version, "thresholds": shipped, **det},
              "peer": {"path": str(args.peer), "input_size": list(peer.input_size), "floor": args.floor,
                       "rule": "lowest confidence with false candidates per frame ≤ the detector's", **figures(peer_tally, chosen),
                       "sweep": sweep,
                       "training": json.loads(peer_meta.read_text(encoding="utf-8")) if peer_meta.is_file() else None},
              "latency": {**timed, "threads": {"intra_op": args.threads, "inter_op": 1, "spinning": "off"},
                          "provider": "CPUExecutionProvider", "how": "both sessions in one process, alternating "
                          "detector then peer per frame; first frames of the set cycled; session_run = session.run "
                          "only, pre_run_post = the whole detect call"},
              "accuracy_pass_s": round(accuracy_s, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    from .compare_report import markdown

    (args.out / "compare.md").write_text(markdown(report), encoding="utf-8")
    print(f"compare: {args.out / 'compare.md'}")
    return 0


__all__ = ["figures", "operating_threshold", "false_per_frame", "recall_where", "run_compare", "size_bin", "truths_of"]
