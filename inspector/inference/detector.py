"""Coarse defect detector at run time: pre-process → forward (onnxruntime) → post-process.

The model is a CenterNet-style single-stage network: per defect class a heatmap of object
centres at `stride` px, plus a size (log px) and a sub-cell offset per cell. Decoding keeps
local maxima (3×3) above the per-class threshold, turns them into boxes and suppresses
overlaps across classes (the fine stage decides the class; the coarse stage decides *where*).

Each step is a pure numpy/OpenCV function so the station and the offline evaluation run exactly
the same code; `Detector` only wires them to a loaded model and times the stages.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from ..channels import LEGACY, MAX_CHANNELS
from .loaded_model import LoadedModel, load_model
from .model_package import ModelContractError, ModelInfo, Normalisation


@dataclass(frozen=True)
class StageTimings:
    """Milliseconds spent in each stage of one inference call."""

    pre_ms: float
    infer_ms: float
    post_ms: float

    @property
    def total_ms(self) -> float:
        return self.pre_ms + self.infer_ms + self.post_ms

    def as_dict(self) -> dict[str, float]:
        return {"pre_ms": self.pre_ms, "infer_ms": self.infer_ms, "post_ms": self.post_ms}


class _Stopwatch:
    def __init__(self) -> None:
        self._last = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        elapsed, self._last = (now - self._last) * 1000.0, now
        return elapsed


@dataclass(frozen=True)
class Detection:
    class_name: str
    score: float
    box_px: tuple[float, float, float, float]  # x0, y0, x1, y1 in the input image

    @property
    def center_px(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box_px
        return (x0 + x1) / 2, (y0 + y1) / 2

    @property
    def size_px(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box_px
        return x1 - x0, y1 - y0


@dataclass(frozen=True)
class DetectionResult:
    detections: tuple[Detection, ...]
    timings: StageTimings
    image_size: tuple[int, int]  # (height, width)


@dataclass(frozen=True)
class DecodeSpec:
    """How to read the network's outputs; stored in the model's metadata (`ModelInfo.extra`)."""

    stride: int = 4
    pad_multiple: int = 32
    size_encoding: str = "log_px"
    max_detections: int = 100
    nms_iou: float = 0.3
    nms_min_box_px: float = 8.0
    min_score: float = 0.05  # floor for classes the threshold map does not name

    @classmethod
    def from_info(cls, info: ModelInfo) -> "DecodeSpec":
        decode = info.extra.get("decode")
        if not isinstance(decode, dict):
            raise ModelContractError(info.path, "detector metadata lacks 'decode' (stride, size encoding, NMS settings)")
        known = {k: v for k, v in decode.items() if k in cls.__dataclass_fields__}
        try:
            spec = cls(**known)
        except TypeError as exc:
            raise ModelContractError(info.path, f"detector metadata 'decode' is malformed: {exc}") from exc
        if spec.size_encoding != "log_px":
            raise ModelContractError(info.path, f"detector size encoding {spec.size_encoding!r} is not 'log_px'")
        if spec.stride <= 0 or spec.pad_multiple % spec.stride:
            raise ModelContractError(info.path, f"detector stride {spec.stride} must divide pad_multiple {spec.pad_multiple}")
        return spec

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# ---------------------------------------------------------------- pure functions

def to_mono(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"expected a mono or BGR image, got shape {image.shape}")


def normalise(pixels: np.ndarray, norm: Normalisation) -> np.ndarray:
    """uint8 → float32 as the model was trained: (pixel * scale - mean) / std (mono)."""
    out = pixels.astype(np.float32) * np.float32(norm.scale)
    return (out - np.float32(norm.mean[0])) / np.float32(norm.std[0])


def preprocess(image: np.ndarray, norm: Normalisation, pad_multiple: int, channels: int = 1) -> np.ndarray:
    """Mono image (H, W) → (1, 1, H', W'), or a stack of `channels` planes (H, W, C) → (1, C, H', W'),
    with H', W' padded (edge-replicated) to `pad_multiple`; each plane normalised with its own mean/std."""
    if channels == 1:
        planes = to_mono(image)[:, :, None]
    elif image.ndim == 3 and image.shape[2] == channels:
        planes = image
    else:
        raise ValueError(f"the detector takes a stack of {channels} channels, got an image of shape {image.shape}")
    h, w = planes.shape[:2]
    ph, pw = -h % pad_multiple, -w % pad_multiple
    if ph or pw:
        planes = cv2.copyMakeBorder(planes, 0, ph, 0, pw, cv2.BORDER_REPLICATE).reshape(h + ph, w + pw, -1)
    out = planes.astype(np.float32) * np.float32(norm.scale)
    mean = np.asarray(norm.mean, np.float32) if len(norm.mean) == channels else np.float32(norm.mean[0])
    std = np.asarray(norm.std, np.float32) if len(norm.std) == channels else np.float32(norm.std[0])
    return np.ascontiguousarray(((out - mean) / std).transpose(2, 0, 1)[None])


def local_peaks(heatmap: np.ndarray) -> np.ndarray:
    """Boolean mask of cells that are the maximum of their 3×3 neighbourhood, per class (C, h, w)."""
    kernel = np.ones((3, 3), np.uint8)
    mask = np.empty(heatmap.shape, bool)
    for c in range(heatmap.shape[0]):
        mask[c] = heatmap[c] >= cv2.dilate(heatmap[c], kernel)
    return mask


def decode(heatmap: np.ndarray, size: np.ndarray, offset: np.ndarray, thresholds: np.ndarray, *,
           stride: int, max_detections: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's outputs → (boxes (K, 4) px, scores (K,), class indices (K,)), best first.

    heatmap (C, h, w) in [0, 1]; size (2, h, w) = log(width px), log(height px); offset (2, h, w) =
    centre position inside its cell, in cells; thresholds (C,) per-class minimum score.
    """
    peaks = local_peaks(heatmap) & (heatmap >= thresholds[:, None, None])
    cls, ys, xs = np.nonzero(peaks)
    scores = heatmap[cls, ys, xs]
    order = np.argsort(-scores, kind="stable")[:max_detections]
    cls, ys, xs, scores = cls[order], ys[order], xs[order], scores[order]
    cx = (xs + offset[0, ys, xs]) * stride
    cy = (ys + offset[1, ys, xs]) * stride
    w = np.exp(np.clip(size[0, ys, xs], -3.0, 8.0))
    h = np.exp(np.clip(size[1, ys, xs], -3.0, 8.0))
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    return boxes.reshape(-1, 4), scores.astype(np.float32), cls.astype(np.int64)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def grow_to_min_side(boxes: np.ndarray, min_side: float) -> np.ndarray:
    """Boxes enlarged about their centre to at least `min_side` px: tiny boxes a pixel apart overlap."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    w = np.maximum(boxes[:, 2] - boxes[:, 0], min_side)
    h = np.maximum(boxes[:, 3] - boxes[:, 1], min_side)
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, *, min_box_px: float = 0.0) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, best first."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if min_box_px > 0:
        boxes = grow_to_min_side(boxes, min_box_px)
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        if order.size == 1:
            break
        rest = order[1:]
        order = rest[box_iou(boxes[best], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, np.int64)


def threshold_vector(class_names: Sequence[str], thresholds: Mapping[str, float], floor: float) -> np.ndarray:
    return np.asarray([float(thresholds.get(name, floor)) for name in class_names], np.float32)


def postprocess(heatmap: np.ndarray, size: np.ndarray, offset: np.ndarray, *, class_names: Sequence[str],
                thresholds: Mapping[str, float], spec: DecodeSpec,
                image_size: tuple[int, int]) -> tuple[Detection, ...]:
    """One image's raw outputs → detections clipped to the (unpadded) image, overlaps suppressed."""
    boxes, scores, classes = decode(heatmap, size, offset, threshold_vector(class_names, thresholds, spec.min_score),
                                    stride=spec.stride, max_detections=spec.max_detections)
    keep = nms(boxes, scores, spec.nms_iou, min_box_px=spec.nms_min_box_px)
    h, w = image_size
    out = []
    for i in keep:
        x0, y0, x1, y1 = (float(v) for v in boxes[i])
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        if not (0 <= cx < w and 0 <= cy < h):  # a peak in the padding
            continue
        box = (max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h)))
        out.append(Detection(class_names[int(classes[i])], float(scores[i]), box))
    return tuple(out)


def input_channels(info: ModelInfo) -> tuple[str, ...]:
    """The channels the detector was trained on (metadata `channels`); none named: the legacy single frame."""
    channels = info.extra.get("channels", list(LEGACY))
    if (not isinstance(channels, list) or not 1 <= len(channels) <= MAX_CHANNELS
            or not all(isinstance(c, str) and c for c in channels) or len(set(channels)) != len(channels)):
        raise ModelContractError(info.path, f"metadata 'channels' must list 1–{MAX_CHANNELS} distinct channel names, "
                                            f"got {str(channels)[:80]}")
    return tuple(channels)


# ---------------------------------------------------------------- the runner

@dataclass
class Detector:
    """A loaded detector model plus its decoding settings. Thresholds default to the model's own."""

    model: LoadedModel
    spec: DecodeSpec = field(init=False)

    def __post_init__(self) -> None:
        self.model.info.require(task="detect")
        self.spec = DecodeSpec.from_info(self.model.info)
        names = [o.name for o in self.model.session.get_outputs()]
        missing = [n for n in ("heatmap", "size", "offset") if n not in names]
        if missing:
            raise ModelContractError(self.model.info.path, f"detector lacks output(s) {', '.join(missing)} (has {', '.join(names)})")
        self.channels = input_channels(self.model.info)
        norm = self.model.info.normalisation
        if any(len(values) not in (1, len(self.channels)) for values in (norm.mean, norm.std)):
            raise ModelContractError(self.model.info.path, f"normalisation has {len(norm.mean)} mean(s) and "
                                                           f"{len(norm.std)} std(s) for {len(self.channels)} channel(s)")
        depth = self.model.session.get_inputs()[0].shape[1]
        if isinstance(depth, int) and depth != len(self.channels):
            raise ModelContractError(self.model.info.path, f"the graph takes {depth} input channel(s) but the metadata "
                                                           f"names {len(self.channels)}: {list(self.channels)}")

    @classmethod
    def open(cls, path: str, **load_kwargs: Any) -> "Detector":
        return cls(load_model(path, task="detect", **load_kwargs))

    @property
    def info(self) -> ModelInfo:
        return self.model.info

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.model.info.class_names

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        heatmap, size, offset = self.model.session.run(["heatmap", "size", "offset"], {self.model.input_name: batch})
        return heatmap, size, offset

    def detect(self, image: np.ndarray, *, thresholds: Mapping[str, float] | None = None) -> DetectionResult:
        """Candidates in one coarse image. `thresholds` (per class) override the model's; classes
        not named fall back to the model's threshold, then to the decode floor."""
        clock = _Stopwatch()
        batch = preprocess(image, self.info.normalisation, self.spec.pad_multiple, len(self.channels))
        pre = clock.lap()
        heatmap, size, offset = self.forward(batch)
        infer = clock.lap()
        merged = {**self.info.thresholds, **(thresholds or {})}
        detections = postprocess(heatmap[0], size[0], offset[0], class_names=self.class_names, thresholds=merged,
                                 spec=self.spec, image_size=image.shape[:2])
        post = clock.lap()
        return DetectionResult(detections, StageTimings(pre, infer, post), (int(image.shape[0]), int(image.shape[1])))
