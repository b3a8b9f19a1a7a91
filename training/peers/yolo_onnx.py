"""Running an Ultralytics YOLOv8 ONNX export with onnxruntime alone (no ultralytics, no torch).

Pre-processing reproduces Ultralytics' own for a static (square) export: letterbox to the exported
size, keeping the aspect ratio, centred, grey 114 padding; BGR → RGB; /255; NCHW float32. A mono
image is replicated to 3 channels, as Ultralytics' ``cv2.imread`` does with a grey PNG when it trains.
The raw output (1, 4 + nc, N) holds cx, cy, w, h in letterboxed pixels and one score per class.
Suppression is class-agnostic with the station's own `nms` (the coarse stage decides *where*).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """How an original image was placed in the model input: input x = original x * scale_x + pad_x (y alike)."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    input_size: tuple[int, int]  # (height, width) of the model input

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """(K, 4) x0, y0, x1, y1 boxes in input pixels → original pixels."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - self.pad_x) / self.scale_x
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - self.pad_y) / self.scale_y
        return boxes


def to_rgb3(image: np.ndarray) -> np.ndarray:
    """Mono (H, W) or (H, W, 1) → 3 equal channels; BGR (H, W, 3) → RGB. Anything else is refused."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image[:, :, ::-1]
    raise ValueError(f"peer input: expected a mono or 3-channel BGR image, got shape {image.shape}")


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio (Ultralytics rounds the new size, then splits the padding with
    a ±0.1 rounding so the odd pixel goes bottom/right), pad with grey 114 to `size` (h, w). Mapping back
    uses each axis' own rounded scale, as Ultralytics' `scale_boxes` does."""
    h, w = image.shape[:2]
    th, tw = size
    scale = min(th / h, tw / w)
    nw, nh = max(int(round(w * scale)), 1), max(int(round(h * scale)), 1)
    dw, dh = (tw - nw) / 2, (th - nh) / 2
    if (nw, nh) != (w, h):
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    out = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return out, Letterbox(nw / w, nh / h, float(left), float(top), (th, tw))


def preprocess(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """Image as loaded (mono or BGR, uint8) → (1, 3, h, w) float32 in [0, 1] and its placement."""
    boxed, placement = letterbox(np.ascontiguousarray(to_rgb3(image)), size)
    batch = boxed.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(batch), placement


def decode(output: np.ndarray, placement: Letterbox, image_size: tuple[int, int], *, conf: float,
           iou: float = 0.3, max_candidates: int = 3000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw (1, 4 + nc, N) output → (boxes (K, 4) in original px, scores (K,), class indices (K,)),
    best first: best class per box, score ≥ `conf`, the `max_candidates` best kept before a
    class-agnostic NMS at `iou`, boxes clipped to the original image."""
    from inspector.inference.detector import nms

    raw = np.asarray(output, np.float32)
    if raw.ndim != 3 or raw.shape[0] != 1 or raw.shape[1] < 5:
        raise ValueError(f"peer output: expected shape (1, 4 + classes, boxes), got {raw.shape}")
    pred = raw[0].T  # (N, 4 + nc)
    scores_all = pred[:, 4:]
    classes = scores_all.argmax(axis=1)
    scores = scores_all[np.arange(len(pred)), classes]
    keep = np.nonzero(scores >= conf)[0]
    keep = keep[np.argsort(-scores[keep], kind="stable")[:max_candidates]]
    cx, cy, w, h = (pred[keep, i] for i in range(4))
    boxes = placement.to_original(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1))
    ih, iw = image_size
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, iw)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, ih)
    order = nms(boxes, scores[keep], iou) if len(keep) else np.zeros(0, np.int64)
    return boxes[order], scores[keep][order].astype(np.float32), classes[keep][order].astype(np.int64)


def session_options(threads: int = 2):
    """The same CPU settings for every model compared: fixed threads, no busy-waiting between runs."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return so


class PeerModel:
    """A YOLOv8 ONNX export (static square input) on onnxruntime's CPU provider."""

    def __init__(self, path: str, class_names: Sequence[str], threads: int = 2) -> None:
        import onnxruntime as ort

        try:
            self.session = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own types
            raise ValueError(f"--peer {path}: onnxruntime cannot load it: {str(exc).splitlines()[0][:200]}") from exc
        inp = self.session.get_inputs()[0]
        shape = inp.shape
        if len(shape) != 4 or not all(isinstance(s, int) for s in shape[2:]) or shape[1] != 3:
            raise ValueError(f"--peer {path}: input shape {shape} is not a static (1, 3, H, W) (export with dynamic=False)")
        self.input_name = inp.name
        self.input_size = (int(shape[2]), int(shape[3]))
        out = self.session.get_outputs()[0].shape
        if len(out) == 3 and isinstance(out[1], int) and out[1] - 4 != len(class_names):
            raise ValueError(f"--peer {path}: output {out} has {out[1] - 4} classes, expected {len(class_names)} "
                             f"({', '.join(class_names)})")
        self.class_names = tuple(class_names)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]

    def detect(self, image: np.ndarray, conf: float, iou: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        batch, placement = preprocess(image, self.input_size)
        return decode(self.forward(batch), placement, image.shape[:2], conf=conf, iou=iou)
