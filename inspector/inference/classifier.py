"""Fine ROI classifier at run time: crop ROIs → pre-process → forward (batched) → post-process.

Each candidate becomes a square crop about its box centre: side = max(min_side_px, context ×
the box's longer side), cut with edge replication where it leaves the frame and resized to the
model's input. The model outputs class probabilities (softmax inside the graph, `ok` included);
the verdict rules pick the best non-`ok` class and compare it with the recipe's thresholds.

Models from 1.2.0 also output `novelty` (N,): how unlike the training data a crop is (distance of
its features to the nearest training class). Its limit comes from the model's metadata
(`Classifier.novelty_limit`); a model without that output still loads and reports novelty None.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import cv2
import numpy as np

from .detector import StageTimings, _Stopwatch, normalise, to_mono
from .loaded_model import LoadedModel, load_model
from .model_package import ModelContractError, ModelInfo

OK = "ok"
NOVELTY = "novelty"  # the optional second output of a classifier graph


@dataclass(frozen=True)
class RoiSpec:
    """How crops are cut; stored in the model's metadata (`ModelInfo.extra['roi']`)."""

    context: float = 1.5
    min_side_px: float = 64.0
    max_batch: int = 0  # 0: any batch size

    @classmethod
    def from_info(cls, info: ModelInfo) -> "RoiSpec":
        roi = info.extra.get("roi")
        if not isinstance(roi, dict):
            raise ModelContractError(info.path, "classifier metadata lacks 'roi' (context, min_side_px)")
        try:
            spec = cls(**{k: v for k, v in roi.items() if k in cls.__dataclass_fields__})
        except TypeError as exc:
            raise ModelContractError(info.path, f"classifier metadata 'roi' is malformed: {exc}") from exc
        if spec.context <= 0 or spec.min_side_px <= 0:
            raise ModelContractError(info.path, "classifier metadata 'roi' needs positive context and min_side_px")
        return spec

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Classification:
    scores: dict[str, float]  # class → probability, `ok` included
    novelty: float | None = None  # distance to the training data; None when the model has no novelty output

    @property
    def best(self) -> tuple[str, float]:
        name = max(self.scores, key=self.scores.__getitem__)
        return name, self.scores[name]

    @property
    def defect(self) -> tuple[str, float]:
        """The most likely defect class (never `ok`) and its probability."""
        names = [n for n in self.scores if n != OK]
        name = max(names, key=self.scores.__getitem__)
        return name, self.scores[name]


@dataclass(frozen=True)
class ClassificationResult:
    items: tuple[Classification, ...]
    timings: StageTimings
    batches: int


# ---------------------------------------------------------------- pure functions

def roi_square(box_px: Sequence[float], spec: RoiSpec) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the square crop for one candidate box."""
    x0, y0, x1, y1 = (float(v) for v in box_px)
    side = max(spec.min_side_px, spec.context * max(x1 - x0, y1 - y0))
    return (x0 + x1) / 2, (y0 + y1) / 2, side


def crop_rois(image: np.ndarray, boxes_px: Sequence[Sequence[float]], out_size: tuple[int, int],
              spec: RoiSpec) -> np.ndarray:
    """Square crops about each box, resized to out_size (h, w): uint8 (N, h, w)."""
    mono = to_mono(image)
    out_h, out_w = out_size
    crops = np.empty((len(boxes_px), out_h, out_w), np.uint8)
    for i, box in enumerate(boxes_px):
        cx, cy, side = roi_square(box, spec)
        sx, sy = out_w / side, out_h / side
        # maps crop pixel centres onto the square [cx - side/2, cx + side/2) in the source image
        matrix = np.array([[sx, 0, (out_w / 2) - sx * cx - 0.5 + sx * 0.5],
                           [0, sy, (out_h / 2) - sy * cy - 0.5 + sy * 0.5]], np.float32)
        shrink = side > max(out_h, out_w)
        source = mono
        if shrink:  # low-pass before sampling down, as INTER_AREA would
            sigma = 0.5 * side / max(out_h, out_w)
            x0, y0 = int(max(cx - side, 0)), int(max(cy - side, 0))
            x1, y1 = int(min(cx + side, mono.shape[1])), int(min(cy + side, mono.shape[0]))
            if x1 > x0 and y1 > y0:
                source = mono.copy()
                source[y0:y1, x0:x1] = cv2.GaussianBlur(mono[y0:y1, x0:x1], (0, 0), sigma)
        crops[i] = cv2.warpAffine(source, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crops


def preprocess(crops: np.ndarray, info: ModelInfo) -> np.ndarray:
    """uint8 (N, h, w) → float32 (N, 1, h, w)."""
    return normalise(crops, info.normalisation)[:, None]


def postprocess(probabilities: np.ndarray, class_names: Sequence[str],
                novelty: np.ndarray | None = None) -> tuple[Classification, ...]:
    scores = [None] * len(probabilities) if novelty is None else [float(n) for n in novelty]
    return tuple(Classification({name: float(p) for name, p in zip(class_names, row)}, n)
                 for row, n in zip(probabilities, scores))


# ---------------------------------------------------------------- the runner

@dataclass
class Classifier:
    model: LoadedModel
    batch_size: int = 32
    roi: RoiSpec = field(init=False)
    has_novelty: bool = field(init=False)  # the graph has a `novelty` output
    novelty_limit: float | None = field(init=False)  # the model's limit (metadata); None without novelty

    def __post_init__(self) -> None:
        info = self.model.info.require(task="classify")
        if OK not in info.class_names:
            raise ModelContractError(info.path, f"classifier classes {list(info.class_names)} lack {OK!r}")
        if not all(info.input_size):
            raise ModelContractError(info.path, f"classifier needs a fixed input size, got {list(info.input_size)}")
        self.roi = RoiSpec.from_info(info)
        outputs = [o.name for o in self.model.session.get_outputs()]
        self.has_novelty = NOVELTY in outputs
        if info.novelty_limit is not None and not self.has_novelty:
            raise ModelContractError(info.path, f"metadata has a novelty limit but the graph has no {NOVELTY!r} output "
                                                f"(outputs: {', '.join(outputs)})")
        self.novelty_limit = info.novelty_limit if self.has_novelty else None
        probabilities = next((name for name in outputs if name != NOVELTY), None)
        if probabilities is None:
            raise ModelContractError(info.path, f"classifier graph has no probabilities output (outputs: {', '.join(outputs)})")
        self._outputs = [probabilities, NOVELTY] if self.has_novelty else [probabilities]
        if self.roi.max_batch:
            self.batch_size = min(self.batch_size, self.roi.max_batch)

    @classmethod
    def open(cls, path: str, **load_kwargs: Any) -> "Classifier":
        return cls(load_model(path, task="classify", **load_kwargs))

    @property
    def info(self) -> ModelInfo:
        return self.model.info

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (N, C) of a pre-processed batch."""
        return self.forward_all(batch)[0]

    def forward_all(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities (N, C), novelty (N,) or None when the model has no novelty output)."""
        out = self.model.session.run(self._outputs, {self.model.input_name: batch})
        return out[0], (out[1] if self.has_novelty else None)

    def classify(self, image: np.ndarray, boxes_px: Sequence[Sequence[float]]) -> ClassificationResult:
        """Classify candidates of one fine image (boxes in that image's px), in batches."""
        clock = _Stopwatch()
        crops = crop_rois(image, boxes_px, self.info.input_size, self.roi)
        pre = clock.lap()
        return self._run(crops, pre, clock)

    def classify_crops(self, crops: np.ndarray) -> ClassificationResult:
        """Classify ready-cut uint8 crops (N, h, w) of the model's input size."""
        return self._run(np.asarray(crops, np.uint8), 0.0, _Stopwatch())

    def _run(self, crops: np.ndarray, pre: float, clock: _Stopwatch) -> ClassificationResult:
        probs, novelty, batches, infer = [], [], 0, 0.0
        for start in range(0, len(crops), self.batch_size):
            batch = preprocess(crops[start:start + self.batch_size], self.info)
            pre += clock.lap()
            p, n = self.forward_all(batch)
            probs.append(p)
            novelty.append(n)
            infer += clock.lap()
            batches += 1
        table = np.concatenate(probs) if probs else np.zeros((0, len(self.info.class_names)), np.float32)
        scores = np.concatenate(novelty) if self.has_novelty and novelty else None
        items = postprocess(table, self.info.class_names, scores)
        post = clock.lap()
        return ClassificationResult(items, StageTimings(pre, infer, post), batches)
