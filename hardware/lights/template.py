"""Template light protocol: another vendor's ASCII commands described as data in the station
config, so a new light controller needs no code.

Templates are filled with `str.format` over a fixed set of placeholders — never evaluated code,
no attribute or index access, no conversions:
  {channel}          the channel id from the station's channel map, as written there (1, "A", "CH1")
  {channel_number}   1-based number: 3 for channel 3 or "C"
  {channel_index}    0-based number: 2 for channel 3 or "C"
  {channel_letter}   letter: "C" for channel 3 or "C"
  {value}            level in device units: round(percent / 100 × value_max), an integer
  {percent}          level in percent, a float
  {pulse_us} {delay_us}   strobe timing in whole microseconds (set_strobe only)
Format specs work as in Python: {value:04d}, {value:02X}, {percent:.1f}.

Schema of the `[lights.template]` table (`TemplateProtocolSpec.from_dict`):
  set_level  = "S{channel_letter}{value:04d}#"   required
  set_strobe = "T{channel}{pulse_us:05d}{delay_us:05d}{value:04d}#"   optional
  save       = "W#"                               optional
  reply      = "^OK$"     regex of the acknowledgement; "echo": the unit answers with the command
                          itself; "none": the unit answers nothing (errors cannot be seen then)
  error      = "^NG(?P<code>\\d*)$"   optional regex of an error reply; groups `code` and `message`
                          are reported when present
  line_end   = "\\r"      what ends a command: "\\r", "\\n", "\\r\\n" or "" (the template's own
                          last character, e.g. '#', ends it)
  reply_end  = "\\r\\n"   what ends a reply line: "\\r", "\\n" or "\\r\\n"
  value_max  = 255        device units at 100 %
  model      = "ACME LC-4"   optional, for messages
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, fields
from typing import Any, Mapping

from ..errors import ControllerError, ProtocolError
from ..transport import LineTransport
from .base import ChannelId, ChannelMap
from .controller import LightController

CHANNEL_PLACEHOLDERS = ("channel", "channel_number", "channel_index", "channel_letter")
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "set_level": CHANNEL_PLACEHOLDERS + ("value", "percent"),
    "set_strobe": CHANNEL_PLACEHOLDERS + ("value", "percent", "pulse_us", "delay_us"),
    "save": (),
}
NEEDS: dict[str, tuple[tuple[str, ...], ...]] = {  # each inner tuple: at least one of these must appear
    "set_level": (("value", "percent"),),
    "set_strobe": (("value", "percent"), ("pulse_us",)),
    "save": (),
}
LINE_ENDS = ("\r", "\n", "\r\n", "")
REPLY_ENDS = ("\r", "\n", "\r\n")
NO_REPLY, ECHO_REPLY = "none", "echo"
_SAMPLE_LEVEL = {"value": 1, "percent": 1.0, "pulse_us": 100, "delay_us": 0}


def channel_fields(channel: ChannelId) -> dict[str, Any]:
    """The channel placeholders a channel id can fill. Pure; a name like "CH1" fills only {channel}."""
    result: dict[str, Any] = {"channel": channel}
    number: int | None = None
    if isinstance(channel, int):
        number = channel
    elif channel.isdigit():
        number = int(channel)
    elif len(channel) == 1 and channel.isascii() and channel.isalpha():
        number = ord(channel.upper()) - ord("A") + 1
    if number is not None and number >= 1:
        result.update(channel_number=number, channel_index=number - 1)
        if number <= 26:
            result["channel_letter"] = chr(ord("A") + number - 1)
    return result


def placeholders(template: str) -> list[tuple[str, str]]:
    """(name, format spec) of every placeholder in `template`, in order; ValueError if it does not parse."""
    return [(name, spec or "") for _, name, spec, _ in string.Formatter().parse(template) if name is not None]


def template_problem(template: Any, allowed: tuple[str, ...]) -> str | None:
    """What is wrong with one command template, or None. Pure."""
    if not isinstance(template, str) or not template:
        return f"expected a non-empty template string, got {template!r}"
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"template {template!r} is not valid: {exc} (write a literal brace as {{{{ or }}}})"
    allowed_text = ", ".join("{" + name + "}" for name in allowed) or "none"
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name == "" or name.isdigit():
            return f"positional placeholder {{{name}}} is not allowed; allowed here: {allowed_text}"
        if name not in allowed:
            return f"unknown placeholder {{{name}}}; allowed here: {allowed_text}"
        if conversion:
            return f"conversions like !{conversion} are not allowed"
        if spec and ("{" in spec or "}" in spec):
            return f"nested placeholders in the format spec of {{{name}}} are not allowed"
    errors = []
    for channel in (1, "A"):
        try:
            template.format(**channel_fields(channel), **_SAMPLE_LEVEL)
            return None
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            errors.append(str(exc))
    return f"template {template!r} does not format: {errors[0]}"


def _optional_regex(data: Mapping[str, Any], key: str, source: str, default: str | None,
                    keywords: tuple[str, ...]) -> str | None:
    pattern = data.get(key, default)
    if pattern is None or (isinstance(pattern, str) and pattern.lower() == NO_REPLY):
        return None
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"{source}.{key}: expected a regular expression{' or ' if keywords else ''}"
                         f"{' / '.join(repr(k) for k in keywords)}, got {pattern!r}")
    if pattern.lower() in keywords:
        return pattern.lower()
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{source}.{key}: not a valid regular expression: {exc}") from None
    return pattern


@dataclass(frozen=True)
class TemplateProtocolSpec:
    set_level: str
    set_strobe: str | None = None
    save: str | None = None
    reply: str | None = "^OK$"  # regex, "echo", or None: the unit does not answer
    error: str | None = None
    line_end: str = "\r"
    reply_end: str = "\r\n"
    value_max: int = 255
    model: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "lights.template") -> "TemplateProtocolSpec":
        """Validate a template table; every error starts with `<source>.<field>:` and says what was expected."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: expected a table of command templates, got {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"{source}.{unknown[0]}: unknown field (expected {', '.join(known)})")
        if data.get("set_level") is None:
            raise ValueError(f"{source}.set_level: missing; expected a template such as \"S{{channel}}{{value:04d}}#\"")
        line_end = data.get("line_end", "\r")
        if line_end not in LINE_ENDS:
            raise ValueError(f"{source}.line_end: expected \"\\r\", \"\\n\", \"\\r\\n\" or \"\", got {line_end!r}")
        templates: dict[str, str | None] = {}
        for key, allowed in PLACEHOLDERS.items():
            template = data.get(key)
            templates[key] = template
            if template is None:
                continue
            problem = template_problem(template, allowed)
            if problem:
                raise ValueError(f"{source}.{key}: {problem}")
            used = {name for name, _ in placeholders(template)}
            for group in NEEDS[key]:
                if not used & set(group):
                    raise ValueError(f"{source}.{key}: needs {' or '.join('{' + g + '}' for g in group)}")
            if line_end == "" and template[-1] in "{}":
                raise ValueError(f"{source}.{key}: with line_end = \"\" the template must end with a literal "
                                 f"terminator such as '#', so the unit can tell where a command ends")
        reply = _optional_regex(data, "reply", source, cls.reply, (ECHO_REPLY,))
        error = _optional_regex(data, "error", source, None, ())
        reply_end = data.get("reply_end", "\r\n")
        if reply_end not in REPLY_ENDS:
            raise ValueError(f"{source}.reply_end: expected \"\\r\", \"\\n\" or \"\\r\\n\", got {reply_end!r}")
        value_max = data.get("value_max", 255)
        if isinstance(value_max, bool) or not isinstance(value_max, int) or value_max < 1:
            raise ValueError(f"{source}.value_max: expected an integer ≥ 1 (device units at 100 %), got {value_max!r}")
        model = data.get("model", "")
        if not isinstance(model, str):
            raise ValueError(f"{source}.model: expected text, got {model!r}")
        return cls(set_level=templates["set_level"], set_strobe=templates["set_strobe"],  # type: ignore[arg-type]
                   save=templates["save"], reply=reply, error=error, line_end=line_end, reply_end=reply_end,
                   value_max=value_max, model=model)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"set_level": self.set_level}
        for key in ("set_strobe", "save", "error"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        data.update(reply=self.reply if self.reply is not None else NO_REPLY, line_end=self.line_end,
                    reply_end=self.reply_end, value_max=self.value_max)
        if self.model:
            data["model"] = self.model
        return data

    # -- filling templates -----------------------------------------------------------------------------
    def to_value(self, percent: float) -> int:
        return int(round(percent / 100.0 * self.value_max))

    def to_percent(self, value: float) -> float:
        return value / self.value_max * 100.0

    def has(self, key: str) -> bool:
        return getattr(self, key) is not None

    def render(self, key: str, channel: ChannelId | None = None, *, percent: float = 0.0,
               pulse_us: float = 0.0, delay_us: float = 0.0) -> str:
        template = getattr(self, key)
        if template is None:
            raise ValueError(f"this light controller's template has no {key!r} command")
        values: dict[str, Any] = channel_fields(channel) if channel is not None else {}
        values.update(value=self.to_value(percent), percent=float(percent),
                      pulse_us=int(round(pulse_us)), delay_us=int(round(delay_us)))
        return template.format(**values)


class TemplateLightController(LightController):
    """A controller whose commands are whatever its `TemplateProtocolSpec` says; one reply line per command."""

    protocol = "template"

    def __init__(self, transport: LineTransport, spec: TemplateProtocolSpec,
                 channels: ChannelMap | Mapping[str, ChannelId]):
        super().__init__(transport.name, channels)
        self.spec = spec
        for role, channel in self.channels.items():  # a letter template with a channel named "CH1" fails here
            for key in ("set_level", "set_strobe"):
                if spec.has(key):
                    try:
                        spec.render(key, channel, percent=1.0, pulse_us=100)
                    except (ValueError, KeyError, TypeError) as exc:
                        raise ValueError(f"{self.name}: channel {channel!r} of light {role!r} cannot fill the "
                                         f"{key} template {getattr(spec, key)!r}: {exc}") from None
        self.transport = transport
        self.transport.eol = b"\r" if spec.reply_end == "\r" else b"\n"
        self._reply = re.compile(spec.reply) if spec.reply not in (None, ECHO_REPLY) else None
        self._error = re.compile(spec.error) if spec.error else None

    def connect(self) -> None:
        self.transport.open()
        self.transport.discard_input()

    def disconnect(self) -> None:
        self.transport.close()

    @property
    def can_save(self) -> bool:
        return self.spec.save is not None

    @property
    def can_strobe(self) -> bool:
        return self.spec.set_strobe is not None

    def save(self) -> None:
        if not self.can_save:
            super().save()
        self.command(self.spec.render("save"))

    def _send_level(self, channel: ChannelId, percent: float) -> None:
        self.command(self.spec.render("set_level", channel, percent=percent))

    def _send_strobe(self, channel: ChannelId, pulse_us: float, delay_us: float, percent: float) -> None:
        self.command(self.spec.render("set_strobe", channel, percent=percent, pulse_us=pulse_us, delay_us=delay_us))

    def command(self, command: str) -> str | None:
        """Send one filled-in command; return the unit's reply line (None when the unit does not answer).
        An error reply raises ControllerError naming the command; anything unexpected, ProtocolError."""
        with self._lock:
            self.transport.discard_input()
            self.transport.write_bytes((command + self.spec.line_end).encode("ascii"))
            if self.spec.reply is None:
                return None
            line = self.transport.read_line().strip()
            if self._error is not None and (match := self._error.search(line)):
                found = match.groupdict()
                code = found.get("code") or ""
                meaning = found.get("message") or f"unit answered {line!r}"
                raise ControllerError(self.name, int(code) if code.isdigit() else 0, meaning, command)
            if self.spec.reply == ECHO_REPLY:
                if line == command.strip():
                    return line
            elif self._reply is not None and self._reply.search(line):
                return line
            raise ProtocolError(f"{self.name}: unexpected reply {line[:40]!r} to {command!r}")
