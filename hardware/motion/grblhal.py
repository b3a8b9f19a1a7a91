"""Driver for grblHAL (and Grbl 1.1) motion controllers over a serial line.

The conversation itself (one command in flight, replies paired by order, sticky errors cleared,
noise dropped) is `GrblLink`'s. This class follows the machine: a poller sends the real-time `?`,
every status report updates the state, and `move_to` returns a Status at once that completes when
the controller reports Idle at the target.

**Coordinates.** The driver moves in machine coordinates (`G53 G0 …`) and checks arrival on MPos.
The station's poses are in the stage frame; the station config places that frame in the
controller's machine frame (`origin`: the MPos of the stage frame's zero: grblHAL's machine frame
lies on one side of zero from the home switches, machine_limits.c `limits_set_work_envelope`).
Work offsets (G54–G59, G92, tool length) live in the controller, where another sender, a macro
or a `G10` typed at a console can change them and they persist; a pose sent in work coordinates
would then go somewhere else without a word. So the driver never moves in them: it reads them
(`$G`, `$#`, the WCO field) only to turn WPos reports (`$10=0`) back into MPos.

**Knowing when a move ends.** After a move the driver sends `G4 P0`: grblHAL answers it only once
the planner is empty and the cycle has ended (motion_control.c `mc_dwell` calls protocol.c
`protocol_buffer_synchronize`), so its `ok` says the move is over without waiting for the next
status poll; one `?` then reads where the stage stopped, and that report finishes the move. An alarm
during the move ends the dwell's wait at once (the link raises it), a soft reset too. The poller
still runs: it keeps the state current and notices a silent controller.

**Arrival.** Positions are whole motor steps (planner.c rounds each target to steps with the
`$100`–`$104` steps per unit) and reports print 3 decimals (report.c), so an axis has arrived
when it is within half a step plus the rounding of the value sent and the value reported.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, replace

from ..errors import ControllerAlarm, ControllerError, HardwareError, PortClosed, ProtocolError, ReadTimeout
from ..status import Status
from ..transport import LineTransport
from . import grbl_protocol as proto
from .base import AXES, AxisSettings, MachineState, MotionController, Pose
from .grbl_link import GrblLink

log = logging.getLogger(__name__)
# errors a line garbled on its way can cause; an absolute G53 move is sent once more after one
GARBLED_LINE_ERRORS = frozenset({1, 2, 11, 20, 21, 23, 24, 25, 26, 27, 28, 31, 33, 36})


@dataclass
class _PendingMotion:
    status: Status
    target: tuple[float, ...] | None  # machine coordinates; None: finishes at the next Idle (jogs)
    sent_at: float
    seen_busy: bool = False
    synced_at: float | None = None  # when the controller said its planner was empty (`G4 P0` answered)


class GrblHalController(MotionController):
    def __init__(self, transport: LineTransport, *, required_axes: str = "XYZAB", poll_interval_s: float = 0.02,
                 reply_timeout_s: float | None = None, origin: tuple[float, ...] = (0.0,) * 5,
                 connect_timeout_s: float = 3.0, sync_moves: bool = True):
        super().__init__()
        self.sync_moves = sync_moves  # False: learn that a move ended from the status polls alone
        self.transport = transport
        self.name = transport.name
        self.required_axes = required_axes
        self.poll_interval_s = poll_interval_s
        self.reply_timeout_s = reply_timeout_s or transport.read_timeout_s
        self.origin = tuple(float(v) for v in origin)
        if len(self.origin) != len(AXES) or not all(math.isfinite(v) for v in self.origin):
            raise ValueError(f"{self.name}: origin must be {len(AXES)} finite numbers, got {origin!r}")
        self.connect_timeout_s = connect_timeout_s
        self.link = GrblLink(transport, on_line=self._on_line, on_alarm=self._on_alarm, on_fault=self._fail_pending,
                             reply_timeout_s=self.reply_timeout_s)
        self.axis_letters = ""
        self.version = ""
        self.settings: dict[int, str] = {}
        self.axis_settings: dict[str, AxisSettings] = {}
        self.tolerance: tuple[float, ...] = (0.002,) * len(AXES)  # per axis, from the steps per unit
        self.work_offsets: dict[str, tuple[float, ...]] = {}  # `$#`: G54…G59, G28, G30, G92
        self._state = MachineState("Idle", origin=self.origin)
        self._state_lock = threading.Lock()
        self._pending: list[_PendingMotion] = []
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._last_report = 0.0
        self._banner = threading.Event()
        self._alarm: tuple[int, str] | None = None  # the last ALARM:N and its meaning, until cleared

    # -- lifecycle ---------------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the port, soft-reset, wait for the banner, read `$I`, `$$`, `$G` and `$#`. Connecting
        again (after a fault) starts from nothing: new reader and poller, nothing owed or queued."""
        self.disconnect()
        self.link.open()
        self._stop.clear()
        try:
            self.reset()
            info = self.command("$I")
            self.axis_letters = proto.parse_axes(info)
            self.version = next((line[5:-1].rstrip(":") for line in info if line.startswith("[VER:")), "")
            missing = [a for a in self.required_axes if a not in self.axis_letters]
            if missing:
                raise ProtocolError(f"{self.name}: controller reports axes {self.axis_letters!r}; "
                                    f"this station needs {self.required_axes!r} (missing {''.join(missing)})")
            self.settings = proto.parse_settings(self.command("$$"))
            if self.settings.get(proto.REPORT_INCHES, "0") not in ("0", "0.0"):
                raise ProtocolError(f"{self.name}: the controller reports inches (${proto.REPORT_INCHES}="
                                    f"{self.settings[proto.REPORT_INCHES]}); set ${proto.REPORT_INCHES}=0")
            try:
                self.axis_settings = proto.axis_settings(self.settings, self.axis_letters)
            except KeyError as exc:
                raise ProtocolError(f"{self.name}: {exc.args[0]}") from None
            self.tolerance = tuple(proto.arrival_tolerance(self.axis_settings[a].steps_per_unit) for a in AXES)
            self.read_offsets()
        except BaseException:
            self.disconnect()
            raise
        self._poller = threading.Thread(target=self._poll_loop, name=f"{self.name}-poller", daemon=True)
        self._poller.start()

    def read_offsets(self) -> tuple[float, ...]:
        """Read the work offsets (`$#`) and the active system (`$G`); returns the WCO they make."""
        self.work_offsets = proto.parse_offsets(self.command("$#"))
        system = proto.parse_modal(self.command("$G")).get("wcs", "G54")
        wco = proto.work_coordinate_offset(self.work_offsets, system)
        with self._state_lock:
            self._state = replace(self._state, work_offset=wco)
        return wco

    def disconnect(self) -> None:
        self._stop.set()
        if self._poller is not None and self._poller is not threading.current_thread():
            self._poller.join(timeout=2)
        self._poller = None
        self.link.close()
        self._fail_pending(PortClosed(f"{self.name}: disconnected"))

    @property
    def connected(self) -> bool:
        """Open, its reader alive, and replies still paired with commands (else Reset first)."""
        return self.link.alive and not self._stop.is_set() and not self.link.lost_step

    # -- commands ----------------------------------------------------------------------------------
    def command(self, line: str, timeout_s: float | None = None) -> list[str]:
        """Send one line and wait for its `ok`; returns the lines it printed before (see GrblLink)."""
        return self.link.command(line, timeout_s)

    def reset(self) -> None:
        """Soft reset (0x18) and wait for the welcome banner. An alarm the reset itself causes
        (ALARM:3, reset while moving) is kept; the one from before is cleared."""
        self._clear_alarm()
        self._banner.clear()
        self.link.write_realtime(proto.RESET)
        if not self._banner.wait(self.connect_timeout_s):
            self.link.raise_fault()
            raise ReadTimeout(f"{self.name}: no grblHAL banner within {self.connect_timeout_s:.3g} s after reset "
                              f"(wrong port, baud rate or device?)")
        self._fail_pending(ControllerError(self.name, 0, "motion aborted by reset"))
        time.sleep(0.02)  # the banner may be followed by an unlock hint
        self.link.after_reset()

    def unlock(self) -> None:
        """Clear an alarm: a critical alarm (limit, soft limit, e-stop) needs a reset first, then `$X`.
        grblHAL answers `$X` with error 46 while the machine must be homed first."""
        if self.link.critical_alarm is not None or not self.link.in_step:
            self.reset()
        self.command("$X")
        self._clear_alarm()

    def home(self, timeout_s: float | None = None) -> Status:
        timeout = timeout_s or 60.0
        status = Status(f"{self.name}: homing", timeout_s=timeout)

        def run() -> None:
            try:
                self.command("$H", timeout_s=timeout)
                self._clear_alarm()  # homing clears the alarm lock
                self._wait_reported(lambda s: s.state == "Idle", status)
            except HardwareError as exc:
                status.set_exception(exc)

        threading.Thread(target=run, name=f"{self.name}-home", daemon=True).start()
        return status

    def move_to(self, pose: Pose, feed_per_min: float | None = None, timeout_s: float | None = None) -> Status:
        """Move to a stage-frame pose in machine coordinates (G53); see the module docstring."""
        values = tuple(float(getattr(pose, a)) for a in AXES)
        bad = [f"{a}={v}" for a, v in zip(AXES, values) if not math.isfinite(v)]
        if bad:
            raise ValueError(f"{self.name}: move target must be finite numbers, got {', '.join(bad)}")
        target = tuple(v + o for v, o in zip(values, self.origin))
        estimate = self.estimate_move_s(values, feed_per_min)
        timeout = timeout_s if timeout_s is not None else estimate * 1.5 + 2 * self.reply_timeout_s + 1.0
        description = f"{self.name}: move to " + " ".join(f"{a.upper()}{v:.3f}" for a, v in zip(AXES, values))
        status = Status(description, timeout_s=timeout)
        line = proto.format_machine_move(target, self.axis_letters or "XYZAB", feed_per_min)
        pending = self._start_motion(line, status, target, retry=True)
        if self.sync_moves and not status.done:
            threading.Thread(target=self._sync, args=(pending, timeout), name=f"{self.name}-sync", daemon=True).start()
        return status

    def _sync(self, pending: _PendingMotion, timeout_s: float) -> None:
        """`G4 P0` answers when the planner is empty (module docstring); then a `?` report finishes the move."""
        try:
            self.command(proto.SYNC, timeout_s=timeout_s + self.reply_timeout_s)
        except HardwareError as exc:
            pending.status.set_exception(exc)  # no effect when an alarm or a reset has ended the move already
            return
        pending.synced_at = time.monotonic()
        try:
            self.link.write_realtime(proto.STATUS_QUERY)
        except HardwareError as exc:
            pending.status.set_exception(exc)

    def jog(self, axis: str, distance: float, feed_per_min: float, timeout_s: float | None = None) -> Status:
        if not math.isfinite(distance):
            raise ValueError(f"{self.name}: jog distance must be a finite number, got {distance}")
        line = proto.format_jog(axis, distance, feed_per_min)
        timeout = timeout_s if timeout_s is not None else abs(distance) / (feed_per_min / 60.0) * 3 + 2.0
        status = Status(f"{self.name}: jog {axis.upper()} {distance:+.3f}", timeout_s=timeout)
        self._start_motion(line, status, None, retry=False)
        return status

    # -- auxiliary I/O (lamps, part present) -------------------------------------------------------------
    def set_output(self, port: int, on: bool) -> None:
        """Switch digital output `port` now (`M64`/`M65 P<port>`): signal lamps, an ejector."""
        self.command(f"M{64 if on else 65} P{int(port)}")

    def wait_input(self, port: int, *, mode: str = "high", timeout_s: float = 1.0) -> int:
        """`M66 P<port> L<mode> Q<timeout>`: wait until input `port` is high/low/rises/falls (or read it
        at once with mode "now"); returns its value, or -1 when the wait timed out. grblHAL answers
        `ok` either way and puts the result in the next status report (`|In:`, report.c)."""
        modes = {"now": 0, "rise": 1, "fall": 2, "high": 3, "low": 4}
        if mode not in modes:
            raise ValueError(f"{self.name}: input wait mode must be one of {', '.join(modes)}, got {mode!r}")
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"{self.name}: input wait timeout must be a positive number of seconds, got {timeout_s}")
        asked = time.monotonic()
        self.command(f"M66 P{int(port)} L{modes[mode]} Q{timeout_s:g}", timeout_s=timeout_s + self.reply_timeout_s)
        deadline = time.monotonic() + self.reply_timeout_s
        while time.monotonic() < deadline:
            state = self.status()
            if state.received_at > asked and "In" in state.extra:
                return int(state.extra["In"])
            self.link.raise_fault()
            time.sleep(self.poll_interval_s)
        raise ReadTimeout(f"{self.name}: no status report with the result of M66 P{int(port)}")

    def jog_cancel(self) -> None:
        self.link.write_realtime(proto.JOG_CANCEL)

    def feed_hold(self) -> None:
        self.link.write_realtime(proto.FEED_HOLD)

    def resume(self) -> None:
        self.link.write_realtime(proto.CYCLE_START)

    def stop(self) -> None:
        """Controlled stop now: feed hold, then reset to flush the planner (position is kept)."""
        self.feed_hold()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and not (self.status().state == "Hold" and self.status().substate == 0):
            time.sleep(self.poll_interval_s)
        self.reset()

    def status(self) -> MachineState:
        with self._state_lock:
            return self._state

    def estimate_move_s(self, target: tuple[float, ...], feed_per_min: float | None = None) -> float:
        """Time the controller needs from the last reported pose to a stage-frame target (trapezoids)."""
        start = self.status().pose.as_tuple()
        worst = 0.0
        for axis, a, b in zip(AXES, start, target):
            settings = self.axis_settings.get(axis)
            if settings is None:
                continue
            rate = settings.max_rate_per_min / 60.0
            if feed_per_min is not None:
                rate = min(rate, feed_per_min / 60.0)
            distance, accel = abs(b - a), settings.acceleration_per_s2
            worst = max(worst, distance / rate + rate / accel if distance >= rate * rate / accel
                        else 2 * math.sqrt(distance / accel))
        return worst

    # -- motion tracking -----------------------------------------------------------------------------
    def _start_motion(self, line: str, status: Status, target: tuple[float, ...] | None, *, retry: bool) -> _PendingMotion:
        pending = _PendingMotion(status, target, time.monotonic())
        with self._state_lock:
            self._pending.append(pending)
        status.add_callback(lambda s: self._forget(pending))
        try:
            try:
                self.command(line)
            except ControllerError as exc:
                if not (retry and exc.code in GARBLED_LINE_ERRORS):
                    raise
                log.warning("%s; sending the absolute move once more (garbled on the line?)", exc)
                self.command(line)
        except HardwareError as exc:
            status.set_exception(exc)
        return pending

    def _forget(self, pending: _PendingMotion) -> None:
        with self._state_lock:
            if pending in self._pending:
                self._pending.remove(pending)

    def _wait_reported(self, predicate, status: Status) -> None:
        asked = time.monotonic()
        while not status.done:
            state = self.status()
            if state.received_at > asked and predicate(state):
                status.set_finished()
                return
            self.link.raise_fault()
            time.sleep(self.poll_interval_s)

    def _check_motion(self, state: MachineState) -> None:
        with self._state_lock:
            pendings = list(self._pending)
        for pending in pendings:
            if state.received_at <= pending.sent_at:
                continue
            synced = pending.synced_at is not None and state.received_at > pending.synced_at
            if state.state in ("Run", "Jog", "Home", "Hold"):
                pending.seen_busy = True
                continue
            if state.state != "Idle":
                continue
            if synced:
                pending.seen_busy = True  # the planner was empty before this report: the move has ended
            if pending.target is None:
                if pending.seen_busy or state.received_at - pending.sent_at > 0.2:
                    pending.status.set_finished()
            elif all(abs(m - t) <= tol for m, t, tol in zip(state.machine_pos, pending.target, self.tolerance)):
                pending.status.set_finished()
            elif pending.seen_busy:
                pending.status.set_exception(HardwareError(
                    f"{self.name}: stopped at MPos {_shown(state.machine_pos)} short of target {_shown(pending.target)}"))

    def _fail_pending(self, exc: HardwareError) -> None:
        with self._state_lock:
            pendings, self._pending = list(self._pending), []
        for pending in pendings:
            pending.status.set_exception(exc)

    # -- lines and alarms from the link's reader, and the poller -----------------------------------------
    def _on_line(self, line: str) -> bool:
        """Status reports and the banner; False for a line that is neither (the link handles it)."""
        if proto.STATUS.match(line):
            previous = self.status()
            try:
                state = proto.parse_status(line, previous.work_offset, axes=len(self.axis_letters or AXES))
            except ValueError as exc:
                self.link.drop(f"status report {line[:80]!r}: {exc}")
                return True
            with self._state_lock:
                state = replace(state, origin=self.origin)
                if self._alarm is not None:
                    state = replace(state, alarm=self._alarm[0], alarm_meaning=self._alarm[1])
                self._state = state
            self._last_report = state.received_at
            self._check_motion(state)
            self._notify(state)
            return True
        if proto.BANNER.match(line):
            self._banner.set()
            return True
        return False

    def _on_alarm(self, code: int) -> None:
        alarm = ControllerAlarm(self.name, code, proto.alarm_meaning(code))
        with self._state_lock:  # kept in the state, so an alarm raised while idle still has its reason
            self._alarm = (code, alarm.meaning)
            self._state = state = replace(self._state, alarm=code, alarm_meaning=alarm.meaning)
        self._fail_pending(alarm)
        self._notify(state)

    def _clear_alarm(self) -> None:
        with self._state_lock:
            if self._alarm is None:
                return
            self._alarm = None
            self._state = state = replace(self._state, alarm=None, alarm_meaning="")
        self._notify(state)

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.link.write_realtime(proto.STATUS_QUERY)
            except HardwareError as exc:
                self._fail_pending(exc)
                return
            with self._state_lock:
                since = max((p.sent_at for p in self._pending), default=None)
            if since is None or not self._last_report:
                continue
            silent_for = time.monotonic() - max(self._last_report, since)  # silence since this motion began
            if silent_for > self.reply_timeout_s:
                self._fail_pending(ReadTimeout(f"{self.name}: no status report for {silent_for:.2g} s during motion"))


def _shown(position: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in position) + ")"
