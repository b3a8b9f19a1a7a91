"""The virtual cell: a grblHAL stage emulator and a light controller emulator on real
pseudo-terminals, a part in the fixture, and cameras that render what the stage pose and the
lights make visible. The station drives it through the same drivers and ports as a real cell.

With `stage=` the cell has no stage of its own: the cameras render at the pose an external stage
reports (`DriverStage`: a real controller through its driver, for a dry run with virtual optics).
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol

from ..cameras.virtual_camera import SceneSnapshot, VirtualCamera
from ..lights.template import TemplateProtocolSpec
from ..pose import StagePose
from .faults import CellFaults
from .geometry import CAMERAS, CameraSpec
from .grbl_emulator import GrblEmulator
from .light_emulators import GardasoftEmulator, TemplateEmulator
from .part import PartInstance, make_part
from .render import SEGMENT_AZIMUTH_DEG, SEGMENT_ELEVATION_DEG
from .target import CalibrationTarget, make_target

WIRING: dict[str, int] = {"coaxial": 1, "ring": 2, "low_angle": 3, "backlight": 4,
                          "seg_n": 5, "seg_e": 6, "seg_s": 7, "seg_w": 8}
TEMPLATE_WIRING: dict[str, str] = {"coaxial": "A", "ring": "B", "low_angle": "C", "backlight": "D",
                                   "seg_n": "E", "seg_e": "F", "seg_s": "G", "seg_w": "H"}
# A made-up vendor ("ACME LC-8") described as data, as an integrator would for a new controller.
ACME_TEMPLATE = {"set_level": "S{channel}{value:04d}#", "set_strobe": "T{channel}{pulse_us:05d}{delay_us:05d}{value:04d}#",
                 "save": "W#", "reply": "^OK$", "error": "^NG(?P<code>\\d*)$", "value_max": 255, "line_end": "\r"}


class Stage(Protocol):
    """Where the stage is in the stage frame and whether it moves: what the cameras need of it."""

    def machine_pose(self) -> StagePose: ...

    @property
    def is_moving(self) -> bool: ...


class DriverStage:
    """A stage seen through its motion driver (a real controller): the pose it reports and whether
    it reports motion. Bound to the driver once the devices are open (`bind`)."""

    def __init__(self, driver: Any = None):
        self.driver = driver

    def bind(self, driver: Any) -> None:
        self.driver = driver

    def _driver(self) -> Any:
        if self.driver is None:
            raise RuntimeError("DriverStage: no motion driver bound yet (open the devices first)")
        return self.driver

    def machine_pose(self) -> StagePose:
        return self._driver().position()

    @property
    def is_moving(self) -> bool:
        return self._driver().status().state not in ("Idle", "Alarm")


class VirtualCell:
    def __init__(self, *, seed: int = 1, speed_factor: float = 1.0, light_protocol: str = "gardasoft",
                 homing_required: bool = True, motion_options: Mapping[str, Any] | None = None,
                 stage: Stage | None = None, light_channels: Mapping[str, int | str] | None = None,
                 light_template: Mapping[str, Any] | None = None):
        """`motion_options` go to the GrblEmulator as keyword arguments (ideal, steps_per_unit,
        reply_latency_s, work_offsets, seed). With `stage` the cell starts no stage emulator: its
        cameras render at that stage's pose. `light_channels` (role → channel) and `light_template`
        (protocol "template") wire the light emulator as a station config does (default: WIRING /
        TEMPLATE_WIRING and the ACME unit)."""
        if stage is not None and motion_options:
            raise ValueError("motion_options configure the cell's own stage emulator; an external stage has none")
        self.motion: GrblEmulator | None = None
        if stage is None:
            self.motion = GrblEmulator(speed_factor=speed_factor, homing_required=homing_required,
                                       **dict(motion_options or {}))
        self.stage: Stage = stage if stage is not None else self.motion  # type: ignore[assignment]
        self.light_protocol = light_protocol
        if light_protocol == "gardasoft":
            self.wiring: Mapping[str, int | str] = dict(light_channels or WIRING)
            outputs = [c for c in self.wiring.values() if isinstance(c, int)]
            self.lights: GardasoftEmulator | TemplateEmulator = GardasoftEmulator(max([8, *outputs]))
        elif light_protocol == "template":
            self.wiring = dict(light_channels or TEMPLATE_WIRING)
            spec = TemplateProtocolSpec.from_dict(dict(light_template or ACME_TEMPLATE))
            self.lights = TemplateEmulator(spec, self.wiring.values(),
                                           name="acme-lc8" if light_template is None else "template")
        else:
            raise ValueError(f"light_protocol must be 'gardasoft' or 'template', got {light_protocol!r}")
        self.faults = CellFaults(CAMERAS)  # faults on demand: see hardware.sim.faults
        self._held: PartInstance | CalibrationTarget | None = make_part(seed)  # what the fixture holds
        self._parked_part: PartInstance | None = None  # the part set aside while a target is loaded
        self._target_loads = 0
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> "VirtualCell":
        if not self._started:
            if self.motion is not None:
                self.motion.start()
            self.lights.start()
            self._started = True
        return self

    def stop(self) -> None:
        if self.motion is not None:
            self.motion.stop()
        self.lights.stop()
        self._started = False

    def __enter__(self) -> "VirtualCell":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def ports(self) -> dict[str, str]:
        ports = {} if self.motion is None else {"motion (grblHAL)": self.motion.port_path}
        return ports | {f"lights ({self.light_protocol})": self.lights.port_path}

    # -- the scene ---------------------------------------------------------------------------------
    @property
    def part(self) -> PartInstance | None:
        """The part in the fixture (None while it is empty or holds the calibration target)."""
        held = self._held
        return held if isinstance(held, PartInstance) else None

    @part.setter
    def part(self, part: PartInstance | None) -> None:
        self._held = self.faults.place(part)

    @property
    def target(self) -> CalibrationTarget | None:
        """The calibration target in the fixture, if one is loaded."""
        held = self._held
        return held if isinstance(held, CalibrationTarget) else None

    def load_part(self, part: PartInstance | int | None) -> PartInstance | None:
        """Put a part in the fixture (a PartInstance or a seed), or empty it with None."""
        self._parked_part = None
        self.part = make_part(part) if isinstance(part, int) else part
        return self.part

    def load_target(self, target: CalibrationTarget | int | None = None) -> CalibrationTarget:
        """Put the dot-grid calibration plate in the fixture in place of the part, placed within the
        fixture's tolerance: an int is the seed of that placement, None a new one on every load
        (0, 1, 2, … in this cell). The part is set aside: `unload_target()` puts it back,
        `load_part(...)` loads another one."""
        if self.target is None:
            self._parked_part = self.part
        seed = self._target_loads if target is None else target
        self._target_loads += 1
        self._held = target if isinstance(target, CalibrationTarget) else make_target(seed)  # type: ignore[arg-type]
        return self._held

    def unload_target(self) -> PartInstance | None:
        """Take the calibration plate out and put back the part that was in the fixture before."""
        if self.target is not None:
            self._held, self._parked_part = self._parked_part, None
        return self.part

    def inject_fault(self, kind: str, *, camera: str | None = None) -> None:
        """Make a fault (hardware.sim.faults.FAULT_KINDS) a state of the cell until `clear_faults()`;
        a camera fault sits in `camera` (default the coarse one)."""
        self.faults.inject(self, kind, camera)

    def clear_faults(self) -> None:
        self.faults.clear(self)

    def target_pitch_mm(self, camera_role: str) -> float | None:
        """Pitch of the loaded target's grid meant for that camera (None without a target)."""
        target = self.target
        return None if target is None else target.pitch_mm(CAMERAS[camera_role])

    def snapshot(self, exposure_us: float) -> SceneSnapshot:
        held = self._held  # one read: a load from another thread swaps it atomically
        return SceneSnapshot(part=held if isinstance(held, PartInstance) else None, pose=self.stage.machine_pose(),
                             lights=self.faults.lights(self.lights.effective_levels(self.wiring, exposure_us)),
                             moving=self.stage.is_moving,
                             target=held if isinstance(held, CalibrationTarget) else None,
                             faults=self.faults.camera_faults())

    def camera(self, role: str, *, seed: int = 0) -> VirtualCamera:
        if role not in CAMERAS:
            raise ValueError(f"no virtual camera {role!r}; the cell has {', '.join(CAMERAS)}")
        return VirtualCamera(role, CAMERAS[role], self, seed=seed, pose_source=self.stage.machine_pose)

    # -- station config ------------------------------------------------------------------------------
    def station_config_dict(self, name: str = "virtual-cell") -> dict:
        if self.motion is None:
            raise ValueError("this cell's stage is external: its port and origin are in the station config")
        return station_config_dict(self.motion.port_path, self.lights.port_path, self.light_protocol, name,
                                   origin=self.motion.stage_origin)


def station_config_dict(motion_url: str, lights_url: str, light_protocol: str = "gardasoft",
                        name: str = "virtual-cell", origin: tuple[float, ...] = (0.0,) * 5) -> dict:
    """The station config of the virtual cell (its wiring and camera calibration) for given ports."""
    lights: dict = {"protocol": light_protocol, "url": lights_url, "timeout_s": 1.0,
                    "channels": dict(WIRING if light_protocol == "gardasoft" else TEMPLATE_WIRING)}
    if light_protocol == "template":
        lights["template"] = dict(ACME_TEMPLATE)
    lights["segments"] = {role: [SEGMENT_AZIMUTH_DEG[role], SEGMENT_ELEVATION_DEG]
                          for role in lights["channels"] if role in SEGMENT_AZIMUTH_DEG}
    return {"station": {"name": name},
            "motion": {"protocol": "grblhal", "url": motion_url, "timeout_s": 2.0, "origin": list(origin)},
            "lights": lights,
            "cameras": {role: _camera_entry(spec) for role, spec in CAMERAS.items()}}


def _camera_entry(spec: CameraSpec) -> dict:
    return {"backend": "virtual", "width_px": spec.width_px, "height_px": spec.height_px,
            "exposure_us": 2000.0, "gain": 1.0,
            "calibration": {"mm_per_px": spec.mm_per_px, "optical_axis_mm": list(spec.axis_xy),
                            "rotation_deg": 0.0, "focal_z_mm": spec.focal_z}}
