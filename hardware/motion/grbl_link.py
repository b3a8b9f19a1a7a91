"""The conversation with one grblHAL controller: one reader thread routes every line it receives,
and one command at a time is in flight, paired with its reply by order.

grblHAL answers every line it receives with exactly one `ok` or `error:N`, in order; nothing in a
reply names the line it answers. So a reply that comes after its command gave up (a slow `ok`, or
a reply lost to line noise) would answer the next command instead: the link counts the lines
still owed a reply and, before it sends another, waits for them and drops them. Should one never
come, the link is out of step with the controller and refuses commands until a soft reset (the
controller forgets its input on reset, so the count starts again from nought).

After `error:N` grblHAL (COMPATIBILITY_LEVEL 0) answers every following G-code line with the same
error until a `$` command succeeds or an empty line arrives (protocol.c, `protocol_main_loop`:
`gc_state.last_error`). A failed G-code line is therefore followed by an empty line at once, so
one bad line costs that line only.

Lines that are not grblHAL (line noise, a truncated report) are counted and dropped, never fatal:
if one was a reply, the command waiting for it times out and the link is out of step (above).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable

from ..errors import ControllerAlarm, ControllerError, HardwareError, PortClosed, ProtocolError, ReadTimeout
from ..transport import LineTransport
from . import grbl_protocol as proto

log = logging.getLogger(__name__)


class OutOfStep(ReadTimeout):
    """A reply the controller owes never came: the pairing of replies to commands is lost."""


class GrblLink:
    def __init__(self, transport: LineTransport, *, on_line: Callable[[str], bool],
                 on_alarm: Callable[[int], None], on_fault: Callable[[HardwareError], None], reply_timeout_s: float):
        self.transport = transport
        self.name = transport.name
        self.reply_timeout_s = reply_timeout_s
        self._on_line = on_line  # status reports and the banner; returns False for a line it does not know
        self._on_alarm = on_alarm
        self._on_fault = on_fault
        self._replies: queue.Queue[tuple[int, str, object]] = queue.Queue()  # (line number answered, kind, value)
        self._owed: list[tuple[int, str]] = []  # lines sent that have not had their reply yet, oldest first
        self._sent = 0
        self._owed_lock = threading.Lock()
        self._command_lock = threading.Lock()
        self._collected: list[str] = []
        self._fault: HardwareError | None = None
        self._resets = 0  # soft resets so far: a line sent before the latest one is answered by nobody
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self.critical_alarm: int | None = None  # a limit or e-stop alarm: the controller ignores lines until reset
        self.lost_step = False  # a reply never came: commands are refused until a reset
        self.dropped_lines = 0  # lines that were not grblHAL (noise), since open
        self.last_dropped = ""

    # -- lifecycle ---------------------------------------------------------------------------------
    def open(self) -> None:
        """Open the port and start the reader, with nothing owed and no fault from an earlier link."""
        self.transport.open()
        self._fault = None
        self._stop.clear()
        self.after_reset()
        self.dropped_lines = 0
        self._reader = threading.Thread(target=self._read_loop, name=f"{self.name}-reader", daemon=True)
        self._reader.start()

    def close(self) -> None:
        self._stop.set()
        self._resets += 1
        self._replies.put((0, "reset", self._resets))  # a command still waiting gets no reply now
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=2)
        self._reader = None
        self.transport.close()

    @property
    def alive(self) -> bool:
        return self.transport.is_open and self._fault is None and not self._stop.is_set()

    @property
    def in_step(self) -> bool:
        with self._owed_lock:
            return not self._owed

    def after_reset(self) -> None:
        """The controller was reset: it answers nothing it received before; replies start afresh."""
        self._forget_owed()
        self.critical_alarm = None
        self.lost_step = False
        self._resets += 1
        self._replies.put((0, "reset", self._resets))  # wakes a command still waiting (a `G4 P0` during a move)

    def raise_fault(self) -> None:
        if self._fault is not None:
            raise self._fault

    # -- commands ----------------------------------------------------------------------------------
    def command(self, line: str, timeout_s: float | None = None) -> list[str]:
        """Send one line and wait for its `ok`; returns the lines it printed before. Raises
        ControllerError on `error:N` (after clearing grblHAL's sticky error), ControllerAlarm when a
        critical alarm locks the controller, ReadTimeout on silence, OutOfStep when an earlier reply
        never came."""
        with self._command_lock:
            self.raise_fault()
            self._settle_owed()
            if self.critical_alarm is not None:
                # the controller ignores every line until a reset: waiting would only end in a timeout
                raise ControllerAlarm(self.name, self.critical_alarm, proto.alarm_meaning(self.critical_alarm))
            kind, value = self._exchange(line, self.reply_timeout_s if timeout_s is None else timeout_s)
            if kind == "ok":
                return list(self._collected)
            code = int(value)  # type: ignore[arg-type]
            if not line.startswith("$"):
                self._clear_sticky_error()
            raise ControllerError(self.name, code, proto.error_meaning(code), line)

    def write_realtime(self, data: bytes) -> None:
        self.transport.write_bytes(data)

    def _exchange(self, line: str, timeout_s: float) -> tuple[str, object]:
        self._collected = []
        resets = self._resets
        with self._owed_lock:
            self._sent += 1
            number = self._sent
            self._owed.append((number, line))
        self.transport.write_line(line)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                answers, kind, value = self._replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.raise_fault()
                raise ReadTimeout(f"{self.name}: no reply to {line!r} within {timeout_s:.3g} s") from None
            if kind in ("fault", "alarm"):
                raise value  # type: ignore[misc]
            if kind == "reset":
                if value > resets:  # type: ignore[operator]
                    raise ControllerError(self.name, 0, "no reply: the controller was reset or the port closed first", line)
                continue
            if answers == number:
                return kind, value
            log.warning("%s: late reply %s%s dropped", self.name, kind, f":{value}" if value is not None else "")

    def _clear_sticky_error(self) -> None:
        """An empty line resets grblHAL's last error (protocol.c) and is answered `ok`."""
        try:
            self._exchange("", self.reply_timeout_s)
        except ControllerError:
            pass  # the empty line itself cannot fail; anything else says more than this would

    def _settle_owed(self) -> None:
        """Wait for the replies still owed to earlier lines (they are dropped as they come)."""
        deadline = time.monotonic() + self.reply_timeout_s
        while True:
            with self._owed_lock:
                if not self._owed:
                    return
                oldest = self._owed[0][1]
            try:
                answers, kind, value = self._replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.lost_step = True
                raise OutOfStep(f"{self.name}: the reply to the earlier line {oldest!r} never came; "
                                f"replies can no longer be paired with commands (Reset resynchronises)") from None
            if kind in ("fault", "alarm"):
                raise value  # type: ignore[misc]
            if kind == "reset":
                continue
            log.warning("%s: late reply %s%s to %r dropped", self.name, kind,
                        f":{value}" if value is not None else "", oldest)

    def _forget_owed(self) -> None:
        with self._owed_lock:
            self._owed.clear()
        while True:
            try:
                _, kind, value = self._replies.get_nowait()
            except queue.Empty:
                return
            if kind == "fault":
                self._fault = value  # type: ignore[assignment]

    # -- reader ------------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        while not self._stop.is_set():
            try:
                line = self.transport.read_line(timeout_s=0.1)
            except ReadTimeout:
                continue
            except ProtocolError as exc:  # a run of bytes without a line end: noise, the buffer was dropped
                self.drop(str(exc))
                continue
            except (PortClosed, OSError) as exc:
                if not self._stop.is_set():
                    self._set_fault(exc if isinstance(exc, HardwareError) else PortClosed(f"{self.name}: {exc}"))
                return
            self._route(line.strip())

    def _route(self, line: str) -> None:
        if not line:
            return
        if line == proto.OK:
            self._reply("ok", None)
        elif match := proto.ERROR.match(line):
            self._reply("error", int(match.group("code")))
        elif match := proto.ALARM.match(line):
            code = int(match.group("code"))
            if code in proto.CRITICAL_ALARMS:
                self.critical_alarm = code
            with self._owed_lock:  # an alarm ends the line in flight: grblHAL answers it no further
                owed, self._owed = bool(self._owed), []
            if owed:
                self._replies.put((0, "alarm", ControllerAlarm(self.name, code, proto.alarm_meaning(code))))
            self._on_alarm(code)
        elif line == proto.RESET_TO_CONTINUE:
            if self.critical_alarm is None:
                self.critical_alarm = 2
        elif self._on_line(line):
            pass
        elif line.startswith("[") or proto.SETTING.match(line):
            self._collected.append(line)
        else:
            self.drop(f"unexpected line {line[:60]!r}")

    def _reply(self, kind: str, value: object) -> None:
        with self._owed_lock:
            if not self._owed:
                self.drop(f"{kind}{':' + str(value) if value is not None else ''} with no command waiting")
                return
            number, _ = self._owed.pop(0)
        self._replies.put((number, kind, value))

    def drop(self, what: str) -> None:
        """Count and log a line that is not grblHAL's (noise, a garbled report); it changes nothing."""
        self.dropped_lines += 1
        self.last_dropped = what
        log.warning("%s: dropped %s (line noise?)", self.name, what)

    def _set_fault(self, exc: HardwareError) -> None:
        self._fault = exc
        self._replies.put((0, "fault", exc))
        self._on_fault(exc)
