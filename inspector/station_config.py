"""The station config: which ports and protocols, which cameras, and their calibration.

One human-edited TOML (or JSON) file per station. Every error names the file, the field and
what was expected. A recipe never holds station facts (ports, calibration): the same recipe
runs on any station of the same build.

Virtual devices, for a dry run of a real stage before the optics arrive (`inspector run --config`):
`[lights] url = "virtual"` starts the virtual cell's light emulator of that protocol (gardasoft or
template, with the channels and template given here) on a pseudo-terminal in the same process, and
the real driver talks to it; a camera with `backend = "virtual"` renders the virtual cell's part at
the pose the stage controller reports; in a dry run virtual cameras need virtual lights (they see
only those). The stage is always the one `[motion]` names (the virtual stage is `--sim`).

Where the part's serial comes from (optional `[serial]`, inspector.serials): `source = "plc"` (the
caller's, default), `"barcode"` (a code reader at `url`, `timeout_s`, `baudrate`) or `"datamatrix"`
(decoded from the coarse image of the recipe view `view`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hardware.cameras.base import EXPOSURE_US_LIMITS, GAIN_LIMITS
from hardware.lights.template import TemplateProtocolSpec

from .schema import ConfigError, Section, dump_toml, load_document
from .lamps import LampWiring
from .serials import SERIAL_SOURCES, SerialConfig

MOTION_PROTOCOLS = ("grblhal",)
LIGHT_PROTOCOLS = ("gardasoft", "template")
CAMERA_BACKENDS = ("virtual", "opencv", "images", "aravis")
ARAVIS_PIXEL_FORMATS = ("Mono8", "Mono10", "Mono12", "Mono14", "Mono16")  # hardware.cameras.aravis_camera
CAMERA_ROLES = ("coarse", "fine")
VIRTUAL = "virtual"  # lights.url of the virtual cell's light emulator, cameras.*.backend of its cameras
LIGHT_ROLES = ("coaxial", "ring", "low_angle", "backlight", "seg_n", "seg_e", "seg_s", "seg_w")
MAX_SENSOR_PX = 65_536  # per side
MAX_BAUDRATE = 10_000_000
MAX_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class SerialPortConfig:
    protocol: str
    url: str  # device path, socket://host:port or rfc2217://host:port
    baudrate: int = 115200
    timeout_s: float = 2.0


@dataclass(frozen=True)
class MotionConfig(SerialPortConfig):
    # MPos of the stage frame's zero: grblHAL's machine frame lies on one side of zero from the home
    # switches, the station's poses around the fixture (hardware.motion.grblhal explains the frames)
    origin: tuple[float, ...] = (0.0,) * 5


@dataclass(frozen=True)
class LightsConfig(SerialPortConfig):
    channels: dict[str, int | str] = field(default_factory=dict)  # role → controller channel
    template: dict[str, Any] | None = None  # the vendor command templates, for protocol "template"
    # segment light role → (azimuth°, elevation°) in the coarse camera's image axes, for photometric stereo
    segments: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class CameraCalibration:
    """Pixel ↔ machine mapping of one camera, as measured with a calibration target."""

    mm_per_px: float
    optical_axis_mm: tuple[float, float]  # machine X, Y seen at the image centre
    rotation_deg: float = 0.0  # image x axis relative to machine +X
    focal_z_mm: float = 0.0  # machine Z at which the reference surface is in focus


@dataclass(frozen=True)
class CameraConfig:
    role: str
    backend: str
    source: int | str | None
    width_px: int
    height_px: int
    calibration: CameraCalibration
    exposure_us: float = 2000.0
    gain: float = 1.0
    # what this camera accepts (its datasheet), within hardware.cameras.base's range for any camera
    exposure_us_limits: tuple[float, float] = EXPOSURE_US_LIMITS
    gain_limits: tuple[float, float] = GAIN_LIMITS
    # backend "aravis": pixel_format (Mono8 | Mono12 | Mono16 …), trigger ("software" | "off" | a line, e.g. "Line0")
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReviewHookConfig:
    """Fires when `every` new labels have accumulated; receives the COCO export path."""

    every: int = 50
    command: tuple[str, ...] = ()  # argv; the export path is appended
    entry_point: str = ""  # "module:function", called with the export path


@dataclass(frozen=True)
class StationConfig:
    name: str
    motion: MotionConfig
    lights: LightsConfig
    cameras: dict[str, CameraConfig]
    source: str = "<memory>"
    review_hook: ReviewHookConfig | None = None
    serial: SerialConfig | None = None  # None: no [serial] section, the caller's serial (or the part id) stands
    io: LampWiring | None = None  # [io]: OK/NG/ERROR lamps and the part-present sensor on the stage controller
    recipes: dict[int, str] = field(default_factory=dict)  # [recipes]: the PLC's recipe numbers → recipe files

    @property
    def fine_offset_mm(self) -> tuple[float, float]:
        """Where the fine camera looks relative to the coarse one, in machine X, Y."""
        coarse = self.cameras["coarse"].calibration.optical_axis_mm
        fine = self.cameras["fine"].calibration.optical_axis_mm
        return (fine[0] - coarse[0], fine[1] - coarse[1])

    @property
    def virtual_lights(self) -> bool:
        return self.lights.url == VIRTUAL

    @property
    def virtual_cameras(self) -> tuple[str, ...]:
        """Roles of the cameras the virtual cell renders."""
        return tuple(role for role, camera in self.cameras.items() if camera.backend == VIRTUAL)

    @classmethod
    def load(cls, path: str | Path) -> "StationConfig":
        return cls.from_dict(load_document(path), source=str(path))

    def check_recipe(self, recipe: Any) -> None:
        """Refuse a recipe whose exposure or gain this station's cameras cannot take (ConfigError naming
        the recipe file, the field and the camera's range)."""
        settings = [(f"views[{i}]", v.camera, v.exposure_us, v.gain) for i, v in enumerate(recipe.views)]
        settings.append(("reimaging", recipe.reimaging.camera, recipe.reimaging.exposure_us, recipe.reimaging.gain))
        for where, role, exposure_us, gain in settings:
            camera = self.cameras.get(role)
            if camera is None:
                continue
            for key, value, (low, high) in (("exposure_us", exposure_us, camera.exposure_us_limits),
                                            ("gain", gain, camera.gain_limits)):
                if not low <= value <= high:
                    raise ConfigError(recipe.source, f"{where}.{key}",
                                      f"expected {low:g} to {high:g} (camera {role} of station {self.name}), got {value:g}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<memory>") -> "StationConfig":
        top = Section(data, source)
        station = top.section("station")
        name = station.get("name", str)
        station.reject_unknown()
        motion = _motion(top.section("motion"))
        lights = _lights(top.section("lights"))
        camera_sections = top.sections("cameras")
        for role in camera_sections:
            if role not in CAMERA_ROLES:
                raise ConfigError(source, f"cameras.{role}", f"unknown camera role, expected one of {', '.join(CAMERA_ROLES)}")
        cameras = {role: _camera(role, section) for role, section in camera_sections.items()}
        missing = [role for role in CAMERA_ROLES if role not in cameras]
        if missing:
            raise ConfigError(source, f"cameras.{missing[0]}", "missing table; a station needs a coarse and a fine camera")
        review = top.section("review_hook", optional=True)
        hook = _review_hook(review) if review is not None else None
        serial_section = top.section("serial", optional=True)
        serial = _serial(serial_section) if serial_section is not None else None
        io_section = top.section("io", optional=True)
        io = _io(io_section) if io_section is not None else None
        recipes_section = top.section("recipes", optional=True)
        recipes = _recipes(recipes_section, source) if recipes_section is not None else {}
        top.reject_unknown()
        return cls(name=name, motion=motion, lights=lights, cameras=cameras, source=source, review_hook=hook,
                   serial=serial, io=io, recipes=recipes)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(dump_toml(self.to_dict()), encoding="utf-8")

    def to_dict(self) -> dict[str, Any]:
        def port(p: SerialPortConfig) -> dict[str, Any]:
            return {"protocol": p.protocol, "url": p.url, "baudrate": p.baudrate, "timeout_s": p.timeout_s}

        lights = port(self.lights) | {"channels": dict(self.lights.channels)}
        if self.lights.segments:
            lights["segments"] = {role: list(direction) for role, direction in self.lights.segments.items()}
        if self.lights.template is not None:
            lights["template"] = dict(self.lights.template)
        cameras = {}
        for role, cam in self.cameras.items():
            entry: dict[str, Any] = {"backend": cam.backend, "width_px": cam.width_px, "height_px": cam.height_px,
                                     "exposure_us": cam.exposure_us, "gain": cam.gain,
                                     **({"exposure_us_limits": list(cam.exposure_us_limits)}
                                        if cam.exposure_us_limits != EXPOSURE_US_LIMITS else {}),
                                     **({"gain_limits": list(cam.gain_limits)} if cam.gain_limits != GAIN_LIMITS else {}),
                                     "calibration": {"mm_per_px": cam.calibration.mm_per_px,
                                                     "optical_axis_mm": list(cam.calibration.optical_axis_mm),
                                                     "rotation_deg": cam.calibration.rotation_deg,
                                                     "focal_z_mm": cam.calibration.focal_z_mm}}
            if cam.source is not None:
                entry["source"] = cam.source
            entry.update(cam.options)
            cameras[role] = entry
        motion = port(self.motion) | {"origin": list(self.motion.origin)}
        data = {"station": {"name": self.name}, "motion": motion, "lights": lights, "cameras": cameras}
        if self.review_hook is not None:
            hook: dict[str, Any] = {"every": self.review_hook.every}
            if self.review_hook.command:
                hook["command"] = list(self.review_hook.command)
            if self.review_hook.entry_point:
                hook["entry_point"] = self.review_hook.entry_point
            data["review_hook"] = hook
        if self.serial is not None:
            serial: dict[str, Any] = {"source": self.serial.source}
            if self.serial.source == "barcode":
                serial |= {"url": self.serial.url, "baudrate": self.serial.baudrate, "timeout_s": self.serial.timeout_s}
            elif self.serial.source == "datamatrix":
                serial["view"] = self.serial.view
            data["serial"] = serial
        if self.recipes:
            data["recipes"] = {str(number): path for number, path in sorted(self.recipes.items())}
        if self.io is not None:
            data["io"] = {key: value for key, value in (
                ("ok_output", self.io.ok), ("ng_output", self.io.ng), ("error_output", self.io.error),
                ("part_present_input", self.io.part_present),
                ("part_present_timeout_s", self.io.part_present_timeout_s)) if value is not None}
        return data


def _recipes(section: Section, source: str) -> dict[int, str]:
    """`[recipes]`: `1 = "housing-40x30.recipe.json"` — recipe numbers a PLC selects (1–65535) and their
    files, relative to the station config's folder."""
    recipes: dict[int, str] = {}
    for key in list(section.data):
        if not key.isdigit() or not 1 <= int(key) <= 65535:
            raise section.error(key, "expected a recipe number 1–65535 as the key")
        path = section.get(key, str)
        if not path.strip():
            raise section.error(key, "expected a recipe file, got an empty string")
        folder = Path(source).parent if source not in ("<memory>", "") else Path.cwd()
        recipes[int(key)] = str(path if Path(path).is_absolute() else folder / path)
    section.reject_unknown()
    return recipes


def _io(section: Section) -> LampWiring:
    """`[io]`: output ports of the OK / NG / ERROR lamps and input port of the part-present sensor on the
    stage controller's auxiliary I/O (grblHAL M64/M65, M66); each optional."""
    def port(key: str) -> int | None:
        return section.get(key, int, None, min_value=0, max_value=255) if section.has(key) else None

    wiring = LampWiring(ok=port("ok_output"), ng=port("ng_output"), error=port("error_output"),
                        part_present=port("part_present_input"),
                        part_present_timeout_s=section.get("part_present_timeout_s", float, 10.0, positive=True,
                                                           max_value=3600.0))
    used = [p for p in (wiring.ok, wiring.ng, wiring.error) if p is not None]
    if len(used) != len(set(used)):
        raise section.error("ok_output", f"each lamp needs its own output, got {used}")
    section.reject_unknown()
    return wiring


def _serial(section: Section) -> SerialConfig:
    source = section.get("source", str, "plc", choices=SERIAL_SOURCES)
    fields: dict[str, Any] = {"source": source}
    if source == "barcode":
        url = section.get("url", str)
        if not url.strip():
            raise section.error("url", "expected the code reader's port (a device path or a pyserial URL)")
        fields |= {"url": url, "baudrate": section.get("baudrate", int, 115200, min_value=1, max_value=MAX_BAUDRATE),
                   "timeout_s": section.get("timeout_s", float, 1.0, positive=True, max_value=MAX_TIMEOUT_S)}
    elif source == "datamatrix":
        view = section.get("view", str)
        if not view.strip():
            raise section.error("view", "expected the name of the recipe view whose coarse image shows the mark")
        fields["view"] = view
    for key, used_by in (("url", "barcode"), ("baudrate", "barcode"), ("timeout_s", "barcode"), ("view", "datamatrix")):
        if source != used_by and section.has(key):
            raise section.error(key, f"only used with source = \"{used_by}\", not {source!r}")
    section.reject_unknown()
    return SerialConfig(**fields)


def _review_hook(section: Section) -> ReviewHookConfig:
    every = section.get("every", int, 50, min_value=1, max_value=1_000_000)
    command = section.get_list("command", 256, [])
    if not all(isinstance(part, str) and part for part in command):
        raise section.error("command", "expected a list of non-empty strings (argv), e.g. [\"retrain.sh\"]")
    entry_point = section.get("entry_point", str, "")
    if entry_point and (entry_point.count(":") != 1 or not all(entry_point.split(":"))):
        raise section.error("entry_point", f"expected 'module:function', got {entry_point!r}")
    if not command and not entry_point:
        raise section.error("command", "a review hook needs a command or an entry_point")
    section.reject_unknown()
    return ReviewHookConfig(every=every, command=tuple(command), entry_point=entry_point)


def _motion(section: Section) -> MotionConfig:
    fields = _port_fields(section, MOTION_PROTOCOLS)
    if fields["url"] == VIRTUAL:
        raise section.error("url", "expected the stage controller's port; the virtual stage is `--sim`, not a config")
    origin = section.get_vector("origin", 5, (0.0,) * 5)
    if not all(math.isfinite(v) for v in origin):
        raise section.error("origin", f"expected finite numbers (machine X Y Z A B of the stage frame's zero), got {list(origin)}")
    section.reject_unknown()
    return MotionConfig(**fields, origin=tuple(origin))


def _port_fields(section: Section, protocols: tuple[str, ...]) -> dict[str, Any]:
    url = section.get("url", str)
    if not url.strip():
        raise section.error("url", "expected a device path or a pyserial URL, got an empty string")
    return {
        "protocol": section.get("protocol", str, choices=protocols),
        "url": url,
        "baudrate": section.get("baudrate", int, 115200, min_value=1, max_value=MAX_BAUDRATE),
        "timeout_s": section.get("timeout_s", float, 2.0, positive=True, max_value=MAX_TIMEOUT_S),
    }


def _lights(section: Section) -> LightsConfig:
    fields = _port_fields(section, LIGHT_PROTOCOLS)
    channel_section = section.section("channels")
    assert channel_section is not None
    channels: dict[str, int | str] = {}
    for role in list(channel_section.data):
        if role not in LIGHT_ROLES:
            raise channel_section.error(role, f"unknown light role, expected one of {', '.join(LIGHT_ROLES)}")
        channels[role] = channel_section.get(role, (int, str))
    if fields["protocol"] == "gardasoft":
        for role, channel in channels.items():
            if not isinstance(channel, int) or channel < 1:
                raise channel_section.error(role, f"a Gardasoft output number ≥ 1 is expected, got {channel!r}")
    if not channels:
        raise section.error("channels", "expected at least one role → channel entry, e.g. coaxial = 1")
    template = None
    if fields["protocol"] == "template":
        template_section = section.section("template")
        assert template_section is not None
        template = dict(template_section.data)
        try:
            TemplateProtocolSpec.from_dict(template, source="lights.template")
        except ValueError as exc:
            raise ConfigError(section.source, "", str(exc)) from None
    elif section.has("template"):
        raise section.error("template", f"only used with protocol = \"template\", not {fields['protocol']!r}")
    segments = _segments(section.section("segments", optional=True), channels)
    section.reject_unknown()
    return LightsConfig(**fields, channels=channels, template=template, segments=segments)


def _segments(section: Section | None, channels: dict[str, int | str]) -> dict[str, tuple[float, float]]:
    """[lights.segments] seg_n = [azimuth°, elevation°]: where each segment light shines from, in the
    coarse camera's image axes (azimuth from +x towards +y; elevation above the image plane)."""
    if section is None:
        return {}
    segments = {}
    for role in list(section.data):
        if not role.startswith("seg_") or role not in channels:
            raise section.error(role, "not a segment light wired in [lights.channels] (seg_n, seg_e, seg_s, seg_w)")
        value = section.get(role, list)
        if (len(value) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
                or not -360 <= value[0] <= 360 or not 0 < value[1] < 90):
            raise section.error(role, f"expected [azimuth°, elevation° in (0, 90)], got {value!r}")
        segments[role] = (float(value[0]), float(value[1]))
    return segments


def _limits(section: Section, key: str, widest: tuple[float, float], unit: str) -> tuple[float, float]:
    """A camera's [low, high] for a setting: within `widest` (what any camera of this cell accepts)."""
    low, high = section.get_vector(key, 2, widest)
    if not widest[0] <= low < high <= widest[1]:
        raise section.error(key, f"expected [low, high] with {widest[0]:g} ≤ low < high ≤ {widest[1]:g}{' ' + unit if unit else ''}, "
                                 f"got {[low, high]}")
    return (low, high)


def _camera(role: str, section: Section) -> CameraConfig:
    backend = section.get("backend", str, choices=CAMERA_BACKENDS)
    if backend == "virtual":
        source = section.get("source", (int, str), None)
    else:
        source = section.get("source", (int, str))
    calibration_section = section.section("calibration")
    assert calibration_section is not None
    calibration = CameraCalibration(
        mm_per_px=calibration_section.get("mm_per_px", float, positive=True),
        optical_axis_mm=calibration_section.get_vector("optical_axis_mm", 2),  # type: ignore[arg-type]
        rotation_deg=calibration_section.get("rotation_deg", float, 0.0, min_value=-180, max_value=180),
        focal_z_mm=calibration_section.get("focal_z_mm", float, 0.0),
    )
    calibration_section.reject_unknown()
    exposure_limits = _limits(section, "exposure_us_limits", EXPOSURE_US_LIMITS, "µs")
    gain_limits = _limits(section, "gain_limits", GAIN_LIMITS, "")
    camera = CameraConfig(
        role=role, backend=backend, source=source,
        width_px=section.get("width_px", int, min_value=1, max_value=MAX_SENSOR_PX),
        height_px=section.get("height_px", int, min_value=1, max_value=MAX_SENSOR_PX),
        calibration=calibration,
        exposure_us=section.get("exposure_us", float, 2000.0, min_value=exposure_limits[0], max_value=exposure_limits[1]),
        gain=section.get("gain", float, 1.0, min_value=gain_limits[0], max_value=gain_limits[1]),
        exposure_us_limits=exposure_limits, gain_limits=gain_limits, options=_aravis_options(section, backend),
    )
    section.reject_unknown()
    return camera


def _aravis_options(section: Section, backend: str) -> dict[str, str]:
    """`pixel_format` and `trigger` of an aravis camera (GenICam PixelFormat, TriggerSource)."""
    options: dict[str, str] = {}
    for key in ("pixel_format", "trigger"):
        if section.has(key) and backend != "aravis":
            raise section.error(key, f"only used with backend = \"aravis\", not {backend!r}")
    if backend == "aravis":
        options["pixel_format"] = section.get("pixel_format", str, "Mono8", choices=ARAVIS_PIXEL_FORMATS)
        trigger = section.get("trigger", str, "software")
        if not (trigger in ("software", "off") or (trigger.startswith("Line") and trigger[4:].isdigit())):
            raise section.error("trigger", f"expected \"software\", \"off\" or a trigger line such as \"Line0\", got {trigger!r}")
        options["trigger"] = trigger
    return options
