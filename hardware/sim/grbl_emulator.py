"""A grblHAL controller emulator on a real pseudo-terminal, with machine dynamics.

It follows grblHAL's core sources (grblHAL/core; the protocol tables in tests/test_grbl_protocol.py
name the file and function for each behaviour), including what is inconvenient for a sender:

- positions are whole motor steps: targets are rounded to `$100`–`$104` steps per unit (planner.c
  `plan_buffer_line`, lroundf) and reports print 3 decimals (report.c);
- work offsets G54–G59.3 (`G10 L2/L20`), G92 and G53, WCO in reports every 10 reports idle, 30 busy
  and after each change, `$#` and `$G`; `$10` bit 0 chooses MPos or WPos (report.c);
- sticky errors: after `error:N` every G-code line gets `error:N` until an empty line or a `$`
  command succeeds (protocol.c `protocol_main_loop`);
- the homing lock (`$22` bit 2): ALARM:11 at boot, `$X` answered error:46 (machine_limits.c
  `limits_homing_required`); homing seeks the switches at the positive end of each axis and sets
  MPos to −pull-off (`limits_set_machine_positions`); soft limits only on homed axes, within
  [−travel, 0] (`limits_set_work_envelope`); a G-code target beyond them raises ALARM:2 and locks
  until reset, a jog is refused with error:15;
- a soft reset while moving raises ALARM:3 and loses the homed state (motion_control.c `mc_reset`);
- G4 dwells (its `ok` comes when the planner is empty and the dwell is over);
- replies may come late (`reply_latency_s`, wall seconds), as they do from a loaded controller.

`ideal=True` keeps the old idealised stage (no step rounding). Motion follows `dynamics.Move` in
machine time, which runs `speed_factor` times faster than wall time. The emulator also knows the
physical stage (for the virtual cameras): `machine_pose()` is the stage-frame pose, MPos plus the
switch positions once homed; `stage_origin` is the MPos of the stage frame's zero.
"""
from __future__ import annotations

import math
import random
import time
from collections import deque

from ..motion.grbl_codes import CRITICAL_ALARMS
from ..pose import StagePose
from . import grbl_gcode as gcode
from .dynamics import DEFAULT_LIMITS, SETTLE_S, AxisLimits
from .grbl_planner import Planner
from .grbl_settings import StatusReports, default_settings
from .grbl_system import SystemCommands
from .pty_device import PtyDevice

BANNER = "GrblHAL 1.1f ['$' or '$HELP' for help]"
UNLOCK_HINT = "[MSG:'$H'|'$X' to unlock]"
HOMING_HINT = "[MSG:Homing cycle required]"
LETTERS = gcode.LETTERS
PLANNER_BLOCKS = 35
BLOCKING_OK = ("$I", "$$", "$#", "$G")  # `$` commands that still run while a critical alarm blocks


class GrblEmulator(SystemCommands, PtyDevice):
    def __init__(self, *, speed_factor: float = 1.0, limits: dict[str, AxisLimits] | None = None,
                 settle_s: float = SETTLE_S, homing_required: bool = True, park=(0.0, 0.0, 40.0, 0.0, 0.0),
                 steps_per_unit: float = 250.0, ideal: bool = False, reply_latency_s: tuple[float, float] = (0.0, 0.0),
                 work_offsets: dict[str, tuple[float, ...]] | None = None, seed: int = 0, name: str = "grblhal"):
        super().__init__(name)
        if speed_factor <= 0:
            raise ValueError(f"speed_factor must be positive, got {speed_factor}")
        low, high = reply_latency_s
        if not 0 <= low <= high:
            raise ValueError(f"reply_latency_s must be (low, high) with 0 <= low <= high, got {reply_latency_s}")
        self.speed_factor = speed_factor
        self.limits = dict(limits or DEFAULT_LIMITS)
        self._limit_list = [self.limits[a] for a in "xyzab"]
        self.settle_s = settle_s
        self.ideal = ideal
        self.reply_latency_s = (float(low), float(high))
        self._random = random.Random(seed)
        self._t0 = time.monotonic()
        self.settings: dict[int, str] = default_settings(self.limits, homing_required, steps_per_unit)
        self.switches = tuple(lim.maximum for lim in self._limit_list)  # home switches at the positive ends
        self.stage_origin = tuple(-s for s in self.switches)  # MPos of the stage frame's zero once homed
        park = tuple(float(v) for v in park)
        # physical pose = MPos + offset: MPos is 0 where the stage stood at power-on until homing sets it;
        # a cell without homing keeps the homed frame (as a stage with absolute encoders would)
        self._offset = park if homing_required else self.switches
        self.planner = Planner(tuple(p - o for p, o in zip(park, self._offset)), self._limit_list, settle_s,
                               self._quantise)
        self._homed = False
        self._alarm: int | None = None
        self._critical = False
        self.parser = gcode.ParserState(coords=[tuple(float(v) for v in (work_offsets or {}).get(name, (0.0,) * 5))
                                                for name in gcode.WORK_SYSTEM_NAMES], position=self.planner.position)
        self._last_error = 0
        self._dwell: float | None = None  # machine time the running G4 ends (inf: until the planner is empty)
        self._dwell_s = 0.0
        self._held_lines: deque[str] = deque()  # lines received while a dwell blocks the parser
        self._outbox: deque[tuple[float, bytes]] = deque()
        self._last_eol = 0
        self.reports = StatusReports()
        self._garble_next = False
        self._truncate_next = False
        self.aux_outputs = [False] * gcode.AUX_PORTS  # M62–M65 (lamps, ejectors)
        self.aux_inputs = [False] * gcode.AUX_PORTS  # wired sensors (part present); set with set_input
        self._wait: tuple[int, int, float] | None = None  # M66 waiting: (port, mode, machine-time deadline)
        self._wait_start: bool | None = None  # the input when the wait began (for edges)
        self.var5399 = -2  # the last M66 result (-1 timeout); -2: none since reset (grbllib.c)
        self._report_input = False
        self._boot()

    # -- for the rest of the virtual cell (thread-safe) -------------------------------------------
    def clock(self) -> float:
        """Machine time in seconds."""
        return (time.monotonic() - self._t0) * self.speed_factor

    def machine_pose(self) -> StagePose:
        """Where the stage physically is, in the stage frame (what the cameras see)."""
        with self._lock:
            return StagePose(*(m + o for m, o in zip(self.planner.position_at(self.clock()), self._offset)))

    def machine_position(self) -> tuple[float, ...]:
        """MPos as the controller counts it (whole steps)."""
        with self._lock:
            return self.planner.position_at(self.clock())

    @property
    def home_position(self) -> tuple[float, ...]:
        """The stage-frame pose homing ends at: the switches less the pull-off."""
        pulloff = float(self.settings[27])
        return tuple(s - pulloff for s in self.switches)

    @property
    def is_moving(self) -> bool:
        with self._lock:
            return self.planner.busy

    @property
    def state_name(self) -> str:
        with self._lock:
            return self._state(self.clock())[0]

    def inject_alarm(self, code: int) -> None:
        """Fault injection: raise ALARM:code as if a limit switch or e-stop tripped."""
        with self._lock:
            self._halt()
            self._alarm, self._critical = code, code in CRITICAL_ALARMS
            self.send_line(f"ALARM:{code}")
            if self._critical:
                self.send_line("[MSG:Reset to continue]")

    def set_input(self, port: int, on: bool) -> None:
        """A sensor wired to auxiliary input `port` (e.g. part present in the fixture)."""
        with self._lock:
            self.aux_inputs[port] = bool(on)

    def garble_next_line(self) -> None:
        """Line noise on the way in: the next G-code line arrives with a digit turned into a letter."""
        with self._lock:
            self._garble_next = True

    def noise_burst(self, size: int = 64) -> None:
        """Line noise on the way out: `size` random bytes, line ends among them."""
        with self._lock:
            self.send(bytes(self._random.choice(b"\x00\x07\x13#%&*<>|:,.0123456789ABCxyz\r\n\xfe")
                            for _ in range(size)))

    def truncate_next_report(self) -> None:
        """The next status report loses its last axes (a line cut short): `<Idle|MPos:x,y,z>`."""
        with self._lock:
            self._truncate_next = True

    # -- bytes in --------------------------------------------------------------------------------
    def on_bytes(self, data: bytes) -> None:
        for byte in data:
            if byte == 0x3F:  # ?
                self._report_status()
            elif byte == 0x21:  # !
                self.planner.hold(self.clock())
            elif byte == 0x7E:  # ~
                self.planner.resume()
            elif byte == 0x18:
                self._reset()
                self._line.clear()
            elif byte == 0x85:
                self.planner.cancel_jog(self.clock())
            elif byte >= 0x80:
                continue  # other real-time overrides: ignored
            elif byte in (0x0A, 0x0D):
                # protocol.c: CR LF is one line end; any other line end ends a line, an empty one included
                if not self._line and self._last_eol and self._last_eol != byte:
                    self._last_eol = 0
                    continue
                self._last_eol = byte
                line, self._line = bytes(self._line), bytearray()
                self._receive(line.decode("ascii", errors="replace"))
            else:
                self._last_eol = 0
                self._line.append(byte)

    def _receive(self, raw: str) -> None:
        if self._dwell is not None or self._wait is not None or self._held_lines:
            self._held_lines.append(raw)  # the parser waits in the dwell; the line sits in the buffer
            return
        self.on_line(raw)

    def on_line(self, raw: str) -> None:
        line = raw.strip().upper().replace(" ", "")
        if len(raw) > 255:
            self._reply(gcode.OVERFLOW)
        elif not line:
            self._last_error = 0  # an empty line: "for syncing purposes" (protocol.c)
            self.send_line("ok")
        elif line.startswith("$"):
            code = 79 if self._critical and line not in BLOCKING_OK else self._system_command(line)
            self._last_error = code or 0  # a `$` command's result replaces the sticky error
            if code is not None:  # None: $H answers when the cycle ends
                self._reply(code)
        elif self._critical or self._alarm is not None or self._state(self.clock())[0] == "Jog":
            self._last_error = 9
            self._reply(9)
        elif self._last_error:
            self._reply(self._last_error)  # sticky: the line is not executed
        else:
            if self._garble_next:
                self._garble_next = False
                line = next((line[:i] + "Q" + line[i + 1:] for i, c in enumerate(line) if c.isdigit()), line)
            result = self._gcode(line)
            if result is not None:  # None: aborted (soft limit), no reply
                self._last_error = result
                if (self._dwell is None and self._wait is None) or result:  # else `ok` when the wait ends
                    self._reply(result)

    def _reply(self, code: int) -> None:
        self.send_line("ok" if code == 0 else f"error:{code}")

    def send(self, data: bytes | str) -> None:
        """Out through the reply latency, in order (a line never overtakes the one before)."""
        low, high = self.reply_latency_s
        if high <= 0:
            super().send(data)
            return
        data = data.encode("ascii") if isinstance(data, str) else data
        due = time.monotonic() + self._random.uniform(low, high)
        if self._outbox:
            due = max(due, self._outbox[-1][0])
        self._outbox.append((due, data))

    # -- time ------------------------------------------------------------------------------------
    def tick(self) -> None:
        while self._outbox and self._outbox[0][0] <= time.monotonic():
            super().send(self._outbox.popleft()[1])
        now = self.clock()
        if self.planner.advance(now):
            self._finish_homing(now)
        if self._dwell is not None and self.planner.settled(now):
            if self._dwell == math.inf:
                self._dwell = now + self._dwell_s
            if now >= self._dwell:
                self._dwell = None
                self.send_line("ok")
        if self._wait is not None:
            self._poll_input(now)
        while self._dwell is None and self._wait is None and self._held_lines:
            self.on_line(self._held_lines.popleft())

    # -- G-code (gcode.c) ----------------------------------------------------------------------------
    def _gcode(self, line: str) -> int | None:
        parser = self.parser
        block = gcode.parse_block(line, motion_mode=parser.motion, has_feed=parser.feed is not None)
        if isinstance(block, int):
            return block
        if parser.apply(block):
            self.reports.force_wco = True
        command, axes = block.non_modal, block.axes
        if block.io is not None:
            return self._io(block)
        if command == 4.0:
            self._dwell, self._dwell_s = math.inf, float(block.p or 0.0)
        elif command in (28.0, 30.0):
            stored = parser.stored["G28" if command == 28.0 else "G30"]
            if axes and not self._queue_move(parser.target(axes, parser.absolute, False), None):
                return None
            end = tuple(stored[i] if (not axes or L in axes) else parser.position[i] for i, L in enumerate(LETTERS))
            if not self._queue_move(end, None):
                return None
        elif axes and command not in gcode.AXIS_COMMANDS:
            feed = parser.feed / 60.0 if parser.motion == 1 and parser.feed else None
            if not self._queue_move(parser.target(axes, parser.absolute, command == 53.0), feed):
                return None
        if block.program_end:
            parser.reset(parser.position)
            self.reports.force_wco = True
            self.send_line("[MSG:Pgm End]")
        return 0

    def _io(self, block: gcode.Block) -> int:
        """M62–M65 set a digital output (this emulator applies the synced ones at once too); M66 waits
        on an input: the reply comes when it is met or after Q seconds, and the next status report
        carries `|In:<value>` (-1 on timeout): report.c `report_realtime_status`, sys.var5399."""
        port = int(block.p or 0)
        if block.io in (62, 63, 64, 65):
            self.aux_outputs[port] = block.io in (62, 64)
            return 0
        self._wait, self._wait_start = (port, int(block.l or 0), self.clock() + float(block.q or 0.0)), self.aux_inputs[port]
        self._poll_input(self.clock(), reply=False)  # met at once: the line's own `ok` follows
        return 0

    def _poll_input(self, now: float, reply: bool = True) -> None:
        assert self._wait is not None
        port, mode, deadline = self._wait
        value = self.aux_inputs[port]
        met = {0: True, 1: value and not self._wait_start, 2: self._wait_start and not value,
               3: value, 4: not value}[mode]
        if met or now >= deadline:
            self.var5399 = int(value) if met else -1
            self._wait = None
            self._report_input = True
            if reply:
                self.send_line("ok")

    def _queue_move(self, target: tuple[float, ...], feed_per_s: float | None) -> bool:
        if not self._within_envelope(target):
            self._halt()  # machine_limits.c limits_soft_check: stop, alarm, wait for reset
            self._alarm, self._critical = 2, True
            self.send_line("ALARM:2")
            self.send_line("[MSG:Reset to continue]")
            return False
        self.planner.add(target, feed_per_s, False)
        self.parser.position = target
        return True

    # -- real-time -----------------------------------------------------------------------------------
    def _report_status(self) -> None:
        now = self.clock()
        state, sub = self._state(now)
        text = self.reports.status(state, sub, self.planner.position_at(now), self.parser.wco(), int(self.settings[10]),
                                   PLANNER_BLOCKS - len(self.planner.queue), self.planner.feed_at(now))
        if self._report_input and self.var5399 > -2:  # the M66 result, once
            text = text[:-1] + f"|In:{self.var5399}>"
            self._report_input = False
        if self._truncate_next:  # the line cut after the third axis, its end still arriving
            self._truncate_next = False
            head, position_field = text[1:].split("|")[:2]
            name, _, values = position_field.partition(":")
            text = f"<{head}|{name}:{','.join(values.split(',')[:3])}>"
        self.send_line(text)

    def _reset(self) -> None:
        moving = self.planner.current is not None or bool(self.planner.queue)
        homing = self.planner.homing is not None
        self._halt()
        self._critical = False
        if moving or homing:  # mc_reset: position lost, homed state gone (unless $22 bit 7)
            if not int(self.settings[22]) & 128:
                self._homed = False
            self._alarm = 6 if homing else 3
            self.send_line(f"ALARM:{self._alarm}")
        self.parser.reset(self.planner.position)
        self._last_error = 0
        self._dwell = self._wait = None
        self.var5399, self._report_input = -2, False
        self._held_lines.clear()
        self._boot()

    def _boot(self) -> None:
        self.reports.restart()
        self.send_line("")
        self.send_line(BANNER)
        if self._homing_required():
            if self._alarm != 11 and self._alarm is None:
                self._alarm = 11
                self.send_line("ALARM:11")
            self.send_line(HOMING_HINT)
        elif self._alarm is not None:
            self.send_line(UNLOCK_HINT)

    # -- helpers ------------------------------------------------------------------------------------
    def _state(self, now: float) -> tuple[str, int | None]:
        return ("Alarm", None) if self._alarm is not None else self.planner.state(now)

    def _halt(self) -> None:
        self.planner.halt(self.clock())
        self.parser.position = self.planner.position

    def _quantise(self, values: tuple[float, ...]) -> tuple[float, ...]:
        """Whole motor steps: lroundf(value × steps per unit) / steps per unit (planner.c)."""
        if self.ideal:
            return tuple(float(v) for v in values)
        result = []
        for i, value in enumerate(values):
            steps = float(self.settings[100 + i])
            count = int(math.floor(abs(value) * steps + 0.5))  # lroundf: half away from zero, whole steps
            result.append((count if value >= 0 else -count) / steps)
        return tuple(result)

    def _apply_settings(self) -> None:
        for i, axis in enumerate("xyzab"):
            old = self.limits[axis]
            self.limits[axis] = AxisLimits(float(self.settings[110 + i]) / 60.0, float(self.settings[120 + i]),
                                           old.minimum, old.maximum)
        self._limit_list = [self.limits[a] for a in "xyzab"]
        self.planner.limits = self._limit_list
