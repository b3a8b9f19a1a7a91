"""A fixed-mount code reader on a pseudo-terminal, answering as a Keyence SR-750/SR-1000 in serial
command mode does (SR-750 Series user manual, ch. 8 "Details of Command Communication", timing
ON/OFF commands): `LON` CR → `OK,LON` CR, then after the reading time the code data CR, or the
read-error string `ERROR` CR when no code was read; `LOFF` → `OK,LOFF` (and the read error when a read
was pending); `LON` again during a read → `ER,LON,ee`; any other command → `ER,<command>,ee`. Header
none, terminator CR. The error code numbers here (`00` unknown command, `01` busy) are this
emulator's, not the manual's.

It reads the serial mark of the part in the virtual cell's fixture: an empty fixture, an unmarked part,
a forced no-read or a draw under `no_read_rate` answer the read error.
"""
from __future__ import annotations

import random
import time
from typing import Any, Callable

from .pty_device import PtyDevice


class CodeReaderEmulator(PtyDevice):
    eol = b"\r"

    def __init__(self, part: Callable[[], Any], *, read_time_s: float = 0.02, no_read_rate: float = 0.0,
                 seed: int = 0, read_error: str = "ERROR"):
        """`part()` gives what the fixture holds (a hardware.sim.part.PartInstance or None)."""
        super().__init__("code-reader")
        if not 0.0 <= no_read_rate <= 1.0:
            raise ValueError(f"no_read_rate must lie in [0, 1], got {no_read_rate}")
        self.part, self.read_time_s, self.no_read_rate = part, read_time_s, no_read_rate
        self.read_error = read_error
        self.force_no_read = False  # tests: every read fails until cleared
        self.triggers = 0
        self._rng = random.Random(seed)
        self._pending_until: float | None = None
        self._pending_text: str | None = None

    def on_line(self, line: str) -> None:
        command = line.strip()
        if command == "LON":
            if self._pending_until is not None:
                self.send_line_cr("ER,LON,01")
                return
            self.triggers += 1
            self.send_line_cr("OK,LON")
            self._pending_text = self._look()
            self._pending_until = time.monotonic() + self.read_time_s
        elif command == "LOFF":
            self.send_line_cr("OK,LOFF")
            if self._pending_until is not None:
                self._pending_until = self._pending_text = None
                self.send_line_cr(self.read_error)
        elif command:
            self.send_line_cr(f"ER,{command},00")

    def tick(self) -> None:
        if self._pending_until is not None and time.monotonic() >= self._pending_until:
            text, self._pending_until, self._pending_text = self._pending_text, None, None
            self.send_line_cr(text if text else self.read_error)

    def send_line_cr(self, text: str) -> None:
        self.send(text.encode("ascii") + b"\r")

    def _look(self) -> str | None:
        """What the reader decodes now: the serial of a marked part in the fixture, or None."""
        if self.force_no_read or (self.no_read_rate and self._rng.random() < self.no_read_rate):
            return None
        held = self.part()
        if held is None or not getattr(held, "marked", False):
            return None
        return str(held.serial)


__all__ = ["CodeReaderEmulator"]
