"""The recipe's dimensional features and how the station measures them.

A recipe may name, per view, the nominal outline of its face (the datum: the centre of the fitted
rectangle and its long edges) and features measured in that view's coarse frame: outline length and
width, edge straightness, hole diameter and position, the distance between two holes; each with a
nominal value and a ± tolerance in mm. `measure_frame` gauges them on a calibrated frame
(inspector.gauge); `verdict.judge_dimensions` turns the values into FAIL (out of tolerance) or ERROR
(not measured). `true_values` gives the same features of a virtual-cell part from its true
dimensions, for the truth verdict and the measurement system analysis.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from .gauge import Circle, GaugeError, Outline, PixelFrame, measure_hole, measure_outline, mono
from .schema import Section

KINDS = ("length", "width", "straightness", "hole_diameter", "hole_u", "hole_v", "hole_distance")
HOLE_KINDS = ("hole_diameter", "hole_u", "hole_v", "hole_distance")
EDGES = ("west", "east", "south", "north")
MAX_FEATURES = 200
MAX_TOLERANCE_MM = 10.0


@dataclass(frozen=True)
class Measurement:
    feature: str
    value_mm: float | None  # None: not measured (reason says why)
    nominal_mm: float
    tolerance_mm: float
    reason: str = ""

    @property
    def in_tolerance(self) -> bool | None:
        if self.value_mm is None:
            return None
        return abs(self.value_mm - self.nominal_mm) <= self.tolerance_mm + 1e-9


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str
    view: str  # measured in this view's frame (its camera: the view's)
    nominal_mm: float
    tolerance_mm: float  # ± about the nominal
    at_mm: tuple[float, float] | None = None  # hole kinds: the hole's nominal centre in the datum frame
    to_mm: tuple[float, float] | None = None  # hole_distance: the other hole's nominal centre
    hole_diameter_mm: float | None = None  # hole kinds: the nominal diameter the hole is looked for with
    edge: str | None = None  # straightness: which outline edge

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "view": self.view, "nominal_mm": self.nominal_mm,
                               "tolerance_mm": self.tolerance_mm}
        for key, value in (("at_mm", self.at_mm), ("to_mm", self.to_mm), ("hole_diameter_mm", self.hole_diameter_mm),
                           ("edge", self.edge)):
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class Dimensions:
    datums: dict[str, tuple[float, float]] = field(default_factory=dict)  # view → nominal outline (length u, width v)
    features: tuple[Feature, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.features)

    def views(self) -> list[str]:
        return sorted({f.view for f in self.features})

    def without_view(self, view: str) -> "Dimensions":
        """The features and datums of every other view (a view removed from the recipe takes its own)."""
        return Dimensions({v: size for v, size in self.datums.items() if v != view},
                          tuple(f for f in self.features if f.view != view))

    def to_dict(self) -> dict[str, Any]:
        return {"datums": {view: list(size) for view, size in self.datums.items()},
                "features": {f.name: f.to_dict() for f in self.features}}


def parse_dimensions(section: Section | None, view_names: Iterable[str]) -> Dimensions:
    """The recipe's `dimensions` table (absent: no features)."""
    if section is None:
        return Dimensions()
    views = set(view_names)
    datums: dict[str, tuple[float, float]] = {}
    datum_section = section.section("datums")
    assert datum_section is not None
    for view in list(datum_section.data):
        if view not in views:
            raise datum_section.error(view, f"no view {view!r} in this recipe (views: {', '.join(sorted(views))})")
        size = datum_section.get_vector(view, 2)
        if not all(0 < s <= 10_000 for s in size):
            raise datum_section.error(view, f"expected [length, width] in mm, both positive, got {list(size)}")
        datums[view] = (size[0], size[1])
    datum_section.reject_unknown()
    features_section = section.section("features")
    assert features_section is not None
    if len(features_section.data) > MAX_FEATURES:
        raise section.error("features", f"{len(features_section.data)} features, at most {MAX_FEATURES} allowed")
    features = []
    for name in list(features_section.data):
        f = features_section.section(name)
        assert f is not None
        kind = f.get("kind", str, choices=KINDS)
        view = f.get("view", str)
        if view not in datums:
            raise f.error("view", f"expected a view with a datum outline in dimensions.datums "
                                  f"({', '.join(sorted(datums)) or 'none'}), got {view!r}")
        nominal = f.get("nominal_mm", float, min_value=-10_000, max_value=10_000)
        tolerance = f.get("tolerance_mm", float, positive=True, max_value=MAX_TOLERANCE_MM)
        at = to = diameter = edge = None
        if kind in HOLE_KINDS:
            at = f.get_vector("at_mm", 2)
            diameter = f.get("hole_diameter_mm", float, nominal if kind == "hole_diameter" else ..., positive=True,
                             max_value=min(datums[view]))
            if kind == "hole_distance":
                to = f.get_vector("to_mm", 2)
        if kind == "straightness":
            edge = f.get("edge", str, choices=EDGES)
            if nominal != 0.0:
                raise f.error("nominal_mm", f"straightness is 0 for a perfect edge; expected 0.0, got {nominal}")
        features.append(Feature(name, kind, view, nominal, tolerance, at, to, diameter, edge))  # type: ignore[arg-type]
        f.reject_unknown()
    section.reject_unknown()
    return Dimensions(datums, tuple(features))


def measure_frame(frame: np.ndarray, view: str, dimensions: Dimensions, pixel_frame: PixelFrame) -> list[Measurement]:
    """Every feature of `view` measured in its coarse frame; a feature that cannot be measured has value
    None and the reason (its part is then ERROR, never PASS)."""
    wanted = [f for f in dimensions.features if f.view == view]
    if not wanted:
        return []
    image = mono(frame)
    try:
        outline = measure_outline(image, pixel_frame, dimensions.datums[view], f"view {view}")
    except GaugeError as exc:
        return [Measurement(f.name, None, f.nominal_mm, f.tolerance_mm, f"outline not measured: {exc}") for f in wanted]
    holes: dict[tuple[tuple[float, float], float], Circle | GaugeError] = {}

    def hole(at: tuple[float, float], diameter: float) -> Circle:
        key = (at, diameter)
        if key not in holes:
            try:
                holes[key] = measure_hole(image, pixel_frame, outline, at, diameter,
                                          f"view {view}: hole at ({at[0]:g}, {at[1]:g}) mm")
            except GaugeError as exc:
                holes[key] = exc
        found = holes[key]
        if isinstance(found, GaugeError):
            raise found
        return found

    out = []
    for feature in wanted:
        try:
            value = _value(feature, outline, hole)
        except GaugeError as exc:
            out.append(Measurement(feature.name, None, feature.nominal_mm, feature.tolerance_mm, str(exc)))
        else:
            out.append(Measurement(feature.name, round(value, 5), feature.nominal_mm, feature.tolerance_mm))
    return out


def _value(feature: Feature, outline: Outline, hole) -> float:
    if feature.kind == "length":
        return outline.length_mm
    if feature.kind == "width":
        return outline.width_mm
    if feature.kind == "straightness":
        return outline.edges[feature.edge].straightness_mm  # type: ignore[index]
    assert feature.at_mm is not None and feature.hole_diameter_mm is not None
    circle = hole(feature.at_mm, feature.hole_diameter_mm)
    if feature.kind == "hole_diameter":
        return circle.diameter_mm
    if feature.kind == "hole_u":
        return circle.centre[0]
    if feature.kind == "hole_v":
        return circle.centre[1]
    assert feature.to_mm is not None
    other = hole(feature.to_mm, feature.hole_diameter_mm)
    return math.dist(circle.centre, other.centre)


def true_values(dimensions: Dimensions, dims_mm: tuple[float, ...],
                holes: Iterable[tuple[float, float, float, bool]]) -> dict[str, float]:
    """The features of a part as machined (the virtual cell's truth: outline length × width centred on
    the part's origin, holes as (u, v, radius, through)). A hole feature takes the true hole nearest
    its nominal centre. Edges are drawn straight: straightness 0."""
    holes = list(holes)

    def nearest(at: tuple[float, float]) -> tuple[float, float, float]:
        u, v, r, _ = min(holes, key=lambda h: math.dist((h[0], h[1]), at))
        return u, v, r

    values: dict[str, float] = {}
    for f in dimensions.features:
        if f.kind == "length":
            values[f.name] = dims_mm[0]
        elif f.kind == "width":
            values[f.name] = dims_mm[1]
        elif f.kind == "straightness":
            values[f.name] = 0.0
        elif f.at_mm is not None:
            u, v, r = nearest(f.at_mm)
            if f.kind == "hole_diameter":
                values[f.name] = 2 * r
            elif f.kind == "hole_u":
                values[f.name] = u
            elif f.kind == "hole_v":
                values[f.name] = v
            elif f.to_mm is not None:
                u2, v2, _ = nearest(f.to_mm)
                values[f.name] = math.dist((u, v), (u2, v2))
    return values


def as_record(measurements: Iterable[Measurement], views: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The record's `extra["dimensions"]`: every feature with its value (None: not measured), nominal,
    tolerance, view and whether it is within tolerance."""
    return {m.feature: {"value_mm": m.value_mm, "nominal_mm": m.nominal_mm, "tolerance_mm": m.tolerance_mm,
                        "view": views.get(m.feature, ""), "in_tolerance": m.in_tolerance,
                        **({"reason": m.reason} if m.reason else {})} for m in measurements}
