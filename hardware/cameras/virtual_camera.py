"""The virtual cell's camera: renders what the emulated stage pose and lights make visible.

At trigger it takes a snapshot of the scene (the part in the fixture, the stage pose the motion
emulator reports, the light levels the light emulator holds for this exposure); `grab` renders it.
An empty fixture renders as the background, as a real camera would show it. Camera faults of the
cell (hardware.sim.faults) act here: no frame, black frames, a stuck gain, a knocked focus.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from .base import Camera, CameraError


@dataclass(frozen=True)
class SceneSnapshot:
    part: Any  # hardware.sim.part.PartInstance, or None when the fixture is empty
    pose: Any  # hardware.sim.geometry.StagePose
    lights: Mapping[str, float]  # role → effective level % during the exposure
    moving: bool = False
    target: Any = None  # hardware.sim.target.CalibrationTarget when that is in the fixture instead of a part
    faults: frozenset[tuple[str, str]] = frozenset()  # (fault kind, camera role) of the cell's camera faults


def _exposure_key(snapshot: SceneSnapshot | None, exposure_us: float, gain: float) -> str:
    """The exposure as the scene saw it: pose to 0.1 µm / 0.0001°, light levels, exposure and gain."""
    if snapshot is None:
        return f"{exposure_us:.1f}|{gain:.3f}"
    pose = snapshot.pose
    where = ",".join(f"{getattr(pose, axis, 0.0):.4f}" for axis in ("x", "y", "z", "a", "b"))
    lights = ",".join(f"{role}={level:.2f}" for role, level in sorted(snapshot.lights.items()))
    return f"{where}|{lights}|{exposure_us:.1f}|{gain:.3f}"


class Scene(Protocol):
    def snapshot(self, exposure_us: float) -> SceneSnapshot: ...


class VirtualCamera(Camera):
    def __init__(self, name: str, spec: Any, scene: Scene, *, seed: int = 0,
                 pose_source: Callable[[], Any] | None = None):
        super().__init__(name, pose_source)
        self.spec = spec  # hardware.sim.geometry.CameraSpec
        self.scene = scene
        self.seed = seed
        self.fail_next: str | None = None  # fault injection: the next grab raises CameraError(reason)
        self._snapshot: SceneSnapshot | None = None
        self._held: Any = None  # what the fixture held at the last exposure
        self._shots_of_held: dict[str, int] = {}  # exposures of it so far, per pose and light

    def _noise_seed(self, held: Any, snapshot: SceneSnapshot | None = None) -> int:
        """Sensor noise depends on what is imaged, where and how, and on how often this camera took that
        same exposure of it since it was loaded — not on what came before or in which order the shots
        were taken: a part renders to the same frames whichever lot it is in and whatever path the
        planner takes to its shots, so a lot run and an evaluation of the same seeds see identical
        images (a repeat at the same pose still gets fresh noise)."""
        if held is not self._held:
            self._held, self._shots_of_held = held, {}
        key = _exposure_key(snapshot, self.settings.exposure_us, self.settings.gain)
        self._shots_of_held[key] = count = self._shots_of_held.get(key, 0) + 1
        identity = int(getattr(held, "seed", 0))
        digest = hashlib.blake2b(f"{self.seed}|{identity}|{key}|{count}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % (2**63)

    def _start_exposure(self) -> None:
        self._snapshot = self.scene.snapshot(self.settings.exposure_us)

    def _read_exposure(self, timeout_s: float) -> tuple[np.ndarray, tuple, dict]:
        # the renderer is heavy; only the virtual cell needs it
        from ..sim.faults import camera_exposure
        from ..sim.render import render, render_background

        if self.fail_next is not None:
            reason, self.fail_next = self.fail_next, None
            raise CameraError(f"camera {self.name!r}: {reason}")
        snapshot = self._snapshot
        assert snapshot is not None
        faults = {kind for kind, role in snapshot.faults if role == self.name}
        if "camera-timeout" in faults:
            time.sleep(timeout_s)
            raise CameraError(f"camera {self.name!r}: no frame within {timeout_s:g} s (grab timed out)")
        spec, gain = camera_exposure(faults, self.spec, self.settings.gain)
        if snapshot.target is not None:
            image, truth, meta = self._render_target(snapshot, spec, gain)
        elif snapshot.part is None:
            image = render_background(dict(snapshot.lights), spec, exposure_us=self.settings.exposure_us, gain=gain,
                                      seed=self._noise_seed(None, snapshot))
            truth, meta = (), {"moving": snapshot.moving}
        else:
            result = render(snapshot.part, snapshot.pose, dict(snapshot.lights), spec,
                            exposure_us=self.settings.exposure_us, gain=gain, seed=self._noise_seed(snapshot.part, snapshot))
            image, truth = result.image, tuple(result.truth)
            meta = {"face": result.face, "defocus_mm": result.defocus_mm, "moving": snapshot.moving,
                    "part_serial": snapshot.part.serial}
        if "black-frames" in faults:
            image = np.zeros_like(image)
        return image, truth, meta

    def _render_target(self, snapshot: SceneSnapshot, spec: Any, gain: float) -> tuple[np.ndarray, tuple, dict]:
        from ..sim.target import render_target

        target = snapshot.target
        try:
            pitch_mm = target.pitch_mm(self.spec)
        except ValueError:  # this camera resolves none of its grids
            pitch_mm = None
        result = render_target(target, snapshot.pose, dict(snapshot.lights), spec,
                               exposure_us=self.settings.exposure_us, gain=gain, seed=self._noise_seed(target, snapshot))
        # the truth of a calibration frame: the camera's true scale, and the pitch of the grid meant for it
        meta = {"face": result.face, "defocus_mm": result.defocus_mm, "moving": snapshot.moving,
                "target": target.serial, "target_pitch_mm": pitch_mm,
                "mm_per_px_true": self.spec.mm_per_px}
        return result.image, (), meta
