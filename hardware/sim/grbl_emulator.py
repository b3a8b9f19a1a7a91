"""A grblHAL controller emulator on a real pseudo-terminal, with machine dynamics.

Speaks what the firmware speaks: the welcome banner on start and after 0x18, `$I`, `$$`, `$X`,
`$H`, `$J=`, `G90/G91 G0/G1 … F…`, real-time `?` `!` `~` 0x18 0x85, `ok` / `error:N` / `ALARM:N`,
and status reports `<State|MPos:…|Bf:…|FS:…|WCO:…>`. Motion follows `dynamics.Move` in machine
time, which runs `speed_factor` times faster than wall time. Soft limits behave as in Grbl 1.1:
a jog beyond travel is refused with error:15; a G-code target beyond travel raises ALARM:2, a
critical alarm that needs a reset, after which the machine stays locked until `$X` or `$H`.
"""
from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass

from ..motion.grbl_protocol import format_status
from ..pose import StagePose
from .dynamics import DEFAULT_LIMITS, SETTLE_S, AxisLimits, Move, within
from .pty_device import PtyDevice

BANNER = "GrblHAL 1.1f ['$' or '$HELP' for help]"
UNLOCK_HINT = "[MSG:'$H'|'$X' to unlock]"
LETTERS = "XYZAB"
WORD = re.compile(r"([A-Z])([-+]?(?:\d+\.?\d*|\.\d+))?")
PLANNER_BLOCKS = 35
RX_BUFFER = 1023


@dataclass
class _Pending:
    move: Move
    jog: bool
    hold_fraction: float | None = None  # set while a feed hold or jog cancel brings it to rest


class GrblEmulator(PtyDevice):
    def __init__(self, *, speed_factor: float = 1.0, limits: dict[str, AxisLimits] | None = None,
                 settle_s: float = SETTLE_S, homing_required: bool = True, home_position=(0.0, 0.0, 40.0, 0.0, 0.0),
                 name: str = "grblhal"):
        super().__init__(name)
        if speed_factor <= 0:
            raise ValueError(f"speed_factor must be positive, got {speed_factor}")
        self.speed_factor = speed_factor
        self.limits = dict(limits or DEFAULT_LIMITS)
        self._limit_list = [self.limits[a] for a in "xyzab"]
        self.settle_s = settle_s
        self.home_position = tuple(float(v) for v in home_position)
        self._t0 = time.monotonic()
        self.settings: dict[int, str] = self._default_settings(homing_required)
        self._position = tuple(self.home_position)
        self._queue: deque[tuple[tuple[float, ...], float | None, bool]] = deque()  # (target, feed/s, jog)
        self._current: _Pending | None = None
        self._settle_until = 0.0
        self._homing: Move | None = None
        self._absolute = True
        self._feed_per_s: float | None = None
        self._alarm: int | None = None
        self._critical = False  # waiting for a reset before anything else
        self._holding = False
        self._reports = 0
        self._homed = False
        self._boot()

    # -- for the rest of the virtual cell (thread-safe) -------------------------------------------
    def clock(self) -> float:
        """Machine time in seconds."""
        return (time.monotonic() - self._t0) * self.speed_factor

    def machine_pose(self) -> StagePose:
        with self._lock:
            return StagePose(*self._pos_now(self.clock()))

    @property
    def is_moving(self) -> bool:
        with self._lock:
            return self._current is not None or self._homing is not None or bool(self._queue)

    @property
    def state_name(self) -> str:
        with self._lock:
            return self._state(self.clock())[0]

    def inject_alarm(self, code: int) -> None:
        """Fault injection: raise ALARM:code as if a limit switch or e-stop tripped."""
        with self._lock:
            now = self.clock()
            self._position = self._pos_now(now)
            self._stop_all()
            self._alarm, self._critical = code, code in (1, 2, 10)
            self.send_line(f"ALARM:{code}")

    # -- bytes in --------------------------------------------------------------------------------
    def on_bytes(self, data: bytes) -> None:
        rest = bytearray()
        for byte in data:
            if byte == 0x3F:  # ?
                self._report_status()
            elif byte == 0x21:  # !
                self._feed_hold()
            elif byte == 0x7E:  # ~
                self._cycle_start()
            elif byte == 0x18:
                self._reset()
                rest.clear()
                self._line.clear()
            elif byte == 0x85:
                self._jog_cancel()
            elif byte >= 0x80:
                continue  # other real-time overrides: ignored
            else:
                rest.append(byte)
        if rest:
            super().on_bytes(bytes(rest))

    def on_line(self, raw: str) -> None:
        if self._critical:
            return  # a critical alarm ignores everything until reset (Grbl 1.1)
        line = raw.strip().upper().replace(" ", "")
        if not line:
            self.send_line("ok")
            return
        if line.startswith("$"):
            self._system_command(line)
        else:
            self._gcode(line)

    # -- time ------------------------------------------------------------------------------------
    def tick(self) -> None:
        now = self.clock()
        if self._homing is not None and now >= self._homing.started_at + self._homing.duration:
            self._position = self._homing.target
            self._homing = None
            self._homed = True
            self._alarm = None
            self._settle_until = now + self.settle_s
            self.send_line("ok")
        pending = self._current
        if pending is not None:
            move = pending.move
            if pending.hold_fraction is not None:
                if move.fraction(now) >= pending.hold_fraction:
                    self._position = self._at_fraction(move, pending.hold_fraction)
                    self._current = None
                    if pending.jog:  # a stopped jog is discarded
                        self._holding = False
                        self._queue = deque(item for item in self._queue if not item[2])
                    else:  # remember the rest of the way for the resume
                        self._queue.appendleft((move.target, self._feed_per_s, False))
                    self._settle_until = now + self.settle_s
            elif now >= move.started_at + move.duration:
                self._position = move.target
                self._current = None
                self._settle_until = now + self.settle_s
        if self._current is None and self._queue and not self._holding and self._homing is None:
            target, feed, jog = self._queue.popleft()
            self._current = _Pending(Move.plan(self._position, target, now, self._limit_list, feed), jog)

    # -- commands ----------------------------------------------------------------------------------
    def _system_command(self, line: str) -> None:
        if line == "$I":
            for text in ("[VER:1.1f.20240101:]", "[OPT:VNMSL,35,1023,5,0]", "[AXS:5:XYZAB]",
                         "[NEWOPT:ENUMS,RT+,HOME,SED]", "[FIRMWARE:grblHAL]"):
                self.send_line(text)
        elif line == "$$":
            for number in sorted(self.settings):
                self.send_line(f"${number}={self.settings[number]}")
        elif line == "$X":
            if self._alarm is not None:
                self._alarm = None
                self.send_line("[MSG:Caution: Unlocked]")
        elif line == "$H":
            if self.settings[22] != "1":
                self.send_line("error:5")
                return
            if self._busy():
                self.send_line("error:8")
                return
            now = self.clock()
            self._homing = Move.plan(self._position, self.home_position, now + 0.1, self._limit_list,
                                     feed_per_s=None)
            return  # `ok` when the cycle ends (tick)
        elif line.startswith("$J="):
            self._jog(line[3:])
            return
        elif re.fullmatch(r"\$\d+=[-+]?\d*\.?\d+", line):
            number, value = line[1:].split("=")
            if int(number) not in self.settings:
                self.send_line("error:3")
                return
            if self._busy():
                self.send_line("error:8")
                return
            self.settings[int(number)] = value
            self._apply_settings()
        else:
            self.send_line("error:3")
            return
        self.send_line("ok")

    def _gcode(self, line: str) -> None:
        words = self._words(line)
        if words is None:
            return
        motion, absolute, feed, axes = None, self._absolute, self._feed_per_s, {}
        for letter, value in words:
            if letter == "G":
                code = value
                if code in (0.0, 1.0):
                    motion = int(code)
                elif code == 90.0:
                    absolute = True
                elif code == 91.0:
                    absolute = False
                elif code == 21.0:
                    pass  # millimetres: the only unit here
                else:
                    self.send_line("error:20")
                    return
            elif letter == "F":
                if value <= 0:
                    self.send_line("error:4")
                    return
                feed = value / 60.0
            elif letter in LETTERS:
                if letter in axes:
                    self.send_line("error:25")
                    return
                axes[letter] = value
            elif letter == "N":
                continue
            else:
                self.send_line("error:20")
                return
        if axes and motion is None:
            motion = 0
        if motion is not None and not axes:
            self.send_line("error:26")
            return
        if self._alarm is not None and motion is not None:
            self.send_line("error:9")
            return
        if motion == 1 and feed is None:
            self.send_line("error:22")
            return
        self._absolute = absolute
        if motion == 1:
            self._feed_per_s = feed
        if motion is not None:
            target = self._target(axes, absolute)
            if self.settings[20] == "1" and not within(self._limit_list, target):
                now = self.clock()
                self._position = self._pos_now(now)
                self._stop_all()
                self._alarm, self._critical = 2, True
                self.send_line("ALARM:2")
                self.send_line("[MSG:Reset to continue]")
                return
            if len(self._queue) >= PLANNER_BLOCKS:
                self.send_line("error:11")
                return
            self._queue.append((target, feed if motion == 1 else None, False))
        self.send_line("ok")

    def _jog(self, body: str) -> None:
        words = self._words(body)
        if words is None:
            return
        absolute, feed, axes = False if "G91" in body else True, None, {}
        for letter, value in words:
            if letter == "G" and value in (90.0, 91.0, 21.0, 53.0):
                continue
            if letter == "F":
                feed = value / 60.0
            elif letter in LETTERS:
                axes[letter] = value
            else:
                self.send_line("error:16")
                return
        if feed is None or feed <= 0 or not axes:
            self.send_line("error:16")
            return
        if self._alarm is not None or self._homing is not None:
            self.send_line("error:9")
            return
        base = self._queued_end()
        target = tuple(axes.get(L, base[i] if absolute else 0.0) + (0.0 if absolute else base[i])
                       for i, L in enumerate(LETTERS))
        if self.settings[20] == "1" and not within(self._limit_list, target):
            self.send_line("error:15")
            return
        self._queue.append((target, feed, True))
        self.send_line("ok")

    def _words(self, line: str) -> list[tuple[str, float]] | None:
        words, position = [], 0
        for match in WORD.finditer(line):
            if match.start() != position:
                break
            position = match.end()
            if match.group(2) is None:
                self.send_line("error:2")
                return None
            words.append((match.group(1), float(match.group(2))))
        if position != len(line):
            self.send_line("error:1")
            return None
        return words

    # -- real-time ----------------------------------------------------------------------------------
    def _report_status(self) -> None:
        now = self.clock()
        state, sub = self._state(now)
        self._reports += 1
        wco = (0.0,) * 5 if self._reports % 10 == 1 else None
        feed = 0.0
        if self._current is not None and self._current.hold_fraction is None or (
                self._current is not None and self._current.move.fraction(now) < (self._current.hold_fraction or 0)):
            feed = self._current.move.speed(now) * 60.0
        self.send_line(format_status(state, self._pos_now(now), substate=sub,
                                     buffer=(PLANNER_BLOCKS - len(self._queue), RX_BUFFER), feed=feed,
                                     work_offset=wco, overrides=(100, 100, 100) if wco else None))

    def _feed_hold(self) -> None:
        if self._current is None and not self._queue:
            return
        now = self.clock()
        if self._current is not None:
            if self._current.jog:
                self._jog_cancel()
                return
            self._current.hold_fraction = min(1.0, self._fraction_of(self._current.move.stop_target(now),
                                                                      self._current.move))
        self._holding = True

    def _cycle_start(self) -> None:
        if self._holding and (self._current is None or self._current.hold_fraction is None):
            self._holding = False
        elif self._holding:
            self._holding = False  # resume after it has come to rest (tick requeues the remainder)

    def _jog_cancel(self) -> None:
        if self._current is not None and self._current.jog:
            now = self.clock()
            self._current.hold_fraction = min(1.0, self._fraction_of(self._current.move.stop_target(now),
                                                                      self._current.move))
        self._queue = deque(item for item in self._queue if not item[2])

    def _reset(self) -> None:
        was_moving = self._current is not None or self._homing is not None
        now = self.clock()
        self._position = self._pos_now(now)
        self._stop_all()
        self._critical = False
        self._absolute = True
        if was_moving:
            self._homed = False
            self._alarm = 3
            self.send_line("ALARM:3")
        self._boot()

    def _boot(self) -> None:
        self.send_line(BANNER)
        if self._alarm is None and self.settings[22] == "1" and not self._homed:
            self._alarm = 11
        if self._alarm is not None:
            self.send_line(UNLOCK_HINT)

    # -- helpers ------------------------------------------------------------------------------------
    def _state(self, now: float) -> tuple[str, int | None]:
        if self._alarm is not None:
            return "Alarm", None
        if self._homing is not None:
            return "Home", None
        if self._holding:
            resting = self._current is None
            return "Hold", 0 if resting else 1
        if self._current is not None or self._queue or now < self._settle_until:
            if self._current is not None and self._current.jog or any(j for *_, j in self._queue):
                return "Jog", None
            return "Run", None
        return "Idle", None

    def _busy(self) -> bool:
        return self._current is not None or bool(self._queue) or self._homing is not None

    def _pos_now(self, now: float) -> tuple[float, ...]:
        if self._homing is not None:
            return self._homing.position(max(now, self._homing.started_at))
        if self._current is None:
            return self._position
        pending = self._current
        position = pending.move.position(now)
        if pending.hold_fraction is not None and pending.move.fraction(now) >= pending.hold_fraction:
            return self._at_fraction(pending.move, pending.hold_fraction)
        return position

    @staticmethod
    def _at_fraction(move: Move, fraction: float) -> tuple[float, ...]:
        return tuple(s + (t - s) * fraction for s, t in zip(move.start, move.target))

    @staticmethod
    def _fraction_of(point: tuple[float, ...], move: Move) -> float:
        g = move.governing_axis
        span = move.target[g] - move.start[g]
        return 1.0 if span == 0 else (point[g] - move.start[g]) / span

    def _queued_end(self) -> tuple[float, ...]:
        if self._queue:
            return self._queue[-1][0]
        if self._current is not None:
            return self._current.move.target
        return self._position

    def _target(self, axes: dict[str, float], absolute: bool) -> tuple[float, ...]:
        base = self._queued_end()
        return tuple(axes.get(L, base[i]) if absolute else base[i] + axes.get(L, 0.0) for i, L in enumerate(LETTERS))

    def _stop_all(self) -> None:
        self._current = None
        self._homing = None
        self._queue.clear()
        self._holding = False

    def _default_settings(self, homing_required: bool) -> dict[int, str]:
        s = {0: "10", 1: "25", 2: "0", 3: "0", 4: "0", 5: "0", 6: "0", 10: "1", 11: "0.010", 12: "0.002", 13: "0",
             20: "1", 21: "0", 22: "1" if homing_required else "0", 23: "0", 24: "25.000", 25: "500.000",
             26: "250", 27: "1.000", 30: "1000", 31: "0", 32: "0"}
        for i, axis in enumerate("xyzab"):
            lim = self.limits[axis]
            s[100 + i] = "800.000" if axis in "xyz" else "100.000"
            s[110 + i] = f"{lim.max_rate * 60:.3f}"
            s[120 + i] = f"{lim.acceleration:.3f}"
            s[130 + i] = f"{lim.maximum - lim.minimum:.3f}"
        return s

    def _apply_settings(self) -> None:
        for i, axis in enumerate("xyzab"):
            old = self.limits[axis]
            self.limits[axis] = AxisLimits(float(self.settings[110 + i]) / 60.0, float(self.settings[120 + i]),
                                           old.minimum, old.maximum)
        self._limit_list = [self.limits[a] for a in "xyzab"]
