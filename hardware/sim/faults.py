"""Faults on demand in the virtual cell (DESIGN.md §4), so the station's fail-closed paths can be
exercised. A fault is a state of the cell, not a one-shot: it holds for every part until cleared
(`VirtualCell.inject_fault(kind)` / `VirtualCell.clear_faults()`). Each acts where the real fault
would, and the station sees only what it would see of the real one:

  dead-lights     the light controller acknowledges every command and reads back the levels it was
                  given, but no light reaches the part (LED heads unpowered): frames are dark, sensor
                  noise only. Read-back cannot catch it; only the image can.
  light-nak       the light controller answers every setting command with its error reply
                  (Gardasoft `Err 1`; a template unit its error line) and changes nothing.
  black-frames    the camera delivers all-zero frames, without error.
  saturated       the camera's gain is stuck high (×SATURATED_GAIN): the part clips at 255.
  defocus         the camera's focus is off by DEFOCUS_MM (beyond the coarse camera's ±1 mm depth of
                  field: a blur of σ ≈ 12 px in the coarse camera).
  camera-timeout  the camera never delivers a frame: every grab waits its timeout and fails.
  no-part         the fixture stays empty (parts are not loaded); the camera sees the empty fixture.
  part-shifted    every part sits SHIFT_MM off in x in the fixture (tolerance ±0.2 mm).

Camera faults sit in one camera (the coarse one unless another is named).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Collection, Iterable, Mapping

if TYPE_CHECKING:  # imported for types only: the CLI reads FAULT_KINDS without loading the renderer's stack
    from .cell import VirtualCell
    from .geometry import CameraSpec
    from .part import PartInstance

SATURATED_GAIN = 8.0  # the coarse view's flat metal (grey ~120 at gain 1) clips; dark slopes stay below
DEFOCUS_MM = 3.0  # focal plane moved by 3 mm: 2 mm beyond the coarse depth of field, σ = 2 × 6 px/mm
SHIFT_MM = 2.0  # ten times the fixture tolerance (part.FIXTURE_TOLERANCE: ±0.2 mm)
LIGHT_NAK_CODE = 1  # Gardasoft `Err 1`: a parameter value is invalid
DEFAULT_CAMERA = "coarse"


@dataclass(frozen=True)
class FaultKind:
    name: str
    device: str  # where the fault sits: lights, camera or fixture
    what: str  # one line for help texts and logs


KINDS: dict[str, FaultKind] = {kind.name: kind for kind in (
    FaultKind("dead-lights", "lights",
              "the controller acknowledges and reads back its settings, but no light reaches the part"),
    FaultKind("light-nak", "lights", "the light controller answers every setting command with its error reply"),
    FaultKind("black-frames", "camera", "the camera delivers all-black frames without error"),
    FaultKind("saturated", "camera", f"the camera's gain is stuck at ×{SATURATED_GAIN:g}: frames blown out"),
    FaultKind("defocus", "camera", f"the camera's focus is off by {DEFOCUS_MM:g} mm"),
    FaultKind("camera-timeout", "camera", "the camera never delivers a frame: every grab times out"),
    FaultKind("no-part", "fixture", "the fixture stays empty: parts are not loaded"),
    FaultKind("part-shifted", "fixture", f"parts sit {SHIFT_MM:g} mm off in x in the fixture"),
)}
FAULT_KINDS = tuple(KINDS)
CAMERA_KINDS = tuple(name for name, kind in KINDS.items() if kind.device == "camera")


def check_kind(kind: object) -> str:
    """`kind` if it is a known fault; ValueError listing the known ones otherwise."""
    if kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; known kinds: {', '.join(FAULT_KINDS)}")
    return kind  # type: ignore[return-value]


def camera_exposure(kinds: Collection[str], spec: CameraSpec, gain: float) -> tuple[CameraSpec, float]:
    """The optics and gain a camera really exposes with, given its faults (the station's settings
    are unchanged: a stuck gain or a knocked focus ring does not tell the host)."""
    if "defocus" in kinds:
        spec = replace(spec, focal_z=spec.focal_z + DEFOCUS_MM)
    if "saturated" in kinds:
        gain *= SATURATED_GAIN
    return spec, gain


class CellFaults:
    """The faults present in one virtual cell. The cell consults it when a part is placed and at
    every exposure; `inject` / `clear` also set the light emulator's fault flags."""

    def __init__(self, camera_roles: Iterable[str]):
        self._cameras = tuple(camera_roles)
        self._active: dict[tuple[str, str | None], None] = {}  # (kind, camera or None), in injection order
        self._withheld: PartInstance | None = None  # the part that should be in the fixture (no-part)
        self._shifted: tuple[PartInstance, PartInstance] | None = None  # (as placed, as loaded)

    @property
    def active(self) -> tuple[str, ...]:
        """The active faults, as `kind` or `kind@camera` for camera faults."""
        return tuple(kind if camera is None else f"{kind}@{camera}" for kind, camera in self._active)

    def has(self, kind: str) -> bool:
        return any(active == kind for active, _ in self._active)

    def inject(self, cell: VirtualCell, kind: str, camera: str | None = None) -> None:
        kind = check_kind(kind)
        if kind in CAMERA_KINDS:
            camera = camera or DEFAULT_CAMERA
            if camera not in self._cameras:
                raise ValueError(f"fault {kind!r}: no camera {camera!r}; the cell has {', '.join(self._cameras)}")
        elif camera is not None:
            raise ValueError(f"fault {kind!r} sits in the {KINDS[kind].device}, not in a camera; give no camera")
        self._active[(kind, camera)] = None
        if kind == "light-nak":
            cell.lights.refuse_settings = LIGHT_NAK_CODE
        if kind in ("no-part", "part-shifted") and cell.part is not None:
            cell.part = cell.part  # the part in the fixture now is placed again, under the fault

    def clear(self, cell: VirtualCell) -> None:
        """Every fault gone: the light controller answers again, the part is back where it belongs."""
        part = cell.part
        if part is None and cell.target is None:
            part = self._withheld
        if self._shifted is not None and part is self._shifted[0]:
            part = self._shifted[1]
        self._active.clear()
        self._withheld = self._shifted = None
        cell.lights.refuse_settings = None
        if cell.target is None:
            cell.part = part

    # -- hooks of the cell and its cameras ------------------------------------------------------------
    def place(self, part: PartInstance | None) -> PartInstance | None:
        """What the fixture holds when `part` is loaded into it."""
        if self.has("no-part"):
            self._withheld = part
            return None
        if part is None or not self.has("part-shifted"):
            return part
        if self._shifted is not None and part is self._shifted[0]:
            return part
        _, dy, dtheta = part.fixture_error
        shifted = replace(part, fixture_error=(SHIFT_MM, dy, dtheta))
        self._shifted = (shifted, part)
        return shifted

    def lights(self, levels: Mapping[str, float]) -> dict[str, float]:
        """Role → level that reaches the part, from what the controller outputs."""
        return {role: 0.0 for role in levels} if self.has("dead-lights") else dict(levels)

    def camera_faults(self) -> frozenset[tuple[str, str]]:
        """(kind, camera role) of every camera fault, for the scene snapshot the cameras read."""
        return frozenset((kind, camera) for kind, camera in self._active if camera is not None)
