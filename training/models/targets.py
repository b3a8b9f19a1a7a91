"""CenterNet targets and losses: Gaussian centre heatmaps, log-size and offset at the centre cell."""
from __future__ import annotations

import numpy as np
import torch


def encode(boxes: np.ndarray, classes: np.ndarray, *, num_classes: int, out_shape: tuple[int, int],
           stride: int) -> dict[str, np.ndarray]:
    """Targets for one image. boxes (K, 4) px in the input, classes (K,) indices into the heads."""
    h, w = out_shape
    heat = np.zeros((num_classes, h, w), np.float32)
    size = np.zeros((2, h, w), np.float32)
    offset = np.zeros((2, h, w), np.float32)
    mask = np.zeros((h, w), np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    for box, cls in zip(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes).reshape(-1)):
        bw, bh = max(float(box[2] - box[0]), 1.0), max(float(box[3] - box[1]), 1.0)
        cx, cy = (box[0] + box[2]) / 2 / stride, (box[1] + box[3]) / 2 / stride
        ix, iy = int(cx), int(cy)
        if not (0 <= ix < w and 0 <= iy < h):
            continue
        sigma = max(0.6, np.sqrt(bw * bh) / stride / 4.0)
        gauss = np.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma * sigma))
        heat[cls] = np.maximum(heat[cls], gauss)
        heat[cls, iy, ix] = 1.0
        size[:, iy, ix] = np.log([bw, bh])
        offset[:, iy, ix] = (cx - ix, cy - iy)
        mask[iy, ix] = 1.0
    return {"heatmap": heat, "size": size, "offset": offset, "mask": mask}


def focal_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of centres."""
    pred = pred.clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1).float()
    pos_loss = torch.log(pred) * (1 - pred) ** alpha * positive
    neg_loss = torch.log(1 - pred) * pred ** alpha * (1 - target) ** beta * (1 - positive)
    count = positive.sum().clamp(min=1.0)
    return -(pos_loss.sum() + neg_loss.sum()) / count


def detector_loss(outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], targets: dict[str, torch.Tensor],
                  *, size_weight: float = 0.2, offset_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    heat, size, offset = outputs
    mask = targets["mask"].unsqueeze(1)
    count = mask.sum().clamp(min=1.0)
    l_heat = focal_loss(heat, targets["heatmap"])
    l_size = (torch.abs(size - targets["size"]) * mask).sum() / count
    l_off = (torch.abs(offset - targets["offset"]) * mask).sum() / count
    total = l_heat + size_weight * l_size + offset_weight * l_off
    return total, {"heat": float(l_heat.detach()), "size": float(l_size.detach()), "offset": float(l_off.detach())}
