"""Light controller emulators on real pseudo-terminals: a Gardasoft-style unit and a unit that
speaks whatever a `TemplateProtocolSpec` describes. Both keep per-channel state that the virtual
camera reads (`effective_levels`) to render what the lights make visible."""
from __future__ import annotations

import re
import string
from typing import Mapping

from ..lights.base import EmulatedChannel
from ..lights.gardasoft import PROMPT
from ..lights.template import TemplateProtocolSpec
from .pty_device import PtyDevice

NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)"
GARDASOFT_COMMANDS = {
    "RS": re.compile(rf"^RS(?P<ch>\d+),(?P<level>{NUMBER})$"),
    "RT": re.compile(rf"^RT(?P<ch>\d+),(?P<pulse>{NUMBER}),(?P<delay>{NUMBER}),(?P<level>{NUMBER})$"),
}


class _LightEmulator(PtyDevice):
    def __init__(self, name: str, channel_ids):
        super().__init__(name)
        self.channels: dict = {cid: EmulatedChannel() for cid in channel_ids}
        self.saved: dict = {cid: EmulatedChannel() for cid in channel_ids}

    def channel_state(self) -> dict:
        with self._lock:
            return {cid: EmulatedChannel(**vars(c)) for cid, c in self.channels.items()}

    def effective_levels(self, wiring: Mapping[str, object], exposure_us: float) -> dict[str, float]:
        """Role → percent as integrated by an exposure triggered now; `wiring` maps role → channel id."""
        with self._lock:
            return {role: self.channels[cid].effective_percent(exposure_us)
                    for role, cid in wiring.items() if cid in self.channels}


class GardasoftEmulator(_LightEmulator):
    """Echoes each command, then `>`; errors as `Err N` then `>`. Levels 0–100, pulses 1–100000 µs."""

    def __init__(self, channel_count: int = 8, name: str = "gardasoft"):
        super().__init__(name, range(1, channel_count + 1))
        self.version = "RC-EMU 1.4.2"

    def on_line(self, line: str) -> None:
        line = line.strip()
        self.send_line(line)  # echo
        error = self._execute(line.upper())
        if error:
            self.send_line(f"Err {error}")
        self.send_line(PROMPT)

    def _execute(self, line: str) -> int:
        if line == "VE":
            self.send_line(self.version)
            return 0
        if line == "AW":
            self.saved = {cid: EmulatedChannel(**vars(c)) for cid, c in self.channels.items()}
            return 0
        if line[:2] not in GARDASOFT_COMMANDS:
            return 1
        match = GARDASOFT_COMMANDS[line[:2]].match(line)
        if not match:
            return 2
        channel = int(match.group("ch"))
        if channel not in self.channels:
            return 4
        level = float(match.group("level"))
        if not 0 <= level <= 100:
            return 3
        if line.startswith("RS"):
            self.channels[channel] = EmulatedChannel("continuous" if level > 0 else "off", level)
            return 0
        pulse, delay = float(match.group("pulse")), float(match.group("delay"))
        if not (1 <= pulse <= 100_000 and 0 <= delay <= 100_000):
            return 3
        self.channels[channel] = EmulatedChannel("strobe", level, pulse, delay)
        return 0


class TemplateEmulator(_LightEmulator):
    """A unit whose commands are what `spec` describes; unknown commands get the error reply."""

    def __init__(self, spec: TemplateProtocolSpec, channel_ids, *, error_reply: str = "NG1", name: str = "template"):
        super().__init__(name, channel_ids)
        self.spec = spec
        self.error_reply = error_reply
        self._patterns = {key: template_regex(getattr(spec, key)) for key in ("set_level", "set_strobe", "save")
                          if getattr(spec, key)}
        self._buffer = ""

    def on_bytes(self, data: bytes) -> None:
        self._buffer += data.decode("ascii", errors="replace")
        end = self.spec.line_end
        if end:
            while end in self._buffer:
                command, self._buffer = self._buffer.split(end, 1)
                self._handle(command.strip("\r\n"))
        else:  # no terminator: each template ends with its own literal (e.g. '#')
            for match_key in list(self._patterns):
                match = self._patterns[match_key].match(self._buffer)
                if match:
                    self._buffer = self._buffer[match.end():]
                    self._handle(match.group(0))

    def _handle(self, command: str) -> None:
        for key, pattern in self._patterns.items():
            match = pattern.fullmatch(command)
            if not match:
                continue
            if key == "save":
                self.saved = {cid: EmulatedChannel(**vars(c)) for cid, c in self.channels.items()}
                return self._ack(True)
            channel = _channel_id(match.group("channel"), self.channels)
            if channel is None:
                return self._ack(False)
            fields = match.groupdict()
            percent = (float(fields["percent"]) if fields.get("percent") is not None
                       else int(fields["value"]) / self.spec.value_max * 100.0)
            if not 0 <= percent <= 100:
                return self._ack(False)
            if key == "set_level":
                self.channels[channel] = EmulatedChannel("continuous" if percent > 0 else "off", percent)
            else:
                self.channels[channel] = EmulatedChannel("strobe", percent, float(fields["pulse_us"]),
                                                         float(fields["delay_us"]))
            return self._ack(True)
        self._ack(False)

    def _ack(self, ok: bool) -> None:
        if self.spec.reply is None:
            return
        self.send_line(_example_reply(self.spec.reply) if ok else self.error_reply)


def template_regex(template: str) -> re.Pattern:
    """A regex that matches what `template.format(...)` produces, with a group per placeholder."""
    parts = []
    for literal, field, spec, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field is None:
            continue
        width = re.match(r"0?(\d+)", spec or "")
        if field in ("value", "pulse_us", "delay_us"):
            parts.append(rf"(?P<{field}>\d{{{width.group(1)}}})" if width else rf"(?P<{field}>\d+)")
        elif field == "percent":
            parts.append(rf"(?P<percent>{NUMBER})")
        else:
            parts.append(r"(?P<channel>[A-Za-z0-9]+?)")
    return re.compile("".join(parts))


def _channel_id(text: str, channels: dict):
    for cid in channels:
        if str(cid) == text:
            return cid
    return None


def _example_reply(pattern: str) -> str:
    """The literal acknowledgement a reply regex like '^OK$' stands for."""
    return re.sub(r"[\^\$\\]", "", pattern)
