"""Lights as data: channels addressed by role, light programs, and the checks on both.

A role (coaxial, ring, …) is what a recipe speaks of; which output of which controller drives it
is station wiring, given by a `ChannelMap` from the station config. A light *program* is the
ordered list of steps one capture needs — one step for a plain shot, four for a segmented
photometric-stereo sequence. The drivers (`hardware.lights.controller.LightController` and one
subclass per protocol) declare their limits as `Parameter`s whose validators are pure functions,
and every value is checked before a byte is sent.
"""
from __future__ import annotations

import re

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping, Union

CHANNEL_ROLES = ("coaxial", "ring", "low_angle", "backlight", "seg_n", "seg_e", "seg_s", "seg_w")
MODES = ("continuous", "strobe")
ChannelId = Union[int, str]  # an output number (Gardasoft: 1…8) or a vendor's letter / name ("A", "CH1")


# -- validators: pure functions that return the value or raise ValueError with the reason -----------------
def strict_range(value: Any, bounds: tuple[float, float]) -> float:
    """A real number within `bounds` (inclusive), as float. Booleans and NaN are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{value!r} is not a number")
    low, high = bounds
    if not low <= value <= high:  # NaN fails this too
        raise ValueError(f"{value!r} is out of range")
    return float(value)


def check_role(role: Any) -> str:
    if role not in CHANNEL_ROLES:
        raise ValueError(f"unknown role {role!r}, expected one of {', '.join(CHANNEL_ROLES)}")
    return role


def check_channel_id(channel: Any) -> ChannelId:
    """An output number ≥ 1, or a short alphanumeric name such as "A" or "CH1"."""
    if isinstance(channel, bool):
        raise ValueError(f"{channel!r} is not a channel; expected a number ≥ 1 or a name such as \"A\"")
    if isinstance(channel, int):
        if channel < 1:
            raise ValueError(f"channel {channel} is not ≥ 1")
        return channel
    if isinstance(channel, str) and channel.isalnum() and channel.isascii() and len(channel) <= 8:
        return channel
    raise ValueError(f"{channel!r} is not a channel; expected a number ≥ 1 or a name such as \"A\"")


def format_range(bounds: tuple[float, float], unit: str) -> str:
    return f"{bounds[0]:g}–{bounds[1]:g} {unit}".rstrip()


@dataclass(frozen=True)
class Parameter:
    """A driver parameter declared once per protocol: its name, unit, limits and validator.

    `check` returns the validated value or raises ValueError naming the owner (usually the light
    role), the parameter and the accepted range — before anything is sent to the unit.
    """

    name: str
    unit: str
    bounds: tuple[float, float]
    validator: Callable[[Any, tuple[float, float]], float] = strict_range

    @property
    def expected(self) -> str:
        return format_range(self.bounds, self.unit)

    def check(self, value: Any, owner: str) -> float:
        try:
            return self.validator(value, self.bounds)
        except ValueError as exc:
            raise ValueError(f"{owner}: {self.name} {exc}, expected {self.expected}") from None


PERCENT = Parameter("level", "%", (0.0, 100.0))


# -- wiring ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ChannelMap(Mapping[str, ChannelId]):
    """Role → controller channel, as wired at this station. A read-only mapping."""

    wiring: tuple[tuple[str, ChannelId], ...]

    def __post_init__(self) -> None:
        seen: dict[ChannelId, str] = {}
        for role, channel in self.wiring:
            check_role(role)
            check_channel_id(channel)
            if channel in seen:
                raise ValueError(f"roles {seen[channel]!r} and {role!r} are both wired to channel {channel!r}")
            seen[channel] = role
        if len({role for role, _ in self.wiring}) != len(self.wiring):
            raise ValueError("a role is wired twice")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "lights.channels") -> "ChannelMap":
        if isinstance(data, ChannelMap):
            return data
        if not isinstance(data, Mapping) or not data:
            raise ValueError(f"{source}: expected a table of role = channel, e.g. coaxial = 1")
        for role, channel in data.items():
            try:
                check_role(role)
                check_channel_id(channel)
            except ValueError as exc:
                raise ValueError(f"{source}.{role}: {exc}") from None
        try:
            return cls(tuple(data.items()))
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None

    def __getitem__(self, role: str) -> ChannelId:
        for wired_role, channel in self.wiring:
            if wired_role == role:
                return channel
        raise KeyError(role)

    def __iter__(self) -> Iterator[str]:
        return (role for role, _ in self.wiring)

    def __len__(self) -> int:
        return len(self.wiring)

    def channel(self, role: str, device: str = "lights") -> ChannelId:
        """The channel wired for `role`; ValueError naming the role (unknown, or not wired here)."""
        if role not in CHANNEL_ROLES:
            raise ValueError(f"{device}: unknown light role {role!r}, expected one of {', '.join(CHANNEL_ROLES)}")
        if role not in self:
            raise ValueError(f"{device}: no channel wired for light role {role!r} (wired: {', '.join(self)})")
        return self[role]

    def role_of(self, channel: ChannelId) -> str | None:
        return next((role for role, wired in self.wiring if wired == channel), None)

    def to_dict(self) -> dict[str, ChannelId]:
        return dict(self.wiring)


# -- light programs as data -----------------------------------------------------------------------------
STEP_FIELDS = ("levels", "mode", "pulse_us", "delay_us", "channel")
CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,23}$")  # a step's frame name: bright, dark, seg_n …
PROGRAM_FIELDS = ("steps", "description")


def _step_problems(levels: Mapping[str, Any], mode: Any, pulse_us: Any, delay_us: Any) -> str | None:
    """The first thing wrong with a step, worded for `program 'x' step n: …`; None when it is valid."""
    if mode not in MODES:
        return f"mode {mode!r}, expected one of {', '.join(MODES)}"
    if not isinstance(levels, Mapping) or not levels:
        return "'levels' must map roles to percent, e.g. {coaxial = 60}"
    for role, level in levels.items():
        if role not in CHANNEL_ROLES:
            return f"level for {role!r} — unknown role, expected one of {', '.join(CHANNEL_ROLES)}"
        try:
            strict_range(level, PERCENT.bounds)
        except ValueError as exc:
            return f"level for {role!r} — {exc}, expected {PERCENT.expected}"
    for name, value in (("pulse_us", pulse_us), ("delay_us", delay_us)):
        try:
            strict_range(value, (0.0, 10_000_000.0))
        except ValueError as exc:
            return f"{name} {exc}, expected 0–10000000 µs"
    if mode == "strobe" and not pulse_us > 0:
        return f"strobe needs pulse_us > 0, got {pulse_us!r}"
    if mode == "continuous" and (pulse_us or delay_us):
        return "pulse_us and delay_us are only used with mode 'strobe'"
    return None


@dataclass(frozen=True)
class LightStep:
    """The lights for one exposure: roles not named are off. Strobe steps fire on the camera
    trigger after `delay_us`, for `pulse_us`; continuous steps stay lit."""

    levels: Mapping[str, float]
    mode: str = "continuous"
    pulse_us: float = 0.0
    delay_us: float = 0.0
    channel: str = ""  # the name of this step's frame (e.g. "dark"); "" → step<k> in its program

    def __post_init__(self) -> None:
        problem = _step_problems(self.levels, self.mode, self.pulse_us, self.delay_us)
        if not problem and self.channel and not (isinstance(self.channel, str) and CHANNEL_NAME.match(self.channel)):
            problem = f"channel {self.channel!r}: expected 1–24 characters a–z, 0–9, _ starting with a letter"
        if problem:
            raise ValueError(f"light step: {problem}")
        object.__setattr__(self, "levels", MappingProxyType({role: float(v) for role, v in self.levels.items()}))
        object.__setattr__(self, "pulse_us", float(self.pulse_us))
        object.__setattr__(self, "delay_us", float(self.delay_us))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "light step") -> "LightStep":
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a table with 'levels', got {type(data).__name__}")
        extra = sorted(set(data) - set(STEP_FIELDS))
        if extra:
            raise ValueError(f"{where}: unknown field {extra[0]!r}, expected {', '.join(STEP_FIELDS)}")
        if "levels" not in data:
            raise ValueError(f"{where}: missing 'levels', e.g. levels = {{coaxial = 60}}")
        mode = data.get("mode", "continuous")
        pulse_us, delay_us = data.get("pulse_us", 0.0), data.get("delay_us", 0.0)
        problem = _step_problems(data["levels"], mode, pulse_us, delay_us)
        if problem:
            raise ValueError(f"{where}: {problem}")
        try:
            return cls(dict(data["levels"]), mode, pulse_us, delay_us, data.get("channel", ""))
        except ValueError as exc:
            raise ValueError(f"{where}: {str(exc).removeprefix('light step: ')}") from None

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"levels": dict(self.levels)}
        if self.mode != "continuous":
            entry.update(mode=self.mode, pulse_us=self.pulse_us, delay_us=self.delay_us)
        if self.channel:
            entry["channel"] = self.channel
        return entry

    def level(self, role: str) -> float:
        return self.levels.get(role, 0.0)


@dataclass(frozen=True)
class LightProgram:
    """A named, ordered list of steps; one exposure per step."""

    name: str
    steps: tuple[LightStep, ...]
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"light program name must be a non-empty string, got {self.name!r}")
        object.__setattr__(self, "steps", tuple(self.steps))
        if not self.steps or not all(isinstance(step, LightStep) for step in self.steps):
            raise ValueError(f"program {self.name!r}: expected at least one LightStep")
        names = self.channel_names
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"program {self.name!r}: channel {repeated[0]!r} names more than one step")

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> "LightProgram":
        """Schema: {steps = [{levels = {role = percent, …}, mode = "continuous"|"strobe",
        pulse_us = µs, delay_us = µs}, …], description = "…"}; errors name program, step and field."""
        where = f"program {name!r}"
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a table with a list 'steps', got {type(data).__name__}")
        extra = sorted(set(data) - set(PROGRAM_FIELDS))
        if extra:
            raise ValueError(f"{where}: unknown field {extra[0]!r}, expected {', '.join(PROGRAM_FIELDS)}")
        steps = data.get("steps")
        if not isinstance(steps, (list, tuple)) or not steps:
            raise ValueError(f"{where}: expected a non-empty list 'steps' (one step per exposure)")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise ValueError(f"{where}: description must be text, got {description!r}")
        parsed = tuple(LightStep.from_dict(raw, f"{where} step {index}") for index, raw in enumerate(steps, start=1))
        return cls(name, parsed, description)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"steps": [step.to_dict() for step in self.steps]}
        if self.description:
            data["description"] = self.description
        return data

    @property
    def channel_names(self) -> tuple[str, ...]:
        """The name of each step's frame: its `channel`, else step1, step2, …"""
        return tuple(step.channel or f"step{k}" for k, step in enumerate(self.steps, start=1))

    @property
    def roles(self) -> tuple[str, ...]:
        """Every role some step lights, in CHANNEL_ROLES order."""
        used = {role for step in self.steps for role, level in step.levels.items() if level > 0}
        return tuple(role for role in CHANNEL_ROLES if role in used)
