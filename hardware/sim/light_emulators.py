"""Light controller emulators on real pseudo-terminals: a Gardasoft unit and a unit that speaks
whatever a `TemplateProtocolSpec` describes. Both keep per-channel state (mode, level, pulse,
delay) that the virtual camera reads through `effective_levels` to render what the lights make
visible, and a "saved" copy that the save command writes and `power_cycle` restores.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..lights.base import ChannelId
from ..lights.gardasoft import PROMPT, REPLY_LINE_END
from ..lights.template import ECHO_REPLY, TemplateProtocolSpec, channel_fields
from .pty_device import PtyDevice

NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)"
_NUMBER = re.compile(rf"^{NUMBER}$")
_TIME = re.compile(rf"^(?P<number>{NUMBER})(?P<unit>s|ms|us|µs)?$", re.IGNORECASE)
_TIME_SCALE_US = {"s": 1e6, "ms": 1e3, "us": 1.0, "µs": 1.0}


@dataclass(frozen=True)
class EmulatedChannel:
    """One output of an emulated controller."""

    mode: str = "off"  # off | continuous | strobe
    percent: float = 0.0
    pulse_us: float = 0.0
    delay_us: float = 0.0

    def effective_percent(self, exposure_us: float) -> float:
        """The level as the camera integrates it over an exposure that starts at the trigger:
        continuous light for the whole exposure; a strobe only for the part of its pulse that falls
        inside the exposure (so a 400 µs pulse at 90 % in a 2 ms exposure counts as 18 %, the
        continuous level that would give the same image)."""
        if self.mode == "continuous":
            return self.percent
        if self.mode == "strobe" and exposure_us > 0:
            lit = max(0.0, min(self.delay_us + self.pulse_us, exposure_us) - self.delay_us)
            return self.percent * lit / exposure_us
        return 0.0


OFF = EmulatedChannel()


class _LightEmulator(PtyDevice):
    def __init__(self, name: str, channel_ids: Iterable[ChannelId]):
        super().__init__(name)
        self.channels: dict[ChannelId, EmulatedChannel] = {cid: OFF for cid in channel_ids}
        self.saved: dict[ChannelId, EmulatedChannel] = dict(self.channels)
        # fault injection: setting commands are answered with the unit's error reply (Gardasoft: this
        # `Err` code) and change nothing; settings for `ignored` channels are acknowledged, not applied
        self.refuse_settings: int | None = None
        self.ignored: set[ChannelId] = set()

    def channel_state(self) -> dict[ChannelId, EmulatedChannel]:
        """Channel id → state, a consistent copy (safe from any thread)."""
        with self._lock:
            return dict(self.channels)

    def effective_level(self, channel: ChannelId, exposure_us: float) -> float:
        with self._lock:
            return self.channels[channel].effective_percent(exposure_us)

    def effective_levels(self, wiring: Mapping[str, ChannelId], exposure_us: float) -> dict[str, float]:
        """Role → percent as integrated by an exposure triggered now; `wiring` maps role → channel id."""
        with self._lock:
            return {role: self.channels[cid].effective_percent(exposure_us)
                    for role, cid in wiring.items() if cid in self.channels}

    def power_cycle(self) -> None:
        """Switch off and on: what was not saved is lost."""
        with self._lock:
            self.channels = dict(self.saved)

    def _save(self) -> None:
        self.saved = dict(self.channels)


class _UnitError(Exception):
    def __init__(self, code: int):
        self.code = code


class GardasoftEmulator(_LightEmulator):
    """A Gardasoft RT-series unit on RS232: echoes what it receives, ends each reply line with LF CR
    and each reply with the bare prompt `>`. Commands: VR, AW, GR, RSc,s, RTc,p,d,s[,r], TRc, and
    ST / ST0 / STc (settings report); several per line with `;`; spaces ignored. Errors: Err 1
    invalid value (bad channel, level out of range), Err 2 unknown command, Err 3 number format,
    Err 4 parameter count; Err 5 warns that a timing was adjusted (delay below the minimum, pulse
    too long for an overdrive level)."""

    MIN_DELAY_US = 10.0  # the VTR1 manual gives 0.01 ms as the shortest delay; RTxxx answer Err 5 to 0
    # RTxxx manual §7.2: longest pulse per brightness band (overdrive above 100 % only for short pulses)
    MAX_PULSE_US = ((100.0, 999_000.0), (200.0, 30_000.0), (300.0, 10_000.0), (500.0, 2_000.0), (1000.0, 1_000.0))

    def __init__(self, channel_count: int = 8, name: str = "gardasoft", *, echo: bool = True,
                 model: str = "RT860-EMU"):
        super().__init__(name, range(1, channel_count + 1))
        self.echo = echo
        self.version = f"{model} (HW01) V001"
        self.triggers: dict[int, int] = {cid: 0 for cid in self.channels}  # type: ignore[misc]
        self.last_event: tuple[int, int] | None = None  # (channel, code) for GR
        self.save_fails = False  # fault injection: AW answers Err 9
        self._typed = bytearray()
        self._handlers = {"VR": self._vr, "AW": self._aw, "GR": self._gr, "RS": self._rs, "RT": self._rt,
                          "TR": self._tr, "ST": self._st}

    # -- the serial line -----------------------------------------------------------------------------
    def on_bytes(self, data: bytes) -> None:
        out = bytearray()
        for byte in data:
            if byte == 0x0D:
                line, self._typed = self._typed.decode("ascii", errors="replace"), bytearray()
                if self.echo:
                    out += REPLY_LINE_END.encode("ascii")
                out += self.execute_line(line)
            elif byte == 0x0A:
                continue  # the command line ends with CR; a following LF is ignored
            elif byte in (0x08, 0x7F):
                if self._typed:
                    self._typed.pop()
                    if self.echo:
                        out += b"\b \b"
            else:
                self._typed.append(byte)
                if self.echo:
                    out.append(byte)
        if out:
            self.send(bytes(out))

    def execute_line(self, line: str) -> bytes:
        """Replies to one command line (without its echo), ending with the prompt."""
        replies: list[str] = []
        for command in line.replace(" ", "").split(";"):
            if command:
                replies += self._execute(command)
        return "".join(reply + REPLY_LINE_END for reply in replies).encode("ascii") + PROMPT.encode("ascii")

    def _execute(self, command: str) -> list[str]:
        handler = self._handlers.get(command[:2].upper())
        if handler is None:
            return self._error(2)
        if self.refuse_settings is not None and handler in (self._rs, self._rt):
            return self._error(self.refuse_settings)
        try:
            return handler(command[2:])
        except _UnitError as exc:
            return self._error(exc.code)

    def _error(self, code: int, channel: int = 0) -> list[str]:
        self.last_event = (channel, code)
        return [f"Err {code}"]

    # -- commands ------------------------------------------------------------------------------------
    def _vr(self, args: str) -> list[str]:
        _split(args, (0,))
        return [self.version]

    def _aw(self, args: str) -> list[str]:
        _split(args, (0,))
        if self.save_fails:
            return self._error(9)
        self._save()
        return []

    def _gr(self, args: str) -> list[str]:
        _split(args, (0,))
        event, self.last_event = self.last_event, None
        return [f"Evt{event[0]},{event[1]}"] if event else []

    def _tr(self, args: str) -> list[str]:
        (channel,) = _split(args, (1,))
        self.triggers[self._channel(channel)] += 1
        return []

    def _st(self, args: str) -> list[str]:
        """ST: a line per channel, then the general line; ST0 only the general line; STc one channel."""
        (which,) = _split(args, (0, 1)) or ("",)
        general = "TM 0, TP 20.00ms"
        if which == "":
            return [self._status_line(channel) for channel in self.channels] + [general]
        channel = 0 if which == "0" else self._channel(which)
        return [general] if channel == 0 else [self._status_line(channel)]

    def _status_line(self, channel: int) -> str:
        state = self.channels[channel]
        mode = 1 if state.mode == "strobe" else 0
        return (f"CH {channel}, MD {mode}, S {state.percent:.2f}%, DL {state.delay_us / 1000:.3f}ms, "
                f"PU {state.pulse_us / 1000:.3f}ms, IP {channel}, FL 0, CS 0.00A, RA 0.00A")

    def _rs(self, args: str) -> list[str]:
        channel_text, level_text = _split(args, (2,))
        channel, percent = self._channel(channel_text), _number(level_text, (0.0, 100.0))
        if channel not in self.ignored:
            self.channels[channel] = EmulatedChannel("continuous", percent) if percent > 0 else OFF
        return []

    def _rt(self, args: str) -> list[str]:
        parts = _split(args, (4, 5))
        channel = self._channel(parts[0])
        pulse_us, delay_us = _time_us(parts[1]), _time_us(parts[2])
        percent = _number(parts[3], (0.0, 1000.0))
        if len(parts) == 5:
            _time_us(parts[4])  # retrigger delay: accepted, not modelled
        if pulse_us <= 0 or delay_us < 0:
            raise _UnitError(1)
        replies: list[str] = []
        if delay_us < self.MIN_DELAY_US:
            delay_us = self.MIN_DELAY_US
            replies = self._error(5, channel)
        longest = next(limit for top, limit in self.MAX_PULSE_US if percent <= top)
        if pulse_us > longest:
            pulse_us = longest
            replies = self._error(5, channel)
        if channel not in self.ignored:
            self.channels[channel] = EmulatedChannel("strobe", percent, pulse_us, delay_us)
        return replies

    def _channel(self, text: str) -> int:
        if not text.isdigit():
            raise _UnitError(3)
        channel = int(text)
        if channel not in self.channels:
            raise _UnitError(1)
        return channel


def _split(args: str, counts: tuple[int, ...]) -> list[str]:
    parts = args.split(",") if args else []
    if len(parts) not in counts:
        raise _UnitError(4)
    return parts


def _number(text: str, bounds: tuple[float, float]) -> float:
    if not _NUMBER.match(text):
        raise _UnitError(3)
    value = float(text)
    if not bounds[0] <= value <= bounds[1]:
        raise _UnitError(1)
    return value


def _time_us(text: str) -> float:
    """A time as the units read it: milliseconds unless it says s / ms / us."""
    match = _TIME.match(text)
    if not match:
        raise _UnitError(3)
    return float(match.group("number")) * _TIME_SCALE_US[(match.group("unit") or "ms").lower()]


# -- the template unit ---------------------------------------------------------------------------------------
_FORMAT_SPEC = re.compile(r"^(?:(?P<fill>.)?(?P<align>[<>=^]))?(?P<sign>[-+ ])?#?(?P<zero>0)?(?P<width>\d+)?"
                          r"[,_]?(?:\.\d+)?(?P<type>[bcdeEfFgGnosxX%])?$")
_INTEGER_FIELDS = ("value", "pulse_us", "delay_us", "channel_number", "channel_index")


def template_regex(template: str) -> re.Pattern:
    """A regex that matches what `template.format(...)` produces, with a group per placeholder."""
    parts, seen = [], set()
    for literal, name, spec, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name is None:
            continue
        if name in seen:
            parts.append(f"(?P={name})")
            continue
        seen.add(name)
        found = _FORMAT_SPEC.match(spec or "")
        width = found.group("width") if found else None
        padded = bool(found and (found.group("zero") or found.group("fill") == "0"))
        if name in _INTEGER_FIELDS:
            digit = "[0-9A-Fa-f]" if found and found.group("type") in ("x", "X") else r"\d"
            body = f"{digit}{{{width}}}" if width and padded else (f" *{digit}+" if width else f"{digit}+")
        elif name == "percent":
            body = rf" *{NUMBER}"
        elif name == "channel_letter":
            body = "[A-Za-z]"
        else:
            body = "[A-Za-z0-9]+?"
        parts.append(f"(?P<{name}>{body})")
    return re.compile("".join(parts))


def _integer_bases(template: str) -> dict[str, int]:
    bases = {}
    for _, name, spec, _ in string.Formatter().parse(template):
        if name in _INTEGER_FIELDS:
            found = _FORMAT_SPEC.match(spec or "")
            bases[name] = 16 if found and found.group("type") in ("x", "X") else 10
    return bases


def _example_reply(pattern: str) -> str:
    """The literal acknowledgement a reply regex like '^OK$' stands for."""
    return re.sub(r"\\(.)", r"\1", pattern.lstrip("^").rstrip("$"))


class TemplateEmulator(_LightEmulator):
    """A unit whose commands are what `spec` describes (the same data the driver is given).
    A good command gets `ok_reply` (by default the literal the reply regex stands for, or the
    command itself for reply = "echo"); a bad channel, a value beyond value_max or an unknown
    command gets `error_reply`."""

    def __init__(self, spec: TemplateProtocolSpec | Mapping[str, Any], channel_ids: Iterable[ChannelId], *,
                 ok_reply: str | None = None, error_reply: str = "NG1", name: str = "template"):
        super().__init__(name, channel_ids)
        self.spec = spec if isinstance(spec, TemplateProtocolSpec) else TemplateProtocolSpec.from_dict(spec)
        if ok_reply is None and self.spec.reply not in (None, ECHO_REPLY):
            ok_reply = _example_reply(self.spec.reply)
            if not re.search(self.spec.reply, ok_reply):
                raise ValueError(f"{name}: cannot derive an acknowledgement from reply {self.spec.reply!r}; "
                                 f"pass ok_reply")
        self.ok_reply = ok_reply
        self.error_reply = error_reply
        self._patterns = {key: template_regex(getattr(self.spec, key))
                          for key in ("set_level", "set_strobe", "save") if self.spec.has(key)}
        self._bases = {key: _integer_bases(getattr(self.spec, key)) for key in self._patterns}
        self._terminators = {getattr(self.spec, key)[-1] for key in self._patterns}
        self._buffer = ""

    def on_bytes(self, data: bytes) -> None:
        self._buffer += data.decode("ascii", errors="replace")
        end = self.spec.line_end
        if end:
            while end in self._buffer:
                command, self._buffer = self._buffer.split(end, 1)
                self._handle(command.strip("\r\n"))
            return
        while self._buffer:  # no line end: each template ends with its own literal, e.g. '#'
            match = next((m for p in self._patterns.values() if (m := p.match(self._buffer))), None)
            if match:
                self._buffer = self._buffer[match.end():]
                self._handle(match.group(0))
                continue
            cut = min((i for i in (self._buffer.find(t) for t in self._terminators) if i >= 0), default=-1)
            if cut < 0:
                return  # wait for the rest of the command
            command, self._buffer = self._buffer[:cut + 1], self._buffer[cut + 1:]
            self._handle(command)

    def _handle(self, command: str) -> None:
        for key, pattern in self._patterns.items():
            match = pattern.fullmatch(command)
            if match is None:
                continue
            if key == "save":
                self._save()
                return self._answer(command, True)
            if self.refuse_settings is not None:
                return self._answer(command, False)
            fields = {name: text for name, text in match.groupdict().items() if text is not None}
            channel = self._channel(fields)
            try:
                numbers = {name: int(fields[name].strip(), base) for name, base in self._bases[key].items()}
                percent = (self.spec.to_percent(numbers["value"]) if "value" in numbers
                           else float(fields["percent"]))
            except ValueError:
                return self._answer(command, False)
            if channel is None or not 0 <= percent <= 100:
                return self._answer(command, False)
            if key == "set_level":
                state = EmulatedChannel("continuous", percent) if percent > 0 else OFF
            else:
                state = EmulatedChannel("strobe", percent, float(numbers["pulse_us"]),
                                        float(numbers.get("delay_us", 0)))
            if channel not in self.ignored:
                self.channels[channel] = state
            return self._answer(command, True)
        self._answer(command, False)

    def _channel(self, fields: Mapping[str, str]) -> ChannelId | None:
        for cid in self.channels:
            known = channel_fields(cid)
            if all(_same(name, text, known) for name, text in fields.items() if name.startswith("channel")):
                return cid
        return None

    def _answer(self, command: str, ok: bool) -> None:
        if self.spec.reply is None:
            return
        text = (command if self.spec.reply == ECHO_REPLY else self.ok_reply) if ok else self.error_reply
        self.send(f"{text}{self.spec.reply_end}")


def _same(name: str, text: str, known: Mapping[str, Any]) -> bool:
    if name not in known:
        return False
    if name == "channel":
        return str(known[name]) == text
    if name == "channel_letter":
        return known[name] == text.upper()
    try:
        return int(text.strip(), 16 if not text.strip().isdigit() else 10) == known[name]
    except ValueError:
        return False
