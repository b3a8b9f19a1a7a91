"""The part's serial number: given by the PLC, read by a code reader on a serial port, or decoded
from the Data Matrix marked on the part in the coarse image of a view. The station config's
`[serial]` section chooses (`SerialConfig`); without one the caller's serial stands, the part id
when it gives none (as before serials were read).

A serial that cannot be had is `SerialNotRead` with the reason; the cycle makes the part ERROR with it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

SERIAL_SOURCES = ("plc", "barcode", "datamatrix")
NOT_READ = "serial not read: "


class SerialNotRead(Exception):
    """No serial for the part (none given, no read, unreadable mark); the message says why."""

    def __init__(self, why: str):
        super().__init__(NOT_READ + why)


@dataclass(frozen=True)
class SerialConfig:
    source: str = "plc"  # one of SERIAL_SOURCES
    url: str = ""  # barcode: the reader's port (device path or pyserial URL)
    baudrate: int = 115200  # barcode
    timeout_s: float = 1.0  # barcode: how long a read may take
    view: str = ""  # datamatrix: the recipe view whose coarse image shows the mark


def decode_datamatrix(image: np.ndarray) -> str | None:
    """The text of a Data Matrix in a mono (or BGR) frame, or None. Tries the frame at half scale
    first (area-averaged: sensor noise halves, modules of ≥ 6 px stay ≥ 3 px), then as it is, then
    median-filtered: direct part marks on metal read better smoothed."""
    import cv2
    import zxingcpp

    frame = np.ascontiguousarray(image)
    if frame.ndim == 3:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    attempts = (lambda f: cv2.resize(f, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
                lambda f: f, lambda f: cv2.medianBlur(f, 3))
    for prepare in attempts:
        found = zxingcpp.read_barcodes(prepare(frame), formats=zxingcpp.BarcodeFormat.DataMatrix)
        texts = [b.text for b in found if b.valid and b.text]
        if texts:
            return texts[0]
    return None


class SerialSource:
    """Resolves one part's serial per the config; owns the code reader's port (opened on first use)."""

    def __init__(self, config: SerialConfig | None, *,
                 open_reader: Callable[[SerialConfig], Any] | None = None):
        self.config = config
        self._open_reader = open_reader or _open_code_reader
        self._reader: Any = None

    @property
    def view(self) -> str | None:
        """The view whose coarse frame carries the serial (datamatrix), else None."""
        return self.config.view if self.config is not None and self.config.source == "datamatrix" else None

    def before_views(self, part_id: str, given: str) -> str | None:
        """The serial known before imaging: the PLC's, or the reader's. None: it comes from a frame."""
        if self.config is None:
            return given or part_id
        if self.config.source == "plc":
            if not given.strip():
                raise SerialNotRead("the PLC gave none")
            return given
        if self.config.source == "barcode":
            return self._read_code()
        return None

    def from_frame(self, frame: np.ndarray) -> str:
        text = decode_datamatrix(frame)
        if text is None:
            raise SerialNotRead(f"no readable Data Matrix in the coarse image of view {self.view!r}")
        return text

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            try:
                reader.close()
            except Exception:  # noqa: BLE001 - closing must not hide the part's verdict
                pass

    def _read_code(self) -> str:
        from hardware.errors import HardwareError, PortClosed, PortOpenError

        assert self.config is not None
        try:
            if self._reader is None:
                self._reader = self._open_reader(self.config)
            return self._reader.read()
        except (PortClosed, PortOpenError) as exc:
            self.close()  # opened anew for the next part
            raise SerialNotRead(f"code reader: {exc}") from exc
        except HardwareError as exc:
            raise SerialNotRead(f"code reader: {exc}") from exc


def _open_code_reader(config: SerialConfig) -> Any:
    from hardware.barcode.reader import CodeReader

    return CodeReader.open_url(config.url, timeout_s=config.timeout_s, baudrate=config.baudrate)


__all__ = ["SERIAL_SOURCES", "NOT_READ", "SerialNotRead", "SerialConfig", "SerialSource", "decode_datamatrix"]
