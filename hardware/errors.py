"""Exceptions raised by drivers. Each names the device and what went wrong, so an operator can act."""
from __future__ import annotations


class HardwareError(Exception):
    """Base class for every device fault; the cycle turns any of these into an ERROR verdict."""


class TransportError(HardwareError):
    """The link to a device failed (cannot open, closed, timed out)."""


class PortOpenError(TransportError):
    """The port or URL could not be opened."""


class PortClosed(TransportError):
    """The port went away (cable pulled, USB adapter reset, emulator stopped) or was closed."""


class ReadTimeout(TransportError):
    """No complete reply arrived within the configured timeout."""


class ProtocolError(HardwareError):
    """The device answered with something the protocol does not allow (garbage, wrong reply)."""


class ControllerError(HardwareError):
    """The controller rejected a command with an error code."""

    def __init__(self, device: str, code: int, meaning: str, command: str | None = None):
        self.device, self.code, self.meaning, self.command = device, code, meaning, command
        where = f" for {command!r}" if command else ""
        super().__init__(f"{device}: error {code}{where}: {meaning}")


class ControllerAlarm(HardwareError):
    """The controller entered an alarm state; motion is locked until it is cleared."""

    def __init__(self, device: str, code: int, meaning: str):
        self.device, self.code, self.meaning = device, code, meaning
        super().__init__(f"{device}: ALARM {code}: {meaning}")


class StatusTimeout(HardwareError):
    """A slow action (move, home, settle) did not finish within its timeout."""


class ReadbackMismatch(HardwareError):
    """A device acknowledged a setting but reads back another (it ignored or clamped the command)."""

    def __init__(self, device: str, channel: object, detail: str):
        self.device, self.channel = device, channel
        super().__init__(f"{device}: channel {channel} {detail}")
