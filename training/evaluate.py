"""Held-out evaluation of the two-stage inspection, run the way the station runs it.

For each part of a held-out lot (seeds nobody trained or tuned on; a production-like mix, half
the parts defective): render the coarse view of each face → `Detector.detect` → for each
candidate at or above its class threshold, map its centre to face mm, render a fine shot aimed
there → `Classifier.classify` on the candidate's box mapped into the fine frame → the verdict
rules' `judge_scores` with the classifier's thresholds and grey band. A part with any defect
call FAILs, one with anything in review goes to REVIEW (never PASS), else PASS.

Figures, always with their counts:
- defect level (coarse detector): recall per class and per size bin, precision per class;
  PR curves; nuisance hits;
- defect level (end to end): share of real defects that end as a defect call / review;
- part level: escape rate = defective parts PASSed / defective parts; overkill = good parts
  FAILed / good parts; review rates of both;
- timings: detector ms per coarse frame, classifier ms per batch (pre / infer / post).
"""
from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hardware.sim.geometry import COARSE_CAMERA, FACES, FINE_CAMERA, face_point_pose, face_view_pose, pixel_to_face
from hardware.sim.render import render
from inspector.inference.classifier import Classifier
from inspector.inference.detector import Detector
from inspector.inference.loaded_model import load_model
from inspector.recipe import ClassPolicy
from inspector.verdict import judge_scores

from .cards import update_card
from .data.generate import LOT_MIX, fine_render_seed, render_coarse
from .data.records import CLASSIFIER_CLASSES, DEFECT_CLASSES, OK
from .lights import FINE_PROGRAM
from .loop import write_json
from .metrics import DetectionTally, Pred, Truth, ratio, size_bin, size_bin_names
from .plots import plot_pr_curves
from .splits import seeds_for

MAX_SHOTS = 40  # as the reference recipe: more candidates than this → ERROR (not fully inspected)


@dataclass
class EvalReport:
    data: dict[str, Any]
    out: Path
    lines: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return "\n".join(self.lines) + f"\nreport: {self.out / 'report.md'}"


def _frac(n: int, d: int) -> str:
    return f"{100 * n / d:.1f} % ({n}/{d})" if d else f"– (0/0)"


def evaluate_lot(detector_path: Path, classifier_path: Path, *, parts: int = 300, split: str = "heldout",
                 offset: int = 0, out: Path = Path("out/eval"), threads: int = 2, write_cards: bool = False,
                 command: str = "", progress: bool = True) -> EvalReport:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    detector = Detector(load_model(detector_path, task="detect", prefer=["CPU"], intra_op_threads=threads))
    classifier = Classifier(load_model(classifier_path, task="classify", prefer=["CPU"], intra_op_threads=threads))
    policies = {c: ClassPolicy(detector.info.thresholds.get(c, 0.5), classifier.info.thresholds[c],
                               classifier.info.grey_band.get(c, (classifier.info.thresholds[c],) * 2))
                for c in DEFECT_CLASSES}
    floor = {c: detector.spec.min_score for c in DEFECT_CLASSES}
    seeds = seeds_for(split, parts, offset)
    lot_digest = hashlib.sha256()
    tally = DetectionTally()
    det_ms: list[tuple[float, float, float]] = []
    cls_ms: list[tuple[float, float, float]] = []
    fine_scores: list[tuple[int, np.ndarray]] = []  # (true label index, probabilities) per fine shot
    end_to_end: dict[str, Counter] = defaultdict(Counter)  # per (class) / (size bin): caught / review / missed
    parts_out = []
    started = time.time()
    for n, seed in enumerate(seeds):
        part = LOT_MIX.make(seed)
        decisions: list[tuple[str, str, float]] = []
        shots = 0
        truth_outcome: dict[int, str] = {d.id: "missed" for d in part.true_defects}
        coarse_max: dict[str, float] = {}  # best detector score per class on the part (coarse-only baseline)
        for face in FACES:
            pose = face_view_pose(face, COARSE_CAMERA)
            frame = render_coarse(part, face)
            lot_digest.update(frame.image.tobytes())
            result = detector.detect(frame.image, thresholds=floor)
            det_ms.append((result.timings.pre_ms, result.timings.infer_ms, result.timings.post_ms))
            truths = [Truth(t.kind, tuple(map(float, t.box_px)), t.size_mm, t.is_nuisance, str(t.defect_id))
                      for t in frame.truth]
            preds = [Pred(d.class_name, d.score, d.box_px) for d in result.detections]
            for det in result.detections:
                coarse_max[det.class_name] = max(coarse_max.get(det.class_name, 0.0), round(float(det.score), 4))
            match = tally.add(preds, truths)
            for det, j in zip(result.detections, match.pred_truth):
                if det.score < detector.info.thresholds.get(det.class_name, 0.5):
                    continue
                shots += 1
                if shots > MAX_SHOTS:
                    continue
                cx, cy = det.center_px
                fface, u, v = pixel_to_face(COARSE_CAMERA, pose, cx, cy)  # nominal fixture, as calibrated
                fine_pose = face_point_pose(fface, u, v, FINE_CAMERA)
                fine = render(part, fine_pose, FINE_PROGRAM.levels, FINE_CAMERA, exposure_us=FINE_PROGRAM.exposure_us,
                              gain=FINE_PROGRAM.gain, seed=fine_render_seed(seed, 100 + shots))
                lot_digest.update(fine.image.tobytes())
                scale = COARSE_CAMERA.mm_per_px / FINE_CAMERA.mm_per_px
                w, h = det.size_px
                fx, fy = FINE_CAMERA.width_px / 2, FINE_CAMERA.height_px / 2
                box = (fx - w * scale / 2, fy - h * scale / 2, fx + w * scale / 2, fy + h * scale / 2)
                res = classifier.classify(fine.image, [box])
                cls_ms.append((res.timings.pre_ms, res.timings.infer_ms, res.timings.post_ms))
                item = res.items[0]
                name, score, decision = judge_scores(item.scores, policies)
                decisions.append((name, decision, score))
                truth = truths[j] if j >= 0 else None
                label = CLASSIFIER_CLASSES.index(truth.category) if truth is not None and not truth.is_nuisance else 0
                fine_scores.append((label, np.array([item.scores[c] for c in CLASSIFIER_CLASSES])))
                if truth is not None and not truth.is_nuisance:
                    key = int(truth.key)
                    rank = {"missed": 0, "ok": 1, "review": 2, "defect": 3}
                    if rank[decision] > rank.get(truth_outcome.get(key, "missed"), 0):
                        truth_outcome[key] = decision
        for d in part.true_defects:
            outcome = truth_outcome[d.id]
            for key in (d.kind, size_bin(d.size_mm), "all"):
                end_to_end[key][outcome] += 1
        if shots > MAX_SHOTS:
            verdict = "ERROR"
        elif any(dec == "defect" for _, dec, _ in decisions):
            verdict = "FAIL"
        elif any(dec == "review" for _, dec, _ in decisions):
            verdict = "REVIEW"
        else:
            verdict = "PASS"
        parts_out.append({"seed": seed, "serial": part.serial, "defective": part.is_defective,
                          "true_defects": [f"{d.kind}:{d.size_mm:g}mm@{d.face}" for d in part.true_defects],
                          "verdict": verdict, "shots": shots, "coarse_max": coarse_max,
                          "calls": [f"{nm}:{dec}:{sc:.2f}" for nm, dec, sc in decisions if dec != OK]})
        if progress and ((n + 1) % max(1, parts // 10) == 0 or n + 1 == parts):
            print(f"  eval: {n + 1}/{parts} parts", flush=True)

    report = _assemble(detector, classifier, tally, parts_out, end_to_end, fine_scores, det_ms, cls_ms,
                       split=split, seeds=seeds, lot_fingerprint="sha256:" + lot_digest.hexdigest()[:20],
                       seconds=time.time() - started, command=command, threads=threads)
    report["batch_timing"] = _batch_timing(classifier)
    report["recipe_classes"] = {c: {"detect_threshold": policies[c].detect_threshold,
                                    "accept_threshold": policies[c].accept_threshold,
                                    "grey_band": list(policies[c].grey_band)} for c in DEFECT_CLASSES}
    write_json(out / "report.json", report)
    plots = plot_pr_curves(out, tally, fine_scores, DEFECT_CLASSES, CLASSIFIER_CLASSES,
                           {c: detector.info.thresholds.get(c) for c in DEFECT_CLASSES}, dict(classifier.info.thresholds))
    report["plots"] = [str(p) for p in plots]
    md = render_report(report)
    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    if write_cards:
        stamp_models(detector_path, classifier_path, report)
    return EvalReport(report, out, md[:40])


def _assemble(detector, classifier, tally: DetectionTally, parts_out, end_to_end, fine_scores, det_ms, cls_ms, *,
              split, seeds, lot_fingerprint, seconds, command, threads) -> dict[str, Any]:
    thresholds = dict(detector.info.thresholds)
    det: dict[str, Any] = {"per_class": {}, "per_size": {}, "per_class_size": {}}
    for c in DEFECT_CLASSES:
        t = thresholds.get(c, 0.5)
        det["per_class"][c] = {"threshold": t, "recall": list(tally.recall(t, c)), "precision": list(tally.precision(t, c))}
        det["per_class_size"][c] = {b: list(tally.recall(t, c, b)) for b in size_bin_names()}
    tmin = min(thresholds.values()) if thresholds else 0.5
    for b in size_bin_names():
        found = total = 0
        for c in DEFECT_CLASSES:
            f, n = tally.recall(thresholds.get(c, 0.5), c, b)
            found, total = found + f, total + n
        det["per_size"][b] = [found, total]
    found = sum(det["per_class"][c]["recall"][0] for c in DEFECT_CLASSES)
    total = sum(det["per_class"][c]["recall"][1] for c in DEFECT_CLASSES)
    calls = sum(1 for c, s in zip(tally.pred_category, tally.pred_score) if s >= thresholds.get(c, 0.5))
    hits = sum(1 for c, s, h in zip(tally.pred_category, tally.pred_score, tally.pred_hit) if h and s >= thresholds.get(c, 0.5))
    nuis = sum(1 for c, s, h in zip(tally.pred_category, tally.pred_score, tally.pred_nuisance) if h and s >= thresholds.get(c, 0.5))
    det["all"] = {"recall": [found, total], "precision": [hits, calls], "nuisance_hits": nuis, "frames": tally.images,
                  "candidates_per_frame": calls / max(tally.images, 1), "min_threshold": tmin}

    verdicts = Counter((p["defective"], p["verdict"]) for p in parts_out)
    defective = sum(v for (d, _), v in verdicts.items() if d)
    good = sum(v for (d, _), v in verdicts.items() if not d)
    part_level = {
        "parts": len(parts_out), "defective_parts": defective, "good_parts": good,
        "escapes": verdicts[(True, "PASS")], "escape_rate": ratio(verdicts[(True, "PASS")], defective),
        "overkill": verdicts[(False, "FAIL")], "overkill_rate": ratio(verdicts[(False, "FAIL")], good),
        "defective_to_review": verdicts[(True, "REVIEW")], "good_to_review": verdicts[(False, "REVIEW")],
        "errors": verdicts[(True, "ERROR")] + verdicts[(False, "ERROR")],
        "verdicts": {f"{'defective' if d else 'good'} {v}": n for (d, v), n in sorted(verdicts.items())},
        "fine_shots": sum(p["shots"] for p in parts_out),
    }
    labels = np.array([l for l, _ in fine_scores], np.int64)
    probs = np.array([p for _, p in fine_scores]).reshape(-1, len(CLASSIFIER_CLASSES))
    confusion = {c: {p: int(((labels == i) & (probs.argmax(1) == j)).sum()) if len(labels) else 0
                     for j, p in enumerate(CLASSIFIER_CLASSES)} for i, c in enumerate(CLASSIFIER_CLASSES)}

    def ms(rows):
        a = np.array(rows).reshape(-1, 3)
        if not len(a):
            return {}
        return {"pre_ms": float(np.median(a[:, 0])), "infer_ms": float(np.median(a[:, 1])), "post_ms": float(np.median(a[:, 2])),
                "total_ms_median": float(np.median(a.sum(1))), "total_ms_p95": float(np.percentile(a.sum(1), 95)), "calls": len(a)}

    return {
        "lot": {"split": split, "seed_range": [seeds.start, seeds.stop - 1], "parts": len(parts_out),
                "mix": LOT_MIX.__dict__, "fingerprint": lot_fingerprint},
        "models": {"detector": {"path": str(detector.info.path), "version": detector.info.version,
                                "fingerprint": detector.info.training_data_fingerprint, "thresholds": thresholds},
                   "classifier": {"path": str(classifier.info.path), "version": classifier.info.version,
                                  "fingerprint": classifier.info.training_data_fingerprint,
                                  "thresholds": dict(classifier.info.thresholds),
                                  "grey_band": {k: list(v) for k, v in classifier.info.grey_band.items()}}},
        "detector": det, "end_to_end": {k: dict(v) for k, v in end_to_end.items()}, "part_level": part_level,
        "classifier_confusion_on_candidates": confusion,
        "timing": {"threads": threads, "detector_per_frame": ms(det_ms), "classifier_per_call": ms(cls_ms)},
        "parts": parts_out, "seconds": round(seconds, 1), "command": command,
    }


def _batch_timing(classifier: Classifier, batch: int = 16, repeats: int = 20) -> dict[str, Any]:
    """Classifier ms for one batch of `batch` ROIs in one fine frame (synthetic flat frame)."""
    rng = np.random.default_rng(0)
    image = rng.integers(90, 110, (FINE_CAMERA.height_px, FINE_CAMERA.width_px), dtype=np.uint8)
    boxes = [(x, y, x + 30, y + 30) for x, y in rng.integers(50, 500, (batch, 2))]
    classifier.classify(image, boxes)
    totals = [classifier.classify(image, boxes).timings for _ in range(repeats)]
    return {"batch": batch, "total_ms_median": float(np.median([t.total_ms for t in totals])),
            "infer_ms_median": float(np.median([t.infer_ms for t in totals]))}


def render_report(r: dict[str, Any]) -> list[str]:
    p, d = r["part_level"], r["detector"]
    lot = r["lot"]
    lines = [f"# Held-out evaluation: {lot['parts']} parts", "",
             f"Lot: split `{lot['split']}`, part seeds {lot['seed_range'][0]}–{lot['seed_range'][1]}, "
             f"mix {lot['mix']}, fingerprint `{lot['fingerprint']}`.",
             f"Models: detector `{r['models']['detector']['path']}`, classifier `{r['models']['classifier']['path']}`.", "",
             "## Part level", "",
             f"- **escape rate** (defective parts passed): **{_frac(p['escapes'], p['defective_parts'])}**",
             f"- **overkill** (good parts failed): **{_frac(p['overkill'], p['good_parts'])}**",
             f"- to review: defective {_frac(p['defective_to_review'], p['defective_parts'])}, "
             f"good {_frac(p['good_to_review'], p['good_parts'])}; ERROR (more than {MAX_SHOTS} fine shots): {p['errors']}",
             f"- verdicts: {p['verdicts']}; fine shots {p['fine_shots']}", "",
             "## Coarse detector, defect level (at the shipped per-class thresholds)", "",
             "| class | threshold | recall | precision |", "|---|---|---|---|"]
    for c, m in d["per_class"].items():
        lines.append(f"| {c} | {m['threshold']:.3f} | {_frac(*m['recall'])} | {_frac(*m['precision'])} |")
    a = d["all"]
    lines += [f"| all | | {_frac(*a['recall'])} | {_frac(*a['precision'])} |", "",
              f"Candidates per frame {a['candidates_per_frame']:.2f}; detections on nuisances {a['nuisance_hits']}.", "",
              "Recall by size (mm):", "", "| class | " + " | ".join(size_bin_names()) + " |",
              "|---|" + "---|" * len(size_bin_names())]
    for c, bins in d["per_class_size"].items():
        lines.append(f"| {c} | " + " | ".join(_frac(*bins[b]) for b in size_bin_names()) + " |")
    lines.append("| all | " + " | ".join(_frac(*d["per_size"][b]) for b in size_bin_names()) + " |")
    lines += ["", "## End to end, defect level (detector → fine shot → classifier)", "",
              "| group | defect call | review | cleared as ok | never re-imaged |", "|---|---|---|---|---|"]
    for key in list(DEFECT_CLASSES) + size_bin_names() + ["all"]:
        cnt = r["end_to_end"].get(key)
        if not cnt:
            continue
        n = sum(cnt.values())
        lines.append(f"| {key} | {_frac(cnt.get('defect', 0), n)} | {_frac(cnt.get('review', 0), n)} | "
                     f"{_frac(cnt.get('ok', 0), n)} | {_frac(cnt.get('missed', 0), n)} |")
    lines += ["", "## Classifier on the fine shots (rows: truth of the candidate, columns: argmax)", "",
              "| truth \\ predicted | " + " | ".join(CLASSIFIER_CLASSES) + " |", "|---|" + "---|" * len(CLASSIFIER_CLASSES)]
    for c, row in r["classifier_confusion_on_candidates"].items():
        lines.append(f"| {c} | " + " | ".join(str(row[p]) for p in CLASSIFIER_CLASSES) + " |")
    t = r["timing"]
    dt, ct, bt = t["detector_per_frame"], t["classifier_per_call"], r.get("batch_timing", {})
    lines += ["", f"## Timing (CPU, onnxruntime, {t['threads']} threads; medians)", ""]
    if dt:
        lines.append(f"- detector per 1024×768 frame: {dt['total_ms_median']:.1f} ms (pre {dt['pre_ms']:.1f}, infer "
                     f"{dt['infer_ms']:.1f}, post {dt['post_ms']:.1f}; p95 {dt['total_ms_p95']:.1f}) over {dt['calls']} frames")
    if ct:
        lines.append(f"- classifier per single-ROI call: {ct['total_ms_median']:.2f} ms over {ct['calls']} calls")
    if bt:
        lines.append(f"- classifier per batch of {bt['batch']} ROIs: {bt['total_ms_median']:.2f} ms "
                     f"(infer {bt['infer_ms_median']:.2f})")
    if r.get("plots"):
        lines += ["", "PR curves: " + ", ".join(f"`{Path(p).name}`" for p in r["plots"])]
    if r.get("recipe_classes"):
        lines += ["", "Recipe `classes` block these figures were measured with (detector and classifier thresholds "
                      "from the models' metadata):", "", "```json", json.dumps(r["recipe_classes"], indent=1), "```"]
    lines += ["", f"Run time {r['seconds']} s. Command: `{r['command']}`"]
    return lines


def stamp_models(detector_path: Path, classifier_path: Path, report: dict[str, Any]) -> None:
    """Put the held-out headline figures into both models' metadata and cards."""
    from .export import restamp
    p = report["part_level"]
    headline = {"heldout_lot": report["lot"]["fingerprint"], "heldout_parts": p["parts"],
                "escape_rate": p["escape_rate"], "escapes": [p["escapes"], p["defective_parts"]],
                "overkill_rate": p["overkill_rate"], "overkill": [p["overkill"], p["good_parts"]],
                "detector_recall": report["detector"]["all"]["recall"]}
    md = render_report(report)
    for path in (detector_path, classifier_path):
        restamp(Path(path), metrics={"heldout": headline})
        update_card(Path(path), heldout={"summary": headline, "lot": report["lot"], "markdown": md[2:]})
