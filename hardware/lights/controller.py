"""The light controller driver interface: what every protocol subclass shares — roles resolved
through the channel map, values validated before a byte is sent, the settings a driver last made,
and the read-back check after a change of program."""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Mapping

from ..errors import ReadbackMismatch
from .base import PERCENT, ChannelId, ChannelMap, LightStep, Parameter

LEVEL_READBACK_TOLERANCE = 0.05  # % : units print levels to two decimals

# -- the driver interface -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChannelSetting:
    """What a driver last set on one channel. `unknown` until it has set it (or after a failed command):
    the unit may hold saved settings from before."""

    mode: str = "unknown"  # unknown | off | continuous | strobe
    percent: float = 0.0
    pulse_us: float = 0.0
    delay_us: float = 0.0


OFF = ChannelSetting("off")
UNKNOWN = ChannelSetting()


def _shown(setting: ChannelSetting) -> str:
    return f"{setting.mode} {setting.percent:g} %" if setting.percent > 0 else "off"


class LightController(ABC):
    """One controller; each protocol is a subclass implementing `_send_level` / `_send_strobe`.

    Roles are resolved through the channel map and every value is validated against the class's
    `Parameter`s before anything is sent. Calls are serialised by a lock, so the cycle and an
    operator panel may share one controller.
    """

    protocol: ClassVar[str] = ""
    level: ClassVar[Parameter] = PERCENT
    pulse: ClassVar[Parameter] = Parameter("pulse", "µs", (1.0, 1_000_000.0))
    delay: ClassVar[Parameter] = Parameter("delay", "µs", (0.0, 1_000_000.0))

    def __init__(self, name: str, channels: ChannelMap | Mapping[str, ChannelId]):
        self.name = name
        try:
            self.channels = ChannelMap.from_dict(channels, source=f"{name}: channels")
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        self._settings: dict[str, ChannelSetting] = {role: UNKNOWN for role in self.channels}
        self._lock = threading.RLock()

    # -- lifecycle ---------------------------------------------------------------------------------------
    @abstractmethod
    def connect(self) -> None: ...

    @abstractmethod
    def disconnect(self) -> None: ...

    def reopen(self) -> None:
        """Close the port and open it again, then switch every light off: the station's Reset. A port
        that was lost (USB adapter unplugged and back, serial server restarted) is only found again by
        opening it anew; what the unit holds is unknown until it has been set."""
        with self._lock:
            self.disconnect()
            self.connect()
            self._settings = {role: UNKNOWN for role in self.channels}
            self.all_off()

    def __enter__(self) -> "LightController":
        self.connect()
        return self

    def __exit__(self, *exc_info) -> None:
        self.disconnect()

    # -- settings ----------------------------------------------------------------------------------------
    def set_level(self, role: str, percent: float) -> None:
        """Continuous light at `percent` of full brightness; 0 turns the channel off."""
        channel = self.channels.channel(role, self.name)
        percent = self.level.check(percent, f"light {role!r}")
        with self._lock:
            self._settings[role] = UNKNOWN
            self._send_level(channel, percent)
            self._settings[role] = ChannelSetting("continuous", percent) if percent > 0 else OFF

    def set_strobe(self, role: str, pulse_us: float, delay_us: float, percent: float) -> None:
        """Pulse at `percent` for `pulse_us`, `delay_us` after each trigger."""
        channel = self.channels.channel(role, self.name)
        self._require_strobe(role)
        owner = f"light {role!r}"
        pulse_us = self.pulse.check(pulse_us, owner)
        delay_us = self.delay.check(delay_us, owner)
        percent = self.level.check(percent, owner)
        with self._lock:
            self._settings[role] = UNKNOWN
            self._send_strobe(channel, pulse_us, delay_us, percent)
            self._settings[role] = ChannelSetting("strobe", percent, pulse_us, delay_us)

    def all_off(self) -> None:
        """Every wired channel off, whatever this driver believes it set."""
        with self._lock:
            for role in self.channels:
                self.set_level(role, 0.0)

    def apply(self, step: LightStep, *, force: bool = False) -> None:
        """Set every wired channel for one program step: channels the step does not light go off.

        Everything is checked before the first command; channels already as wanted are skipped
        unless `force` (a failed command leaves its channel unknown, so it is always re-sent)."""
        for role in step.levels:
            self.channels.channel(role, self.name)
        for role, level in step.levels.items():
            owner = f"light {role!r}"
            self.level.check(level, owner)
            if step.mode == "strobe" and level > 0:
                self._require_strobe(role)
                self.pulse.check(step.pulse_us, owner)
                self.delay.check(step.delay_us, owner)
        with self._lock:
            sent = False
            for role in self.channels:  # off first: two steps never overlap
                if step.level(role) <= 0 and (force or self._settings[role] != OFF):
                    self.set_level(role, 0.0)
                    sent = True
            for role in self.channels:
                level = step.level(role)
                if level <= 0:
                    continue
                if step.mode == "strobe":
                    wanted = ChannelSetting("strobe", level, step.pulse_us, step.delay_us)
                    if force or self._settings[role] != wanted:
                        self.set_strobe(role, step.pulse_us, step.delay_us, level)
                        sent = True
                elif force or self._settings[role] != ChannelSetting("continuous", level):
                    self.set_level(role, level)
                    sent = True
            if sent:  # one status query per change of program, not per frame (it costs a reply of every channel)
                self._check_read_back()

    def read_back(self) -> Mapping[ChannelId, ChannelSetting] | None:
        """Channel → the mode and level the unit holds; None where the protocol cannot read back."""
        return None

    def _check_read_back(self) -> None:
        """After `apply`: a channel the unit holds otherwise than set raises ReadbackMismatch naming
        it, and is left unknown so the next apply re-sends it."""
        held = self.read_back()
        for role, channel in self.channels.items():
            wanted, actual = self._settings[role], (held or {}).get(channel)
            if wanted.mode == "unknown" or actual is None:
                continue
            if abs(actual.percent - wanted.percent) > LEVEL_READBACK_TOLERANCE or (
                    wanted.percent > 0 and actual.mode != wanted.mode):
                self._settings[role] = UNKNOWN
                raise ReadbackMismatch(self.name, f"{channel} ({role})",
                                       f"reads back {_shown(actual)} but {_shown(wanted)} was set")

    def levels(self) -> dict[str, ChannelSetting]:
        """What this driver last set, per role (ChannelSetting is frozen)."""
        with self._lock:
            return dict(self._settings)

    @property
    def can_save(self) -> bool:
        return False

    @property
    def can_strobe(self) -> bool:
        return True

    def _require_strobe(self, role: str) -> None:
        if not self.can_strobe:
            raise ValueError(f"{self.name}: this {self.protocol or type(self).__name__} controller has no strobe "
                             f"command, so light {role!r} can only be set continuous")

    def save(self) -> None:
        """Persist the current settings in the controller, where the protocol has such a command."""
        raise NotImplementedError(f"{self.name}: the {self.protocol or type(self).__name__} protocol "
                                  f"has no save command")

    # -- protocol ----------------------------------------------------------------------------------------
    @abstractmethod
    def _send_level(self, channel: ChannelId, percent: float) -> None: ...

    @abstractmethod
    def _send_strobe(self, channel: ChannelId, pulse_us: float, delay_us: float, percent: float) -> None: ...
