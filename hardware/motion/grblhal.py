"""Driver for grblHAL (and Grbl 1.1) motion controllers over a serial line.

One reader thread owns the port's input and routes every line by its prefix: status reports
update the machine state, `ok`/`error:N` answer the one command in flight, `ALARM:N` fails
whatever is pending (and stays in the state, code and meaning, until reset, `$X` or homing), `[…]` and `$N=` lines are collected as the command's output. A poller sends
the real-time `?` so moves are followed without blocking the caller: `move_to` returns a Status
at once that completes when the controller reports Idle at the target.
"""
from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import dataclass, replace

from ..errors import ControllerAlarm, ControllerError, HardwareError, PortClosed, ProtocolError, ReadTimeout
from ..status import Status
from ..transport import LineTransport
from . import grbl_protocol as proto
from .base import AXES, AxisSettings, MachineState, MotionController, Pose


@dataclass
class _PendingMotion:
    status: Status
    target: tuple[float, ...] | None  # None: finishes at the next Idle (jogs)
    sent_at: float
    seen_busy: bool = False


class GrblHalController(MotionController):
    def __init__(self, transport: LineTransport, *, required_axes: str = "XYZAB", poll_interval_s: float = 0.02,
                 command_timeout_s: float | None = None, position_tolerance: float = 0.002,
                 connect_timeout_s: float = 3.0):
        super().__init__()
        self.transport = transport
        self.name = transport.name
        self.required_axes = required_axes
        self.poll_interval_s = poll_interval_s
        self.command_timeout_s = command_timeout_s or transport.read_timeout_s
        self.position_tolerance = position_tolerance
        self.connect_timeout_s = connect_timeout_s
        self.axis_letters = ""
        self.version = ""
        self.settings: dict[int, str] = {}
        self.axis_settings: dict[str, AxisSettings] = {}
        self._state = MachineState("Idle")
        self._state_lock = threading.Lock()
        self._command_lock = threading.Lock()
        self._replies: queue.Queue[tuple[str, object]] = queue.Queue()
        self._collected: list[str] = []
        self._pending: list[_PendingMotion] = []
        self._fault: HardwareError | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_report = 0.0
        self._banner = threading.Event()
        self._needs_reset = False
        self._alarm: tuple[int, str] | None = None  # the last ALARM:N and its meaning, until cleared

    # -- lifecycle ---------------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the port, soft-reset, wait for the banner, read `$I` and `$$`."""
        self.transport.open()
        self._fault = None
        self._stop.clear()
        self._threads = [threading.Thread(target=self._read_loop, name=f"{self.name}-reader", daemon=True)]
        self._threads[0].start()
        self.reset()
        info = self.command("$I")
        self.axis_letters = proto.parse_axes(info)
        self.version = next((line[5:-1].rstrip(":") for line in info if line.startswith("[VER:")), "")
        missing = [a for a in self.required_axes if a not in self.axis_letters]
        if missing:
            self.disconnect()
            raise ProtocolError(f"{self.name}: controller reports axes {self.axis_letters!r}; "
                                f"this station needs {self.required_axes!r} (missing {''.join(missing)})")
        self.settings = proto.parse_settings(self.command("$$"))
        try:
            self.axis_settings = proto.axis_settings(self.settings, self.axis_letters)
        except KeyError as exc:
            self.disconnect()
            raise ProtocolError(f"{self.name}: {exc.args[0]}") from None
        poller = threading.Thread(target=self._poll_loop, name=f"{self.name}-poller", daemon=True)
        self._threads.append(poller)
        poller.start()

    def disconnect(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2)
        self._threads = []
        self.transport.close()
        self._fail_pending(PortClosed(f"{self.name}: disconnected"))

    @property
    def connected(self) -> bool:
        return self.transport.is_open and self._fault is None and not self._stop.is_set()

    # -- commands ----------------------------------------------------------------------------------
    def command(self, line: str, timeout_s: float | None = None) -> list[str]:
        """Send one line and wait for its `ok`; returns the lines it printed before. Raises
        ControllerError on `error:N`, ControllerAlarm on `ALARM:N`, ReadTimeout on silence."""
        with self._command_lock:
            self._raise_fault()
            self._drain_replies()
            if self._needs_reset and self._alarm is not None:
                # a critical alarm (limit, e-stop) makes the controller ignore every line until a reset:
                # waiting for a reply would only end in a timeout that hides the alarm (checked after the
                # drain: the reader sets the flag before it queues the alarm)
                code = self._alarm[0]
                raise ControllerAlarm(self.name, code, proto.alarm_meaning(code))
            self._collected = []
            self.transport.write_line(line)
            wait = self.command_timeout_s if timeout_s is None else timeout_s
            try:
                kind, value = self._replies.get(timeout=wait)
            except queue.Empty:
                self._raise_fault()
                raise ReadTimeout(f"{self.name}: no reply to {line!r} within {wait:.3g} s") from None
            if kind == "ok":
                return list(self._collected)
            if kind == "error":
                code = int(value)  # type: ignore[arg-type]
                raise ControllerError(self.name, code, proto.error_meaning(code), line)
            if kind == "alarm":
                code = int(value)  # type: ignore[arg-type]
                raise ControllerAlarm(self.name, code, proto.alarm_meaning(code))
            raise value  # type: ignore[misc]  # a fault from the reader

    def reset(self) -> None:
        """Soft reset (0x18) and wait for the welcome banner."""
        self._banner.clear()
        self.transport.write_bytes(proto.RESET)
        self._needs_reset = False
        if not self._banner.wait(self.connect_timeout_s):
            self._raise_fault()
            raise ReadTimeout(f"{self.name}: no grblHAL banner within {self.connect_timeout_s:.3g} s after reset "
                              f"(wrong port, baud rate or device?)")
        self._fail_pending(ControllerError(self.name, 0, "motion aborted by reset"))
        self._clear_alarm()
        time.sleep(0.02)  # the banner may be followed by an unlock hint
        self._drain_replies()

    def unlock(self) -> None:
        """Clear an alarm: a critical alarm (limit, soft limit, e-stop) needs a reset first, then `$X`."""
        if self._needs_reset:
            self.reset()  # a critical alarm ignores every line until reset
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
        target = tuple(float(getattr(pose, a)) for a in AXES)
        timeout = timeout_s if timeout_s is not None else self.estimate_move_s(target, feed_per_min) * 3 + 2.0
        description = f"{self.name}: move to " + " ".join(f"{a.upper()}{v:.3f}" for a, v in zip(AXES, target))
        status = Status(description, timeout_s=timeout)
        self._start_motion(proto.format_move(pose, self.axis_letters or "XYZAB", feed_per_min), status, target)
        return status

    def jog(self, axis: str, distance: float, feed_per_min: float, timeout_s: float | None = None) -> Status:
        line = proto.format_jog(axis, distance, feed_per_min)
        timeout = timeout_s if timeout_s is not None else abs(distance) / (feed_per_min / 60.0) * 3 + 2.0
        status = Status(f"{self.name}: jog {axis.upper()} {distance:+.3f}", timeout_s=timeout)
        self._start_motion(line, status, None)
        return status

    def jog_cancel(self) -> None:
        self.transport.write_bytes(proto.JOG_CANCEL)

    def feed_hold(self) -> None:
        self.transport.write_bytes(proto.FEED_HOLD)

    def resume(self) -> None:
        self.transport.write_bytes(proto.CYCLE_START)

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
        """Time the controller needs for a move from the last reported position (trapezoids)."""
        start = self.status().machine_pos
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
    def _start_motion(self, line: str, status: Status, target: tuple[float, ...] | None) -> None:
        pending = _PendingMotion(status, target, time.monotonic())
        with self._state_lock:
            self._pending.append(pending)
        status.add_callback(lambda s: self._forget(pending))
        try:
            self.command(line)
        except HardwareError as exc:
            status.set_exception(exc)

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
            self._raise_fault()
            time.sleep(self.poll_interval_s)

    def _check_motion(self, state: MachineState) -> None:
        with self._state_lock:
            pendings = list(self._pending)
        for pending in pendings:
            if state.received_at <= pending.sent_at:
                continue
            if state.state in ("Run", "Jog", "Home", "Hold"):
                pending.seen_busy = True
                continue
            if state.state != "Idle":
                continue
            if pending.target is None:
                if pending.seen_busy or state.received_at - pending.sent_at > 0.2:
                    pending.status.set_finished()
            elif all(abs(m - t) <= self.position_tolerance for m, t in zip(state.machine_pos, pending.target)):
                pending.status.set_finished()
            elif pending.seen_busy:
                pending.status.set_exception(HardwareError(
                    f"{self.name}: stopped at {state.machine_pos} short of target {pending.target}"))

    def _fail_pending(self, exc: HardwareError) -> None:
        with self._state_lock:
            pendings, self._pending = list(self._pending), []
        for pending in pendings:
            pending.status.set_exception(exc)

    # -- threads ----------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        while not self._stop.is_set():
            try:
                line = self.transport.read_line(timeout_s=0.1)
            except ReadTimeout:
                continue
            except (PortClosed, ProtocolError, OSError) as exc:
                if self._stop.is_set():
                    return
                self._set_fault(exc if isinstance(exc, HardwareError) else PortClosed(f"{self.name}: {exc}"))
                return
            try:
                self._route(line.strip())
            except ProtocolError as exc:
                self._set_fault(exc)
                return

    def _route(self, line: str) -> None:
        if not line:
            return
        if line == proto.OK:
            self._replies.put(("ok", None))
        elif match := proto.STATUS.match(line):
            try:
                state = proto.parse_status(line, self.status().work_offset)
            except ValueError as exc:
                raise ProtocolError(f"{self.name}: garbled status report {line!r}: {exc}") from None
            with self._state_lock:
                if self._alarm is not None:
                    state = replace(state, alarm=self._alarm[0], alarm_meaning=self._alarm[1])
                self._state = state
            self._last_report = state.received_at
            self._check_motion(state)
            self._notify(state)
        elif match := proto.ERROR.match(line):
            self._replies.put(("error", int(match.group("code"))))
        elif match := proto.ALARM.match(line):
            code = int(match.group("code"))
            alarm = ControllerAlarm(self.name, code, proto.alarm_meaning(code))
            self._needs_reset = self._needs_reset or code in proto.CRITICAL_ALARMS
            with self._state_lock:  # kept in the state, so an alarm raised while idle still has its reason
                self._alarm = (code, alarm.meaning)
                self._state = state = replace(self._state, alarm=code, alarm_meaning=alarm.meaning)
            self._replies.put(("alarm", code))
            self._fail_pending(alarm)
            self._notify(state)
        elif proto.BANNER.match(line):
            self._banner.set()
        elif line == proto.RESET_TO_CONTINUE:
            self._needs_reset = True
        elif line.startswith("[") or proto.SETTING.match(line):
            self._collected.append(line)
        else:
            raise ProtocolError(f"{self.name}: unexpected reply {line[:60]!r} (not grblHAL, or line noise)")

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
                self.transport.write_bytes(proto.STATUS_QUERY)
            except HardwareError as exc:
                self._set_fault(exc)
                return
            with self._state_lock:
                busy = bool(self._pending)
            silent_for = time.monotonic() - self._last_report if self._last_report else 0.0
            if busy and self._last_report and silent_for > self.command_timeout_s:
                self._fail_pending(ReadTimeout(f"{self.name}: no status report for {silent_for:.2g} s during motion"))

    def _set_fault(self, exc: HardwareError) -> None:
        self._fault = exc
        self._replies.put(("fault", exc))
        self._fail_pending(exc)

    def _raise_fault(self) -> None:
        if self._fault is not None:
            raise self._fault

    def _drain_replies(self) -> None:
        while True:
            try:
                kind, value = self._replies.get_nowait()
            except queue.Empty:
                return
            if kind == "fault":
                raise value  # type: ignore[misc]

