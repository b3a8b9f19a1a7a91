"""A defect's size measured on the fine image, not read off the coarse detector box.

The coarse box is 0.05 mm/px: one pixel of box error is half of a 0.1 mm rule, and a diagonal
scratch's box side is shorter than the scratch. The fine frame (0.01 mm/px) of the same candidate
shows the defect over 5–100 px, so the rules' size comes from its pixels:

1. search a square about the candidate's box, larger than the box (the box is mapped from the
   coarse frame: a few px off and up to about 2× too small or too large);
2. background = medians over a window several times the box — a square (keeps straight edges at
   any angle) and lines along x and y (keep the part's edge bands and chamfers, which run along
   the axes of a presented face) — whichever explains a pixel best; a defect shorter than half
   the window in every direction is explained by none; residual = frame − background, smoothed
   by about a pixel;
3. noise = the residual's local MAD (shot noise: the bright face is noisier than the dark
   surround), raised where the background is steep (an edge matched a fraction of a pixel off);
   pixels beyond `threshold_sigma` × noise are candidates; the connected component with the most
   evidence about the box is taken, with the components close to it (a dent's rim, a scratch
   broken up by texture);
4. the extent is taken where the contrast reaches a share of the blob's peak, per polarity (a
   dent is a dark core in a bright rim): half for sharp-edged kinds (the optics' blur moves a
   half-height edge least), 0.2 for a soft-edged stain (close to where it fades, above the noise);
   reported as the max Feret diameter of those pixels.

Validated against the virtual cell's defects of known size by `inspector.bench.fine_size`.

None when nothing about the box stands out from the noise, when the box lies off the frame, or
when what stands out runs on far beyond the box (a hole, an edge): the caller keeps the coarse size
and records that the fine size was not measurable. Pure numpy + OpenCV; about 10–20 ms a call.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

MAX_MEDIAN_PX = 255
NOISE_STEPS = 8.0  # |residual| quantised in eighths of a grey level for its local median
MIN_NOISE = 0.25  # grey levels: a flat synthetic frame has none, and z must stay finite


@dataclass(frozen=True)
class FineSizeSettings:
    context: float = 3.0  # search square side = context × the box's longer side …
    min_side_px: float = 64.0  # … at least this
    background_factor: float = 4.0  # median window = this × the box's longer side (odd, clamped)
    min_background_px: int = 101  # > 3 × a chamfer band (≈ 32 px): across it a line median sees past the band
    max_background_px: int = 601  # beyond 255 px the median runs on a 2×-reduced frame
    smooth_sigma_px: float = 1.0
    edge_misfit_px: float = 0.5  # how far (px) the background may sit off a straight edge: not a defect
    threshold_sigma: float = 4.0  # a pixel stands out beyond this many noise sigmas …
    min_peak_sigma: float = 7.0  # … and a blob counts only if its peak reaches this
    min_area_px: int = 4
    edge_level: float = 0.5  # extent taken where contrast ≥ this share of the blob's peak (sharp-edged kinds) …
    class_edge_levels: tuple[tuple[str, float], ...] = (("stain", 0.2),)  # … or this for a soft-edged kind
    second_polarity_share: float = 0.15  # the weaker polarity counts where it reaches this share of the stronger's peak
    aim_slack_px: float = 8.0  # the defect overlaps the box grown by max(this, aim_slack_share × its side)
    aim_slack_share: float = 0.25
    max_size_ratio: float = 3.0  # a blob longer than this × the box's longer side is not the candidate's defect
    merge_gap_px: float = 4.0  # components closer than max(this, merge_gap_share × box side) merge
    merge_gap_share: float = 0.1

    def level_for(self, defect_class: str | None) -> float:
        return dict(self.class_edge_levels).get(defect_class or "", self.edge_level)


@dataclass(frozen=True)
class FineSize:
    size_mm: float  # longest extent (max Feret diameter) of the defect's pixels
    width_mm: float  # extent across it (short side of the min-area rectangle)
    box_px: tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive) of the blob in the frame
    area_px: int
    peak_sigma: float  # the blob's strongest contrast in noise sigmas: how clearly it stood out
    clipped: bool  # the blob reaches the frame's border: size_mm is a lower bound


def measure_defect(frame: np.ndarray, box_px: Sequence[float], mm_per_px: float, defect_class: str | None = None,
                   settings: FineSizeSettings = FineSizeSettings()) -> FineSize | None:
    """Size of the defect near `box_px` (x0, y0, x1, y1 in the fine frame's px) from the frame's
    pixels, or None when nothing there stands out from the noise. `defect_class` (the classifier's
    call) picks where the defect's edge is taken: half its peak contrast for sharp-edged kinds,
    lower for a soft-edged stain (see FineSizeSettings.class_edge_levels)."""
    image = _check_frame(frame)
    box = _check_box(box_px)
    if not (math.isfinite(mm_per_px) and mm_per_px > 0):
        raise ValueError(f"fine size: mm_per_px must be a positive number, got {mm_per_px!r}")
    height, width = image.shape[:2]
    long_side = max(box[2] - box[0], box[3] - box[1], 1.0)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    for scale in (1.0, 2.0):  # widen the search (and the background window) if the blob runs into its border
        found = _measure_in_square(image, box, cx, cy, scale * long_side, settings.level_for(defect_class), settings)
        if found is None:
            return None
        blob, square, peak = found
        if not _touches(blob, square, (width, height), frame_side=False):
            break
    else:  # runs on beyond a square 6× the box: an edge or rim of the part, not this candidate's defect
        return None
    found_size = _describe(blob, square, peak, mm_per_px,
                           clipped=_touches(blob, square, (width, height), frame_side=True))
    if found_size.size_mm > settings.max_size_ratio * long_side * mm_per_px:
        return None  # far larger than any box the coarse stage could have drawn about it: a hole, not a defect
    return found_size


# ---------------------------------------------------------------- steps

def _measure_in_square(image: np.ndarray, box: tuple[float, float, float, float], cx: float, cy: float,
                       long_side: float, edge_level: float, settings: FineSizeSettings
                       ) -> tuple[np.ndarray, tuple[int, int, int, int], float] | None:
    height, width = image.shape[:2]
    side = max(settings.min_side_px, settings.context * long_side)
    square = _clip((cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2), width, height)
    if square is None:
        return None
    sx0, sy0, sx1, sy1 = square
    inner = _clip((box[0] - sx0, box[1] - sy0, max(box[2], box[0] + 1) - sx0, max(box[3], box[1] + 1) - sy0),
                  sx1 - sx0, sy1 - sy0)
    if inner is None:  # the box lies wholly outside the frame: the candidate was not imaged here
        return None
    kernel = _odd(min(max(settings.background_factor * long_side, settings.min_background_px),
                      settings.max_background_px))
    pad = kernel // 2 + 2
    outer = _clip((sx0 - pad, sy0 - pad, sx1 + pad, sy1 + pad), width, height)
    assert outer is not None
    ox0, oy0, ox1, oy1 = outer
    z, residual, noise = (a[sy0 - oy0:sy1 - oy0, sx0 - ox0:sx1 - ox0] for a in
                          _contrast(image[oy0:oy1, ox0:ox1], kernel, settings))
    strength = np.abs(z)
    gap = max(settings.merge_gap_px, settings.merge_gap_share * long_side)
    blob = _select(strength, inner, gap, settings)
    if blob is None:
        return None
    region = cv2.dilate(blob.astype(np.uint8), _disc(gap)).astype(bool)
    tops = [float((sign * residual)[blob].max()) for sign in (1, -1)]
    final = np.zeros_like(blob)
    for sign, top in zip((1, -1), tops):  # each polarity at its own peak: a dent's bright rim beside its dark core
        if top > 0 and float((sign * z)[blob].max()) >= settings.threshold_sigma:
            level = max(edge_level * top, settings.second_polarity_share * max(tops))
            final |= region & (sign * residual >= np.maximum(level, settings.threshold_sigma * noise))
    final = _keep_near(final, blob)
    if final.sum() == 0:
        return None
    return final, square, float(strength[blob].max())


def _contrast(window: np.ndarray, kernel: int, settings: FineSizeSettings
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel: (frame − background) in noise sigmas, that difference in grey levels (smoothed)
    and the local noise in grey levels; of several channels, the one that departs most.

    The noise is local (a median of |residual| over the background window: shot noise makes the
    bright face noisier than the dark surround) and, for the sigmas only, grows with the
    background's slope (a straight edge matched by the background a fraction of a pixel off leaves
    a thin residual line that is no defect)."""
    channels = [window] if window.ndim == 2 else [window[..., c] for c in range(window.shape[2])]
    best: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    sigma = settings.smooth_sigma_px
    for channel in channels:
        plane = np.ascontiguousarray(channel if channel.dtype == np.uint8 else _to_uint8(channel))
        residual = _residual(plane, kernel).astype(np.float32)
        background = plane.astype(np.float32) - residual
        if sigma > 0:
            residual = cv2.GaussianBlur(residual, (0, 0), sigma)
            background = cv2.GaussianBlur(background, (0, 0), sigma)
        quantised = np.clip(np.abs(residual) * NOISE_STEPS + 0.5, 0, 255).astype(np.uint8)
        noise = np.maximum(1.4826 / NOISE_STEPS * _median(quantised, kernel).astype(np.float32), MIN_NOISE)
        slope = cv2.magnitude(cv2.Sobel(background, cv2.CV_32F, 1, 0, ksize=3),
                              cv2.Sobel(background, cv2.CV_32F, 0, 1, ksize=3)) / 8.0
        z = residual / np.sqrt(noise * noise + (settings.edge_misfit_px * slope) ** 2)
        if best is None:
            best = (z, residual, noise)
        else:
            more = np.abs(z) > np.abs(best[0])
            best = (np.where(more, z, best[0]), np.where(more, residual, best[1]), np.where(more, noise, best[2]))
    assert best is not None
    return best


def _residual(plane: np.ndarray, kernel: int) -> np.ndarray:
    """Frame − background, where the background is whichever of three medians explains the pixel
    best: a square window (keeps straight edges at any angle) and a line along x and along y
    (keep the part's edge bands and chamfers, which run along the axes in a presented face and
    which a square window wider than twice their width would take for a defect). A defect shorter
    than half the window in every direction is explained by none of them."""
    values = plane.astype(np.float32)
    best = values - _median(plane, kernel).astype(np.float32)
    for axis in (0, 1):
        other = values - _line_median(plane, kernel, axis)
        best = np.where(np.abs(other) < np.abs(best), other, best)
    return best


def _select(z: np.ndarray, inner: tuple[int, int, int, int], gap: float, settings: FineSizeSettings
            ) -> np.ndarray | None:
    """The component with the most evidence inside the box (grown by the aiming slack), merged
    with its near neighbours; None when none is strong enough."""
    mask = (z >= settings.threshold_sigma).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return None
    peaks = np.zeros(count, np.float32)
    np.maximum.at(peaks, labels.ravel(), z.ravel())
    good = (stats[:, cv2.CC_STAT_AREA] >= settings.min_area_px) & (peaks >= settings.min_peak_sigma)
    good[0] = False
    if not good.any():
        return None
    x0, y0, x1, y1 = inner
    grow = int(max(settings.aim_slack_px, settings.aim_slack_share * max(x1 - x0, y1 - y0)))
    h, w = z.shape
    window = slice(max(0, y0 - grow), min(h, y1 + grow)), slice(max(0, x0 - grow), min(w, x1 + grow))
    evidence = np.bincount(labels[window].ravel(), weights=z[window].ravel(), minlength=count)
    evidence[~good] = 0
    if evidence.max() <= 0:
        return None
    chosen = np.zeros(count, bool)
    chosen[int(evidence.argmax())] = True
    disc = _disc(gap)
    for _ in range(4):  # merge neighbours within `gap`, a few rounds
        grown = cv2.dilate(chosen[labels].astype(np.uint8), disc).astype(bool)
        touching = np.unique(labels[grown])
        added = good[touching] & ~chosen[touching]
        if not added.any():
            break
        chosen[touching[added]] = True
    return chosen[labels]


def _keep_near(final: np.ndarray, blob: np.ndarray) -> np.ndarray:
    """Parts of the re-thresholded blob that still overlap the selected components."""
    count, labels = cv2.connectedComponents(final.astype(np.uint8), connectivity=8)
    if count <= 1:
        return final
    keep = np.zeros(count, bool)
    keep[np.unique(labels[final & blob])] = True
    keep[0] = False
    return keep[labels]


def _describe(blob: np.ndarray, square: tuple[int, int, int, int], peak: float, mm_per_px: float,
              clipped: bool) -> FineSize:
    ys, xs = np.nonzero(blob)
    sx0, sy0 = square[0], square[1]
    corners = np.concatenate([np.stack([xs + dx, ys + dy], axis=1) for dx in (0, 1) for dy in (0, 1)])
    hull = cv2.convexHull(corners.astype(np.float32)).reshape(-1, 2)
    diffs = hull[:, None, :] - hull[None, :, :]
    feret = float(np.sqrt((diffs ** 2).sum(-1)).max()) if len(hull) > 1 else 1.0
    (_, _), (rw, rh), _ = cv2.minAreaRect(hull)
    length = max(feret, 1.0)
    across = max(min(rw, rh), 1.0)
    box = (int(xs.min()) + sx0, int(ys.min()) + sy0, int(xs.max()) + sx0 + 1, int(ys.max()) + sy0 + 1)
    return FineSize(size_mm=round(length * mm_per_px, 4), width_mm=round(min(across, length) * mm_per_px, 4),
                    box_px=box, area_px=int(blob.sum()), peak_sigma=round(peak, 1), clipped=clipped)


# ---------------------------------------------------------------- helpers

def _check_frame(frame: np.ndarray) -> np.ndarray:
    image = np.asarray(frame)
    if image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"fine size: frame must be a non-empty H×W or H×W×C image, got shape {image.shape}")
    return image


def _check_box(box_px: Sequence[float]) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in box_px)
    except (TypeError, ValueError):
        raise ValueError(f"fine size: box_px must be 4 numbers (x0, y0, x1, y1), got {box_px!r}") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 < x0 or y1 < y0:
        raise ValueError(f"fine size: box_px {box_px!r} is not a box (need finite x0 <= x1, y0 <= y1)")
    return x0, y0, x1, y1


def _clip(rect: Sequence[float], width: int, height: int) -> tuple[int, int, int, int] | None:
    x0, y0 = max(0, int(math.floor(rect[0]))), max(0, int(math.floor(rect[1])))
    x1, y1 = min(width, int(math.ceil(rect[2]))), min(height, int(math.ceil(rect[3])))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _touches(blob: np.ndarray, square: tuple[int, int, int, int], frame_size: tuple[int, int], *,
             frame_side: bool) -> bool:
    """Whether the blob reaches a side of the search square that is the frame's border
    (frame_side) or one that is not (the defect may go on beyond the square)."""
    sx0, sy0, sx1, sy1 = square
    fw, fh = frame_size
    rows, cols = blob.any(axis=1), blob.any(axis=0)
    reached = (cols[0], cols[-1], rows[0], rows[-1])
    at_border = (sx0 == 0, sx1 == fw, sy0 == 0, sy1 == fh)
    return any(bool(r) and (b == frame_side) for r, b in zip(reached, at_border))


def _median(plane: np.ndarray, kernel: int) -> np.ndarray:
    """Median background. OpenCV's 8-bit median counts in 16 bits, so a window over 255 px (on a
    flat frame most pixels share one histogram bin) runs on the frame reduced by 2 (or more)."""
    if kernel <= MAX_MEDIAN_PX:
        return cv2.medianBlur(np.ascontiguousarray(plane), kernel)
    factor = math.ceil(kernel / MAX_MEDIAN_PX)
    h, w = plane.shape
    small = cv2.resize(plane, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    small = cv2.medianBlur(small, _odd(min(kernel / factor, MAX_MEDIAN_PX - 1)))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _line_median(plane: np.ndarray, kernel: int, axis: int, samples: int = 15) -> np.ndarray:
    """Median over a line of `kernel` px along `axis` (1: x), from `samples` points spread over the
    line, computed every kernel/8 px along it and interpolated between (it changes slowly there)."""
    if axis == 0:
        return _line_median(plane.T, kernel, 1).T
    h, w = plane.shape
    half = kernel // 2
    step = max(1, kernel // 8)
    anchors = np.unique(np.append(np.arange(0, w, step), w - 1))
    offsets = np.round(np.linspace(-half, half, samples)).astype(np.int64)
    index = np.abs(anchors[:, None] + offsets[None, :])  # reflect at the left border …
    index = (w - 1) - np.abs((w - 1) - index)  # … and at the right
    index = np.clip(index, 0, w - 1)
    picked = plane[:, index]  # (h, anchors, samples)
    medians = np.partition(picked, samples // 2, axis=-1)[..., samples // 2].astype(np.float32)
    columns = np.arange(w, dtype=np.float32)
    right = np.clip(np.searchsorted(anchors, columns, side="left"), 1, len(anchors) - 1) if len(anchors) > 1 else None
    if right is None:
        return np.repeat(medians, w, axis=1)
    left = right - 1
    frac = (columns - anchors[left]) / np.maximum(anchors[right] - anchors[left], 1)
    return medians[:, left] * (1 - frac) + medians[:, right] * frac


def _odd(value: float) -> int:
    n = int(round(value))
    return n if n % 2 else n + 1


def _disc(radius: float) -> np.ndarray:
    r = max(1, int(round(radius)))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _to_uint8(plane: np.ndarray) -> np.ndarray:
    """A non-8-bit channel scaled to 0–255 (the median window needs 8-bit beyond 5 px)."""
    values = plane.astype(np.float32)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(values.shape, np.uint8)
    return np.clip((values - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)
