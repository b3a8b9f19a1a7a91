"""px → mm calibration of a camera from an image of a dot-grid target of known pitch.

Pure functions: find the dots (Otsu threshold, connected components, size and shape filters),
give each dot its integer grid index, and fit centre = origin + i·u + j·v by least squares. The
pitch in px is the length of u and v; its standard error comes from the fit's residuals. No
pattern size is needed, the grid may be rotated and partly out of the frame.

`attempt_calibration` is what a person at the station calls: it never raises for a bad frame but
returns the frame, the dots it found (to draw) and, when the frame was no usable target, the reason
with hints in plain words (lights off, no contrast, not the top view, saturated).

`write_calibration` puts a result into a station config file (atomically, audited, role checked).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from .access import AccessControl, Session
from .recipe_edit import write_atomic
from .schema import dump_toml
from .station_config import StationConfig

__all__ = ["CalibrationError", "DotGrid", "PitchMeasurement", "Calibration", "CalibrationAttempt", "render_dot_target",
           "find_dots", "index_grid", "measure_pitch", "calibrate_from_target", "frame_hints", "attempt_calibration",
           "apply_calibration", "write_calibration"]

MIN_DOTS = 9
MAX_RESIDUAL_PITCH = 0.05  # RMS distance from the fitted grid, as a share of the pitch
# what a frame that is no usable target looks like (grey levels of 255); a lit printed or backlit plate
# spans far more than these
DARK_P99 = 40  # the brightest 1 % below this: the lights are off or far too weak
LOW_CONTRAST = 40  # 5th to 95th percentile closer than this: no dark dots on a bright plate in view
SATURATED_SHARE = 0.2  # more of the frame at 250+ than this: over-exposed


class CalibrationError(ValueError):
    """The image does not show a usable target; the message says what was missing. `dots_px`: the
    dots found before the grid was refused (N×2, x y; empty when none), to draw on the frame."""

    def __init__(self, message: str, *, dots_px: np.ndarray | None = None):
        super().__init__(message)
        self.dots_px = np.zeros((0, 2)) if dots_px is None else np.asarray(dots_px, dtype=np.float64).reshape(-1, 2)


@dataclass(frozen=True)
class DotGrid:
    centres_px: np.ndarray  # N×2 (x, y) sub-pixel dot centres
    indices: np.ndarray  # N×2 integer (i, j) grid positions
    diameter_px: float  # median equivalent diameter


@dataclass(frozen=True)
class PitchMeasurement:
    pitch_px: float  # mean of the two grid directions
    pitch_px_std: float  # 1σ standard error of pitch_px from the fit
    pitch_u_px: float
    pitch_v_px: float
    rotation_deg: float  # grid direction u against image +x
    residual_px: float  # RMS distance of the dots from the fitted grid
    dots: int
    centres_px: np.ndarray | None = field(default=None, repr=False, compare=False)  # the grid's dots, N×2 x y


@dataclass(frozen=True)
class Calibration:
    camera: str
    pitch_mm: float
    mm_per_px: float
    mm_per_px_std: float  # 1σ, from the fit and the target's pitch tolerance
    rotation_deg: float
    measurement: PitchMeasurement

    @property
    def relative_uncertainty(self) -> float:
        return self.mm_per_px_std / self.mm_per_px

    def summary(self) -> str:
        m = self.measurement
        return (f"{self.camera}: {self.mm_per_px:.6f} ± {self.mm_per_px_std:.2g} mm/px "
                f"({self.relative_uncertainty * 1e6:.0f} ppm, 1σ) from {m.dots} dots, pitch {m.pitch_px:.3f} px, "
                f"grid at {m.rotation_deg:+.2f}°, residual {m.residual_px:.3f} px")


# -- a synthetic target ----------------------------------------------------------------------------------
def render_dot_target(shape: tuple[int, int], pitch_px: float, dot_diameter_px: float, *, angle_deg: float = 0.0,
                      centre_px: tuple[float, float] | None = None, grid: tuple[int, int] | None = None,
                      background: float = 200.0, dot: float = 40.0, noise_sigma: float = 2.0,
                      seed: int = 0) -> np.ndarray:
    """Dark dots on a bright plate (uint8, H×W), anti-aliased, as a camera sees a printed target.

    `grid` (columns, rows) limits the target to that many dots around `centre_px`; None fills the frame."""
    height, width = shape
    cx, cy = centre_px if centre_px is not None else ((width - 1) / 2.0, (height - 1) / 2.0)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    theta = math.radians(angle_deg)
    du = ((xs - cx) * math.cos(theta) + (ys - cy) * math.sin(theta)) / pitch_px
    dv = (-(xs - cx) * math.sin(theta) + (ys - cy) * math.cos(theta)) / pitch_px
    iu, iv = np.round(du), np.round(dv)
    distance = np.hypot(du - iu, dv - iv) * pitch_px
    coverage = np.clip(dot_diameter_px / 2.0 - distance + 0.5, 0.0, 1.0)  # ~1 px wide anti-aliased edge
    if grid is not None:
        cols, rows = grid
        inside = (np.abs(iu - (0.5 if cols % 2 == 0 else 0.0)) <= (cols - 1) / 2.0) & \
                 (np.abs(iv - (0.5 if rows % 2 == 0 else 0.0)) <= (rows - 1) / 2.0)
        coverage = np.where(inside, coverage, 0.0)
    image = background + (dot - background) * coverage
    if noise_sigma > 0:
        image = image + np.random.default_rng(seed).normal(0.0, noise_sigma, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


# -- finding the grid ------------------------------------------------------------------------------------
def _grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.dtype != np.uint8:
        image = cv2.normalize(image.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return image


def find_dots(image: np.ndarray) -> tuple[np.ndarray, float]:
    """Sub-pixel centres (N×2, x y) of the round blobs of the minority phase, and their median diameter.

    Blobs touching the border, far from the median size, or not round are left out."""
    grey = _grey(image)
    blurred = cv2.GaussianBlur(grey, (3, 3), 0)
    _, mask = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if np.count_nonzero(mask) > mask.size / 2:  # dots are the smaller phase: dark dots on a bright plate
        mask = cv2.bitwise_not(mask)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    height, width = grey.shape
    candidates = []
    for label in range(1, count):
        x, y, w, h, area = stats[label]
        if area < 12 or x == 0 or y == 0 or x + w >= width or y + h >= height:
            continue
        if not 0.75 <= w / h <= 1.33 or not 0.55 <= area / (w * h) <= 0.95:
            continue
        candidates.append((label, x, y, w, h, area))
    if len(candidates) < MIN_DOTS:
        raise CalibrationError(f"found {len(candidates)} round dots, need at least {MIN_DOTS}: is a dot-grid "
                               f"target in view, in focus and evenly lit?",
                               dots_px=np.array([(x + w / 2.0, y + h / 2.0) for _, x, y, w, h, _ in candidates]))
    median = float(np.median([c[5] for c in candidates]))
    kept = [c for c in candidates if 0.5 * median <= c[5] <= 2.0 * median]
    # intensity-weighted centroids on the grey image over each dot grown by 2 px: sub-pixel, and
    # unbiased by where the threshold happened to cut the anti-aliased edge
    signal = grey.astype(np.float64)
    if np.mean(signal[mask > 0]) < np.mean(signal[mask == 0]):
        signal = 255.0 - signal
    plate = float(np.median(signal[mask == 0]))
    kernel = np.ones((5, 5), np.uint8)
    centres = []
    for label, x, y, w, h, _ in kept:
        x0, y0, x1, y1 = max(0, x - 3), max(0, y - 3), min(width, x + w + 3), min(height, y + h + 3)
        region = cv2.dilate((labels[y0:y1, x0:x1] == label).astype(np.uint8), kernel) > 0
        weights = np.where(region, np.clip(signal[y0:y1, x0:x1] - plate, 0, None), 0.0)
        total = weights.sum()
        if total <= 0:
            continue
        ys, xs = np.mgrid[y0:y1, x0:x1]
        centres.append(((weights * xs).sum() / total, (weights * ys).sum() / total))
    diameter = 2.0 * math.sqrt(median / math.pi)
    return np.array(centres, dtype=np.float64), diameter


def _fit(centres: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least squares centre = origin + i·u + j·v; returns (params 3×2: origin, u, v; residuals N×2)."""
    design = np.column_stack([np.ones(len(indices)), indices[:, 0], indices[:, 1]])
    params, *_ = np.linalg.lstsq(design, centres, rcond=None)
    return params, centres - design @ params


def index_grid(centres: np.ndarray, diameter_px: float = 0.0) -> DotGrid:
    """Give every dot its (i, j) on the grid: direction and pitch from nearest neighbours, then
    rounding refined by two least-squares fits. Dots that do not sit on a grid node are dropped."""
    if len(centres) < MIN_DOTS:
        raise CalibrationError(f"found {len(centres)} dots, need at least {MIN_DOTS}")
    d = centres[:, None, :] - centres[None, :, :]
    dist = np.hypot(d[..., 0], d[..., 1])
    np.fill_diagonal(dist, np.inf)
    nearest = np.argmin(dist, axis=1)
    pitch0 = float(np.median(dist[np.arange(len(centres)), nearest]))
    vectors = centres[nearest] - centres
    angles = np.arctan2(vectors[:, 1], vectors[:, 0])
    theta = math.atan2(np.mean(np.sin(4 * angles)), np.mean(np.cos(4 * angles))) / 4.0  # direction modulo 90°
    u = pitch0 * np.array([math.cos(theta), math.sin(theta)])
    v = pitch0 * np.array([-math.sin(theta), math.cos(theta)])
    reference = centres[np.argmin(np.hypot(*(centres - centres.mean(axis=0)).T))]
    params = np.array([reference, u, v])
    keep = np.ones(len(centres), dtype=bool)
    indices = np.zeros((len(centres), 2))
    for _ in range(3):
        basis = np.column_stack([params[1], params[2]])
        indices = np.linalg.solve(basis, (centres - params[0]).T).T
        rounded = np.round(indices)
        keep = np.all(np.abs(indices - rounded) < 0.25, axis=1)
        if keep.sum() < MIN_DOTS:
            raise CalibrationError(f"only {int(keep.sum())} dots lie on a regular grid, need {MIN_DOTS} "
                                   f"(is a calibration target in view?)")
        params, _ = _fit(centres[keep], rounded[keep])
    rounded = np.round(indices).astype(int)
    unique = {tuple(r) for r in rounded[keep]}
    if len(unique) != int(keep.sum()):
        raise CalibrationError("two dots fell on one grid node: the blobs found are not a regular dot grid "
                               "(is a calibration target in view?)")
    return DotGrid(centres[keep], rounded[keep], diameter_px)


def measure_pitch(image: np.ndarray) -> PitchMeasurement:
    """The target's pitch in px, its standard error and the grid's rotation."""
    centres, diameter = find_dots(image)
    try:
        return _measure(centres, diameter)
    except CalibrationError as exc:
        raise CalibrationError(str(exc), dots_px=centres) from None


def _measure(centres: np.ndarray, diameter: float) -> PitchMeasurement:
    grid = index_grid(centres, diameter)
    params, residuals = _fit(grid.centres_px, grid.indices.astype(float))
    n = len(grid.indices)
    dof = max(1, 2 * n - 6)
    sigma = math.sqrt(float((residuals ** 2).sum()) / dof)  # per-coordinate centroid noise
    design = np.column_stack([np.ones(n), grid.indices])
    covariance = np.linalg.inv(design.T @ design) * sigma ** 2  # same for the x and y columns
    u, v = params[1], params[2]
    len_u, len_v = float(np.hypot(*u)), float(np.hypot(*v))
    # |u| has the variance of a coordinate of u (isotropic noise), so each length has std sqrt(cov[k, k])
    std_u, std_v = math.sqrt(covariance[1, 1]), math.sqrt(covariance[2, 2])
    pitch = (len_u + len_v) / 2.0
    pitch_std = 0.5 * math.sqrt(std_u ** 2 + std_v ** 2)
    rotation = math.degrees(math.atan2(u[1], u[0]))
    residual = float(np.sqrt((residuals ** 2).sum(axis=1).mean()))
    if residual > MAX_RESIDUAL_PITCH * pitch:
        # a printed grid fits to well under a pixel; blobs of noise or texture that happen to line up do not
        raise CalibrationError(f"the {n} dots found do not lie on a regular grid (RMS {residual:.2f} px from the "
                               f"fitted grid, pitch {pitch:.2f} px): is the target in focus and in view?")
    return PitchMeasurement(pitch_px=pitch, pitch_px_std=pitch_std, pitch_u_px=len_u, pitch_v_px=len_v,
                            rotation_deg=rotation, residual_px=residual, dots=n, centres_px=grid.centres_px)


def calibrate_from_target(image: np.ndarray, pitch_mm: float, *, camera: str = "coarse",
                          pitch_tolerance_mm: float = 0.0) -> Calibration:
    """mm per px from an image of a dot grid with `pitch_mm` between dot centres (±`pitch_tolerance_mm`, 1σ)."""
    if isinstance(pitch_mm, bool) or not isinstance(pitch_mm, (int, float)) or not pitch_mm > 0:
        raise CalibrationError(f"target pitch: expected a positive number of mm, got {pitch_mm!r}")
    measured = measure_pitch(image)
    mm_per_px = pitch_mm / measured.pitch_px
    relative = math.hypot(measured.pitch_px_std / measured.pitch_px, pitch_tolerance_mm / pitch_mm)
    return Calibration(camera=camera, pitch_mm=float(pitch_mm), mm_per_px=mm_per_px,
                       mm_per_px_std=mm_per_px * relative, rotation_deg=measured.rotation_deg,
                       measurement=measured)


# -- at the station: a frame, what was found in it, and what to do about a bad one ----------------------
@dataclass(frozen=True)
class CalibrationAttempt:
    image: np.ndarray  # the frame that was measured
    calibration: Calibration | None  # None: the frame was no usable target
    dots_px: np.ndarray  # N×2 x y: the grid's dots, or the blobs found before the grid was refused
    error: str = ""
    hints: tuple[str, ...] = ()  # what to change, in plain words, most likely first

    @property
    def ok(self) -> bool:
        return self.calibration is not None


def frame_hints(image: np.ndarray, *, top_view: str = "top") -> tuple[str, ...]:
    """Why a frame showed no usable dot grid, from its grey levels, with what to do; the last hint
    (target, view, focus) always applies."""
    grey = _grey(image)
    p5, p95, p99 = (float(v) for v in np.percentile(grey, [5, 95, 99]))
    hints = []
    if p99 < DARK_P99:
        hints.append(f"The frame is nearly black (its brightest 1 % at {p99:.0f} of 255): the lights are off or "
                     f"too weak. Switch on the backlight (or the coaxial light) and measure again.")
    elif float(np.mean(grey >= 250)) > SATURATED_SHARE:
        hints.append(f"{100 * float(np.mean(grey >= 250)):.0f} % of the frame is saturated: lower the exposure or "
                     f"the light level.")
    elif p95 - p5 < LOW_CONTRAST:
        hints.append(f"The frame has almost no contrast ({p95 - p5:.0f} grey levels): no dark dots on a bright plate "
                     f"are in view. Light the plate from behind (backlight) or with the coaxial light.")
    hints.append(f"Check that the calibration plate is in the fixture and under this camera: move the stage to the "
                 f"recipe's {top_view!r} view (the plate lies flat), in focus.")
    return tuple(hints)


def attempt_calibration(image: np.ndarray, pitch_mm: float, *, camera: str = "coarse",
                        pitch_tolerance_mm: float = 0.0) -> CalibrationAttempt:
    """`calibrate_from_target` for a person at the station: a frame that is no usable target is an
    attempt with the reason, the blobs found and hints (a bad pitch still raises: it is a typo)."""
    if isinstance(pitch_mm, bool) or not isinstance(pitch_mm, (int, float)) or not pitch_mm > 0:
        raise CalibrationError(f"target pitch: expected a positive number of mm, got {pitch_mm!r}")
    try:
        result = calibrate_from_target(image, pitch_mm, camera=camera, pitch_tolerance_mm=pitch_tolerance_mm)
    except CalibrationError as exc:
        return CalibrationAttempt(image, None, exc.dots_px, str(exc), frame_hints(image))
    return CalibrationAttempt(image, result, result.measurement.centres_px)


# -- into the station config -----------------------------------------------------------------------------
def apply_calibration(config: StationConfig, calibration: Calibration, *, rotation: bool = False) -> StationConfig:
    """A copy of `config` with the camera's mm_per_px (and optionally its rotation) from `calibration`."""
    if calibration.camera not in config.cameras:
        raise CalibrationError(f"{config.source}: cameras.{calibration.camera}: no such camera "
                               f"(this station has {', '.join(config.cameras)})")
    camera = config.cameras[calibration.camera]
    cal = replace(camera.calibration, mm_per_px=round(calibration.mm_per_px, 8))
    if rotation:
        cal = replace(cal, rotation_deg=round(calibration.rotation_deg, 4))
    cameras = dict(config.cameras)
    cameras[calibration.camera] = replace(camera, calibration=cal)
    return replace(config, cameras=cameras)


def write_calibration(session: Session, config_path: str | Path, calibration: Calibration, access: AccessControl,
                      *, rotation: bool = False, reason: str = "") -> StationConfig:
    """Write `calibration` into the station config file (TOML or JSON by its suffix), atomically,
    after checking the session may calibrate; the audit log gets old → new."""
    access.check(session, "calibrate")
    path = Path(config_path)
    config = StationConfig.load(path)
    updated = apply_calibration(config, calibration, rotation=rotation)
    data = updated.to_dict()
    text = json.dumps(data, indent=2) + "\n" if path.suffix.lower() == ".json" else dump_toml(data)
    StationConfig.from_dict(json.loads(json.dumps(data)), source=str(path))  # never write what load refuses
    old_cal = config.cameras[calibration.camera].calibration
    new_cal = updated.cameras[calibration.camera].calibration
    write_atomic(path, text.encode("utf-8"))
    access.record(session, "calibrate", f"station:{config.name}:camera:{calibration.camera}",
                  {"mm_per_px": old_cal.mm_per_px, "rotation_deg": old_cal.rotation_deg},
                  {"mm_per_px": new_cal.mm_per_px, "rotation_deg": new_cal.rotation_deg,
                   "mm_per_px_std": calibration.mm_per_px_std, "dots": calibration.measurement.dots},
                  reason=reason or calibration.summary())
    return StationConfig.load(path)
