"""Image plausibility, per frame: is this a picture of the part as commissioned, or of a fault?

A frame the models judge must first look like the frames the cell was commissioned with: lit (not
dark), not blown out, in focus, and — for coarse views — showing the part's outline where the
fixture holds it. At commissioning the recipe learns, per view and for the fine shots, the range
of a few robust statistics over known-good frames (`learn_limits`); at run time `check_frame`
lists every statistic outside its limits. A recipe that was never commissioned still gets the
generic limits (`GENERIC`): an all-black or all-white frame is never inspected.

Statistics (8-bit mono):
- brightness: the 5th, 50th and 95th percentiles of the grey levels;
- saturation: the share of pixels at ≥ 250;
- sharpness: the standard deviation of the frame's band of detail between Gaussian scales σ = 1
  and 3 px (a difference of Gaussians: it scales with contrast, not with its square, so dimmer
  light alone does not read as defocus; a blur of σ = 3 px leaves under half of it). A featureless patch has little of it in focus too, so the
  fine-shot limit is weaker than the coarse views' (every fine shot holds a candidate, which helps);
- outline (coarse views): the share of the frame the part covers (Otsu threshold on a 4×
  downscaled, smoothed frame; largest component) and that component's centroid in pixels.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from .inference.detector import to_mono

SATURATED_LEVEL = 250
SHARPNESS_SIGMAS_PX = (1.0, 3.0)  # the band of detail that defocus removes first and sensor noise hardly reaches
OUTLINE_SCALE = 4  # the outline is found on a frame downscaled by this factor


IMPLAUSIBLE = "implausible "  # how the reason of a part ended by an implausible frame begins


class ImplausibleFrame(Exception):
    """A frame is not a plausible picture of the commissioned part: the part is not inspected."""


class OutOfFocus(ImplausibleFrame):
    """A fine shot shows its candidates with too little of the detail the coarse frame saw."""


@dataclass(frozen=True)
class FrameStats:
    p5: float
    p50: float
    p95: float
    saturated: float  # share of pixels ≥ SATURATED_LEVEL
    sharpness: float
    part_share: float | None = None  # share of the frame the part covers (coarse outline only)
    centre_px: tuple[float, float] | None = None  # centroid of the part's outline


@dataclass(frozen=True)
class FrameLimits:
    """What a plausible frame of one view (or of any fine shot) looks like. `None`: not checked."""

    p5: tuple[float, float] = (0.0, 255.0)
    p50: tuple[float, float] = (0.0, 255.0)
    p95: tuple[float, float] = (0.0, 255.0)
    saturated_max: float = 1.0
    sharpness_min: float = 0.0
    part_share: tuple[float, float] | None = None
    centre_px: tuple[float, float] | None = None
    centre_tolerance_px: float = 0.0
    frames: int = 0  # how many good frames the limits were learned from (0: generic limits)

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FrameLimits":
        pairs = ("p5", "p50", "p95", "part_share", "centre_px")
        return cls(**{k: (tuple(float(x) for x in v) if k in pairs else v) for k, v in data.items()})


# Every frame, commissioned or not: not dark, not blown out, not featureless.
GENERIC = FrameLimits(p95=(25.0, 255.0), p5=(0.0, 200.0), saturated_max=0.30, sharpness_min=0.02)
# A capture's further steps (dark field, one segment light …) are dimmer by design: on the virtual cell their
# 95th percentile is ≥ 14 on every face, against 2 with the light off. Below 8 the step's light did not fire.
STEP_GENERIC = FrameLimits(p95=(8.0, 255.0), p5=(0.0, 200.0), saturated_max=0.30)


def frame_stats(image: np.ndarray, *, outline: bool = False) -> FrameStats:
    mono = to_mono(image)
    p5, p50, p95 = (float(v) for v in np.percentile(mono, (5, 50, 95)))
    saturated = float(np.count_nonzero(mono >= SATURATED_LEVEL)) / mono.size
    pixels = mono.astype(np.float32)
    band = cv2.GaussianBlur(pixels, (0, 0), SHARPNESS_SIGMAS_PX[0]) - cv2.GaussianBlur(pixels, (0, 0), SHARPNESS_SIGMAS_PX[1])
    sharpness = float(band.std())
    share, centre = _outline(mono) if outline else (None, None)
    return FrameStats(round(p5, 2), round(p50, 2), round(p95, 2), round(saturated, 5), round(sharpness, 4),
                      share, centre)


def _outline(mono: np.ndarray) -> tuple[float, tuple[float, float] | None]:
    small = cv2.resize(mono, None, fx=1 / OUTLINE_SCALE, fy=1 / OUTLINE_SCALE, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 1.0)
    _, mask = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return 0.0, None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    share = float(stats[largest, cv2.CC_STAT_AREA]) / mask.size
    cx, cy = centroids[largest]
    return round(share, 5), (round(float(cx) * OUTLINE_SCALE, 2), round(float(cy) * OUTLINE_SCALE, 2))


DETAIL_SIGMAS_PX = (0.7, 2.5)  # at the coarse camera's scale
DETAIL_MIN_SIGNIFICANCE = 14.0  # a peak below 14 × the region's own band noise is texture or noise: not judged
FOCUS_RATIO_MIN = 0.25  # a fine shot must show its candidates with ≥ 25 % of the detail the coarse frame saw


def detail_peak(region: np.ndarray) -> tuple[float, float]:
    """(peak, significance) of the fine detail (|difference of Gaussians|) in a region at the coarse
    scale: what makes a candidate a candidate, and what defocus flattens first. Significance is the
    peak over the region's robust band noise (1.4826 × MAD)."""
    if region.size == 0:
        return 0.0, 0.0
    pixels = region.astype(np.float32)
    band = np.abs(cv2.GaussianBlur(pixels, (0, 0), DETAIL_SIGMAS_PX[0]) - cv2.GaussianBlur(pixels, (0, 0), DETAIL_SIGMAS_PX[1]))
    peak = float(band.max())
    noise = 1.4826 * float(np.median(np.abs(band - np.median(band)))) + 1e-3
    return peak, peak / noise


def around(image: np.ndarray, cx: float, cy: float, half: float) -> np.ndarray:
    """The square region of `image` within `half` px of (cx, cy), clipped to the frame."""
    h, w = image.shape[:2]
    x0, x1 = int(max(round(cx - half), 0)), int(min(round(cx + half), w))
    y0, y1 = int(max(round(cy - half), 0)), int(min(round(cy + half), h))
    return image[y0:y1, x0:x1]


def learn_limits(stats: Sequence[FrameStats], *, centre_tolerance_px: float = 0.0) -> FrameLimits:
    """Limits from known-good frames: each observed range widened by a margin (brightness ±20 % and
    8 grey levels, saturation ×2 + 2 %, sharpness down to half of the least sharp, outline share
    ±25 %), the outline centre at the mean with `centre_tolerance_px` plus the observed spread."""
    if not stats:
        raise ValueError("plausibility: no good frames to learn limits from")

    def widen(values: Sequence[float]) -> tuple[float, float]:
        lo, hi = min(values), max(values)
        return round(max(0.0, lo * 0.8 - 8.0), 2), round(min(255.0, hi * 1.2 + 8.0), 2)

    shares = [s.part_share for s in stats if s.part_share is not None]
    centres = [s.centre_px for s in stats if s.centre_px is not None]
    part_share = centre = None
    tolerance = 0.0
    if shares and len(centres) == len(stats):
        part_share = (round(min(shares) * 0.75, 5), round(min(1.0, max(shares) * 1.25), 5))
        centre = (round(float(np.mean([c[0] for c in centres])), 2), round(float(np.mean([c[1] for c in centres])), 2))
        spread = max(math.hypot(c[0] - centre[0], c[1] - centre[1]) for c in centres)
        tolerance = round(centre_tolerance_px + spread, 2)
    return FrameLimits(p5=widen([s.p5 for s in stats]), p50=widen([s.p50 for s in stats]),
                       p95=widen([s.p95 for s in stats]),
                       saturated_max=round(min(1.0, max(s.saturated for s in stats) * 2 + 0.02), 5),
                       sharpness_min=round(min(s.sharpness for s in stats) * 0.5, 4),
                       part_share=part_share, centre_px=centre, centre_tolerance_px=tolerance, frames=len(stats))


def problems(stats: FrameStats, limits: FrameLimits, *, mm_per_px: float = 0.0) -> list[str]:
    """Every way `stats` falls outside `limits`, worst first, as short phrases."""
    found = []
    if stats.p95 < limits.p95[0]:
        found.append(f"too dark: no light or no part (95th percentile {stats.p95:.0f}, limit ≥ {limits.p95[0]:.0f})")
    elif stats.p50 < limits.p50[0]:
        found.append(f"too dark (median {stats.p50:.0f}, limit ≥ {limits.p50[0]:.0f})")
    if stats.saturated > limits.saturated_max:
        found.append(f"saturated ({stats.saturated:.0%} of pixels ≥ {SATURATED_LEVEL}, limit {limits.saturated_max:.0%})")
    elif stats.p50 > limits.p50[1]:
        found.append(f"too bright (median {stats.p50:.0f}, limit ≤ {limits.p50[1]:.0f})")
    elif stats.p5 > limits.p5[1]:
        found.append(f"too bright (5th percentile {stats.p5:.0f}, limit ≤ {limits.p5[1]:.0f})")
    if found:  # without light, or blown out, there is no contrast to judge focus or outline by
        return found
    if stats.sharpness < limits.sharpness_min:
        found.append(f"out of focus or off the focal plane (sharpness {stats.sharpness:.3g}, limit ≥ {limits.sharpness_min:.3g})")
    if limits.part_share is not None:
        share = stats.part_share or 0.0
        if not limits.part_share[0] <= share <= limits.part_share[1]:
            found.append(f"part missing or wrong part (outline covers {share:.0%} of the frame, commissioned "
                         f"{limits.part_share[0]:.0%}–{limits.part_share[1]:.0%})")
        elif limits.centre_px is not None and stats.centre_px is not None:
            off = math.hypot(stats.centre_px[0] - limits.centre_px[0], stats.centre_px[1] - limits.centre_px[1])
            if off > limits.centre_tolerance_px:
                unit = f"{off * mm_per_px:.2f} mm" if mm_per_px else f"{off:.0f} px"
                allowed = f"{limits.centre_tolerance_px * mm_per_px:.2f} mm" if mm_per_px else f"{limits.centre_tolerance_px:.0f} px"
                found.append(f"part shifted in the fixture ({unit} off, allowed {allowed})")
    return found


def check_step_frame(image: np.ndarray, what: str) -> None:
    """A further step of a capture: not dark (its light fired) and not saturated (STEP_GENERIC)."""
    sample = to_mono(image)[::2, ::2]  # a quarter of the pixels tells dark or saturated as well
    p95 = float(np.percentile(sample, 95))
    saturated = float(np.count_nonzero(sample >= SATURATED_LEVEL)) / sample.size
    found = problems(FrameStats(0.0, 0.0, p95, saturated, 0.0, None, None), STEP_GENERIC)
    if found:
        raise ImplausibleFrame(f"{IMPLAUSIBLE}{what}: {'; '.join(found)}")


def check_frame(image: np.ndarray, limits: FrameLimits | None, what: str, *, mm_per_px: float = 0.0,
                outline: bool = True) -> FrameStats:
    """Raise ImplausibleFrame naming `what` and every problem, or return the frame's statistics.
    The generic limits always apply; `limits` (learned at commissioning) on top of them."""
    stats = frame_stats(image, outline=outline and limits is not None and limits.part_share is not None)
    found = problems(stats, GENERIC)
    if limits is not None and not found:
        found = problems(stats, limits, mm_per_px=mm_per_px)
    if found:
        raise ImplausibleFrame(f"{IMPLAUSIBLE}{what}: {'; '.join(found)}")
    return stats
