"""grblHAL / Grbl 1.1 serial protocol: reply patterns, status parsing, command formatting; the
error and alarm tables are grbl_codes' (grblHAL's own texts). Pure functions; no I/O.
"""
from __future__ import annotations

import math
import re
import time
from typing import Mapping

from .base import AXES, AxisSettings, MachineState, Pose
from .grbl_codes import ALARM_CODES, CRITICAL_ALARMS, ERROR_CODES  # noqa: F401 - the driver reads them here

RESET = b"\x18"
STATUS_QUERY = b"?"
SYNC = "G4 P0"  # answered once the planner is empty (motion_control.c mc_dwell → protocol_buffer_synchronize)
FEED_HOLD = b"!"
CYCLE_START = b"~"
JOG_CANCEL = b"\x85"

OK = "ok"
RESET_TO_CONTINUE = "[MSG:Reset to continue]"
BANNER = re.compile(r"^Grbl(?:HAL)?\s+(?P<version>\S+)\s+\[.*help\]\s*$", re.IGNORECASE)
STATUS = re.compile(r"^<(?P<body>[^<>]*)>$")
ERROR = re.compile(r"^error:(?P<code>\d+)$")
ALARM = re.compile(r"^ALARM:(?P<code>\d+)$")
MESSAGE = re.compile(r"^\[MSG:(?P<text>.*)\]$")
BRACKET = re.compile(r"^\[(?P<key>[A-Z]+):(?P<value>.*)\]$")
SETTING = re.compile(r"^\$(?P<number>\d+)=(?P<value>[^\s;(]*)")
AXES_INFO = re.compile(r"^(?P<count>\d+):(?P<letters>[XYZABCUVW]+)$")

STATES = ("Idle", "Run", "Hold", "Jog", "Alarm", "Door", "Check", "Home", "Sleep", "Tool")

# $$ setting numbers: first axis at base, next axes follow (X=+0, Y=+1, Z=+2, A=+3, B=+4).
STEPS_BASE, RATE_BASE, ACCEL_BASE, TRAVEL_BASE = 100, 110, 120, 130
SOFT_LIMITS, HARD_LIMITS, HOMING_ENABLE, STATUS_MASK, REPORT_INCHES = 20, 21, 22, 10, 13
REPORT_DECIMALS = 3  # report.c prints mm positions with N_DECIMAL_COORDVALUE_MM = 3
SENT_DECIMALS = 3
MODAL = re.compile(r"^\[GC:(?P<words>[^\]]*)\]$")
WORK_SYSTEMS = ("G54", "G55", "G56", "G57", "G58", "G59", "G59.1", "G59.2", "G59.3")


def error_meaning(code: int) -> str:
    return ERROR_CODES.get(code, "unknown error code")


def alarm_meaning(code: int) -> str:
    return ALARM_CODES.get(code, "unknown alarm code")


def _floats(text: str, count: int | None = None, what: str = "value") -> tuple[float, ...]:
    values = tuple(float(v) for v in text.split(","))
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{what} {text!r} is not finite")
    if count is not None and len(values) != count:
        raise ValueError(f"{what} has {len(values)} axes, the controller has {count}")
    return values


def parse_status(line: str, previous_offset: tuple[float, ...] = (0.0,) * 5, axes: int | None = None) -> MachineState:
    """Parse `<State|MPos:…|…>`. WPos is turned into MPos with the last known WCO, as senders do.
    With `axes`, a position or offset with another number of values (a truncated line) is refused,
    as is any value that is not a finite number."""
    match = STATUS.match(line)
    if not match:
        raise ValueError(f"not a status report: {line!r}")
    fields = match.group("body").split("|")
    state_text = fields[0]
    state, _, sub = state_text.partition(":")
    if state not in STATES:
        raise ValueError(f"unknown machine state {state_text!r} in {line!r}")
    substate = int(sub) if sub.isdigit() else None
    values: dict[str, str] = {}
    for item in fields[1:]:
        key, sep, value = item.partition(":")
        if not sep:
            raise ValueError(f"malformed field {item!r} in {line!r}")
        values[key] = value
    offset = _floats(values["WCO"], axes, "WCO") if "WCO" in values else previous_offset
    if "MPos" in values:
        machine = _floats(values["MPos"], axes, "MPos")
    elif "WPos" in values:
        work = _floats(values["WPos"], axes, "WPos")
        machine = tuple(w + o for w, o in zip(work, offset))
    else:
        raise ValueError(f"status report without MPos or WPos: {line!r}")
    buffer = tuple(int(v) for v in values["Bf"].split(",")) if "Bf" in values else None
    feed, spindle = 0.0, 0.0
    if "FS" in values:
        fs = _floats(values["FS"], None, "FS")
        feed, spindle = fs[0], fs[1] if len(fs) > 1 else 0.0
    elif "F" in values:
        feed = float(values["F"])
    overrides = tuple(int(v) for v in values["Ov"].split(",")) if "Ov" in values else None
    known = {"MPos", "WPos", "WCO", "Bf", "FS", "F", "Ov", "Pn"}
    return MachineState(state=state, substate=substate, machine_pos=machine, work_offset=offset,
                        buffer=buffer, feed=feed, spindle=spindle, overrides=overrides,  # type: ignore[arg-type]
                        pins=values.get("Pn", ""), received_at=time.monotonic(),
                        extra={k: v for k, v in values.items() if k not in known})


def format_status(state: str, machine_pos: tuple[float, ...], *, substate: int | None = None,
                  buffer: tuple[int, int] | None = None, feed: float = 0.0, spindle: float = 0.0,
                  work_offset: tuple[float, ...] | None = None, overrides: tuple[int, int, int] | None = None,
                  pins: str = "", work_position: bool = False) -> str:
    """A report as report.c `report_realtime_status` prints it (`work_position`: the position given is
    WPos, printed as such, for `$10` bit 0 clear)."""
    head = state if substate is None else f"{state}:{substate}"
    parts = [head, ("WPos:" if work_position else "MPos:") + ",".join(_mm(v) for v in machine_pos)]
    if buffer is not None:
        parts.append(f"Bf:{buffer[0]},{buffer[1]}")
    parts.append(f"FS:{feed:.0f},{spindle:.0f}")
    if pins:
        parts.append(f"Pn:{pins}")
    if work_offset is not None:
        parts.append("WCO:" + ",".join(_mm(v) for v in work_offset))
    if overrides is not None:
        parts.append(f"Ov:{overrides[0]},{overrides[1]},{overrides[2]}")
    return "<" + "|".join(parts) + ">"


def _mm(value: float) -> str:
    """3 decimals, rounded half away from zero as nuts_bolts.c `ftoa` does (sign kept: `-0.000`)."""
    scaled = math.floor(abs(value) * 1000 + 0.5)
    return f"{'-' if value < 0 else ''}{scaled // 1000}.{scaled % 1000:03d}"


def parse_axes(info_lines: list[str]) -> str:
    """Axis letters from `$I` output (`[AXS:5:XYZAB]`); Grbl without it has XYZ."""
    for line in info_lines:
        match = BRACKET.match(line)
        if match and match.group("key") == "AXS":
            axes = AXES_INFO.match(match.group("value"))
            if not axes:
                raise ValueError(f"malformed axis report {line!r}")
            return axes.group("letters")
    return "XYZ"


def parse_settings(lines: list[str]) -> dict[int, str]:
    settings = {}
    for line in lines:
        match = SETTING.match(line)
        if match:
            settings[int(match.group("number"))] = match.group("value")
    return settings


def axis_settings(settings: Mapping[int, str], letters: str) -> dict[str, AxisSettings]:
    """Per-axis settings from `$$` values; raises KeyError naming the missing setting."""
    result = {}
    for index, letter in enumerate(letters.lower()):
        def value(base: int) -> float:
            number = base + index
            if number not in settings:
                raise KeyError(f"${number} ({letter.upper()} axis) missing from $$ report")
            return float(settings[number])
        result[letter] = AxisSettings(value(STEPS_BASE), value(RATE_BASE), value(ACCEL_BASE), value(TRAVEL_BASE))
    return result


def _words(pose: Pose | Mapping[str, float], letters: str) -> str:
    values = pose if isinstance(pose, Mapping) else {a: getattr(pose, a) for a in AXES}
    return " ".join(f"{axis.upper()}{values[axis]:.3f}" for axis in letters.lower() if axis in values)


def arrival_tolerance(steps_per_unit: float) -> float:
    """How far a reported axis may be from the target it has reached: half a step (the planner rounds
    the target to whole steps), plus the rounding of the value sent and of the value reported."""
    if not steps_per_unit > 0:
        raise ValueError(f"steps per unit must be positive, got {steps_per_unit}")
    return 0.5 / steps_per_unit + 0.5 * 10 ** -SENT_DECIMALS + 0.5 * 10 ** -REPORT_DECIMALS + 1e-9


def format_machine_move(target: tuple[float, ...], letters: str = "XYZAB", feed_per_min: float | None = None) -> str:
    """`G53 G0 X… Y… Z… A… B…` in machine coordinates (G53 is non-modal and ignores G90/G91 and every
    offset; it needs G0 or G1 in the same block, gcode.c), or `G53 G1 … F…` when a feed is given."""
    words = _words(dict(zip(AXES, target)), letters)
    if feed_per_min is None:
        return f"G53 G0 {words}"
    if not feed_per_min > 0:
        raise ValueError(f"feed must be positive, got {feed_per_min}")
    return f"G53 G1 {words} F{feed_per_min:.1f}"


OFFSET_LINE = re.compile(r"^\[(?P<key>G5[4-9](?:\.[123])?|G28|G30|G92|TLO|PRB):(?P<value>[^\]:]*)(?::\d+)?\]$")


def parse_offsets(lines: list[str]) -> dict[str, tuple[float, ...]]:
    """`$#` output (report.c report_ngc_parameters): `[G54:x,y,z,a,b]` … `[G92:…]`, `[TLO:…]`,
    `[PRB:…:0]` → {name: values}; other lines (`[HOME:…]`, `[T:…]`) are not offsets."""
    offsets = {}
    for line in lines:
        match = OFFSET_LINE.match(line)
        if match:
            offsets[match.group("key")] = _floats(match.group("value"), None, match.group("key"))
    return offsets


def parse_modal(lines: list[str]) -> dict[str, str]:
    """`$G` output `[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]` → {"wcs": "G54", "distance": "G90", …}."""
    for line in lines:
        match = MODAL.match(line)
        if match:
            words = match.group("words").split()
            found = {"words": " ".join(words)}
            for word in words:
                if word in WORK_SYSTEMS:
                    found["wcs"] = word
                elif word in ("G90", "G91"):
                    found["distance"] = word
                elif word in ("G20", "G21"):
                    found["units"] = word
            return found
    return {}


def work_coordinate_offset(offsets: Mapping[str, tuple[float, ...]], system: str = "G54") -> tuple[float, ...]:
    """WCO as grblHAL reports it: the active system's offset + G92 + the tool length offset on Z."""
    base = list(offsets.get(system, (0.0,) * len(AXES)))
    for index, value in enumerate(offsets.get("G92", ())):
        base[index] += value
    tlo = offsets.get("TLO", ())
    if len(tlo) == 1 and len(base) > 2:  # a Z-only tool length offset
        base[2] += tlo[0]
    else:
        for index, value in enumerate(tlo[:len(base)]):
            base[index] += value
    return tuple(base)


def format_move(pose: Pose, letters: str = "XYZAB", feed_per_min: float | None = None) -> str:
    """`G90 G0 X… Y… Z… A… B…` (rapid), or `G90 G1 … F…` when a feed is given."""
    if feed_per_min is None:
        return f"G90 G0 {_words(pose, letters)}"
    if feed_per_min <= 0:
        raise ValueError(f"feed must be positive, got {feed_per_min}")
    return f"G90 G1 {_words(pose, letters)} F{feed_per_min:.1f}"


def format_jog(axis: str, distance: float, feed_per_min: float) -> str:
    """`$J=G91 X… F…`: an incremental jog of one axis."""
    if axis.lower() not in AXES:
        raise ValueError(f"unknown axis {axis!r}; expected one of {', '.join(AXES)}")
    if feed_per_min <= 0:
        raise ValueError(f"jog feed must be positive, got {feed_per_min}")
    return f"$J=G91 {axis.upper()}{distance:.3f} F{feed_per_min:.1f}"
