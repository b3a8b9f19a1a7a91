"""A fixed-mount code reader in serial command mode, Keyence SR style (SR-750/SR-1000 family).

The host sends the timing-ON command `LON` (CR-terminated); the reader answers `OK,LON`, reads, then
sends the read data as one line, or its read-error string (`ERROR` by default) when no code could be
read within its reading time. `LOFF` stops a read in progress (`OK,LOFF`; a read error follows when
nothing was read). A command it cannot take is answered `ER,<command>,<code>`. The header/terminator
is "none / CR" (the reader answers with the terminator of the command). The strings are settings of
the reader, so they are parameters here.

Every fault is a HardwareError naming the port: no read (`NoRead`), an error reply, no reply in time.
"""
from __future__ import annotations

from ..errors import HardwareError, ProtocolError, ReadTimeout
from ..transport import LineTransport


class NoRead(HardwareError):
    """The reader was triggered and found no readable code."""


class CodeReader:
    """One reader on one port. `read()` triggers it once and returns the decoded text."""

    def __init__(self, transport: LineTransport, *, timeout_s: float = 1.0, trigger_on: str = "LON",
                 trigger_off: str = "LOFF", read_error: str = "ERROR"):
        self.transport = transport
        self.timeout_s = timeout_s
        self.trigger_on, self.trigger_off, self.read_error = trigger_on, trigger_off, read_error

    @classmethod
    def open_url(cls, url: str, *, timeout_s: float = 1.0, baudrate: int = 115200, **options) -> "CodeReader":
        reader = cls(LineTransport(url, name=f"code reader {url}", baudrate=baudrate, eol=b"\r",
                                   read_timeout_s=max(timeout_s, 0.05)), timeout_s=timeout_s, **options)
        reader.open()
        return reader

    @property
    def name(self) -> str:
        return self.transport.name

    def open(self) -> None:
        self.transport.open()

    def close(self) -> None:
        self.transport.close()

    def read(self, timeout_s: float | None = None) -> str:
        """Trigger one read; the decoded text. NoRead, ProtocolError (an `ER,…` or unexpected reply) or
        ReadTimeout (the reader stayed silent: it is then told to stop, so a late result cannot be taken
        for the next part's)."""
        wait = self.timeout_s if timeout_s is None else timeout_s
        self.transport.discard_input()  # a stale line must never be taken for this part's serial
        self.transport.write_line(self.trigger_on)
        ack = self._reply(wait, "acknowledge")
        leftovers = (f"OK,{self.trigger_off}", self.read_error)  # the tail of a read stopped earlier
        for _ in range(len(leftovers)):
            if ack not in leftovers:
                break
            ack = self._reply(wait, "acknowledge")
        if ack != f"OK,{self.trigger_on}":
            raise ProtocolError(f"{self.name}: {self.trigger_on} answered {ack!r}"
                                + (" (command refused)" if ack.startswith("ER,") else ""))
        data = self._reply(wait, "read result")
        if data == self.read_error:
            raise NoRead(f"{self.name}: no code read ({data!r})")
        if not data.strip():
            raise ProtocolError(f"{self.name}: empty read result")
        return data

    def _reply(self, wait: float, what: str) -> str:
        try:
            return self.transport.read_line(wait)
        except ReadTimeout as exc:
            self._stop_reading()
            raise ReadTimeout(f"{self.name}: no {what} within {wait:.3g} s after {self.trigger_on}") from exc

    def _stop_reading(self) -> None:
        try:
            self.transport.write_line(self.trigger_off)
        except HardwareError:
            pass


__all__ = ["CodeReader", "NoRead"]
