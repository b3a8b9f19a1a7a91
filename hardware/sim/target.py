"""A dot-grid calibration plate for the virtual cell: what an integrator puts in the fixture to
calibrate px → mm, rendered by the same camera model as the part.

The plate is a 50 × 50 × 3 mm soda-lime glass plate with opaque chrome dots (the usual precision
distortion/dot-grid target: lithographic chrome, dot diameter half the pitch, positions to ~1 µm):
- a coarse grid, pitch 1.0 mm, Ø 0.5 mm dots, 45 × 33 nodes over 44 × 32 mm: in the coarse camera
  (0.05 mm/px) 20 px pitch, 10 px dots, ~1 100 dots in the 51 × 38 mm field;
- a fine patch at the centre, pitch 0.25 mm, Ø 0.125 mm dots, 41 × 33 nodes over 10 × 8 mm (the
  coarse dots are left out there): in the fine camera (0.01 mm/px, 8 × 6 mm field) 25 px pitch,
  12.5 px dots, ~770 dots; the coarse camera cannot resolve it (5 px pitch, 2.5 px dots).
So both cameras see a regular grid at the part's top view pose (the plate's centre on the axis):
an adapter puts the chrome face at the height of the part's top face, so the recipe's top views
are in focus for the plate too.

Light (chrome is a mirror of R ≈ 0.6 and opaque, glass reflects ~4 % per surface and transmits
~92 %): under coaxial light the dots are bright on a dark plate; against the backlight they are
dark on a bright plate; the ring, low-angle and segment lights, at an angle, reflect off both
mirrors away from the camera and leave the plate almost dark, with little contrast.

The plate sits in the fixture with the part's tolerance (±0.2 mm, ±1°), drawn per seed.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import numpy as np

from .geometry import FACE_TABLE, CameraSpec, StagePose, face_view_pose, pixel_grid_to_face, rotation
from .part import FIXTURE_TOLERANCE

if TYPE_CHECKING:
    from .render import RenderResult

PLATE_MM = (50.0, 50.0, 3.0)  # length (u), width (v), thickness; chrome face on top
SURFACE_FACE = "top"  # the chrome face lies in the plane of the part's top face (see the docstring)
POSITION_ACCURACY_MM = 0.001  # dot positions to ±1 µm, as makers of chrome-on-glass targets state

# role → (glass, chrome) reflectance/transmittance seen by the camera; outside the plate the
# background is the part renderer's (dark under top lights, 1.0 under the backlight)
OPTICS: dict[str, tuple[float, float]] = {
    "coaxial": (0.08, 0.60),  # two glass surfaces ~4 % each; chrome ~60 %, straight back
    "backlight": (0.90, 0.0),  # glass transmits; chrome OD > 3
    "ring": (0.04, 0.02),  # mirrors send the 45° ring away; the dark mount seen through the glass
    "low_angle": (0.02, 0.015),
    "seg_n": (0.03, 0.02), "seg_e": (0.03, 0.02), "seg_s": (0.03, 0.02), "seg_w": (0.03, 0.02),
}
OUTSIDE = {"backlight": 1.0}  # other lights: 0.03, as around the part


@dataclass(frozen=True)
class DotGridRegion:
    name: str
    pitch_mm: float
    dot_diameter_mm: float
    nodes: tuple[int, int]  # columns (along u), rows (along v), centred on the plate
    hole: tuple[int, int] = (0, 0)  # central nodes left out (columns, rows): room for a finer region

    @property
    def extent_mm(self) -> tuple[float, float]:
        return ((self.nodes[0] - 1) * self.pitch_mm, (self.nodes[1] - 1) * self.pitch_mm)

    @property
    def pitch_tolerance_mm(self) -> float:
        """1σ of the mean pitch: the position accuracy spread over the grid's length."""
        return self.pitch_mm * POSITION_ACCURACY_MM / max(self.extent_mm)

    def dot_count(self) -> int:
        return self.nodes[0] * self.nodes[1] - self.hole[0] * self.hole[1]


COARSE_GRID = DotGridRegion("coarse grid", 1.0, 0.5, (45, 33), hole=(11, 9))
FINE_GRID = DotGridRegion("fine grid", 0.25, 0.125, (41, 33))


@dataclass(frozen=True)
class CalibrationTarget:
    serial: str
    seed: int
    regions: tuple[DotGridRegion, ...] = (COARSE_GRID, FINE_GRID)
    fixture_error: tuple[float, float, float] = (0.0, 0.0, 0.0)  # dx mm, dy mm, dtheta deg
    plate_mm: tuple[float, float, float] = PLATE_MM

    def region_for(self, camera: CameraSpec) -> DotGridRegion:
        """The grid meant for `camera`: the finest one it resolves (pitch ≥ 12 px, dots ≥ 6 px)."""
        usable = [r for r in self.regions
                  if r.pitch_mm / camera.mm_per_px >= 12 and r.dot_diameter_mm / camera.mm_per_px >= 6]
        if not usable:
            raise ValueError(f"no grid of {self.serial} is resolved by the {camera.name} camera")
        return min(usable, key=lambda r: r.pitch_mm)

    def pitch_mm(self, camera: CameraSpec) -> float:
        return self.region_for(camera).pitch_mm

    def pitch_tolerance_mm(self, camera: CameraSpec) -> float:
        return self.region_for(camera).pitch_tolerance_mm

    def view_pose(self, camera: CameraSpec, *, z_offset_mm: float = 0.0) -> StagePose:
        """Stage pose that puts the plate's centre (and its fine patch) on `camera`'s axis, in focus."""
        return face_view_pose(SURFACE_FACE, camera, z_offset_mm=z_offset_mm)

    def describe(self) -> str:
        grids = "; ".join(f"{r.name} {r.pitch_mm:g} mm pitch, Ø {r.dot_diameter_mm:g} mm dots, {r.dot_count()} dots"
                          for r in self.regions)
        return f"calibration plate {self.serial} ({self.plate_mm[0]:g} × {self.plate_mm[1]:g} mm chrome on glass: {grids})"


def make_target(seed: int = 0, *, fixture_error: tuple[float, float, float] | None = None) -> CalibrationTarget:
    """The plate, placed in the fixture with the part's tolerance drawn from `seed`."""
    rng = random.Random(seed * 6007 + 29)
    if fixture_error is None:
        fixture_error = tuple(round(rng.uniform(-t, t), 4) for t in FIXTURE_TOLERANCE)  # type: ignore[assignment]
    return CalibrationTarget(serial=f"CAL-DOT-{seed:04d}", seed=seed, fixture_error=fixture_error)  # type: ignore[arg-type]


# -- image formation ------------------------------------------------------------------------------
def chrome_coverage(target: CalibrationTarget, u: np.ndarray, v: np.ndarray, px_mm: float) -> np.ndarray:
    """Fraction of each pixel covered by chrome (anti-aliased over ~1 px), from plate coordinates in mm."""
    cover = np.zeros(u.shape, np.float32)
    for region in target.regions:
        p = region.pitch_mm
        # node indices centred on the plate (half-integer for an even count)
        off_i, off_j = (0.5 if region.nodes[0] % 2 == 0 else 0.0), (0.5 if region.nodes[1] % 2 == 0 else 0.0)
        fi, fj = u / p - off_i, v / p - off_j
        ni, nj = np.round(fi), np.round(fj)
        on = (np.abs(ni) <= (region.nodes[0] - 1) / 2) & (np.abs(nj) <= (region.nodes[1] - 1) / 2)
        if region.hole != (0, 0):
            on &= ~((np.abs(ni) <= (region.hole[0] - 1) / 2) & (np.abs(nj) <= (region.hole[1] - 1) / 2))
        distance_px = np.hypot(fi - ni, fj - nj) * (p / px_mm)
        edge = np.clip(region.dot_diameter_mm / (2 * px_mm) - distance_px + 0.5, 0.0, 1.0)
        cover = np.maximum(cover, np.where(on, edge, 0.0).astype(np.float32))
    return cover


def render_target(target: CalibrationTarget, pose: StagePose, lights: Mapping[str, float], camera: CameraSpec, *,
                  exposure_us: float, gain: float = 1.0, seed: int | None = None) -> "RenderResult":
    """What `camera` sees of the plate for a stage pose and light levels (no ground-truth boxes:
    the truth of a calibration frame is the camera's mm_per_px)."""
    from .render import LIGHT_ROLES, RenderResult, expose  # the camera model (cv2); the cell loads it on a grab

    unknown = set(lights) - set(LIGHT_ROLES)
    if unknown:
        raise ValueError(f"unknown light role(s) {sorted(unknown)}; expected {', '.join(LIGHT_ROLES)}")
    shape = (camera.height_px, camera.width_px)
    normal_z = float((rotation(pose.a, pose.b) @ np.array(FACE_TABLE[SURFACE_FACE].normal, float))[2])
    if normal_z > 0.1:  # the chrome face is towards the camera (a telecentric view projects it along −Z)
        u, v, plane_z = pixel_grid_to_face(camera, pose, SURFACE_FACE, target.fixture_error)
        on_plate = (np.abs(u) <= target.plate_mm[0] / 2) & (np.abs(v) <= target.plate_mm[1] / 2)
        chrome = chrome_coverage(target, u, v, camera.mm_per_px / normal_z)
    else:  # edge on or upside down: the plate is a thin dark sliver; treat it as absent
        on_plate = np.zeros(shape, bool)
        chrome = np.zeros(shape, np.float32)
        plane_z = float(pose.z) + target.plate_mm[2] / 2
    defocus = plane_z - camera.focal_z
    irradiance = np.zeros(shape, np.float32)
    for role, level in lights.items():
        if level <= 0:
            continue
        glass, metal = OPTICS[role]
        plate = glass + (metal - glass) * chrome
        irradiance += (level / 100.0) * np.where(on_plate, plate, OUTSIDE.get(role, 0.03)).astype(np.float32)
    image = expose(irradiance, camera, defocus, exposure_us, gain, seed if seed is not None else target.seed)
    face = SURFACE_FACE if normal_z > 0.1 else "edge"
    return RenderResult(image=image, truth=(), face=face, defocus_mm=round(float(defocus), 4))
