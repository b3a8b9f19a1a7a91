"""Checkpoint → self-describing ONNX model: contract metadata, thresholds, parity check, model card.

Thresholds are chosen here on the validation set (never on the held-out lot): per class, the
highest score that still keeps the target share of real defects. The parity check runs the ONNX
file through the station's own runtime (inspector.inference) and the torch checkpoint on a golden
set from the validation data, and records the largest output difference and whether every
decision (candidates found; class and accept/review/ok) came out the same.
"""
from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from inspector.channels import LEGACY
from inspector.inference.classifier import Classifier, RoiSpec
from inspector.inference.detector import DecodeSpec, Detector, postprocess
from inspector.inference.loaded_model import load_model
from inspector.inference.model_package import ModelInfo, Normalisation, metadata_for
from inspector.recipe import ClassPolicy
from inspector.verdict import judge_scores

from hardware.sim.geometry import COARSE_CAMERA, FINE_CAMERA

from .cards import write_card
from .data.generate import load_image, open_set, open_sets
from .data.records import CLASSIFIER_CLASSES, DEFECT_CLASSES, OK
from .lights import COARSE_PROGRAM, FINE_PROGRAM, coarse_program_dict
from .loop import load_checkpoint, set_threads
from .metrics import DetectionTally, Pred, Truth, threshold_for_recall
from .models.classifier import RoiClassifier
from .models.detector import CenterNetDetector
from . import novelty as nv
from . import train_classifier as tc

OPSET = 17


@dataclass
class ExportResult:
    path: Path
    info: ModelInfo
    parity: dict[str, Any]
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def parity_ok(self) -> bool:
        return bool(self.parity.get("identical_decisions"))

    def summary(self) -> str:
        p = self.parity
        thresholds = ", ".join(f"{k} {v:.3f}" for k, v in self.info.thresholds.items())
        novelty = self.info.extra.get("novelty")
        return (f"wrote {self.path} ({self.path.stat().st_size / 1e6:.2f} MB) and its card\n"
                f"  thresholds: {thresholds}\n"
                + (f"  novelty limit: {novelty['limit']:.3f} ({novelty['rule']})\n" if novelty else "") +
                f"  parity on {p['golden']} golden {p['unit']}: max abs diff {p['max_abs_diff']:.2e}, "
                f"decisions {'identical' if p['identical_decisions'] else 'DIFFER: ' + str(p.get('differences'))}")


def onnx_bytes(model: torch.nn.Module, example: torch.Tensor, outputs: list[str], dynamic: dict[str, dict[int, str]]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), buffer, input_names=["image"], output_names=outputs,
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False, do_constant_folding=True)
    return buffer.getvalue()


def save_with_metadata(model_bytes: bytes, info: ModelInfo, path: Path) -> Path:
    proto = onnx.load_from_string(model_bytes)
    onnx.checker.check_model(proto)
    del proto.metadata_props[:]
    for key, value in metadata_for(info).items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name = "inspection-cell training"
    proto.doc_string = f"{info.task} model {Path(path).stem} {info.version}"
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    return path


def restamp(path: Path, *, metrics: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> ModelInfo:
    """Rewrite a model's metadata (e.g. held-out headline figures) without touching its graph."""
    proto = onnx.load(str(path))
    from inspector.inference.model_package import parse_metadata
    info = parse_metadata({p.key: p.value for p in proto.metadata_props}, str(path))
    new = ModelInfo(**{**info.__dict__, "metrics": {**info.metrics, **(metrics or {})}, "extra": {**info.extra, **(extra or {})}})
    del proto.metadata_props[:]
    for key, value in metadata_for(new).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
    return new


def _train_paths(train: str | list[str]) -> str:
    return " + ".join(_rel(Path(p)) for p in ([train] if isinstance(train, str) else train))


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------- detector

def export_detector(checkpoint: Path, val: Path, out: Path, *, version: str = "1.0.0", target_escape: float = 0.02,
                    candidate_budget: float = 0.5, golden: int = 8, command: str = "", threads: int = 2) -> ExportResult:
    set_threads(threads)
    state = load_checkpoint(checkpoint)
    extra = state["extra"]
    channels = list(extra.get("channels", LEGACY))
    model = CenterNetDetector(num_classes=len(DEFECT_CLASSES), width=int(extra["width"]), in_channels=len(channels))
    model.load_state_dict(state["model"])
    model.eval()
    spec = DecodeSpec(**extra["decode"])
    mean, std = extra["norm"]
    blob = onnx_bytes(model, torch.zeros(1, len(channels), 256, 256), ["heatmap", "size", "offset"],
                      {"image": {0: "N", 2: "H", 3: "W"}, "heatmap": {0: "N", 2: "h", 3: "w"},
                       "size": {0: "N", 2: "h", 3: "w"}, "offset": {0: "N", 2: "h", 3: "w"}})
    val_set, val_manifest = open_set(val)
    base = ModelInfo(path=str(out), task="detect", class_names=DEFECT_CLASSES, input_size=(0, 0), input_layout="NCHW",
                     colour="mono", normalisation=Normalisation(1 / 255, (mean,), (std,)), version=version,
                     training_data_fingerprint=extra["train_fingerprint"],
                     thresholds={c: spec.min_score for c in DEFECT_CLASSES}, grey_band={},
                     extra={"decode": spec.as_dict(), "camera": "coarse", "mm_per_px": COARSE_CAMERA.mm_per_px,
                            "channels": channels, "architecture": "centernet-dwsep",
                            "light_program": COARSE_PROGRAM.as_dict() if tuple(channels) == LEGACY else coarse_program_dict(),
                            "parameters": int(extra["parameters"]), "train_seed_range": extra["train_seed_range"],
                            "val_fingerprint": val_manifest["fingerprint"], "val_seed_range": val_manifest.get("seed_range"),
                            "outputs": {"heatmap": "sigmoid centre score (N,C,H/4,W/4)",
                                        "size": "log box width/height px (N,2,H/4,W/4)",
                                        "offset": "centre within cell, cells (N,2,H/4,W/4)"}})
    save_with_metadata(blob, base, out)
    detector = Detector(load_model(out, task="detect", prefer=["CPU"], intra_op_threads=threads))

    # thresholds on the validation set, with the runtime itself
    tally, frames = DetectionTally(), []
    for record in val_set.images:
        image = load_image(val_set.root, record)
        result = detector.detect(image, thresholds={c: spec.min_score for c in DEFECT_CLASSES})
        truths = [Truth(a.category, a.box_px, float(a.attributes.get("size_mm", 0)), a.category not in DEFECT_CLASSES)
                  for a in record.annotations]
        tally.add([Pred(d.class_name, d.score, d.box_px) for d in result.detections], truths)
        if len(frames) < golden and any(not t.is_nuisance for t in truths):
            frames.append((record.file_name, image))
    thresholds = choose_detector_thresholds(tally, target_escape, candidate_budget, spec.min_score)
    val_metrics = _detector_val_metrics(tally, thresholds)
    rule = (f"per class: the higher of (a) the score that keeps ≥{1 - target_escape:.3g} of val defects and (b) the "
            f"lowest score with at most {candidate_budget:g} false candidates per coarse frame (fine-shot budget)")
    info = ModelInfo(**{**base.__dict__, "thresholds": thresholds, "metrics": {"val": val_metrics, "threshold_rule": rule}})
    save_with_metadata(blob, info, out)
    detector = Detector(load_model(out, task="detect", prefer=["CPU"], intra_op_threads=threads))

    # parity: torch checkpoint vs the ONNX file in the station runtime, on golden frames
    max_diff, differences = 0.0, []
    for name, image in frames:
        from inspector.inference.detector import preprocess
        batch = preprocess(image, info.normalisation, spec.pad_multiple, len(channels))
        with torch.no_grad():
            ref = [t[0].numpy() for t in model(torch.from_numpy(batch))]
        got = [o[0] for o in detector.forward(batch)]
        max_diff = max(max_diff, *(float(np.abs(a - b).max()) for a, b in zip(ref, got)))
        ref_dets = postprocess(*ref, class_names=DEFECT_CLASSES, thresholds=thresholds, spec=spec, image_size=image.shape[:2])
        got_dets = detector.detect(image).detections
        key = lambda ds: [(d.class_name, round(d.box_px[0], 2), round(d.box_px[1], 2)) for d in ds]  # noqa: E731
        if key(ref_dets) != key(got_dets):
            differences.append(name)
    parity = {"golden": len(frames), "unit": "coarse frames", "max_abs_diff": max_diff,
              "identical_decisions": not differences, "differences": differences,
              "golden_files": [n for n, _ in frames], "golden_set": val_manifest["fingerprint"]}
    card = write_card(out, info=info, checkpoint=state, parity=parity, command=command,
                      data={"train": {"fingerprint": extra["train_fingerprint"], "seed_range": extra["train_seed_range"],
                                      "path": _train_paths(state["config"]["train"])},
                            "val": {"fingerprint": val_manifest["fingerprint"], "seed_range": val_manifest.get("seed_range"),
                                    "path": _rel(val)}})
    return ExportResult(out, info, parity, card)


def choose_detector_thresholds(tally: DetectionTally, target_escape: float, candidate_budget: float,
                               floor: float) -> dict[str, float]:
    """Recall first, within a budget of false candidates per frame: each false candidate costs a
    fine shot (stage travel + exposure), and more than the recipe's max_shots makes a part ERROR."""
    frames = max(tally.images, 1)
    grid = np.round(np.arange(floor, 0.9001, 0.01), 4)
    thresholds = {}
    for c in DEFECT_CLASSES:
        scores = [s for cat, s in zip(tally.truth_category, tally.truth_score) if cat == c]
        by_recall = threshold_for_recall(scores, 1 - target_escape, floor=floor, ceiling=0.9)
        by_budget = next((float(t) for t in grid
                          if (lambda hc: (hc[1] - hc[0]) / frames)(tally.precision(float(t), c)) <= candidate_budget), 0.9)
        thresholds[c] = round(max(by_recall, by_budget), 4)
    return thresholds


def _detector_val_metrics(tally: DetectionTally, thresholds: dict[str, float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c, t in thresholds.items():
        found, total = tally.recall(t, c)
        hits, calls = tally.precision(t, c)
        out[c] = {"recall": [found, total], "precision": [hits, calls]}
    return out


# ---------------------------------------------------------------- classifier

def export_classifier(checkpoint: Path, val: Path, out: Path, *, version: str = "1.0.0", target_escape: float = 0.01,
                      golden: int = 128, command: str = "", threads: int = 2) -> ExportResult:
    set_threads(threads)
    state = load_checkpoint(checkpoint)
    extra = state["extra"]
    model = RoiClassifier(num_classes=len(CLASSIFIER_CLASSES), width=int(extra["width"]))
    model.load_state_dict(state["model"])
    model.eval()
    h, w = extra["input_size"]
    mean, std = extra["norm"]
    exclude = extra.get("exclude_kind")
    fit = fit_novelty(model, state["config"]["train"], extra["train_fingerprint"], exclude)
    wrapped = fit.attach(model)
    blob = onnx_bytes(wrapped, torch.zeros(2, 1, h, w), ["probabilities", "novelty"],
                      {"image": {0: "N"}, "probabilities": {0: "N"}, "novelty": {0: "N"}})
    val_set, val_manifest = open_set(val)
    roi = RoiSpec(**extra["roi"])
    base = ModelInfo(path=str(out), task="classify", class_names=CLASSIFIER_CLASSES, input_size=(h, w),
                     input_layout="NCHW", colour="mono", normalisation=Normalisation(1 / 255, (mean,), (std,)),
                     version=version, training_data_fingerprint=extra["train_fingerprint"],
                     thresholds={c: 0.5 for c in DEFECT_CLASSES}, grey_band={},
                     extra={"roi": roi.as_dict(), "camera": "fine", "mm_per_px": FINE_CAMERA.mm_per_px,
                            "light_program": FINE_PROGRAM.as_dict(), "architecture": "small-cnn-dwsep",
                            "parameters": int(extra["parameters"]), "train_seed_range": extra["train_seed_range"],
                            "val_fingerprint": val_manifest["fingerprint"], "val_seed_range": val_manifest.get("seed_range"),
                            "outputs": {"probabilities": "softmax over class_names (N,C)",
                                        "novelty": "distance of the crop's features to the nearest training class (N,)"},
                            **({"exclude_kind": exclude} if exclude else {})})
    save_with_metadata(blob, base, out)
    classifier = Classifier(load_model(out, task="classify", prefer=["CPU"], intra_op_threads=threads))

    samples = tc.load_samples(val_set, exclude)
    crops = tc.fixed_val_crops(samples)
    labels = np.array([s.label for s in samples])
    items = classifier.classify_crops(crops).items
    probs = np.array([[r.scores[c] for c in CLASSIFIER_CLASSES] for r in items])
    novelty = np.array([r.novelty for r in items], np.float64)
    limit = nv.choose_limit(novelty)
    thresholds, grey = choose_classifier_thresholds(probs, labels, target_escape)
    val_metrics = classifier_figures(probs, labels, thresholds, grey)
    base_extra = {**base.extra, "novelty": nv.metadata(fit, limit, novelty, labels, CLASSIFIER_CLASSES)}
    info = ModelInfo(**{**base.__dict__, "thresholds": thresholds, "grey_band": grey, "extra": base_extra,
                        "metrics": {"val": val_metrics, "threshold_rule": (
                            f"per class: accept keeps ≥{1 - target_escape:.3g} of val defects of that class as defects; "
                            f"grey band down to the score that keeps ≥{1 - target_escape / 4:.3g}")}})
    save_with_metadata(blob, info, out)
    classifier = Classifier(load_model(out, task="classify", prefer=["CPU"], intra_op_threads=threads))

    gold = crops[:golden]
    with torch.no_grad():
        ref, ref_novelty = (t.numpy() for t in wrapped(torch.from_numpy(tc.to_input(gold)[:, None])))
    got_items = classifier.classify_crops(gold).items
    got = np.array([[r.scores[c] for c in CLASSIFIER_CLASSES] for r in got_items])
    got_novelty = np.array([r.novelty for r in got_items], np.float64)
    limit = classifier.novelty_limit
    policies = {c: ClassPolicy(0.0, thresholds[c], grey[c]) for c in DEFECT_CLASSES}
    decide = lambda row, n: (*judge_scores(dict(zip(CLASSIFIER_CLASSES, map(float, row))), policies)[::2], n > limit)  # noqa: E731
    differences = [i for i in range(len(gold)) if decide(ref[i], ref_novelty[i]) != decide(got[i], got_novelty[i])]
    parity = {"golden": int(len(gold)), "unit": "val crops", "max_abs_diff": float(np.abs(ref - got).max()) if len(gold) else 0.0,
              "novelty_max_rel_diff": float((np.abs(ref_novelty - got_novelty) / np.maximum(ref_novelty, 1e-6)).max())
              if len(gold) else 0.0,
              "identical_decisions": not differences, "differences": differences, "golden_set": val_manifest["fingerprint"]}
    card = write_card(out, info=info, checkpoint=state, parity=parity, command=command,
                      data={"train": {"fingerprint": extra["train_fingerprint"], "seed_range": extra["train_seed_range"],
                                      "path": _train_paths(state["config"]["train"]), "counts": extra.get("train_counts")},
                            "val": {"fingerprint": val_manifest["fingerprint"], "seed_range": val_manifest.get("seed_range"),
                                    "path": _rel(val), "samples": int(len(labels))}})
    return ExportResult(out, info, parity, card)


def fit_novelty(model: RoiClassifier, train: str | list[str], fingerprint: str, exclude: str | None) -> nv.NoveltyFit:
    """Fit the novelty score on the checkpoint's own training crops: the cuts training makes (fixed
    jitter draws), without the photometric augmentation, and without a left-out kind."""
    sets, manifest = open_sets([Path(p) for p in ([train] if isinstance(train, str) else train)])
    if manifest["fingerprint"] != fingerprint:
        raise ValueError(f"training set {_train_paths(train)} has fingerprint {manifest['fingerprint']}, the checkpoint "
                         f"was trained on {fingerprint}: regenerate it to fit the novelty score")
    samples = [s for data in sets for s in tc.load_samples(data, exclude)]
    rng = np.random.default_rng(nv.FIT_SEED)
    crops = np.concatenate([tc.make_crops(samples, rng, augment=False) for _ in range(nv.FIT_DRAWS)])
    labels = np.tile(np.array([s.label for s in samples]), nv.FIT_DRAWS)
    return nv.fit(nv.embeddings(model, tc.to_input(crops)[:, None]), labels)


def choose_classifier_thresholds(probs: np.ndarray, labels: np.ndarray, target_escape: float
                                 ) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Accept threshold per class: keep ≥ 1 - target of that class's val defects at or above it
    (score = the best non-ok probability, as the verdict rules read it). Grey band: from the score
    that keeps ≥ 1 - target/4 up to the accept threshold."""
    defect_score = probs[:, 1:].max(1)
    thresholds, grey = {}, {}
    for k, c in enumerate(DEFECT_CLASSES, start=1):
        scores = defect_score[labels == k]
        accept = round(threshold_for_recall(scores, 1 - target_escape, floor=0.2, ceiling=0.9), 4)
        low = round(threshold_for_recall(scores, 1 - target_escape / 4, floor=0.05, ceiling=accept), 4)
        low = min(low, round(accept * 0.7, 4))
        thresholds[c], grey[c] = accept, (low, accept)
    return thresholds, grey


def classifier_figures(probs: np.ndarray, labels: np.ndarray, thresholds: dict[str, float],
                       grey: dict[str, tuple[float, float]]) -> dict[str, Any]:
    policies = {c: ClassPolicy(0.0, thresholds[c], grey[c]) for c in DEFECT_CLASSES}
    out: dict[str, Any] = {"confusion": {}, "per_class": {}}
    decisions = [judge_scores(dict(zip(CLASSIFIER_CLASSES, map(float, row))), policies) for row in probs]
    for k, c in enumerate(CLASSIFIER_CLASSES):
        mask = labels == k
        rows = [decisions[i] for i in np.flatnonzero(mask)]
        called = sum(d[2] == "defect" for d in rows)
        review = sum(d[2] == "review" for d in rows)
        right = sum(d[2] == "defect" and d[0] == c for d in rows) if c != OK else sum(d[2] == "ok" for d in rows)
        out["per_class"][c] = {"samples": int(mask.sum()), "called_defect": called, "review": review,
                               "correct": right}
        out["confusion"][c] = {p: int(((probs[mask].argmax(1)) == j).sum()) for j, p in enumerate(CLASSIFIER_CLASSES)}
    return out
