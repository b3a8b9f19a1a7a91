"""Light controllers: channels addressed by role, light programs as data.

A role (coaxial, ring, …) is what a recipe speaks of; which output of which controller drives it
is station wiring, given by the channel map in the station config. A light *program* is the
ordered list of steps one capture needs — one step for a plain shot, four for a segmented
photometric-stereo sequence.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping

CHANNEL_ROLES = ("coaxial", "ring", "low_angle", "backlight", "seg_n", "seg_e", "seg_s", "seg_w")
MODES = ("continuous", "strobe")


def check_percent(role: str, percent: float) -> float:
    if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 <= percent <= 100:
        raise ValueError(f"light {role!r}: level must be 0–100 %, got {percent!r}")
    return float(percent)


def check_role(role: str, known: tuple[str, ...] | Mapping[str, Any] = CHANNEL_ROLES) -> str:
    if role not in known:
        raise ValueError(f"unknown light role {role!r}; expected one of {', '.join(known)}")
    return role


@dataclass(frozen=True)
class LightStep:
    levels: Mapping[str, float]  # role → percent; roles not named are off
    mode: str = "continuous"
    pulse_us: float = 0.0  # strobe only: pulse width and delay after the trigger
    delay_us: float = 0.0


@dataclass(frozen=True)
class LightProgram:
    name: str
    steps: tuple[LightStep, ...]

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> "LightProgram":
        where = f"light program {name!r}"
        if not isinstance(data, Mapping) or not isinstance(data.get("steps"), list) or not data["steps"]:
            raise ValueError(f"{where}: expected a table with a non-empty list 'steps'")
        unknown = set(data) - {"steps", "description"}
        if unknown:
            raise ValueError(f"{where}: unknown field {sorted(unknown)[0]!r} (expected steps, description)")
        steps = []
        for index, raw in enumerate(data["steps"], start=1):
            at = f"{where} step {index}"
            if not isinstance(raw, Mapping):
                raise ValueError(f"{at}: expected a table with 'levels'")
            extra = set(raw) - {"levels", "mode", "pulse_us", "delay_us"}
            if extra:
                raise ValueError(f"{at}: unknown field {sorted(extra)[0]!r} (expected levels, mode, pulse_us, delay_us)")
            mode = raw.get("mode", "continuous")
            if mode not in MODES:
                raise ValueError(f"{at}: mode {mode!r}, expected one of {', '.join(MODES)}")
            levels = raw.get("levels")
            if not isinstance(levels, Mapping) or not levels:
                raise ValueError(f"{at}: 'levels' must map roles to percent, e.g. {{coaxial = 60}}")
            for role, level in levels.items():
                try:
                    check_role(role)
                    check_percent(role, level)
                except ValueError as exc:
                    raise ValueError(f"{at}: level for {role!r} — {exc}") from None
            pulse, delay = raw.get("pulse_us", 0.0), raw.get("delay_us", 0.0)
            if mode == "strobe" and not (isinstance(pulse, (int, float)) and pulse > 0):
                raise ValueError(f"{at}: strobe needs pulse_us > 0, got {pulse!r}")
            if not (isinstance(delay, (int, float)) and delay >= 0):
                raise ValueError(f"{at}: delay_us must be ≥ 0, got {delay!r}")
            steps.append(LightStep({r: float(v) for r, v in levels.items()}, mode, float(pulse), float(delay)))
        return cls(name, tuple(steps))

    def to_dict(self) -> dict[str, Any]:
        steps = []
        for step in self.steps:
            entry: dict[str, Any] = {"levels": dict(step.levels)}
            if step.mode != "continuous":
                entry.update(mode=step.mode, pulse_us=step.pulse_us, delay_us=step.delay_us)
            steps.append(entry)
        return {"steps": steps}


@dataclass
class ChannelSetting:
    mode: str = "off"  # off | continuous | strobe
    percent: float = 0.0
    pulse_us: float = 0.0
    delay_us: float = 0.0


class LightController(ABC):
    """One controller; each protocol is a subclass. Percent is validated before anything is sent."""

    def __init__(self, name: str, channels: Mapping[str, int | str]):
        for role in channels:
            check_role(role)
        self.name = name
        self.channels = dict(channels)
        self._settings: dict[str, ChannelSetting] = {role: ChannelSetting() for role in self.channels}

    def _channel(self, role: str) -> int | str:
        check_role(role)
        if role not in self.channels:
            raise ValueError(f"{self.name}: no channel wired for light role {role!r} "
                             f"(wired: {', '.join(self.channels)})")
        return self.channels[role]

    def set_level(self, role: str, percent: float) -> None:
        channel = self._channel(role)
        percent = check_percent(role, percent)
        self._send_level(channel, percent)
        self._settings[role] = ChannelSetting("continuous" if percent > 0 else "off", percent)

    def set_strobe(self, role: str, pulse_us: float, delay_us: float, percent: float) -> None:
        channel = self._channel(role)
        percent = check_percent(role, percent)
        if not pulse_us > 0 or delay_us < 0:
            raise ValueError(f"light {role!r}: strobe needs pulse_us > 0 and delay_us ≥ 0, got {pulse_us}, {delay_us}")
        self._send_strobe(channel, pulse_us, delay_us, percent)
        self._settings[role] = ChannelSetting("strobe", percent, pulse_us, delay_us)

    def all_off(self) -> None:
        for role in self.channels:
            self.set_level(role, 0.0)

    def apply(self, step: LightStep) -> None:
        """Set every wired channel for one program step; channels the step does not name go off."""
        for role in step.levels:
            self._channel(role)
        for role in self.channels:
            level = step.levels.get(role, 0.0)
            if step.mode == "strobe" and level > 0:
                self.set_strobe(role, step.pulse_us, step.delay_us, level)
            elif self._settings[role].mode != "off" or level > 0:
                self.set_level(role, level)

    def levels(self) -> dict[str, ChannelSetting]:
        """What this driver last set, per role."""
        return {role: ChannelSetting(**vars(s)) for role, s in self._settings.items()}

    @abstractmethod
    def connect(self) -> None: ...

    @abstractmethod
    def disconnect(self) -> None: ...

    @abstractmethod
    def save(self) -> None:
        """Persist the current settings in the controller (where the protocol has it)."""

    @abstractmethod
    def _send_level(self, channel: int | str, percent: float) -> None: ...

    @abstractmethod
    def _send_strobe(self, channel: int | str, pulse_us: float, delay_us: float, percent: float) -> None: ...


@dataclass
class EmulatedChannel:
    """State of one output inside an emulated controller."""

    mode: str = "off"
    percent: float = 0.0
    pulse_us: float = 0.0
    delay_us: float = 0.0

    def effective_percent(self, exposure_us: float) -> float:
        """Level as the camera integrates it: continuous light for the whole exposure, a strobe
        only for the part of its pulse that falls inside the exposure (trigger at t = 0)."""
        if self.mode == "continuous":
            return self.percent
        if self.mode == "strobe" and exposure_us > 0:
            lit = max(0.0, min(self.delay_us + self.pulse_us, exposure_us) - self.delay_us)
            return self.percent * lit / exposure_us
        return 0.0


@dataclass
class ChannelTable:
    """Channel id → emulated state, for emulators; `saved` holds what a save command persisted."""

    channels: dict[Any, EmulatedChannel] = field(default_factory=dict)
    saved: dict[Any, EmulatedChannel] = field(default_factory=dict)
