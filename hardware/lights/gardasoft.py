"""Gardasoft-style ASCII light controllers (RC / PP series command set).

Commands end with CR. The unit echoes each command line, then answers `>` when it accepted it,
or `Err N` followed by `>` when it did not:
  `RS<ch>,<level>`                      continuous output
  `RT<ch>,<pulse_us>,<delay_us>,<level>` strobe on the next trigger
  `AW`                                  save all settings to non-volatile memory
  `VE`                                  report the firmware version
Real units take the output level in amps (`RS1,0.5`); this station drives them in percent of
the channel's rated current, as the issue specifies, so a level is 0–100. A different rating per
channel would be a station-config scale, not a new protocol.
"""
from __future__ import annotations

import re
from typing import Mapping

from ..errors import ControllerError, ProtocolError
from ..transport import LineTransport
from .base import LightController

PROMPT = ">"
ERROR = re.compile(r"^Err\s*(?P<code>\d+)$")
ERROR_MEANINGS = {
    1: "command not recognised",
    2: "wrong number of parameters or bad number format",
    3: "parameter out of range",
    4: "channel not fitted",
    5: "setting not allowed in the current mode",
}


class GardasoftController(LightController):
    def __init__(self, transport: LineTransport, channels: Mapping[str, int | str]):
        super().__init__(transport.name, channels)
        for role, channel in self.channels.items():
            if not isinstance(channel, int) or channel < 1:
                raise ValueError(f"{self.name}: channel for {role!r} must be a number ≥ 1, got {channel!r}")
        self.transport = transport
        self.version = ""

    def connect(self) -> None:
        self.transport.open()
        self.transport.discard_input()
        self.version = (self.command("VE") or ["unknown"])[0]

    def disconnect(self) -> None:
        self.transport.close()

    def save(self) -> None:
        self.command("AW")

    def _send_level(self, channel, percent: float) -> None:
        self.command(f"RS{channel},{percent:g}")

    def _send_strobe(self, channel, pulse_us: float, delay_us: float, percent: float) -> None:
        self.command(f"RT{channel},{pulse_us:g},{delay_us:g},{percent:g}")

    def command(self, text: str) -> list[str]:
        """Send one command; check its echo; return the lines it printed before the prompt."""
        self.transport.write_bytes(text.encode("ascii") + b"\r")
        echo = self.transport.read_line()
        if echo.strip() != text:
            raise ProtocolError(f"{self.name}: sent {text!r} but the unit echoed {echo[:40]!r}")
        output: list[str] = []
        while True:
            line = self.transport.read_line().strip()
            if line == PROMPT:
                return output
            match = ERROR.match(line)
            if match:
                code = int(match.group("code"))
                if self.transport.read_line().strip() != PROMPT:
                    raise ProtocolError(f"{self.name}: no prompt after {line!r}")
                raise ControllerError(self.name, code, ERROR_MEANINGS.get(code, "unknown error"), text)
            if len(output) > 20:
                raise ProtocolError(f"{self.name}: no prompt after {text!r} (got {len(output)} lines)")
            output.append(line)
