"""Cameras read through OpenCV: a USB/UVC device index, a GStreamer pipeline, a video file,
or a folder / glob of images replayed in name order (for audits and offline replay)."""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from .base import Camera, CameraError, CameraSettings

IMAGE_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")


class OpenCVCamera(Camera):
    """`source`: an int (device index), a GStreamer pipeline (contains '!'), or a video file path."""

    def __init__(self, name: str, source: int | str, *, mono: bool = True,
                 pose_source: Callable[[], Any] | None = None):
        super().__init__(name, pose_source)
        self.source = source
        self.mono = mono
        self._capture: cv2.VideoCapture | None = None

    def open(self) -> None:
        if self._capture is not None:
            return
        if isinstance(self.source, str) and "!" in self.source:
            capture = cv2.VideoCapture(self.source, cv2.CAP_GSTREAMER)
        else:
            capture = cv2.VideoCapture(self.source)
        if not capture.isOpened():
            capture.release()
            raise CameraError(f"camera {self.name!r}: cannot open OpenCV source {self.source!r}")
        self._capture = capture
        self._apply_settings(self.settings)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def _apply_settings(self, settings: CameraSettings) -> None:
        if self._capture is None:
            return
        # UVC drivers take exposure in their own units (often log2 seconds); backends that
        # ignore the property return False, which is not an error for a replayed video.
        self._capture.set(cv2.CAP_PROP_EXPOSURE, settings.exposure_us / 1e6)
        self._capture.set(cv2.CAP_PROP_GAIN, settings.gain)

    def _start_exposure(self) -> None:
        if self._capture is None:
            self.open()
        assert self._capture is not None
        if not self._capture.grab():
            raise CameraError(f"camera {self.name!r}: trigger failed (no frame from {self.source!r})")

    def _read_exposure(self, timeout_s: float) -> tuple[np.ndarray, tuple, dict]:
        assert self._capture is not None
        ok, image = self._capture.retrieve()
        if not ok or image is None:
            raise CameraError(f"camera {self.name!r}: could not read the frame from {self.source!r}")
        if self.mono and image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return image, (), {"source": str(self.source)}


class ImageSequenceCamera(Camera):
    """Replays image files in name order; each trigger takes the next one. `loop` wraps around."""

    def __init__(self, name: str, source: str | os.PathLike, *, loop: bool = False, mono: bool = True,
                 pose_source: Callable[[], Any] | None = None):
        super().__init__(name, pose_source)
        self.paths = list_images(source)
        if not self.paths:
            raise CameraError(f"camera {name!r}: no images ({', '.join(IMAGE_SUFFIXES)}) in {str(source)!r}")
        self.loop = loop
        self.mono = mono
        self._index = 0
        self._current: Path | None = None

    def _start_exposure(self) -> None:
        if self._index >= len(self.paths):
            if not self.loop:
                raise CameraError(f"camera {self.name!r}: image sequence exhausted after {len(self.paths)} frames")
            self._index = 0
        self._current = self.paths[self._index]
        self._index += 1

    def _read_exposure(self, timeout_s: float) -> tuple[np.ndarray, tuple, dict]:
        assert self._current is not None
        flags = cv2.IMREAD_GRAYSCALE if self.mono else cv2.IMREAD_COLOR
        image = cv2.imread(str(self._current), flags)
        if image is None:
            raise CameraError(f"camera {self.name!r}: cannot read image {str(self._current)!r}")
        return image, (), {"source": str(self._current)}


def list_images(source: str | os.PathLike) -> list[Path]:
    """A folder's images, or a glob's matches, sorted by name."""
    path = Path(source)
    if path.is_dir():
        candidates = sorted(path.iterdir())
    else:
        candidates = sorted(Path(p) for p in glob.glob(str(source)))
    return [p for p in candidates if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]

