"""A recipe's `plausibility` section: what good frames look like per view and for the fine shots
(learned at commissioning), the fixture tolerance and after how many implausible parts in a row the
station raises its alarm; parsed with the recipe's `Section` checks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .plausibility import FrameLimits
from .schema import Section


@dataclass(frozen=True)
class Plausibility:
    """What good frames look like (learned at commissioning, `inspector commission`) and what to do
    when frames are not: `alarm_after` implausible parts in a row raise the station's alarm."""
    views: dict[str, FrameLimits] = field(default_factory=dict)  # view name → limits of its coarse frames
    fine: FrameLimits | None = None  # limits of every fine shot
    fixture_tolerance_mm: float = 0.5  # how far the part's outline may sit from where commissioning saw it
    alarm_after: int = 3
    commissioned: str = ""  # how the limits were learned (parts, source, date)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fixture_tolerance_mm": self.fixture_tolerance_mm, "alarm_after": self.alarm_after}
        if self.commissioned:
            out["commissioned"] = self.commissioned
        if self.views:
            out["views"] = {name: limits.as_dict() for name, limits in self.views.items()}
        if self.fine is not None:
            out["fine"] = self.fine.as_dict()
        return out


_LIMIT_PAIRS = ("p5", "p50", "p95", "part_share", "centre_px")
_LIMIT_NUMBERS = ("saturated_max", "sharpness_min", "centre_tolerance_px")


def _frame_limits(section: Section, max_count: int) -> FrameLimits:
    values: dict[str, Any] = {}
    for key in _LIMIT_PAIRS:
        if section.has(key):
            pair = section.get_vector(key, 2)
            if pair[0] > pair[1] and key != "centre_px":
                raise section.error(key, f"expected [low, high] with low ≤ high, got {list(pair)}")
            values[key] = pair
    for key in _LIMIT_NUMBERS:
        if section.has(key):
            values[key] = section.get(key, float, min_value=0)
    if section.has("frames"):
        values["frames"] = section.get("frames", int, min_value=0, max_value=max_count)
    section.reject_unknown()
    return FrameLimits(**values)


def parse_plausibility(section: Section | None, view_names: set[str], max_count: int) -> Plausibility:
    if section is None:
        return Plausibility()
    views = {}
    views_section = section.section("views", optional=True)
    if views_section is not None:
        for name in list(views_section.data):
            if name not in view_names:
                raise views_section.error(name, f"no view {name!r} in this recipe (views: {', '.join(sorted(view_names))})")
            views[name] = _frame_limits(views_section.section(name), max_count)  # type: ignore[arg-type]
        views_section.reject_unknown()
    fine_section = section.section("fine", optional=True)
    result = Plausibility(views=views, fine=_frame_limits(fine_section, max_count) if fine_section is not None else None,
                          fixture_tolerance_mm=section.get("fixture_tolerance_mm", float, 0.5, min_value=0),
                          alarm_after=section.get("alarm_after", int, 3, min_value=1, max_value=max_count),
                          commissioned=section.get("commissioned", str, ""))
    section.reject_unknown()
    return result
