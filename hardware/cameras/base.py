"""One camera interface for every backend: configure, trigger, grab → Frame.

Stage pose at capture comes from a `pose_source` callable the station wires in (the motion
driver's last reported position), so each frame says where the stage was when it was taken.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import HardwareError

Roi = tuple[int, int, int, int]  # x, y, width, height in sensor pixels

# The range any camera of this cell class accepts (GenICam ExposureTime in µs, Gain as a factor). A
# station config may narrow it per camera to the camera's datasheet; nothing may widen it.
EXPOSURE_US_LIMITS = (10.0, 1_000_000.0)  # 10 µs – 1 s
GAIN_LIMITS = (0.1, 64.0)


class CameraError(HardwareError):
    """A camera could not be opened, configured or read."""


@dataclass(frozen=True)
class CameraSettings:
    exposure_us: float = 2000.0
    gain: float = 1.0
    roi: Roi | None = None

    def __post_init__(self) -> None:
        low, high = EXPOSURE_US_LIMITS
        if not low <= self.exposure_us <= high:
            raise ValueError(f"exposure_us must be {low:g} to {high:g} µs, got {self.exposure_us!r}")
        low, high = GAIN_LIMITS
        if not low <= self.gain <= high:
            raise ValueError(f"gain must be {low:g} to {high:g}, got {self.gain!r}")
        if self.roi is not None:
            x, y, w, h = self.roi
            if x < 0 or y < 0 or w <= 0 or h <= 0:
                raise ValueError(f"roi must be (x>=0, y>=0, w>0, h>0), got {self.roi!r}")


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # H×W uint8 (mono) or H×W×3 (colour backends)
    camera: str
    sequence: int
    timestamp: float  # time.time() at trigger
    exposure_us: float
    gain: float
    pose: Any = None  # the stage pose at trigger, when the station provides one
    truth: tuple = ()  # ground-truth boxes; only the virtual camera fills this
    meta: dict = field(default_factory=dict)


class Camera(ABC):
    """Software-triggered camera. `trigger()` starts an exposure; `grab()` returns its frame."""

    roi_in_camera = False  # True: the camera itself reads out only the ROI (the frame needs no cropping)

    def __init__(self, name: str, pose_source: Callable[[], Any] | None = None):
        self.name = name
        self.pose_source = pose_source
        self.settings = CameraSettings()
        self._sequence = 0
        self._pending: tuple[int, float, Any] | None = None

    def configure(self, exposure_us: float | None = None, gain: float | None = None,
                  roi: Roi | None = None) -> CameraSettings:
        current = self.settings
        self.settings = CameraSettings(
            exposure_us=current.exposure_us if exposure_us is None else exposure_us,
            gain=current.gain if gain is None else gain,
            roi=current.roi if roi is None else roi,
        )
        self._apply_settings(self.settings)
        return self.settings

    def trigger(self) -> None:
        self._sequence += 1
        pose = self.pose_source() if self.pose_source is not None else None
        self._pending = (self._sequence, time.time(), pose)
        self._start_exposure()

    def grab(self, timeout_s: float = 2.0) -> Frame:
        if self._pending is None:
            raise CameraError(f"camera {self.name!r}: grab() without trigger()")
        sequence, stamp, pose = self._pending
        self._pending = None
        image, truth, meta = self._read_exposure(timeout_s)
        if self.settings.roi is not None and not self.roi_in_camera:
            x, y, w, h = self.settings.roi
            image = image[y:y + h, x:x + w]
        return Frame(image=image, camera=self.name, sequence=sequence, timestamp=stamp,
                     exposure_us=self.settings.exposure_us, gain=self.settings.gain,
                     pose=pose, truth=truth, meta=meta)

    def snap(self, timeout_s: float = 2.0) -> Frame:
        self.trigger()
        return self.grab(timeout_s)

    def open(self) -> None:
        """Backends that hold a device open override this."""

    def close(self) -> None:
        """Backends that hold a device open override this."""

    def __enter__(self) -> "Camera":
        self.open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- backend hooks -------------------------------------------------------------------------
    def _apply_settings(self, settings: CameraSettings) -> None:
        """Push exposure/gain to the device where it supports them."""

    def _start_exposure(self) -> None:
        """Begin an exposure at trigger time (a backend with real triggering starts it here)."""

    @abstractmethod
    def _read_exposure(self, timeout_s: float) -> tuple[np.ndarray, tuple, dict]:
        """Return (image, truth, meta) for the exposure started by the last trigger."""
