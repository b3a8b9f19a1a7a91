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
