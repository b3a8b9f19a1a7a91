"""Base for controller emulators, each owning a real pseudo-terminal.

The driver under test opens `port_path` with pyserial exactly as it would open a USB adapter,
so the bytes cross a real tty. A subclass implements `on_bytes` (or `on_line` for line protocols)
and answers with `send`. `port_path` is a stable link to the pty (as /dev/serial/by-id/… is to a USB
adapter): `vanish()` closes the master side, so the driver sees the port go away like a pulled
cable, and `replug()` brings the device back on a new pty behind the same path.
"""
from __future__ import annotations

import os
import select
import shutil
import tempfile
import threading
import tty
from collections import deque

RECEIVED_KEPT = 10_000  # raw chunks kept for tests and protocol logs; a soak sends millions


class PtyDevice:
    eol = b"\n"

    def __init__(self, name: str):
        self.name = name
        self._folder = tempfile.mkdtemp(prefix=f"pty-{name}-")
        self.port_path = os.path.join(self._folder, "port")
        self._open_pty()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._line = bytearray()
        self.mute = False  # when True, the device swallows input and answers nothing (a hung controller)
        self.received: deque[bytes] = deque(maxlen=RECEIVED_KEPT)  # the latest raw chunks, for tests and logs

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "PtyDevice":
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=f"pty-{self.name}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        self._close_fds()
        shutil.rmtree(self._folder, ignore_errors=True)

    def vanish(self) -> None:
        """Drop the port as a pulled cable would: the driver's next read or write fails."""
        self._stop.set()
        self._close_fds()

    def replug(self) -> None:
        """Plug the cable back in: a new pty behind the same `port_path`, the device serving again
        (its state kept, as a unit that stayed powered keeps it). A driver must open the port anew."""
        self.vanish()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        self._thread = None
        with self._lock:
            self._open_pty()
            self._line.clear()
        self._stop.clear()
        self.start()

    def _open_pty(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        link = self.port_path + ".new"
        os.symlink(os.ttyname(self._slave), link)
        os.replace(link, self.port_path)

    def __enter__(self) -> "PtyDevice":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- I/O ---------------------------------------------------------------------------------
    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("ascii")
        with self._lock:
            if self._master < 0:
                return
            try:
                os.write(self._master, data)
            except OSError:
                pass

    def send_line(self, text: str) -> None:
        self.send(text.encode("ascii") + b"\r\n")

    def on_bytes(self, data: bytes) -> None:
        """Default: split into lines (\\r or \\n) and hand each to `on_line`."""
        for byte in data:
            if byte in (0x0A, 0x0D):
                if self._line:
                    line, self._line = bytes(self._line), bytearray()
                    self.on_line(line.decode("ascii", errors="replace"))
            else:
                self._line.append(byte)

    def on_line(self, line: str) -> None:  # pragma: no cover - subclasses override
        raise NotImplementedError

    def tick(self) -> None:
        """Called about every 5 ms from the serving thread; emulators advance time here."""

    # -- internals --------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            master = self._master
            if master < 0:
                return
            try:
                readable, _, _ = select.select([master], [], [], 0.005)
            except (OSError, ValueError):
                return
            if readable:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    return
                if data:
                    self.received.append(data)
                    if not self.mute:
                        with self._lock:
                            self.on_bytes(data)
            with self._lock:
                self.tick()

    def _close_fds(self) -> None:
        with self._lock:
            for attr in ("_master", "_slave"):
                fd = getattr(self, attr)
                if fd >= 0:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                    setattr(self, attr, -1)
