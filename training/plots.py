"""PR curves as PNG: matplotlib when installed (the `train` extra has it), else drawn with OpenCV."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np

from .metrics import DetectionTally

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
SWEEP = np.linspace(0.02, 0.98, 49)


def detector_curves(tally: DetectionTally, classes: Sequence[str]) -> dict[str, list[tuple[float, float, float]]]:
    return {c: tally.pr_curve(c, SWEEP) for c in classes}


def classifier_curves(fine_scores: Sequence[tuple[int, np.ndarray]], class_names: Sequence[str]
                      ) -> dict[str, list[tuple[float, float, float]]]:
    """Per defect class: positives = candidates whose truth is that class, score = its probability."""
    labels = np.array([l for l, _ in fine_scores], np.int64)
    probs = np.array([p for _, p in fine_scores]).reshape(-1, len(class_names))
    curves = {}
    for k, c in enumerate(class_names):
        if c == "ok":
            continue
        positive = labels == k
        points = []
        for t in SWEEP:
            called = probs[:, k] >= t
            tp = int((called & positive).sum())
            recall = tp / positive.sum() if positive.any() else float("nan")
            precision = tp / called.sum() if called.any() else float("nan")
            points.append((float(t), recall, precision))
        curves[c] = points
    return curves


def plot_pr_curves(out: Path, tally: DetectionTally, fine_scores, detector_classes: Sequence[str],
                   classifier_classes: Sequence[str], detector_thresholds: Mapping[str, float | None],
                   classifier_thresholds: Mapping[str, float]) -> list[Path]:
    paths = []
    for name, curves, marks, title in (
            ("pr_detector.png", detector_curves(tally, detector_classes), detector_thresholds,
             "coarse detector (held-out lot): recall per true class, precision per predicted class"),
            ("pr_classifier.png", classifier_curves(fine_scores, classifier_classes), classifier_thresholds,
             "fine classifier on the candidates (held-out lot)")):
        path = Path(out) / name
        try:
            _plot_matplotlib(path, curves, marks, title)
        except ImportError:
            _plot_cv2(path, curves, marks, title)
        paths.append(path)
    return paths


def _mark(points, threshold):
    if threshold is None or not points:
        return None
    return min(points, key=lambda p: abs(p[0] - threshold))


def _plot_matplotlib(path: Path, curves, marks, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 5.0), dpi=100)
    for i, (c, points) in enumerate(curves.items()):
        pts = [(r, p) for _, r, p in points if not (np.isnan(r) or np.isnan(p))]
        if not pts:
            continue
        r, p = zip(*pts)
        ax.plot(r, p, color=COLOURS[i % len(COLOURS)], label=c, lw=1.8)
        m = _mark(points, marks.get(c))
        if m and not (np.isnan(m[1]) or np.isnan(m[2])):
            ax.plot([m[1]], [m[2]], "o", color=COLOURS[i % len(COLOURS)], ms=7, mfc="none", mew=2)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", title="circle = shipped threshold", fontsize=8, title_fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_cv2(path: Path, curves, marks, title: str, size: int = 480, margin: int = 50) -> None:
    img = np.full((size + 2 * margin, size + 2 * margin, 3), 255, np.uint8)
    to_px = lambda r, p: (int(margin + r * size), int(margin + (1 - p) * size))  # noqa: E731
    for k in range(11):
        x, y = to_px(k / 10, k / 10)
        cv2.line(img, (x, margin), (x, margin + size), (230, 230, 230), 1)
        cv2.line(img, (margin, y), (margin + size, y), (230, 230, 230), 1)
    cv2.rectangle(img, (margin, margin), (margin + size, margin + size), (0, 0, 0), 1)
    cv2.putText(img, "recall", (margin + size // 2 - 20, margin + size + 35), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    cv2.putText(img, "precision", (5, margin - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    cv2.putText(img, title[:70], (margin, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    for i, (c, points) in enumerate(curves.items()):
        hexcol = COLOURS[i % len(COLOURS)]
        colour = tuple(int(hexcol[j:j + 2], 16) for j in (5, 3, 1))  # BGR
        pts = [to_px(r, p) for _, r, p in points if not (np.isnan(r) or np.isnan(p))]
        if len(pts) > 1:
            cv2.polylines(img, [np.array(sorted(pts), np.int32)], False, colour, 2)
        m = _mark(points, marks.get(c))
        if m and not (np.isnan(m[1]) or np.isnan(m[2])):
            cv2.circle(img, to_px(m[1], m[2]), 6, colour, 2)
        cv2.putText(img, c, (margin + 10, margin + size - 15 - 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1)
    cv2.imwrite(str(path), img)
