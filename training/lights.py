"""Reference light programs: how every training image is lit, and how the station should light.

One coarse shot per view and one fine shot per candidate, each under a *mixed* program in which
every defect kind shows: low-angle light lifts scratches, dents and burrs (slopes and rough
spots glow on dark flat metal), a moderate coaxial share keeps stains visible (they cut specular
reflection), a little ring fills in. Coaxial must stay well below low-angle: a scratch darkens
under coaxial exactly where it brightens under low-angle, and equal shares cancel it out.
Chosen from renders of one part with each kind at 0.1/0.25/0.5 mm (see training/README.md).
The recipe takes these over later; until then the models are trained and evaluated under them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class LightProgram:
    name: str
    levels: Mapping[str, float] = field(default_factory=dict)  # light role → percent
    exposure_us: float = 2000.0
    gain: float = 1.0

    def as_dict(self) -> dict:
        return {"name": self.name, "levels": dict(self.levels), "exposure_us": self.exposure_us, "gain": self.gain}


COARSE_PROGRAM = LightProgram("coarse-mixed", {"coaxial": 35.0, "low_angle": 100.0, "ring": 10.0}, exposure_us=3000.0)
FINE_PROGRAM = LightProgram("fine-mixed", {"coaxial": 40.0, "low_angle": 100.0, "ring": 10.0}, exposure_us=2500.0)


# The coarse capture as the reference recipe takes it since issue 12: the mixed frame first (the view's
# checks, serial, dimensions and display), then bright field, dark field and the four segments, one
# exposure each at the view's exposure. The detector stacks bright, dark and the photometric curvature.
COARSE_STEPS: tuple[tuple[str, Mapping[str, float]], ...] = (
    ("mixed", COARSE_PROGRAM.levels), ("bright", {"coaxial": 50.0}), ("dark", {"low_angle": 100.0}),
    ("seg_n", {"seg_n": 80.0}), ("seg_e", {"seg_e": 80.0}), ("seg_s", {"seg_s": 80.0}), ("seg_w", {"seg_w": 80.0}))
DETECTOR_CHANNELS = ("bright", "dark", "curvature")


def coarse_program_dict() -> dict:
    """COARSE_STEPS as a recipe light program (hardware.lights.base.LightProgram.from_dict)."""
    return {"description": "mixed light, then bright field, dark field and the four segments (photometric stereo)",
            "steps": [{"levels": dict(levels), "channel": name} for name, levels in COARSE_STEPS]}


def sim_segments() -> dict[str, tuple[float, float]]:
    """The virtual cell's segment directions, as its station config gives them ([lights.segments])."""
    from hardware.sim.render import SEGMENT_AZIMUTH_DEG, SEGMENT_ELEVATION_DEG
    return {role: (azimuth, SEGMENT_ELEVATION_DEG) for role, azimuth in SEGMENT_AZIMUTH_DEG.items()}
