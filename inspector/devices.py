"""Open the devices a station config names: one registry per device kind, so a new controller
model is a new entry, not a new `if`."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from hardware.cameras.base import Camera
from hardware.errors import ControllerError, HardwareError
from hardware.cameras.opencv_camera import ImageSequenceCamera, OpenCVCamera
from hardware.lights.controller import LightController
from hardware.lights.gardasoft import GardasoftController
from hardware.lights.template import TemplateLightController, TemplateProtocolSpec
from hardware.motion.base import MotionController
from hardware.motion.grblhal import GrblHalController
from hardware.transport import LineTransport

from .station_config import VIRTUAL, CameraConfig, LightsConfig, MotionConfig, SerialPortConfig, StationConfig


HOMING_REQUIRED = 46  # grblHAL's `$X` answer while the axes must be homed first (Status_HomingRequired)


def _transport(config: SerialPortConfig, name: str) -> LineTransport:
    return LineTransport(config.url, name=name, baudrate=config.baudrate, read_timeout_s=config.timeout_s)


MOTION_DRIVERS: dict[str, Callable[[MotionConfig], MotionController]] = {
    "grblhal": lambda c: GrblHalController(_transport(c, "motion"), origin=c.origin),
}
LIGHT_DRIVERS: dict[str, Callable[[LightsConfig], LightController]] = {
    "gardasoft": lambda c: GardasoftController(_transport(c, "lights"), c.channels),
    "template": lambda c: TemplateLightController(_transport(c, "lights"),
                                                  TemplateProtocolSpec.from_dict(c.template or {}), c.channels),
}


def _camera(config: CameraConfig, virtual_cell) -> Camera:
    if config.backend == "virtual":
        if virtual_cell is None:
            raise ValueError(f"camera {config.role!r} is virtual: it needs the virtual cell in this process "
                             f"(use --sim), or a real backend in the station config")
        return virtual_cell.camera(config.role)
    if config.backend == "aravis":  # GigE Vision / USB3 Vision; Aravis is imported only when opened
        from hardware.cameras.aravis_camera import AravisCamera

        return AravisCamera(config.role, str(config.source), exposure_us_limits=config.exposure_us_limits,
                            gain_limits=config.gain_limits, **config.options)
    if config.backend == "images":
        return ImageSequenceCamera(config.role, str(config.source))
    return OpenCVCamera(config.role, config.source)  # type: ignore[arg-type]


@dataclass
class Devices:
    motion: MotionController
    lights: LightController
    cameras: dict[str, Camera] = field(default_factory=dict)

    def recover(self) -> list[str]:
        """The station's Reset after a fault: the light controller's port opened anew and every light
        off; the stage controller reconnected when its link is gone or out of step, else soft-reset,
        then unlocked. Returns notes for the operator (e.g. that the stage must be homed); raises
        the first fault that could not be cleared, after trying both devices."""
        notes: list[str] = []
        failure: BaseException | None = None
        try:
            self.lights.reopen()
        except HardwareError as exc:
            failure = exc
        motion = self.motion
        try:
            if getattr(motion, "connected", True):
                motion.reset()
            else:
                motion.connect()
            try:
                motion.unlock()
            except ControllerError as exc:
                if exc.code != HOMING_REQUIRED:
                    raise
                notes.append(f"{exc.device}: the stage must be homed before it moves (Start homes it)")
        except HardwareError as exc:
            failure = failure or exc
        if failure is not None:
            raise failure
        return notes

    def close(self) -> None:
        for camera in self.cameras.values():
            camera.close()
        for device in (self.lights, self.motion):
            try:
                device.disconnect()
            except Exception:  # noqa: BLE001 - closing must go on for the others
                pass


def open_devices(config: StationConfig, *, virtual_cell=None) -> Devices:
    """Connect motion and lights, open both cameras, configure them from the station config.
    Lights with url "virtual" are the virtual cell's light emulator, reached through its port."""
    lights_config = config.lights
    if lights_config.url == VIRTUAL:
        if virtual_cell is None:
            raise ValueError(f"{config.source}: lights.url is \"{VIRTUAL}\": the lights need the virtual cell in this "
                             f"process (inspector run --config starts it), or a real port in the station config")
        lights_config = replace(lights_config, url=virtual_cell.lights.port_path)
    motion = MOTION_DRIVERS[config.motion.protocol](config.motion)
    lights = LIGHT_DRIVERS[lights_config.protocol](lights_config)
    devices = Devices(motion, lights)
    try:
        motion.connect()
        lights.connect()
        for role, camera_config in config.cameras.items():
            camera = _camera(camera_config, virtual_cell)
            camera.open()
            camera.configure(exposure_us=camera_config.exposure_us, gain=camera_config.gain)
            if camera.pose_source is None:
                camera.pose_source = motion.position
            devices.cameras[role] = camera
    except BaseException:
        devices.close()
        raise
    return devices
