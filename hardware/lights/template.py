"""Template light protocol: another vendor's ASCII commands described as data in the station
config, so a new light controller needs no code.

Templates are Python format strings over a fixed set of placeholders — never evaluated code:
  {channel}   the channel id from the station's channel map (number or letter)
  {value}     the level in device units: round(percent / 100 × value_max)
  {percent}   the level in percent
  {pulse_us} {delay_us}   strobe timing (strobe template only)
Example (an 8-bit four-channel unit answering OK / NG):
  set_level = "S{channel}{value:04d}#", reply = "^OK$", error = "^NG(?P<code>\\d*)$", value_max = 255
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import ControllerError, ProtocolError
from ..transport import LineTransport
from .base import LightController

PLACEHOLDERS = {
    "set_level": ("channel", "value", "percent"),
    "set_strobe": ("channel", "value", "percent", "pulse_us", "delay_us"),
    "save": (),
}
SAMPLE = {"channel": 1, "value": 1, "percent": 1.0, "pulse_us": 1, "delay_us": 0}


@dataclass(frozen=True)
class TemplateProtocolSpec:
    set_level: str
    set_strobe: str | None = None
    save: str | None = None
    reply: str | None = "^OK$"  # regex of the acknowledgement; None: the unit does not answer
    error: str | None = None  # regex of an error reply; a group named code is reported
    line_end: str = "\r"
    value_max: int = 255

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "lights.template") -> "TemplateProtocolSpec":
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: expected a table of command templates")
        known = {"set_level", "set_strobe", "save", "reply", "error", "line_end", "value_max"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{source}.{sorted(unknown)[0]}: unknown field (expected {', '.join(sorted(known))})")
        if "set_level" not in data:
            raise ValueError(f"{source}.set_level: missing; expected a template such as \"S{{channel}}{{value:04d}}#\"")
        for key, allowed in PLACEHOLDERS.items():
            template = data.get(key)
            if template is None:
                continue
            if not isinstance(template, str) or not template:
                raise ValueError(f"{source}.{key}: expected a non-empty template string, got {template!r}")
            for _, field, spec, conversion in string.Formatter().parse(template):
                if field is None:
                    continue
                if field not in allowed:
                    raise ValueError(f"{source}.{key}: unknown placeholder {{{field}}}; allowed here: "
                                     f"{', '.join('{' + a + '}' for a in allowed) or 'none'}")
                if conversion:
                    raise ValueError(f"{source}.{key}: conversions like !{conversion} are not allowed")
            try:
                template.format(**SAMPLE)
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{source}.{key}: template {template!r} does not format: {exc}") from None
        for key in ("reply", "error"):
            pattern = data.get(key, cls.reply if key == "reply" else None)
            if pattern is not None:
                if not isinstance(pattern, str):
                    raise ValueError(f"{source}.{key}: expected a regular expression string or omit it")
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"{source}.{key}: not a valid regular expression: {exc}") from None
        value_max = data.get("value_max", 255)
        if isinstance(value_max, bool) or not isinstance(value_max, int) or value_max < 1:
            raise ValueError(f"{source}.value_max: expected an integer ≥ 1, got {value_max!r}")
        line_end = data.get("line_end", "\r")
        if line_end not in ("\r", "\n", "\r\n", ""):
            raise ValueError(f"{source}.line_end: expected \"\\r\", \"\\n\", \"\\r\\n\" or \"\", got {line_end!r}")
        reply = data["reply"] if "reply" in data else cls.reply
        return cls(set_level=data["set_level"], set_strobe=data.get("set_strobe"), save=data.get("save"),
                   reply=reply, error=data.get("error"), line_end=line_end, value_max=value_max)

    def to_value(self, percent: float) -> int:
        return int(round(percent / 100.0 * self.value_max))

    def render(self, key: str, **fields: Any) -> str:
        template = getattr(self, key)
        if template is None:
            raise ValueError(f"this light controller's template has no {key!r} command")
        return template.format(**fields)


class TemplateLightController(LightController):
    def __init__(self, transport: LineTransport, spec: TemplateProtocolSpec, channels: Mapping[str, int | str]):
        super().__init__(transport.name, channels)
        self.transport = transport
        self.spec = spec
        self._reply = re.compile(spec.reply) if spec.reply else None
        self._error = re.compile(spec.error) if spec.error else None

    def connect(self) -> None:
        self.transport.open()
        self.transport.discard_input()

    def disconnect(self) -> None:
        self.transport.close()

    def save(self) -> None:
        self._send(self.spec.render("save"))

    def _send_level(self, channel, percent: float) -> None:
        self._send(self.spec.render("set_level", channel=channel, value=self.spec.to_value(percent), percent=percent))

    def _send_strobe(self, channel, pulse_us: float, delay_us: float, percent: float) -> None:
        self._send(self.spec.render("set_strobe", channel=channel, value=self.spec.to_value(percent), percent=percent,
                                    pulse_us=int(round(pulse_us)), delay_us=int(round(delay_us))))

    def _send(self, command: str) -> None:
        self.transport.write_bytes((command + self.spec.line_end).encode("ascii"))
        if self._reply is None:
            return
        line = self.transport.read_line().strip()
        if self._reply.search(line):
            return
        if self._error is not None and (match := self._error.search(line)):
            code = match.groupdict().get("code") or "0"
            raise ControllerError(self.name, int(code) if code.isdigit() else 0, f"unit answered {line!r}", command)
        raise ProtocolError(f"{self.name}: unexpected reply {line[:40]!r} to {command!r}")
