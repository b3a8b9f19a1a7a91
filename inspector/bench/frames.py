"""Cameras for timed runs: record what the virtual cell renders, then replay it.

The virtual camera renders each frame (≈0.2 s for a coarse frame on one core). A real camera
spends the exposure (2–3 ms here) plus its readout, not a render, so timing the cycle with the
renderer inside would charge simulator cost to the machine and steal CPU from the detector that
runs behind the next move. The bench therefore runs each part twice: once on rendering cameras
(`RecordingCamera` keeps every frame with the stage pose it was taken at), then, timed, on
`ReplayCamera`s that hand back those frames (in order, or by the pose they were taken at) after
waiting the exposure time. The station
code, the models, the serial traffic and the machine dynamics are the real ones; only the
renderer is taken out. A replayed frame is used only if the stage stands where it stood when the
frame was rendered; otherwise the replay camera renders live (if it has a fallback) and counts a miss.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from hardware.cameras.base import Camera, CameraError

POSE_TOLERANCE = 1e-3  # mm / degree: the same commanded pose reads back the same


def pose_tuple(pose) -> tuple[float, ...] | None:
    if pose is None:
        return None
    if hasattr(pose, "as_tuple"):
        return tuple(float(v) for v in pose.as_tuple())
    return tuple(float(v) for v in pose)


def same_pose(a: tuple[float, ...] | None, b: tuple[float, ...] | None) -> bool:
    if a is None or b is None:
        return a is b
    return len(a) == len(b) and all(abs(x - y) <= POSE_TOLERANCE for x, y in zip(a, b))


@dataclass
class FrameTape:
    """Frames per part (key: serial) and camera role, in capture order, with the pose of each."""

    parts: dict[str, dict[str, list[tuple[tuple[float, ...] | None, np.ndarray]]]] = field(default_factory=dict)
    seeds: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, role: str, pose, image: np.ndarray) -> None:
        self.parts.setdefault(key, {}).setdefault(role, []).append((pose_tuple(pose), image))

    def frames(self, key: str, role: str) -> list[tuple[tuple[float, ...] | None, np.ndarray]]:
        return self.parts.get(key, {}).get(role, [])

    def images(self, role: str) -> list[np.ndarray]:
        return [image for roles in self.parts.values() for _, image in roles.get(role, [])]

    @property
    def nbytes(self) -> int:
        return sum(image.nbytes for roles in self.parts.values() for seq in roles.values() for _, image in seq)


class RecordingCamera(Camera):
    """Passes every call to the wrapped camera and keeps each frame on the tape under the current part."""

    def __init__(self, inner: Camera, tape: FrameTape):
        super().__init__(inner.name, inner.pose_source)
        self.inner, self.tape = inner, tape
        self.key: str | None = None
        self._pose = None

    def start_part(self, key: str) -> None:
        self.key = key

    def _apply_settings(self, settings) -> None:
        self.inner.configure(exposure_us=settings.exposure_us, gain=settings.gain, roi=settings.roi)

    def _start_exposure(self) -> None:
        assert self._pending is not None
        self._pose = self._pending[2]  # the stage pose at trigger (the base class clears _pending before a read)
        self.inner.trigger()

    def _read_exposure(self, timeout_s: float):
        pose = self._pose
        frame = self.inner.grab(timeout_s)
        if self.key is not None:
            self.tape.add(self.key, self.name, pose, frame.image)
        return frame.image, frame.truth, frame.meta

    def close(self) -> None:
        self.inner.close()


class ReplayCamera(Camera):
    """Hands back a part's recorded frames in order; waits the exposure time (in machine time)."""

    def __init__(self, name: str, tape: FrameTape, *, speed_factor: float = 1.0, fallback: Camera | None = None,
                 pose_source=None):
        super().__init__(name, pose_source)
        self.tape, self.speed_factor, self.fallback = tape, speed_factor, fallback
        self.key: str | None = None
        self.index = 0
        self._used = set()
        self.replayed = 0
        self.misses = 0
        self._trigger_at = 0.0
        self._pose: tuple[float, ...] | None = None

    def start_part(self, key: str) -> None:
        self.key, self.index = key, 0
        self._used: set[int] = set()

    def _apply_settings(self, settings) -> None:
        if self.fallback is not None:
            self.fallback.configure(exposure_us=settings.exposure_us, gain=settings.gain, roi=settings.roi)

    def _start_exposure(self) -> None:
        assert self._pending is not None
        self._pose = pose_tuple(self._pending[2])
        self._trigger_at = time.perf_counter()

    def _read_exposure(self, timeout_s: float):
        pose = self._pose
        frames = self.tape.frames(self.key, self.name) if self.key is not None else []
        index, self.index = self.index, self.index + 1
        exposure_s = self.settings.exposure_us / 1e6 / self.speed_factor
        remaining = exposure_s - (time.perf_counter() - self._trigger_at)
        if remaining > 0:
            time.sleep(remaining)
        # the frame taken at this pose: in capture order, else (the faces visited in another order, as when
        # a part starts from elsewhere) the first one not yet replayed that was taken where the stage stands
        found = index if index < len(frames) and index not in self._used and same_pose(frames[index][0], pose) else next(
            (i for i, (at, _) in enumerate(frames) if i not in self._used and same_pose(at, pose)), None)
        if found is not None:
            self._used.add(found)
            self.replayed += 1
            return frames[found][1], (), {"replayed": True}
        self.misses += 1
        if self.fallback is None:
            raise CameraError(f"camera {self.name!r}: no recorded frame {index} of part {self.key!r} at pose {pose}")
        frame = self.fallback.snap(timeout_s)
        return frame.image, frame.truth, dict(frame.meta, replayed=False)
