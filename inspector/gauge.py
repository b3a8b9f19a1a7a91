"""Dimensional gauging on calibrated frames, as pure functions: sub-pixel edges across the part's
outline fitted to lines (the datum frame: its centre and long edges), hole edges fitted to circles.

Edges are found along 1-D intensity profiles taken across the expected edge (bilinear samples one
pixel apart; exact pixel values when the edge runs along the pixel grid). The edge is the strongest
step of the expected polarity, located to a fraction of a pixel by the vertex of the parabola through
the logarithms of the three gradient samples around it (exact for a Gaussian blur, whatever the levels
on either side). A bright side saturated at 255 right at the edge biases it towards the dark side by
up to 0.1 px (`docs/msa`: the blind bore's bright rim in the reference recipe's top view). Edge points are then fitted by total
least squares (lines) or algebraically (circles), with points beyond MAX_RESIDUAL_PX dropped and the
fit repeated, so a burr or a dust speck on an edge does not bend it. Anything that cannot be
measured with confidence (too few edge points, a step too weak, a fit that leaves too few inliers)
raises GaugeError with what and why: the part is then not PASS.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

SEARCH_PX = 12  # how far from its nominal place an edge is looked for (fixture ± 0.2 mm, ± 1° over 20 mm)
MIN_STEP = 25.0  # grey levels per pixel: a weaker step is no edge
MIN_POINTS = 40  # edge points a line or circle needs
MIN_INLIER_SHARE = 0.6  # of the profiles taken, at least this share must give edge points on the fit
MAX_RESIDUAL_PX = 1.0  # an edge point further than this from the fit is dropped (burr, speck, noise)
EDGE_SPAN = (0.15, 0.85)  # the part of an outline edge profiled: clear of the corners and their chamfers


class GaugeError(Exception):
    """A feature could not be measured (edge not found, implausible fit): the part is not PASS."""


@dataclass(frozen=True)
class PixelFrame:
    """How a coarse frame maps to face mm: the station's calibration of its camera (scale, rotation of
    image x against machine +X, image size) and the recipe's fixture offset."""
    mm_per_px: float
    rotation_deg: float
    width_px: int
    height_px: int
    offset_mm: tuple[float, float] = (0.0, 0.0)

    def to_mm(self, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = (px - self.width_px / 2) * self.mm_per_px, (py - self.height_px / 2) * self.mm_per_px
        c, s = math.cos(math.radians(self.rotation_deg)), math.sin(math.radians(self.rotation_deg))
        return dx * c - dy * s - self.offset_mm[0], dx * s + dy * c - self.offset_mm[1]

    def to_px(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        du, dv = u + self.offset_mm[0], v + self.offset_mm[1]
        c, s = math.cos(math.radians(self.rotation_deg)), math.sin(math.radians(self.rotation_deg))
        return (du * c + dv * s) / self.mm_per_px + self.width_px / 2, (-du * s + dv * c) / self.mm_per_px + self.height_px / 2

    def direction_px(self, du: float, dv: float) -> tuple[float, float]:
        """A unit direction in face mm as a unit direction in the image."""
        x0, y0 = self.to_px(np.float64(0), np.float64(0))
        x1, y1 = self.to_px(np.float64(du), np.float64(dv))
        n = math.hypot(float(x1 - x0), float(y1 - y0))
        return float(x1 - x0) / n, float(y1 - y0) / n


@dataclass(frozen=True)
class Line:
    point: tuple[float, float]  # mm, on the line (the centroid of its inliers)
    direction: tuple[float, float]  # unit
    points: int  # inliers
    straightness_mm: float  # peak-to-valley of the inliers about the line

    def distance(self, u: float, v: float) -> float:
        """Signed distance of (u, v) from the line (mm), positive to the left of its direction."""
        return (u - self.point[0]) * -self.direction[1] + (v - self.point[1]) * self.direction[0]


@dataclass(frozen=True)
class Outline:
    """The datum frame of a face: the fitted edges, the centre of the rectangle they bound and its
    u axis (along the mean direction of the two edges that run along u)."""
    edges: dict[str, Line]  # west/east (u = ∓L/2), south/north (v = ∓W/2)
    centre: tuple[float, float]
    axis_u: tuple[float, float]
    length_mm: float
    width_mm: float

    def to_datum(self, u: float, v: float) -> tuple[float, float]:
        du, dv = u - self.centre[0], v - self.centre[1]
        cu, su = self.axis_u
        return du * cu + dv * su, -du * su + dv * cu

    def from_datum(self, x: float, y: float) -> tuple[float, float]:
        cu, su = self.axis_u
        return self.centre[0] + x * cu - y * su, self.centre[1] + x * su + y * cu


@dataclass(frozen=True)
class Circle:
    centre: tuple[float, float]  # in the datum frame, mm
    diameter_mm: float
    points: int


def mono(frame: np.ndarray) -> np.ndarray:
    image = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    return image.astype(np.float32)


def profiles(image: np.ndarray, xs: np.ndarray, ys: np.ndarray, nx: np.ndarray, ny: np.ndarray,
             reach_px: int) -> np.ndarray:
    """Intensity along each normal (nx, ny) through (xs, ys), at −reach … +reach px (bilinear)."""
    steps = np.arange(-reach_px, reach_px + 1, dtype=np.float32)
    map_x = (xs[:, None] + nx[:, None] * steps[None, :]).astype(np.float32)
    map_y = (ys[:, None] + ny[:, None] * steps[None, :]).astype(np.float32)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)


def step_positions(rows: np.ndarray, polarity: int) -> np.ndarray:
    """Per profile the sub-pixel position (in samples from the profile's start) of its strongest step
    of `polarity` (+1 dark → bright along the profile, −1 bright → dark); NaN where none is strong
    enough or the profile leaves the frame. The step is placed at the vertex of the parabola through
    the logarithms of the three gradient samples around the strongest (exact for a Gaussian blur)."""
    grad = polarity * np.diff(rows, axis=1)
    k = np.argmax(grad[:, 1:-1], axis=1) + 1
    idx = np.arange(len(rows))
    g0, g1, g2 = grad[idx, k - 1], grad[idx, k], grad[idx, k + 1]
    l0, l1, l2 = (np.log(np.maximum(g, 1e-3)) for g in (g0, g1, g2))
    curvature = l0 - 2 * l1 + l2
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(curvature < 0, 0.5 * (l0 - l2) / curvature, 0.0)
    position = k + 0.5 + np.clip(offset, -0.5, 0.5)
    valid = (g1 >= MIN_STEP) & (rows.min(axis=1) >= 0)
    return np.where(valid, position, np.nan)


def fit_line(u: np.ndarray, v: np.ndarray, what: str, mm_per_px: float, attempted: int) -> Line:
    """Total least squares line through edge points (mm), dropping points beyond MAX_RESIDUAL_PX."""
    keep = np.isfinite(u) & np.isfinite(v)
    for _ in range(4):
        if keep.sum() < max(MIN_POINTS, MIN_INLIER_SHARE * attempted):
            raise GaugeError(f"{what}: edge found at {int(keep.sum())} of {attempted} places (need "
                             f"{max(MIN_POINTS, math.ceil(MIN_INLIER_SHARE * attempted))})")
        pts = np.stack([u[keep], v[keep]], axis=1)
        centre = pts.mean(axis=0)
        _, _, vt = np.linalg.svd(pts - centre, full_matrices=False)
        direction = vt[0]
        normal = np.array([-direction[1], direction[0]])
        residual = (np.stack([u, v], axis=1) - centre) @ normal
        inliers = keep & (np.abs(np.nan_to_num(residual, nan=np.inf)) <= MAX_RESIDUAL_PX * mm_per_px)
        if np.array_equal(inliers, keep):
            break
        keep = inliers
    spread = residual[keep]
    return Line((float(centre[0]), float(centre[1])), (float(direction[0]), float(direction[1])), int(keep.sum()),
                float(spread.max() - spread.min()))


def measure_outline(image: np.ndarray, frame: PixelFrame, nominal_mm: tuple[float, float], what: str) -> Outline:
    """Fit the four edges of a rectangular outline of nominal (length along u, width along v)."""
    half_l, half_w = nominal_mm[0] / 2, nominal_mm[1] / 2
    px = frame.mm_per_px
    edges: dict[str, Line] = {}
    for name, normal, along, fixed, span in (("west", (-1, 0), (0, 1), -half_l, half_w),
                                              ("east", (1, 0), (0, 1), half_l, half_w),
                                              ("south", (0, -1), (1, 0), -half_w, half_l),
                                              ("north", (0, 1), (1, 0), half_w, half_l)):
        count = max(MIN_POINTS, int(2 * span * (EDGE_SPAN[1] - EDGE_SPAN[0]) / px))
        t = np.linspace(-span * (1 - 2 * EDGE_SPAN[0]), span * (1 - 2 * EDGE_SPAN[0]), count)
        u = np.full(count, fixed * abs(normal[0])) + t * along[0]
        v = np.full(count, fixed * abs(normal[1])) + t * along[1]
        xs, ys = frame.to_px(u, v)
        nx, ny = frame.direction_px(*normal)
        rows = profiles(image, xs, ys, np.full(count, nx), np.full(count, ny), SEARCH_PX)
        at = step_positions(rows, -1) - SEARCH_PX  # px outward from the nominal edge; bright part → dark fixture
        eu, ev = frame.to_mm(xs + nx * at, ys + ny * at)
        edges[name] = fit_line(eu, ev, f"{what}: {name} edge", px, count)
    axis = np.array(edges["south"].direction) * np.sign(edges["south"].direction[0]) \
        + np.array(edges["north"].direction) * np.sign(edges["north"].direction[0])
    axis /= np.linalg.norm(axis)
    corners = [_intersect(edges[a], edges[b]) for a in ("west", "east") for b in ("south", "north")]
    centre = np.mean(corners, axis=0)
    length = _separation(edges["west"], edges["east"])
    width = _separation(edges["south"], edges["north"])
    for value, nominal, name in ((length, nominal_mm[0], "length"), (width, nominal_mm[1], "width")):
        if abs(value - nominal) > SEARCH_PX * px:
            raise GaugeError(f"{what}: outline {name} {value:.3f} mm is implausible for a nominal {nominal:.3f} mm")
    return Outline(edges, (float(centre[0]), float(centre[1])), (float(axis[0]), float(axis[1])), length, width)


def measure_hole(image: np.ndarray, frame: PixelFrame, outline: Outline, at_mm: tuple[float, float],
                 diameter_mm: float, what: str, polarity: int = 1) -> Circle:
    """Fit the edge of a round hole whose nominal centre is `at_mm` in the datum frame: radial profiles
    at one-pixel spacing around its nominal circle; `polarity` +1: the hole is darker than its rim."""
    px = frame.mm_per_px
    radius = diameter_mm / 2
    count = max(MIN_POINTS, int(2 * math.pi * radius / px))
    angles = np.linspace(0, 2 * math.pi, count, endpoint=False)
    cu, cv = outline.from_datum(*at_mm)
    u, v = cu + radius * np.cos(angles), cv + radius * np.sin(angles)
    xs, ys = frame.to_px(u, v)
    cx, cy = frame.to_px(np.float64(cu), np.float64(cv))
    nx, ny = xs - cx, ys - cy
    norm = np.hypot(nx, ny)
    nx, ny = nx / norm, ny / norm
    reach = min(SEARCH_PX, max(3, int(0.5 * radius / px)))
    rows = profiles(image, xs, ys, nx, ny, reach)
    at = step_positions(rows, polarity) - reach
    eu, ev = frame.to_mm(xs + nx * at, ys + ny * at)
    keep = np.isfinite(eu)
    for _ in range(4):
        if keep.sum() < max(MIN_POINTS, MIN_INLIER_SHARE * count):
            raise GaugeError(f"{what}: hole edge found at {int(keep.sum())} of {count} places")
        a = np.stack([eu[keep], ev[keep], np.ones(int(keep.sum()))], axis=1)
        b = eu[keep] ** 2 + ev[keep] ** 2
        (c0, c1, c2), *_ = np.linalg.lstsq(a, b, rcond=None)
        ou, ov = c0 / 2, c1 / 2
        r = math.sqrt(max(c2 + ou * ou + ov * ov, 0.0))
        residual = np.abs(np.hypot(eu - ou, ev - ov) - r)
        inliers = keep & (np.nan_to_num(residual, nan=np.inf) <= MAX_RESIDUAL_PX * px)
        if np.array_equal(inliers, keep):
            break
        keep = inliers
    if abs(2 * r - diameter_mm) > reach * px:
        raise GaugeError(f"{what}: hole diameter {2 * r:.3f} mm is implausible for a nominal {diameter_mm:.3f} mm")
    x, y = outline.to_datum(float(ou), float(ov))
    return Circle((x, y), 2 * r, int(keep.sum()))


def _intersect(a: Line, b: Line) -> np.ndarray:
    m = np.array([[a.direction[0], -b.direction[0]], [a.direction[1], -b.direction[1]]])
    t = np.linalg.solve(m, np.array(b.point) - np.array(a.point))
    return np.array(a.point) + t[0] * np.array(a.direction)


def _separation(a: Line, b: Line) -> float:
    """Distance between two nearly parallel edges: the mean of each one's centroid from the other."""
    return 0.5 * (abs(a.distance(*b.point)) + abs(b.distance(*a.point)))
