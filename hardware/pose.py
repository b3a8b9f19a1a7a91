"""The stage pose: one type shared by drivers, the station's planner and the virtual cell."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StagePose:
    """Machine coordinates: x, y, z in mm; a (rotary about X), b (tilt about Y) in degrees."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    a: float = 0.0
    b: float = 0.0

    def as_tuple(self) -> tuple[float, float, float, float, float]:
        return (self.x, self.y, self.z, self.a, self.b)
