"""Matching detections to ground truth, PR curves, thresholds for a target escape rate.

Matching is by position, not IoU: a defect of 3 px has no stable IoU, and the coarse stage's job
is to say *where* to look again. A detection matches a truth when either centre lies inside the
other's box grown by `tolerance_px`. Greedy by score; one detection matches at most one truth.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

SIZE_BINS_MM = (0.0, 0.1, 0.25, 0.5, 1.0, float("inf"))


def size_bin(size_mm: float, bins: Sequence[float] = SIZE_BINS_MM) -> str:
    for lo, hi in zip(bins, bins[1:]):
        if lo <= size_mm < hi:
            return f"{lo:g}-{hi:g} mm" if hi != float("inf") else f"≥{lo:g} mm"
    return "unknown"


def size_bin_names(bins: Sequence[float] = SIZE_BINS_MM) -> list[str]:
    return [size_bin((lo + hi) / 2 if hi != float("inf") else lo + 1, bins) for lo, hi in zip(bins, bins[1:])]


@dataclass(frozen=True)
class Truth:
    category: str
    box_px: tuple[float, float, float, float]
    size_mm: float = 0.0
    is_nuisance: bool = False
    key: str = ""  # identifies the physical defect (part + defect id) across views


@dataclass(frozen=True)
class Pred:
    category: str
    score: float
    box_px: tuple[float, float, float, float]


def _inside(point: tuple[float, float], box: Sequence[float], tol: float) -> bool:
    return box[0] - tol <= point[0] <= box[2] + tol and box[1] - tol <= point[1] <= box[3] + tol


def _centre(box: Sequence[float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def matches(pred: Pred, truth: Truth, tolerance_px: float) -> bool:
    return _inside(_centre(pred.box_px), truth.box_px, tolerance_px) or _inside(_centre(truth.box_px), pred.box_px, tolerance_px)


@dataclass
class ImageMatch:
    truth_score: list[float]  # per truth: best score of a detection matched to it (0 when none)
    truth_class_score: list[float]  # per truth: best score of a matched detection *of its class*
    pred_truth: list[int]  # per prediction: index of the truth it matched, -1 for none


def match_image(preds: Sequence[Pred], truths: Sequence[Truth], tolerance_px: float = 3.0) -> ImageMatch:
    """Greedy by score: each prediction takes the nearest unmatched real defect it touches; a
    prediction on a nuisance or already-matched defect is marked with that truth (it is not a
    new find) but only real defects count as hits."""
    order = sorted(range(len(preds)), key=lambda i: -preds[i].score)
    truth_score = [0.0] * len(truths)
    class_score = [0.0] * len(truths)
    pred_truth = [-1] * len(preds)
    taken = [False] * len(truths)
    for i in order:
        p = preds[i]
        candidates = [j for j, t in enumerate(truths) if matches(p, t, tolerance_px)]
        if not candidates:
            continue
        pc = _centre(p.box_px)
        candidates.sort(key=lambda j: (truths[j].is_nuisance, taken[j],
                                       np.hypot(*np.subtract(pc, _centre(truths[j].box_px)))))
        j = candidates[0]
        pred_truth[i] = j
        if not taken[j]:
            taken[j] = True
            truth_score[j] = p.score
        if p.category == truths[j].category:
            class_score[j] = max(class_score[j], p.score)
    return ImageMatch(truth_score, class_score, pred_truth)


@dataclass
class DetectionTally:
    """Everything needed for recall/precision at any threshold, gathered over a set of images."""

    truth_category: list[str] = field(default_factory=list)
    truth_size_mm: list[float] = field(default_factory=list)
    truth_score: list[float] = field(default_factory=list)
    truth_class_score: list[float] = field(default_factory=list)
    pred_category: list[str] = field(default_factory=list)
    pred_score: list[float] = field(default_factory=list)
    pred_hit: list[bool] = field(default_factory=list)  # matched a real defect
    pred_nuisance: list[bool] = field(default_factory=list)  # matched only a nuisance
    images: int = 0

    def add(self, preds: Sequence[Pred], truths: Sequence[Truth], tolerance_px: float = 3.0) -> ImageMatch:
        m = match_image(preds, truths, tolerance_px)
        self.images += 1
        for t, s, cs in zip(truths, m.truth_score, m.truth_class_score):
            if t.is_nuisance:
                continue
            self.truth_category.append(t.category)
            self.truth_size_mm.append(t.size_mm)
            self.truth_score.append(s)
            self.truth_class_score.append(cs)
        for p, j in zip(preds, m.pred_truth):
            self.pred_category.append(p.category)
            self.pred_score.append(p.score)
            self.pred_hit.append(j >= 0 and not truths[j].is_nuisance)
            self.pred_nuisance.append(j >= 0 and truths[j].is_nuisance)
        return m

    # ---- figures at a threshold
    def recall(self, threshold: float, category: str | None = None, size_bin_name: str | None = None) -> tuple[int, int]:
        """(found, total) real defects whose best matching detection scores ≥ threshold."""
        found = total = 0
        for c, size, s in zip(self.truth_category, self.truth_size_mm, self.truth_score):
            if (category is None or c == category) and (size_bin_name is None or size_bin(size) == size_bin_name):
                total += 1
                found += s >= threshold and s > 0
        return found, total

    def precision(self, threshold: float, category: str | None = None) -> tuple[int, int]:
        """(hits, calls): detections ≥ threshold (of `category` when given) that lie on a real defect."""
        hits = calls = 0
        for c, s, hit in zip(self.pred_category, self.pred_score, self.pred_hit):
            if s >= threshold and (category is None or c == category):
                calls += 1
                hits += hit
        return hits, calls

    def pr_curve(self, category: str | None = None, thresholds: Iterable[float] | None = None) -> list[tuple[float, float, float]]:
        """(threshold, recall, precision) points; recall per truth class, precision per predicted class
        (nan where nothing is called at that threshold)."""
        points = []
        for t in (thresholds if thresholds is not None else np.linspace(0.05, 0.95, 19)):
            found, total = self.recall(t, category)
            hits, calls = self.precision(t, category)
            points.append((float(t), found / total if total else float("nan"), hits / calls if calls else float("nan")))
        return points

    def average_precision(self) -> float:
        """Class-agnostic area under the PR curve (recall over real defects); a threshold at which
        nothing is called counts as precision 1 (it adds no recall, so it adds no area)."""
        points = [(t, r, 1.0 if np.isnan(p) else p) for t, r, p in self.pr_curve(None, np.linspace(0.02, 0.98, 49))]
        points.sort(key=lambda p: p[1])
        area, last_r = 0.0, 0.0
        for _, r, p in points:
            if np.isnan(r):
                continue
            area += max(r - last_r, 0) * p
            last_r = max(last_r, r)
        return float(area)


def threshold_for_recall(scores: Sequence[float], target_recall: float, *, floor: float = 0.05,
                         ceiling: float = 0.95) -> float:
    """The highest threshold that keeps at least `target_recall` of the scores at or above it."""
    values = np.sort(np.asarray([s for s in scores], np.float64))[::-1]
    if not len(values):
        return floor
    keep = int(np.ceil(target_recall * len(values)))
    keep = min(max(keep, 1), len(values))
    return float(np.clip(values[keep - 1], floor, ceiling))


def ratio(count: int, total: int) -> float | None:
    return count / total if total else None
