"""The emulated grblHAL's `$` commands, homing and travel limits, as system.c and machine_limits.c
have them (a part of GrblEmulator, kept apart as the firmware keeps them apart)."""
from __future__ import annotations

import math

from . import grbl_gcode as gcode
from .grbl_settings import build_info, format_setting, modal_words, store_setting

LETTERS = gcode.LETTERS


class SystemCommands:
    """Mixed into GrblEmulator: uses its settings, planner, parser and alarm state."""

    # -- `$` commands (system.c) -------------------------------------------------------------------
    def _system_command(self, line: str) -> int | None:
        """Run a `$` command; its status code, or None when the reply comes later ($H)."""
        state = self._state(self.clock())[0]
        if line == "$I":
            for text in build_info(self.settings):
                self.send_line(text)
        elif line == "$$":
            if state in ("Run", "Hold"):
                return 8
            for number in sorted(self.settings):
                self.send_line(format_setting(number, self.settings[number]))
        elif line == "$#":
            for name, values in zip(gcode.WORK_SYSTEM_NAMES, self.parser.coords):
                self.send_line(f"[{name}:{_mm(values)}]")
            for name in ("G28", "G30"):
                self.send_line(f"[{name}:{_mm(self.parser.stored[name])}]")
            self.send_line(f"[G92:{_mm(self.parser.g92)}]")
            self.send_line(f"[TLO:{_mm((0.0,) * 5)}]")
            self.send_line(f"[PRB:{_mm((0.0,) * 5)}:0]")
        elif line == "$G":
            parser = self.parser
            self.send_line("[GC:" + " ".join(modal_words(parser.motion, gcode.WORK_SYSTEM_NAMES[parser.wcs],
                                                         parser.inches, parser.absolute, parser.feed)) + "]")
        elif line == "$X":
            if self._alarm is None:
                return 0
            if self._homing_required():
                return 46
            self._alarm = None
            self.send_line("[MSG:Caution: Unlocked]")
        elif line == "$H":
            if not int(self.settings[22]) & 1:
                return 5
            if state not in ("Idle", "Alarm"):
                return 8
            self._start_homing()
            return None
        elif line.startswith("$J="):
            return self._jog(line[3:], state)
        elif (setting := _setting_assignment(line)) is not None:
            number, value = setting
            if number not in self.settings:
                return 3
            if state not in ("Idle", "Alarm"):
                return 8
            if number == 20 and value and not int(self.settings[22]) & 1:
                return 10  # soft limits need homing
            self.settings[number] = store_setting(number, value)
            self._apply_settings()
        else:
            return 3
        return 0

    def _jog(self, body: str, state: str) -> int:
        if state not in ("Idle", "Jog"):
            return 8
        words = gcode.words(body)
        if isinstance(words, int):
            return words
        absolute, machine, feed, axes = self.parser.absolute, False, None, {}
        for letter, value in words:
            if letter == "G" and value in (90.0, 91.0, 53.0, 20.0, 21.0):
                absolute = value != 91.0 if value in (90.0, 91.0) else absolute
                machine = machine or value == 53.0
            elif letter == "F":
                feed = value / 60.0 * self.parser.unit
            elif letter in LETTERS and letter not in axes:
                axes[letter] = value
            else:
                return 16
        if feed is None or feed <= 0 or not axes:
            return 16
        target = self.parser.target(axes, absolute, machine)
        if not self._within_envelope(target):
            return 15  # jog target beyond travel: refused, no alarm (motion_control.c mc_jog_execute)
        self.planner.add(target, feed, True)
        self.parser.position = target
        return 0

    def _within_envelope(self, target: tuple[float, ...]) -> bool:
        """Soft limits ($20) on homed axes, within [−travel, 0] (+ pull-off with hard limits on)."""
        if self.settings[20] != "1" or not self._homed:
            return True
        pulloff = float(self.settings[27]) if self.settings[21] == "1" else 0.0
        force_origin = bool(int(self.settings[22]) & 8)
        for i, value in enumerate(target):
            travel = float(self.settings[130 + i])
            low, high = -travel + pulloff, 0.0 if force_origin else -pulloff
            if not low - 1e-9 <= value <= high + 1e-9:
                return False
        return True

    # -- homing ------------------------------------------------------------------------------------
    def _homing_required(self) -> bool:
        flags = int(self.settings[22])
        return bool(flags & 1 and flags & 4 and not flags & 64) and not self._homed

    def _start_homing(self) -> None:
        pulloff = float(self.settings[27])
        physical_end = tuple(s - pulloff for s in self.switches)
        end = tuple(p - o for p, o in zip(physical_end, self._offset))
        self.planner.home(end, self.clock() + 0.1, float(self.settings[25]) / 60.0)

    def _finish_homing(self, now: float) -> None:
        pulloff = float(self.settings[27])
        origin = 0.0 if int(self.settings[22]) & 8 else -pulloff
        self._offset = tuple(s - pulloff - origin for s in self.switches)
        self.planner.position = self._quantise((origin,) * 5)
        self.planner.settle_until = now + self.settle_s
        self.parser.position = self.planner.position
        self._homed = True
        self._alarm = None
        self.send_line("[MSG:]")
        self.send_line("ok")


def _mm(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:.3f}" for v in values)


def _setting_assignment(line: str) -> tuple[int, float] | None:
    number, sep, value = line[1:].partition("=")
    if not sep or not number.isdigit():
        return None
    try:
        parsed = float(value)
    except ValueError:
        return None
    return (int(number), parsed) if math.isfinite(parsed) else None
