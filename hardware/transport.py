"""Line-oriented serial link over pyserial: timeouts, a bounded receive buffer, reconnect.

Accepts anything pyserial's `serial_for_url` does: a device path (`/dev/ttyUSB0`, a pty
slave), `socket://host:port` for a controller behind a serial server, `rfc2217://host:port`.
The transport knows nothing of any protocol; drivers build on `write_line` / `read_line`.
"""
from __future__ import annotations

import threading
import time

import serial

from .errors import PortClosed, PortOpenError, ProtocolError, ReadTimeout

# What pyserial raises when the device vanishes, or when the port is closed by another thread mid-call.
try:
    import termios
    _TERMIOS_ERRORS: tuple[type[BaseException], ...] = (termios.error,)
except ImportError:  # Windows: pyserial raises SerialException there
    _TERMIOS_ERRORS = ()
_GONE = (serial.SerialException, OSError, TypeError, AttributeError, ValueError, *_TERMIOS_ERRORS)


class LineTransport:
    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        baudrate: int = 115200,
        read_timeout_s: float = 1.0,
        write_timeout_s: float = 1.0,
        eol: bytes = b"\n",
        max_line_bytes: int = 1024,
        encoding: str = "ascii",
    ):
        if read_timeout_s <= 0 or write_timeout_s <= 0:
            raise ValueError(f"{name or url}: timeouts must be positive")
        self.url = url
        self.name = name or url
        self.baudrate = baudrate
        self.read_timeout_s = read_timeout_s
        self.write_timeout_s = write_timeout_s
        self.eol = eol
        self.max_line_bytes = max_line_bytes
        self.encoding = encoding
        self._port: serial.SerialBase | None = None
        self._buffer = bytearray()
        self._write_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> None:
        if self._port is not None:
            return
        try:
            self._port = serial.serial_for_url(
                self.url,
                baudrate=self.baudrate,
                timeout=self.read_timeout_s,
                write_timeout=self.write_timeout_s,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PortOpenError(f"{self.name}: cannot open {self.url!r}: {exc}") from exc
        self._buffer.clear()

    def close(self) -> None:
        port, self._port = self._port, None
        self._buffer.clear()
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass

    def reconnect(self, attempts: int = 3, delay_s: float = 0.5) -> None:
        """Close and reopen, retrying; raises the last PortOpenError if every attempt fails."""
        self.close()
        last: PortOpenError | None = None
        for attempt in range(attempts):
            try:
                self.open()
                return
            except PortOpenError as exc:
                last = exc
                if attempt + 1 < attempts:
                    time.sleep(delay_s)
        assert last is not None
        raise last

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def __enter__(self) -> "LineTransport":
        self.open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- I/O ---------------------------------------------------------------------------------
    def write_bytes(self, data: bytes) -> None:
        """Send raw bytes (real-time commands such as `?` or 0x18 go out without a line end)."""
        port = self._require_open()
        with self._write_lock:
            try:
                port.write(data)
                port.flush()
            except serial.SerialTimeoutException as exc:
                raise ReadTimeout(f"{self.name}: write timed out after {self.write_timeout_s} s") from exc
            except _GONE as exc:  # closed under us by another thread counts as gone too
                self.close()
                raise PortClosed(f"{self.name}: port {self.url!r} went away while writing: {exc}") from exc

    def write_line(self, text: str) -> None:
        self.write_bytes(text.encode(self.encoding) + self.eol)

    def read_line(self, timeout_s: float | None = None) -> str:
        """Return the next line without its end, stripped of `\\r`. Raises ReadTimeout, PortClosed,
        or ProtocolError for a line longer than `max_line_bytes` (the buffer is then dropped)."""
        deadline = time.monotonic() + (self.read_timeout_s if timeout_s is None else timeout_s)
        while True:
            line = self._pop_line()
            if line is not None:
                return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                partial = f" (partial: {bytes(self._buffer[:40])!r})" if self._buffer else ""
                waited = self.read_timeout_s if timeout_s is None else timeout_s
                raise ReadTimeout(f"{self.name}: no reply within {waited:.3g} s{partial}")
            self._fill(remaining)

    def read_available(self) -> list[str]:
        """Every complete line already received, without waiting."""
        port = self._require_open()
        try:
            waiting = port.in_waiting
            if waiting:
                self._append(port.read(waiting))
        except _GONE as exc:
            self.close()
            raise PortClosed(f"{self.name}: port {self.url!r} went away: {exc}") from exc
        lines = []
        while (line := self._pop_line()) is not None:
            lines.append(line)
        return lines

    def discard_input(self) -> None:
        self._buffer.clear()
        port = self._require_open()
        try:
            port.reset_input_buffer()
        except _GONE as exc:
            self.close()
            raise PortClosed(f"{self.name}: port {self.url!r} went away: {exc}") from exc

    # -- internals --------------------------------------------------------------------------
    def _require_open(self) -> serial.SerialBase:
        if self._port is None:
            raise PortClosed(f"{self.name}: port {self.url!r} is not open")
        return self._port

    def _fill(self, timeout_s: float) -> None:
        port = self._require_open()
        try:
            port.timeout = min(timeout_s, self.read_timeout_s, 0.1)
            data = port.read(1)
            if data:
                waiting = port.in_waiting
                if waiting:
                    data += port.read(waiting)
        except _GONE as exc:
            self.close()
            raise PortClosed(f"{self.name}: port {self.url!r} went away: {exc}") from exc
        self._append(data)

    def _append(self, data: bytes) -> None:
        self._buffer += data
        if self.eol not in self._buffer and len(self._buffer) > self.max_line_bytes:
            size = len(self._buffer)
            self._buffer.clear()
            raise ProtocolError(f"{self.name}: {size} bytes without a line end (garbage on the line?)")

    def _pop_line(self) -> str | None:
        index = self._buffer.find(self.eol)
        if index < 0:
            return None
        raw = bytes(self._buffer[:index]).rstrip(b"\r")
        del self._buffer[: index + len(self.eol)]
        if len(raw) > self.max_line_bytes:
            raise ProtocolError(f"{self.name}: line of {len(raw)} bytes exceeds {self.max_line_bytes}")
        return raw.decode(self.encoding, errors="replace")
