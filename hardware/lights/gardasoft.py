"""Gardasoft LED lighting controllers (RT / RC / TR series ASCII command set).

What the units document (Gardasoft RTxxx user manual §12–13; RC1xx and TR-HT2xx manuals agree):
  * RS232 at 115200 8N1; a command line ends with CR (ASCII 13). Several commands may share a line,
    separated by `;`; spaces are ignored.
  * The unit echoes what it receives, separates reply lines with LF CR, and ends every reply with
    the prompt `>` — *without* a line end. The host waits for `>` before the next command.
  * Errors are reply lines `Err N`: 1 a parameter value is invalid, 2 command not recognised,
    3 numeric value in the wrong format, 4 wrong number of parameters; `Err 5` is only a warning
    (a parameter was out of range and has been adjusted — e.g. an RT delay of 0 is raised to the
    minimum and the command is accepted). Higher numbers report EEPROM, sensing and thermal faults.
  * Commands used here:
      `RSc,s`        continuous output at s % of full brightness (0–100)
      `RTc,p,d,s`    pulse on trigger: width p, delay d, brightness s %; times default to
                     milliseconds, a `us` / `ms` / `s` suffix states the unit
      `AW`           save the settings to non-volatile memory (else lost at power-off)
      `VR`           firmware version, e.g. `RT420-20 (HW02) V031`
      `GR`           read and clear the last event/error (`Evt<c>,<e>`), or only the prompt
      `TRc`          simulate a trigger input
      `ST`           status: one line per channel of `KEY value` fields separated by commas, e.g.
                     `CH 1, MD 0, S 35.00%, DL 0.000ms, PU 0.000ms, ...` (MD 0 continuous,
                     1 pulse, 2 switched, 3 selected; S the brightness %), then the general line
                     `TM 1, TP 20.00ms`. Over Ethernet the manual asks for `ST0` (general) and
                     `STc` (one channel) instead. Used to read back what `apply` set.
Differences from the issue's shorthand, where the real units win: the version command is `VR` (no
`VE` exists); the RT times are sent with an explicit `us` suffix, because a bare number means
milliseconds to the unit; the prompt has no line end, so it is used as the reply terminator.
"""
from __future__ import annotations


import logging
import math
import re
from dataclasses import dataclass
from typing import Mapping

from ..errors import ControllerError, ProtocolError
from ..transport import LineTransport
from .base import ChannelId, ChannelMap, Parameter
from .controller import ChannelSetting, LightController

log = logging.getLogger(__name__)

PROMPT = ">"
COMMAND_END = "\r"
REPLY_LINE_END = "\n\r"  # as the manuals print it: LF then CR between reply lines
ERROR = re.compile(r"^Err\s*(?P<code>\d+)$")
EVENT = re.compile(r"^Evt\s*(?P<channel>\d+)\s*,\s*(?P<code>\d+);?$")
WARNING_CODES = frozenset({5})
STATUS_FIELD = re.compile(r"^(?P<key>[A-Z]+)\s*(?P<value>[-+]?\d+(?:\.\d*)?)")
STATUS_MODES = {0: "continuous", 1: "strobe", 2: "switched", 3: "selected"}  # ST's MD field
ERROR_MEANINGS = {
    1: "a parameter value is invalid",
    2: "command not recognised",
    3: "numeric value is the wrong format",
    4: "wrong number of parameters",
    5: "a parameter was out of range and has been adjusted",
    8: "EEPROM corrupt; the configuration has been cleared",
    9: "could not save the settings to EEPROM",
    12: "EEPROM corrupt; the configuration has been cleared",
    19: "a light is connected to a channel but no rating is set",
    20: "could not save the settings to EEPROM",
    21: "light sensing error",
    22: "light sensing error",
    23: "light sensing error",
    27: "cannot read the Ethernet settings from EEPROM",
    40: "a channel is outputting more current than expected",
    41: "a channel is outputting more current than expected",
    44: "the controller is too hot (thermal cutout)",
    45: "a channel is outputting more current than expected",
    46: "a channel is dissipating more than 30 W",
    47: "internal protection: too much heat in the output driver",
}


def format_number(value: float, places: int = 3) -> str:
    """Plain decimal as the units parse it ('0.5', never '5e-01' or '0,5')."""
    text = f"{value:.{places}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def rs_command(channel: int, percent: float) -> str:
    return f"RS{channel},{format_number(percent, 2)}"


def rt_command(channel: int, pulse_us: float, delay_us: float, percent: float) -> str:
    return f"RT{channel},{format_number(pulse_us)}us,{format_number(delay_us)}us,{format_number(percent, 2)}"


def parse_status(lines: list[str], *, device: str) -> dict[int, ChannelSetting]:
    """Channel → (mode, percent) from `ST` / `STc` lines; lines without a CH field are skipped.
    Pure: ProtocolError for a channel line without MD or S."""
    held: dict[int, ChannelSetting] = {}
    for line in lines:
        fields = {}
        for part in line.split(","):
            if match := STATUS_FIELD.match(part.strip()):
                value = float(match.group("value"))
                if not math.isfinite(value) or abs(value) > 1e6:  # a garbled line: no real field is that big
                    raise ProtocolError(f"{device}: status line {line[:60]!r}: {match.group('key')} out of range")
                fields[match.group("key")] = value
        if "CH" not in fields:
            continue
        if "MD" not in fields or "S" not in fields:
            raise ProtocolError(f"{device}: status line {line[:60]!r} lacks the mode (MD) or level (S)")
        mode = STATUS_MODES.get(int(fields["MD"]), f"mode {int(fields['MD'])}")
        held[int(fields["CH"])] = ChannelSetting(mode, fields["S"])
    return held


@dataclass(frozen=True)
class Reply:
    """One command's reply, parsed: output lines, warning codes (Err 5) and event messages seen."""

    command: str
    lines: tuple[str, ...] = ()
    warnings: tuple[int, ...] = ()
    events: tuple[str, ...] = ()


def parse_reply(command: str, frame: str, *, device: str, echo: bool = True) -> Reply:
    """Parse everything the unit sent before its prompt. Pure: raises ProtocolError when the echo is
    wrong, ControllerError for an `Err N` that is not a warning."""
    lines = [line.strip() for line in re.split(r"[\r\n]+", frame)]
    lines = [line for line in lines if line]
    if echo and command:
        if not lines:
            raise ProtocolError(f"{device}: sent {command!r} but the unit echoed nothing before its prompt")
        if lines[0] != command:
            raise ProtocolError(f"{device}: sent {command!r} but the unit echoed {lines[0][:40]!r}")
        lines = lines[1:]
    output, warnings, events = [], [], []
    for line in lines:
        if match := ERROR.match(line):
            code = int(match.group("code"))
            if code in WARNING_CODES:
                warnings.append(code)
                continue
            raise ControllerError(device, code, ERROR_MEANINGS.get(code, "undocumented error"), command)
        if EVENT.match(line):
            events.append(line)
        else:
            output.append(line)
    return Reply(command, tuple(output), tuple(warnings), tuple(events))


class GardasoftController(LightController):
    """A Gardasoft controller on a serial line (or a serial server via `socket://`).

    The transport is dedicated to the unit: its line end is set to the prompt, which is what
    frames a reply. Units reached over Ethernet do not echo; pass `echo=False` for those.
    """

    protocol = "gardasoft"
    # RTxxx manual §7.2: pulses up to 999 ms at ≤ 100 % brightness; an RT delay of 0 is accepted
    # (Err 5: raised to the unit's minimum). Overdrive above 100 % is not used by this station.
    pulse = Parameter("pulse", "µs", (1.0, 999_000.0))
    delay = Parameter("delay", "µs", (0.0, 999_000.0))

    def __init__(self, transport: LineTransport, channels: ChannelMap | Mapping[str, ChannelId], *,
                 echo: bool = True):
        super().__init__(transport.name, channels)
        for role, channel in self.channels.items():
            if not isinstance(channel, int):
                raise ValueError(f"{self.name}: channel for {role!r} must be a Gardasoft output number ≥ 1, "
                                 f"got {channel!r}")
        self.transport = transport
        self.transport.eol = PROMPT.encode("ascii")
        self.transport.max_line_bytes = max(self.transport.max_line_bytes, 4096)  # ST: a line per channel
        self.echo = echo
        self.version = ""
        self.warnings: list[tuple[str, int]] = []  # (command, code) the unit accepted with an adjustment
        self.events: list[str] = []  # `Evt c,e` lines seen (GR replies, GT1 messages)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def connect(self) -> None:
        """Open, flush whatever the unit holds of a half-typed line, read the version, clear old errors."""
        self.transport.open()
        self.transport.discard_input()
        try:  # a bare CR ends any half-typed line on the unit; its prompt shows the link is in step
            self.command("")
        except ControllerError:  # that half line was garbage: the unit said so, nothing was set
            pass
        self.version = (self.command("VR") or ["unknown"])[0]
        self.clear_errors()

    def disconnect(self) -> None:
        self.transport.close()

    # -- commands ----------------------------------------------------------------------------------------
    @property
    def can_save(self) -> bool:
        return True

    def save(self) -> None:
        self.command("AW")

    def clear_errors(self) -> list[str]:
        """`GR`: the unit's last event / error (as `Evt c,e` lines), cleared on the unit."""
        with self._lock:
            before = len(self.events)
            self.command("GR")
            return self.events[before:]

    def simulate_trigger(self, role: str) -> None:
        self.command(f"TR{self.channels.channel(role, self.name)}")

    def read_back(self) -> dict[int, ChannelSetting]:
        """Every channel's mode and level as the unit holds them: one `ST` on a serial line; one `STc`
        per wired channel over Ethernet (echo off), as the manual asks there."""
        with self._lock:
            if self.echo:
                return parse_status(self.command("ST"), device=self.name)
            held: dict[int, ChannelSetting] = {}
            for channel in self.channels.values():
                held.update(parse_status(self.command(f"ST{channel}"), device=self.name))
            return held

    def _send_level(self, channel: ChannelId, percent: float) -> None:
        self.command(rs_command(int(channel), percent))

    def _send_strobe(self, channel: ChannelId, pulse_us: float, delay_us: float, percent: float) -> None:
        self.command(rt_command(int(channel), pulse_us, delay_us, percent))

    def command(self, text: str) -> list[str]:
        """Send one command line; check its echo; return the lines it printed before the prompt.

        Stale input is dropped first, so a reply that arrived after an earlier timeout cannot be
        taken for this one. `Err 5` is logged and kept in `warnings`; other errors raise."""
        with self._lock:
            self.transport.discard_input()
            self.transport.write_bytes(text.encode("ascii") + COMMAND_END.encode("ascii"))
            frame = self.transport.read_line()
            reply = parse_reply(text, frame, device=self.name, echo=self.echo)
            for code in reply.warnings:
                log.warning("%s: %r accepted with an adjusted value (Err %d: %s)", self.name, text, code,
                            ERROR_MEANINGS[code])
                self.warnings.append((text, code))
            self.events.extend(reply.events)
            return list(reply.lines)
